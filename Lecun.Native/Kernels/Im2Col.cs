namespace Lecun.Native.Kernels;

/// <summary>
/// Unfolds strided k x k windows of constant-padded planes into columns, so a locally-connected
/// layer becomes a matrix product: cols[(plane*k + ky)*k + kx, oy*outW + ox] =
/// padded[plane, oy*stride + ky, ox*stride + kx], with positions outside the input holding padValue.
/// </summary>
public static class Im2Col
{
    public static int OutputSide(int side, int k, int stride, int pad) => (side + 2 * pad - k) / stride + 1;

    /// <remarks>
    /// The columns of one example start at column <paramref name="colOffset"/> of a matrix whose rows are
    /// <paramref name="ld"/> floats long, so a batch fills one [planes*k*k, batch*positions] matrix.
    /// </remarks>
    public static void Forward(ReadOnlySpan<float> input, int planes, int height, int width,
        int k, int stride, int pad, float padValue, Span<float> cols, int colOffset, int ld)
    {
        int oh = OutputSide(height, k, stride, pad), ow = OutputSide(width, k, stride, pad);
        int n = oh * ow;
        if (input.Length < planes * height * width || colOffset + n > ld || cols.Length < (planes * k * k - 1) * ld + colOffset + n)
            throw new ArgumentException("im2col: span too small");
        int row = 0;
        for (int c = 0; c < planes; c++)
        {
            var plane = input.Slice(c * height * width, height * width);
            for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++, row++)
            {
                var dst = cols.Slice(row * ld + colOffset, n);
                for (int oy = 0; oy < oh; oy++)
                {
                    int y = oy * stride + ky - pad;
                    var dstRow = dst.Slice(oy * ow, ow);
                    if ((uint)y >= (uint)height) { dstRow.Fill(padValue); continue; }
                    var src = plane.Slice(y * width, width);
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int x = ox * stride + kx - pad;
                        dstRow[ox] = (uint)x < (uint)width ? src[x] : padValue;
                    }
                }
            }
        }
    }

    /// <summary>
    /// The adjoint of <see cref="Forward"/>: dInput[plane, y, x] = sum of the dCols entries that read
    /// (y, x). Entries that read padding are dropped (the pad is a constant, not an input).
    /// dInput is overwritten.
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dCols, int planes, int height, int width,
        int k, int stride, int pad, Span<float> dInput)
    {
        int oh = OutputSide(height, k, stride, pad), ow = OutputSide(width, k, stride, pad);
        int n = oh * ow;
        if (dInput.Length < planes * height * width || dCols.Length < planes * k * k * n)
            throw new ArgumentException("col2im: span too small");
        dInput.Slice(0, planes * height * width).Clear();
        int row = 0;
        for (int c = 0; c < planes; c++)
        {
            var plane = dInput.Slice(c * height * width, height * width);
            for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++, row++)
            {
                var src = dCols.Slice(row * n, n);
                for (int oy = 0; oy < oh; oy++)
                {
                    int y = oy * stride + ky - pad;
                    if ((uint)y >= (uint)height) continue;
                    var dst = plane.Slice(y * width, width);
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int x = ox * stride + kx - pad;
                        if ((uint)x < (uint)width) dst[x] += src[oy * ow + ox];
                    }
                }
            }
        }
    }
}
