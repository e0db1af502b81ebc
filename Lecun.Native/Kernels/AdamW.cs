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
            int i = 0;
            if (KernelWidth.Wide)
            {
                var vb1 = Vector512.Create(beta1); var vc1 = Vector512.Create(c1);
                var vb2 = Vector512.Create(beta2); var vc2 = Vector512.Create(c2);
                var vdecay = Vector512.Create(decay); var vstep = Vector512.Create(stepSize);
                var vbias = Vector512.Create(bias2Sqrt); var veps = Vector512.Create(epsilon);
                for (; i + 16 <= n; i += 16)
                {
                    var g = Vector512.Load(pg + i);
                    var mi = vb1 * Vector512.Load(pm + i) + vc1 * g;
                    var vi = vb2 * Vector512.Load(pv + i) + vc2 * g * g;
                    Vector512.Store(mi, pm + i);
                    Vector512.Store(vi, pv + i);
                    var denom = Vector512.Sqrt(vi) / vbias + veps;
                    Vector512.Store(Vector512.Load(pp + i) * vdecay - vstep * mi / denom, pp + i);
                }
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                var vb1 = Vector256.Create(beta1); var vc1 = Vector256.Create(c1);
                var vb2 = Vector256.Create(beta2); var vc2 = Vector256.Create(c2);
                var vdecay = Vector256.Create(decay); var vstep = Vector256.Create(stepSize);
                var vbias = Vector256.Create(bias2Sqrt); var veps = Vector256.Create(epsilon);
                for (; i + 8 <= n; i += 8)
                {
                    var g = Vector256.Load(pg + i);
                    var mi = vb1 * Vector256.Load(pm + i) + vc1 * g;
                    var vi = vb2 * Vector256.Load(pv + i) + vc2 * g * g;
                    Vector256.Store(mi, pm + i);
                    Vector256.Store(vi, pv + i);
                    var denom = Vector256.Sqrt(vi) / vbias + veps;
                    Vector256.Store(Vector256.Load(pp + i) * vdecay - vstep * mi / denom, pp + i);
                }
            }
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
}
