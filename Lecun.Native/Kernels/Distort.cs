namespace Lecun.Native.Kernels;

/// <summary>
/// Training distortions of a digit (affine and elastic, Simard, Steinkraus &amp; Platt 2003), written
/// into the first layer's padded frame: a [height + 2 pad, width + 2 pad] image whose border is the
/// padding, so ink that a distortion moves past the 16x16 box lands on padding the windows still read.
/// Allocation-free: the caller owns every buffer.
/// </summary>
public static class Distort
{
    /// <summary>
    /// frame[Y, X] = the input sampled bilinearly at the source point of frame pixel (Y, X), in frame
    /// coordinates: (sx, sy) = M (X - cx, Y - cy) + (cx, cy) + (tx, ty) + (dispX[Y, X], dispY[Y, X]),
    /// with (cx, cy) the frame's centre and M = [m00 m01; m10 m11]. Input pixels outside the image read
    /// <paramref name="background"/>, so every frame pixel whose source lies outside it is background.
    /// With M = I, t = 0 and no displacement (empty spans) the frame is the padded input exactly.
    /// </summary>
    public static void Warp(ReadOnlySpan<float> image, int height, int width, int pad,
                            float m00, float m01, float m10, float m11, float tx, float ty,
                            ReadOnlySpan<float> dispX, ReadOnlySpan<float> dispY, float background, Span<float> frame)
    {
        int fh = height + 2 * pad, fw = width + 2 * pad;
        bool elastic = !dispX.IsEmpty;
        if (image.Length < height * width || frame.Length < fh * fw || (elastic && (dispX.Length < fh * fw || dispY.Length < fh * fw)))
            throw new ArgumentException("distort: span too small");
        float cx = 0.5f * (fw - 1), cy = 0.5f * (fh - 1);
        for (int y = 0; y < fh; y++)
        {
            float v = y - cy;
            for (int x = 0; x < fw; x++)
            {
                float u = x - cx;
                float sx = m00 * u + m01 * v + cx + tx - pad;
                float sy = m10 * u + m11 * v + cy + ty - pad;
                if (elastic) { sx += dispX[y * fw + x]; sy += dispY[y * fw + x]; }
                frame[y * fw + x] = Bilinear(image, height, width, sx, sy, background);
            }
        }
    }

    /// <summary>The image at (x, y) in its own pixel coordinates, bilinear, background outside.</summary>
    static float Bilinear(ReadOnlySpan<float> image, int height, int width, float x, float y, float background)
    {
        // Far outside: background without the floor of a huge number.
        if (!(x > -1.0f && x < width && y > -1.0f && y < height)) return background;
        int x0 = (int)MathF.Floor(x), y0 = (int)MathF.Floor(y);
        float fx = x - x0, fy = y - y0;
        float a = At(image, height, width, y0, x0, background), b = At(image, height, width, y0, x0 + 1, background);
        float c = At(image, height, width, y0 + 1, x0, background), d = At(image, height, width, y0 + 1, x0 + 1, background);
        // At integer points fx = fy = 0 and the sum is a exactly.
        return (a * (1.0f - fx) + b * fx) * (1.0f - fy) + (c * (1.0f - fx) + d * fx) * fy;
    }

    static float At(ReadOnlySpan<float> image, int height, int width, int y, int x, float background) =>
        (uint)y < (uint)height && (uint)x < (uint)width ? image[y * width + x] : background;

    /// <summary>
    /// Smooths a [height, width] field in place with a separable kernel (taps centred, zero beyond the
    /// field's edge): first along rows, then along columns. <paramref name="scratch"/> holds height * width floats.
    /// </summary>
    public static void Smooth(Span<float> field, int height, int width, ReadOnlySpan<float> kernel, Span<float> scratch)
    {
        int n = height * width, r = kernel.Length / 2;
        if (kernel.Length % 2 != 1 || field.Length < n || scratch.Length < n) throw new ArgumentException("distort: bad smoothing spans");
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
        {
            float s = 0.0f;
            int from = Math.Max(-r, -x), to = Math.Min(r, width - 1 - x);
            for (int j = from; j <= to; j++) s += kernel[j + r] * field[y * width + x + j];
            scratch[y * width + x] = s;
        }
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
        {
            float s = 0.0f;
            int from = Math.Max(-r, -y), to = Math.Min(r, height - 1 - y);
            for (int j = from; j <= to; j++) s += kernel[j + r] * scratch[(y + j) * width + x];
            field[y * width + x] = s;
        }
    }
}
