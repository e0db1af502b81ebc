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

    public Route RouteGemm(bool transA, bool transB, int m, int n, int k) => Route.Managed;

    public Route RouteGemv(bool transA, int m, int n) => Route.Managed;

    public KernelPaths Paths => KernelPaths.All;

    public unsafe void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        Check.Gemm(a.Length, transA, b.Length, transB, c.Length, m, n, k, lda, ldb, ldc);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
        {
            if (!transB)
                SmallGemm.ProductAB(m, n, k, alpha, pa, transA ? 1 : lda, transA ? lda : 1, pb, ldb, beta, pc, ldc);
            else if (!transA && k < ShortDot && (long)n * k <= MaxTransposed)
            {
                // Dot products this short are mostly their horizontal sums and scalar tails: B^T once
                // (k x n, thread-local), then the register-blocked A*B kernel.
                var bt = TransposedScratch(n * k);
                fixed (float* pt = bt)
                {
                    for (int j = 0; j < n; j++)
                    for (int p = 0; p < k; p++) pt[(long)p * n + j] = pb[(long)j * ldb + p];
                    SmallGemm.ProductAB(m, n, k, alpha, pa, lda, 1, pt, n, beta, pc, ldc);
                }
            }
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

    /// <summary>A*B^T with a shorter inner dimension runs as A*(B^T) on a transposed copy of B.</summary>
    public const int ShortDot = 64;

    /// <summary>The largest B (in floats) copied for that; larger ones run the dot-product kernel.</summary>
    public const long MaxTransposed = 1 << 20;

    [ThreadStatic] static float[]? _transposed;

    static float[] TransposedScratch(int length)
    {
        if (_transposed == null || _transposed.Length < length) _transposed = new float[length];
        return _transposed;
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
