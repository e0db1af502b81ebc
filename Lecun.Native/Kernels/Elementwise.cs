using System.Numerics.Tensors;

namespace Lecun.Native.Kernels;

/// <summary>Small fused elementwise kernels of the forward and backward passes.</summary>
public static class Elementwise
{
    /// <summary>da = dy * (1 - y^2): the tanh derivative expressed through the unit's output.</summary>
    public static void TanhBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> da)
    {
        // (1 - y*y) * dy computed as dy - y*y*dy keeps one rounding order on every path.
        int n = y.Length;
        if (dy.Length < n || da.Length < n) throw new ArgumentException("tanh backward: span too small");
        for (int i = 0; i < n; i++) da[i] = (1f - y[i] * y[i]) * dy[i];
    }

    /// <summary>Scaled tanh of LeCun's later papers: 1.7159 tanh(2a/3).</summary>
    public const float ScaledTanhA = 1.7159f, ScaledTanhS = 2f / 3f;

    public static void ReluForward(ReadOnlySpan<float> a, Span<float> y) => TensorPrimitives.Max(a, 0f, y.Slice(0, a.Length));

    public static void ReluBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> da)
    {
        int n = y.Length;
        for (int i = 0; i < n; i++) da[i] = y[i] > 0f ? dy[i] : 0f;
    }
}
