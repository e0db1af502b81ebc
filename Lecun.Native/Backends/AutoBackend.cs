namespace Lecun.Native.Backends;

/// <summary>
/// The default provider: each product goes to whichever of the managed kernels and MKL was measured
/// faster on its shape (the README's routing table; <c>bench</c> measures both on every product of the
/// per-example, batched-training and evaluation paths). It serves every kernel path (<see cref="Paths"/>): the fused ones run where the engine plans them.
/// </summary>
/// <remarks>
/// The rule, from bench's routing table (the measurements are in docs/design.md, "Providers and
/// routing", and the README's routing table): MKL wins two kinds of product only.
/// (1) A*B^T with a short inner side (k below <see cref="ManagedBackend.ShortDot"/>), where the managed
/// provider first transposes B (H3's batched input gradient), unless the product is tiny (the output
/// layer's). (2) A*B with long rows (n of at least 2,048) and at least 8 of them (H1's batched forward
/// at batch 64 and up, not at 16). Narrow products (H2's 4-plane groups) and every other A*B, A^T*B
/// and long A*B^T (H1's and H2's weight gradients) run on the managed kernels, as does every product of
/// one-digit training and of evaluation (an MKL call's fixed overhead exceeds one digit's product), so
/// those give the managed kernels' bits exactly.
/// </remarks>
public sealed class AutoBackend(IBackend managed, IBackend mkl) : IBackend
{
    public string Name => "auto";

    public KernelPaths Paths => KernelPaths.All;

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

    public Route RouteGemm(bool transA, bool transB, int m, int n, int k) => GemmRoute(transA, transB, m, n, k);

    public Route RouteGemv(bool transA, int m, int n) => GemvRoute(transA, m, n);

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        (GemmRoute(transA, transB, m, n, k) == Route.Managed ? managed : mkl)
            .Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    public void Gemv(bool transA, int m, int n, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> x, float beta, Span<float> y) =>
        (GemvRoute(transA, m, n) == Route.Managed ? managed : mkl).Gemv(transA, m, n, alpha, a, lda, x, beta, y);
}
