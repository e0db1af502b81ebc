namespace Lecun.Native.Kernels;

/// <summary>
/// col2im over a batch: the adjoint of <see cref="Im2ColPlan.Forward"/> run for examples 0..count-1
/// into one [Rows, ld] column matrix (example b's columns starting at column b * Positions), as the
/// batched input gradient of a locally-connected layer needs it.
/// </summary>
public static class BatchColumns
{
    /// <summary>
    /// dInput[b, plane, y, x] = the sum of the column entries of example b that read input (plane, y, x);
    /// entries that read padding are dropped. Overwrites dInput, [count, plan.InputSize].
    /// </summary>
    public static unsafe void Fold(Im2ColPlan plan, ReadOnlySpan<float> dCols, int ld, int count, Span<float> dInput)
    {
        int k = plan.Kernel, stride = plan.Stride, h = plan.Height, w = plan.Width;
        int outW = Im2ColPlan.OutputSide(w, k, stride, plan.Pad), outH = plan.Positions / outW;
        int positions = plan.Positions, inputSize = plan.InputSize;
        int offY = plan.Pad + plan.ShiftY, offX = plan.Pad + plan.ShiftX;
        if (ld < count * positions) throw new ArgumentException($"ld {ld} < {count} x {positions} columns");
        if (dCols.Length < (long)(plan.Rows - 1) * ld + count * positions) throw new ArgumentException("dCols too small");
        if (dInput.Length < (long)count * inputSize) throw new ArgumentException("dInput too small");
        dInput[..(count * inputSize)].Clear();
        fixed (float* pc = dCols, pd = dInput)
        {
            for (int plane = 0; plane < plan.Planes; plane++)
            for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
            {
                float* row = pc + (long)((plane * k + ky) * k + kx) * ld;
                for (int oy = 0; oy < outH; oy++)
                {
                    int y = oy * stride + ky - offY;
                    if ((uint)y >= (uint)h) continue;
                    for (int ox = 0; ox < outW; ox++)
                    {
                        int x = ox * stride + kx - offX;
                        if ((uint)x >= (uint)w) continue;
                        int position = oy * outW + ox;
                        float* target = pd + (plane * h + y) * w + x;
                        for (int b = 0; b < count; b++)
                            target[(long)b * inputSize] += row[b * positions + position];
                    }
                }
            }
        }
    }
}
