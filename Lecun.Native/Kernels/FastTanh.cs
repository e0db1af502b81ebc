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
    static Vector256<float> Vector(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-Clamp)), Vector256.Create(Clamp));
        var x2 = x * x;
        var p = Vector256.FusedMultiplyAdd(x2, Vector256.Create(A13), Vector256.Create(A11));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A9));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A7));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A5));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A3));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(A1));
        p *= x;
        var q = Vector256.FusedMultiplyAdd(x2, Vector256.Create(B6), Vector256.Create(B4));
        q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(B2));
        q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(B0));
        return p / q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Vector(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(-Clamp)), Vector512.Create(Clamp));
        var x2 = x * x;
        var p = Vector512.FusedMultiplyAdd(x2, Vector512.Create(A13), Vector512.Create(A11));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A9));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A7));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A5));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A3));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(A1));
        p *= x;
        var q = Vector512.FusedMultiplyAdd(x2, Vector512.Create(B6), Vector512.Create(B4));
        q = Vector512.FusedMultiplyAdd(x2, q, Vector512.Create(B2));
        q = Vector512.FusedMultiplyAdd(x2, q, Vector512.Create(B0));
        return p / q;
    }

    /// <summary>y = tanh(x); x and y may be the same span.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Apply(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length;
        if (y.Length < n) throw new ArgumentException("tanh: output span too small");
        fixed (float* px = x, py = y)
        {
            int i = 0;
            if (KernelWidth.Wide)
                for (; i + 16 <= n; i += 16) Vector512.Store(Vector(Vector512.Load(px + i)), py + i);
            else if (Vector256.IsHardwareAccelerated)
                for (; i + 8 <= n; i += 8) Vector256.Store(Vector(Vector256.Load(px + i)), py + i);
            for (; i < n; i++) py[i] = Scalar(px[i]);
        }
    }
}
