using Lecun.Native.Mkl;

namespace Lecun.Native.Backends;

/// <summary>
/// Intel MKL through libmkl_rt: every product is a CBLAS call (counted by <see cref="MklCalls"/>), whatever
/// its size; the engine runs none of its own product kernels under it (<see cref="Paths"/>: im2col+GEMM only).
/// The card's engine, and the baseline the fast paths are measured against (for speed; for exactness
/// every provider is checked against Lecun.Model's float64 Reference).
/// Construct only after <see cref="MklLibrary.TryLoad"/> succeeded.
/// </summary>
public sealed unsafe class MklBackend : IBackend
{
    public string Name => "mkl";

    public Route RouteGemm(bool transA, bool transB, int m, int n, int k) => Route.Mkl;

    public Route RouteGemv(bool transA, int m, int n) => Route.Mkl;

    public KernelPaths Paths => KernelPaths.Im2colGemm;

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        Check.Gemm(a.Length, transA, b.Length, transB, c.Length, m, n, k, lda, ldb, ldc);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
            MklCalls.Sgemm(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
    }

    public void Gemv(bool transA, int m, int n, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> x, float beta, Span<float> y)
    {
        Check.Matrix("A", a.Length, false, m, n, lda);
        Check.Vector("x", x.Length, transA ? m : n);
        Check.Vector("y", y.Length, transA ? n : m);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, px = x, py = y)
            MklCalls.Sgemv(transA, m, n, alpha, pa, lda, px, beta, py);
    }
}
