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
            if (KernelWidth.UseAvx512)
            {
                var one = Vector512.Create(1f);
                for (; i + 16 <= n; i += 16)
                {
                    var v = Vector512.Load(py + i);
                    Vector512.Store((one - v * v) * Vector512.Load(pd + i), pa + i);
                }
            }
            else
            {
                var one = Vector256.Create(1f);
                for (; i + 8 <= n; i += 8)
                {
                    var v = Vector256.Load(py + i);
                    Vector256.Store((one - v * v) * Vector256.Load(pd + i), pa + i);
                }
            }
            for (; i < n; i++) pa[i] = (1f - py[i] * py[i]) * pd[i];
        }
    }

    /// <summary>Scaled tanh of LeCun's later papers: 1.7159 tanh(2a/3).</summary>
    public const float ScaledTanhA = 1.7159f, ScaledTanhS = 2f / 3f;

    /// <summary>
    /// da = S (A - y^2 / A) dy: the derivative of y = A tanh(S a) expressed through the unit's output,
    /// rounded after each operation in this order (lanes and tail alike).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void ScaledTanhBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> da)
    {
        const float a = ScaledTanhA, s = ScaledTanhS;
        int n = y.Length, i = 0;
        if (dy.Length < n || da.Length < n) throw new ArgumentException("scaled tanh backward: span too small");
        fixed (float* py = y, pd = dy, pa = da)
        {
            if (KernelWidth.UseAvx512)
            {
                var va = Vector512.Create(a);
                for (; i + 16 <= n; i += 16)
                {
                    var v = Vector512.Load(py + i);
                    Vector512.Store(s * (va - v * v / va) * Vector512.Load(pd + i), pa + i);
                }
            }
            else
            {
                var va = Vector256.Create(a);
                for (; i + 8 <= n; i += 8)
                {
                    var v = Vector256.Load(py + i);
                    Vector256.Store(s * (va - v * v / va) * Vector256.Load(pd + i), pa + i);
                }
            }
            for (; i < n; i++) pa[i] = s * (a - py[i] * py[i] / a) * pd[i];
        }
    }

    /// <summary>y = max(a, 0) (NaN stays NaN, as Math.Max).</summary>
    public static void ReluForward(ReadOnlySpan<float> a, Span<float> y) => Map(a, a, y, new ReluOp());

    // The element-wise operations below replace System.Numerics.Tensors' TensorPrimitives in the
    // per-example loop: in place (destination = an input) on 512 to 800 floats, its Add was an order
    // of magnitude slower than this plain loop (the probe is in docs/design.md, "Measurements behind kernel choices").
    // Each lane rounds exactly the operations written, as TensorPrimitives does, so results are the same bits.

    /// <summary>dst = x + y.</summary>
    public static void Add(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst) => Map(x, y, dst, new AddOp());

    /// <summary>dst = x - y.</summary>
    public static void Subtract(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst) => Map(x, y, dst, new SubtractOp());

    /// <summary>dst = x * y.</summary>
    public static void Multiply(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst) => Map(x, y, dst, new MultiplyOp());

    /// <summary>dst = x * s.</summary>
    public static void Multiply(ReadOnlySpan<float> x, float s, Span<float> dst) => Map(x, x, dst, new ScaleOp(s));

    /// <summary>dst = x * s + addend, rounded after the product and after the sum (not fused).</summary>
    public static void MultiplyAdd(ReadOnlySpan<float> x, float s, ReadOnlySpan<float> addend, Span<float> dst) =>
        Map(x, addend, dst, new ScaleAddOp(s));

    interface IBinaryOp
    {
        Vector512<float> Apply(Vector512<float> x, Vector512<float> y);
        Vector256<float> Apply(Vector256<float> x, Vector256<float> y);
        float Apply(float x, float y);
    }

    readonly struct AddOp : IBinaryOp
    {
        public Vector512<float> Apply(Vector512<float> x, Vector512<float> y) => x + y;
        public Vector256<float> Apply(Vector256<float> x, Vector256<float> y) => x + y;
        public float Apply(float x, float y) => x + y;
    }

    readonly struct SubtractOp : IBinaryOp
    {
        public Vector512<float> Apply(Vector512<float> x, Vector512<float> y) => x - y;
        public Vector256<float> Apply(Vector256<float> x, Vector256<float> y) => x - y;
        public float Apply(float x, float y) => x - y;
    }

    readonly struct MultiplyOp : IBinaryOp
    {
        public Vector512<float> Apply(Vector512<float> x, Vector512<float> y) => x * y;
        public Vector256<float> Apply(Vector256<float> x, Vector256<float> y) => x * y;
        public float Apply(float x, float y) => x * y;
    }

    readonly struct ScaleOp(float s) : IBinaryOp
    {
        public Vector512<float> Apply(Vector512<float> x, Vector512<float> y) => x * s;
        public Vector256<float> Apply(Vector256<float> x, Vector256<float> y) => x * s;
        public float Apply(float x, float y) => x * s;
    }

    readonly struct ScaleAddOp(float s) : IBinaryOp
    {
        public Vector512<float> Apply(Vector512<float> x, Vector512<float> y) => x * s + y;
        public Vector256<float> Apply(Vector256<float> x, Vector256<float> y) => x * s + y;
        public float Apply(float x, float y) => x * s + y;
    }

    readonly struct ReluOp : IBinaryOp
    {
        public Vector512<float> Apply(Vector512<float> x, Vector512<float> y) => Vector512.Max(x, Vector512<float>.Zero);
        public Vector256<float> Apply(Vector256<float> x, Vector256<float> y) => Vector256.Max(x, Vector256<float>.Zero);
        public float Apply(float x, float y) => MathF.Max(x, 0f);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Map<TOp>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst, TOp op) where TOp : struct, IBinaryOp
    {
        int n = x.Length, i = 0;
        if (y.Length < n || dst.Length < n) throw new ArgumentException("element-wise: span too small");
        fixed (float* px = x, py = y, pd = dst)
        {
            if (KernelWidth.UseAvx512)
                for (; i + 16 <= n; i += 16) Vector512.Store(op.Apply(Vector512.Load(px + i), Vector512.Load(py + i)), pd + i);
            else
                for (; i + 8 <= n; i += 8) Vector256.Store(op.Apply(Vector256.Load(px + i), Vector256.Load(py + i)), pd + i);
            for (; i < n; i++) pd[i] = op.Apply(px[i], py[i]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void ReluBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> da)
    {
        int n = y.Length, i = 0;
        if (dy.Length < n || da.Length < n) throw new ArgumentException("relu backward: span too small");
        fixed (float* py = y, pd = dy, pa = da)
        {
            if (KernelWidth.UseAvx512)
                for (; i + 16 <= n; i += 16)
                {
                    var on = Vector512.GreaterThan(Vector512.Load(py + i), Vector512<float>.Zero);
                    Vector512.Store(Vector512.ConditionalSelect(on, Vector512.Load(pd + i), Vector512<float>.Zero), pa + i);
                }
            else
                for (; i + 8 <= n; i += 8)
                {
                    var on = Vector256.GreaterThan(Vector256.Load(py + i), Vector256<float>.Zero);
                    Vector256.Store(Vector256.ConditionalSelect(on, Vector256.Load(pd + i), Vector256<float>.Zero), pa + i);
                }
            for (; i < n; i++) pa[i] = py[i] > 0f ? pd[i] : 0f;
        }
    }
}
