using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Lecun.Native.Kernels;

/// <summary>Small fused elementwise kernels of the forward and backward passes.</summary>
public static class Elementwise
{
    /// <summary>da = dy * (1 - y^2): the tanh derivative expressed through the unit's output.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void TanhBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> da)
    {
        // Vector lanes and the scalar tail round the same three operations in the same order.
        int n = y.Length, i = 0;
        if (dy.Length < n || da.Length < n) throw new ArgumentException("tanh backward: span too small");
        fixed (float* py = y, pd = dy, pa = da)
        {
            var one = Vector512.Create(1f);
            for (; i + 16 <= n; i += 16)
            {
                var v = Vector512.Load(py + i);
                Vector512.Store((one - v * v) * Vector512.Load(pd + i), pa + i);
            }
            for (; i < n; i++) pa[i] = (1f - py[i] * py[i]) * pd[i];
        }
    }

    /// <summary>Scaled tanh of LeCun's later papers: 1.7159 tanh(2a/3).</summary>
    public const float ScaledTanhA = 1.7159f, ScaledTanhS = 2f / 3f;

    public static void ReluForward(ReadOnlySpan<float> a, Span<float> y) => TensorPrimitives.Max(a, 0f, y.Slice(0, a.Length));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void ReluBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> da)
    {
        int n = y.Length, i = 0;
        if (dy.Length < n || da.Length < n) throw new ArgumentException("relu backward: span too small");
        fixed (float* py = y, pd = dy, pa = da)
        {
            for (; i + 16 <= n; i += 16)
            {
                var on = Vector512.GreaterThan(Vector512.Load(py + i), Vector512<float>.Zero);
                Vector512.Store(Vector512.ConditionalSelect(on, Vector512.Load(pd + i), Vector512<float>.Zero), pa + i);
            }
            for (; i < n; i++) pa[i] = py[i] > 0f ? pd[i] : 0f;
        }
    }
}
