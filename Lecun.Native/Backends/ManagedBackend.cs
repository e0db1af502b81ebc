using System.Numerics.Tensors;
using Lecun.Native.Kernels;

namespace Lecun.Native.Backends;

/// <summary>
/// Pure managed provider, always available: the project's register-blocked SIMD products, sized for the
/// small matrices of this network; no MKL.
/// </summary>
public sealed class ManagedBackend : IBackend
{
    public string Name => "managed";

    public bool AllowsFusedKernels => true;

    public unsafe void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        Check.Gemm(a.Length, transA, b.Length, transB, c.Length, m, n, k, lda, ldb, ldc);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
        {
            if (!transB)
                SmallGemm.ProductAB(m, n, k, alpha, pa, transA ? 1 : lda, transA ? lda : 1, pb, ldb, beta, pc, ldc);
            else if (!transA)
                SmallGemm.ProductABt(m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
            else
            {
                for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    float sum = 0f;
                    for (int p = 0; p < k; p++) sum += pa[p * lda + i] * pb[j * ldb + p];
                    pc[i * ldc + j] = beta == 0f ? alpha * sum : alpha * sum + beta * pc[i * ldc + j];
                }
            }
        }
    }

    public unsafe void Gemv(bool transA, int m, int n, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> x, float beta, Span<float> y)
    {
        Check.Matrix("A", a.Length, false, m, n, lda);
        Check.Vector("x", x.Length, transA ? m : n);
        Check.Vector("y", y.Length, transA ? n : m);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, px = x, py = y) SmallGemv.Product(transA, m, n, alpha, pa, lda, px, beta, py);
    }
}
