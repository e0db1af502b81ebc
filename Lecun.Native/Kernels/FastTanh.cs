using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Lecun.Native.Kernels;

/// <summary>
/// tanh for float32 as a rational function p(x)/q(x) on [-7.9, 7.9] (odd numerator of degree 13, even
/// denominator of degree 6; beyond the clamp tanh is 1 to float precision). The coefficients are the
/// minimax fit that Eigen uses for its float tanh. Every element, vector lanes and scalar tail alike,
/// goes through the same fused multiply-adds and one IEEE division, so a value's result never depends
/// on where it sits in the buffer (batched and per-example passes agree bit for bit).
/// </summary>
public static class FastTanh
{
    const float Clamp = 7.90531110763549805f;
    const float A1 = 4.89352455891786e-03f, A3 = 6.37261928875436e-04f, A5 = 1.48572235717979e-05f,
        A7 = 5.12229709037114e-08f, A9 = -8.60467152213735e-11f, A11 = 2.00018790482477e-13f,
        A13 = -2.76076847742355e-16f;
    const float B0 = 4.89352518554385e-03f, B2 = 2.26843463243900e-03f, B4 = 1.18534705686654e-04f,
        B6 = 1.19825839466702e-06f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scalar(float x)
    {
        x = MathF.Min(MathF.Max(x, -Clamp), Clamp);
        float x2 = x * x;
        float p = MathF.FusedMultiplyAdd(x2, A13, A11);
        p = MathF.FusedMultiplyAdd(x2, p, A9);
        p = MathF.FusedMultiplyAdd(x2, p, A7);
        p = MathF.FusedMultiplyAdd(x2, p, A5);
        p = MathF.FusedMultiplyAdd(x2, p, A3);
        p = MathF.FusedMultiplyAdd(x2, p, A1);
        p *= x;
        float q = MathF.FusedMultiplyAdd(x2, B6, B4);
        q = MathF.FusedMultiplyAdd(x2, q, B2);
        q = MathF.FusedMultiplyAdd(x2, q, B0);
        return p / q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV Vector<TW, TV>(TV x) where TW : struct, IWidth<TV> where TV : struct
    {
        x = TW.Min(TW.Max(x, -Clamp), Clamp);
        var x2 = TW.Multiply(x, x);
        var p = TW.FusedMultiplyAdd(x2, TW.Splat(A13), TW.Splat(A11));
        p = TW.FusedMultiplyAdd(x2, p, TW.Splat(A9));
        p = TW.FusedMultiplyAdd(x2, p, TW.Splat(A7));
        p = TW.FusedMultiplyAdd(x2, p, TW.Splat(A5));
        p = TW.FusedMultiplyAdd(x2, p, TW.Splat(A3));
        p = TW.FusedMultiplyAdd(x2, p, TW.Splat(A1));
        p = TW.Multiply(p, x);
        var q = TW.FusedMultiplyAdd(x2, TW.Splat(B6), TW.Splat(B4));
        q = TW.FusedMultiplyAdd(x2, q, TW.Splat(B2));
        q = TW.FusedMultiplyAdd(x2, q, TW.Splat(B0));
        return TW.Divide(p, q);
    }

    // The whole vectors from element 0; returns where the scalar tail starts.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe int Vectors<TW, TV>(float* px, float* py, int n) where TW : struct, IWidth<TV> where TV : struct
    {
        int i = 0;
        for (; i + TW.Count <= n; i += TW.Count) TW.Store(Vector<TW, TV>(TW.Load(px + i)), py + i);
        return i;
    }

    /// <summary>y = tanh(x); x and y may be the same span.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Apply(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length;
        if (y.Length < n) throw new ArgumentException("tanh: output span too small");
        fixed (float* px = x, py = y)
        {
            int i = KernelWidth.UseAvx512 ? Vectors<Width512, Vector512<float>>(px, py, n)
                : KernelWidth.HasVectorKernels ? Vectors<Width256, Vector256<float>>(px, py, n)
                : 0;
            for (; i < n; i++) py[i] = Scalar(px[i]);
        }
    }
}
