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
        Check.Gemm(a.Length, transA, b.Length, transB, c.Length, m, n, k, lda, ldb, ldc);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
        {
            // Measured on the shapes of the 1989 network (Release, AVX-512 EPYC): the register-blocked
            // managed kernel beats the library call on A*B and A^T*B for one digit (12x64x25: 0.22 vs
            // 0.53 us; 4x16x200: 0.23 vs 0.45 us) and for the im2col path's batches of 8 (306k vs 239k digits/s
            // per core: MKL pinned to its AVX2 branch for reproducibility); MKL wins A*B^T (0.54 vs 1.75 us).
            if (!transB && (long)m * n * k <= SmallProductLimit)
            {
                Kernels.SmallGemm.ProductAB(m, n, k, alpha, pa, transA ? 1 : lda, transA ? lda : 1, pb, ldb, beta, pc, ldc);
                return;
            }
            MklNative.cblas_sgemm(CblasLayout.RowMajor, T(transA), T(transB), m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
        }
    }

    /// <summary>Products up to this many multiply-adds run on the managed kernel (see Gemm).</summary>
    public const long SmallProductLimit = 1 << 18;

    public void Gemv(bool transA, int m, int n, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> x, float beta, Span<float> y)
    {
        Check.Matrix("A", a.Length, false, m, n, lda);
        Check.Vector("x", x.Length, transA ? m : n);
        Check.Vector("y", y.Length, transA ? n : m);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, px = x, py = y)
        {
            // One example's dense layers (192x30: 0.43 us through the library, ~0.1 managed).
            if ((long)m * n <= SmallProductLimit)
            {
                Kernels.SmallGemv.Product(transA, m, n, alpha, pa, lda, px, beta, py);
                return;
            }
            MklNative.cblas_sgemv(CblasLayout.RowMajor, T(transA), m, n, alpha, pa, lda, px, 1, beta, py, 1);
        }
    }

}
