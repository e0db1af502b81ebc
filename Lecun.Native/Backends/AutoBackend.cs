namespace Lecun.Native.Backends;

/// <summary>Which provider a product goes to under <c>auto</c>.</summary>
public enum Route { Managed, Mkl }

/// <summary>
/// The default provider: each product goes to whichever of the managed kernels and MKL was measured
/// faster on its shape (the README's routing table; <c>bench</c> measures both on every product of the
/// per-example, batched-training and evaluation paths). Fused kernels run where the engine has them.
/// </summary>
/// <remarks>
/// The rule, from bench's routing table (AMD EPYC Zen 3, AVX2, 2026-11-30, provisional: measured under
/// load): every A*B^T goes to MKL (the managed kernel for it is a dot-product loop: 180 us against 11 us
/// on H3's batched input gradient); other products go to MKL when they exceed 2^18 multiply-adds and
/// none of their sides is 4 or less (MKL's blocking wastes most of its work on a 4-wide side: H2's
/// batched forward, 4x1024x200, 114 us against 55 managed); the rest run on the managed kernels (an MKL
/// call costs 0.2-0.5 us of overhead, more than one digit's product). Every product of one-digit
/// training and of evaluation is small, so those run exactly the managed kernels, bit for bit.
/// </remarks>
public sealed class AutoBackend(IBackend managed, IBackend mkl) : IBackend
{
    public string Name => "auto";

    public bool AllowsFusedKernels => true;

    /// <summary>Products up to this many multiply-adds run on the managed kernels (see <see cref="GemmRoute"/>).</summary>
    public const long SmallProductLimit = 1 << 18;

    /// <summary>The provider of C = op(A)[m,k] op(B)[k,n].</summary>
    public static Route GemmRoute(bool transA, bool transB, int m, int n, int k) =>
        transB || ((long)m * n * k > SmallProductLimit && Math.Min(m, Math.Min(n, k)) > NarrowSide) ? Route.Mkl : Route.Managed;

    /// <summary>A side this short makes MKL's GEMM slower than the managed kernel (see <see cref="GemmRoute"/>).</summary>
    public const int NarrowSide = 4;

    /// <summary>The provider of y = op(A) x with A [m,n].</summary>
    public static Route GemvRoute(bool transA, int m, int n) =>
        (long)m * n <= SmallProductLimit ? Route.Managed : Route.Mkl;

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        (GemmRoute(transA, transB, m, n, k) == Route.Managed ? managed : mkl)
            .Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    public void Gemv(bool transA, int m, int n, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> x, float beta, Span<float> y) =>
        (GemvRoute(transA, m, n) == Route.Managed ? managed : mkl).Gemv(transA, m, n, alpha, a, lda, x, beta, y);
}
