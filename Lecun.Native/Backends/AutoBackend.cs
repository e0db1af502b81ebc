namespace Lecun.Native.Backends;

/// <summary>Which provider a product goes to under <c>auto</c>.</summary>
public enum Route { Managed, Mkl }

/// <summary>
/// The default provider: each product goes to whichever of the managed kernels and MKL was measured
/// faster on its shape (the README's routing table; <c>bench</c> measures both on every product of the
/// per-example, batched-training and evaluation paths). Fused kernels run where the engine has them.
/// </summary>
/// <remarks>
/// The rule, from bench's routing table (AMD EPYC Zen 3, AVX2, 2026-11-30, an idle machine, best of 3
/// timings per product, batches 16, 64 and 256): MKL wins two kinds of product only.
/// (1) A*B^T with a short inner side (k below <see cref="ManagedBackend.ShortDot"/>), where the managed
/// provider first transposes B: H3's batched input gradient, 64x192x30, 13.7 us on MKL against 28.8 us
/// managed; but not when the product is tiny (the output layer's 64x30x10: 2.6 against 2.3 us).
/// (2) A*B with long rows (n of at least 2,048) and at least 8 of them: H1's batched forward,
/// 12x4096x25, 87 us against 115 us (306 against 456 at batch 256); its 12x1024x25 at batch 16 runs
/// faster managed (19 against 24 us). Narrow products (H2's 4 planes a group: 4x1024x200, 67 us managed
/// against 121 us) and every other A*B, A^T*B and long A*B^T (H1's and H2's weight gradients, 77 against
/// 111 us and 48 against 106 us at batch 64) run on the managed kernels, as does every product of one-digit
/// training and of evaluation (an MKL call costs 0.2-0.5 us of overhead, more than one digit's product),
/// so those give the managed kernels' bits exactly.
/// </remarks>
public sealed class AutoBackend(IBackend managed, IBackend mkl) : IBackend
{
    public string Name => "auto";

    public bool AllowsFusedKernels => true;

    /// <summary>A*B^T products of at least this many multiply-adds with a short inner side go to MKL (see <see cref="GemmRoute"/>).</summary>
    public const long ShortDotMklMacs = 1 << 15;

    /// <summary>A*B products with rows at least this long (and at least <see cref="MklMinRows"/> rows) go to MKL.</summary>
    public const int MklMinColumns = 2048;

    /// <summary>See <see cref="MklMinColumns"/>.</summary>
    public const int MklMinRows = 8;

    /// <summary>Matrix-vector products up to this many multiply-adds run on the managed kernels (every GEMV of the engine: one digit's dense layers; see <see cref="GemvRoute"/>).</summary>
    public const long SmallProductLimit = 1 << 18;

    /// <summary>The provider of C = op(A)[m,k] op(B)[k,n].</summary>
    public static Route GemmRoute(bool transA, bool transB, int m, int n, int k) =>
        (transA, transB) switch
        {
            (false, true) when k < ManagedBackend.ShortDot && (long)m * n * k >= ShortDotMklMacs => Route.Mkl,
            (false, false) when n >= MklMinColumns && m >= MklMinRows => Route.Mkl,
            _ => Route.Managed,
        };

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
