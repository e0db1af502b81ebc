using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Lecun.Native.Kernels;

/// <summary>
/// One AdamW step over flat buffers (Loshchilov and Hutter; the update of PyTorch's torch.optim.AdamW):
/// p = p (1 - lr wd); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
/// p = p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
/// Per-example training runs it after every digit, so it is vectorised; lanes and tail use the same
/// operations in the same order, so results do not depend on the buffers' alignment.
/// </summary>
public static class AdamW
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Step(Span<float> parameters, ReadOnlySpan<float> grad, Span<float> m, Span<float> v,
        float decay, float stepSize, float beta1, float beta2, float bias2Sqrt, float epsilon)
    {
        int n = parameters.Length;
        if (grad.Length < n || m.Length < n || v.Length < n) throw new ArgumentException("adamw: span too small");
        float c1 = 1f - beta1, c2 = 1f - beta2;
        fixed (float* pp = parameters, pg = grad, pm = m, pv = v)
        {
            int i = KernelWidth.UseAvx512
                ? Vectors<Width512, Vector512<float>>(pp, pg, pm, pv, n, decay, stepSize, beta1, c1, beta2, c2, bias2Sqrt, epsilon)
                : KernelWidth.HasVectorKernels
                ? Vectors<Width256, Vector256<float>>(pp, pg, pm, pv, n, decay, stepSize, beta1, c1, beta2, c2, bias2Sqrt, epsilon)
                : 0;
            for (; i < n; i++)
            {
                float g = pg[i];
                float mi = beta1 * pm[i] + c1 * g;
                float vi = beta2 * pv[i] + c2 * g * g;
                pm[i] = mi;
                pv[i] = vi;
                float denom = MathF.Sqrt(vi) / bias2Sqrt + epsilon;
                pp[i] = pp[i] * decay - stepSize * mi / denom;
            }
        }
    }

    // The whole vectors from element 0, each lane the tail's operations in the tail's order; returns
    // where the scalar tail starts.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe int Vectors<TW, TV>(float* pp, float* pg, float* pm, float* pv, int n,
        float decay, float stepSize, float beta1, float c1, float beta2, float c2, float bias2Sqrt, float epsilon)
        where TW : struct, IWidth<TV> where TV : struct
    {
        var vb1 = TW.Splat(beta1); var vc1 = TW.Splat(c1);
        var vb2 = TW.Splat(beta2); var vc2 = TW.Splat(c2);
        var vdecay = TW.Splat(decay); var vstep = TW.Splat(stepSize);
        var vbias = TW.Splat(bias2Sqrt); var veps = TW.Splat(epsilon);
        int i = 0;
        for (; i + TW.Count <= n; i += TW.Count)
        {
            var g = TW.Load(pg + i);
            var mi = TW.Add(TW.Multiply(vb1, TW.Load(pm + i)), TW.Multiply(vc1, g));
            var vi = TW.Add(TW.Multiply(vb2, TW.Load(pv + i)), TW.Multiply(TW.Multiply(vc2, g), g));
            TW.Store(mi, pm + i);
            TW.Store(vi, pv + i);
            var denom = TW.Add(TW.Divide(TW.Sqrt(vi), vbias), veps);
            TW.Store(TW.Subtract(TW.Multiply(TW.Load(pp + i), vdecay), TW.Divide(TW.Multiply(vstep, mi), denom)), pp + i);
        }
        return i;
    }
}
