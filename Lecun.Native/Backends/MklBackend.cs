using Lecun.Native.Mkl;

namespace Lecun.Native.Backends;

/// <summary>Intel MKL through libmkl_rt. Construct only after <see cref="MklLibrary.TryLoad"/> succeeded.</summary>
public sealed unsafe class MklBackend : IBackend
{
    public string Name => "mkl";

    static CblasTranspose T(bool trans) => trans ? CblasTranspose.Trans : CblasTranspose.NoTrans;

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        Check.Matrix("A", a.Length, transA, m, k, lda);
        Check.Matrix("B", b.Length, transB, k, n, ldb);
        Check.Matrix("C", c.Length, false, m, n, ldc);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
            MklNative.cblas_sgemm(CblasLayout.RowMajor, T(transA), T(transB), m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
    }

    public void Gemv(bool transA, int m, int n, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> x, float beta, Span<float> y)
    {
        Check.Matrix("A", a.Length, false, m, n, lda);
        Check.Vector("x", x.Length, transA ? m : n);
        Check.Vector("y", y.Length, transA ? n : m);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, px = x, py = y)
            MklNative.cblas_sgemv(CblasLayout.RowMajor, T(transA), m, n, alpha, pa, lda, px, 1, beta, py, 1);
    }

    public void Tanh(ReadOnlySpan<float> x, Span<float> y)
    {
        Check.Vector("y", y.Length, x.Length);
        if (x.Length == 0) return;
        fixed (float* px = x, py = y)
            MklNative.vsTanh(x.Length, px, py);
    }
}
