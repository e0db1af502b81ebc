namespace Lecun.Native.Backends;

/// <summary>Which implementation serves a product: the managed kernels or MKL.</summary>
public enum Route { Managed, Mkl }

/// <summary>
/// The ways the engine can run a layer's products (its kernel paths, docs/design.md "The engine"), as
/// flags so that a provider can say which it serves (<see cref="IBackend.Paths"/>).
/// </summary>
[Flags]
public enum KernelPaths
{
    /// <summary>im2col and the provider's own GEMM/GEMV: every product a call to the provider. Every provider serves it.</summary>
    Im2colGemm = 1,
    /// <summary>One example of a layer whose output plane is one 16-lane vector: the engine's fused unfold and products (PhaseUnfold).</summary>
    PhasePermute = 2,
    /// <summary>Evaluation of a batch, 16 examples per vector lane through every layer (LaneBatch).</summary>
    Lanes = 4,
    All = Im2colGemm | PhasePermute | Lanes,
}

/// <summary>
/// The dense matrix operations the layers need, row-major, in the spirit of CBLAS. (Elementwise work,
/// tanh included, is shared by every provider: see Kernels; MKL's vsTanh was slower than FastTanh on
/// this network's sizes, see docs/design.md.)
/// One implementation per provider (mkl, managed, auto), chosen once at start-up. A provider also
/// answers where it sends each product (<see cref="RouteGemm"/>), so the routing table prints what the
/// provider says rather than a copy of its rule.
/// A beta of 0 means the output is overwritten and never read (so it may hold garbage).
/// </summary>
public interface IBackend
{
    string Name { get; }

    /// <summary>
    /// The kernel paths the engine may plan under this provider. The fused paths (PhasePermute, Lanes)
    /// run the engine's own kernels in place of this provider's products, so mkl, whose every product
    /// is a CBLAS call, serves only Im2colGemm; the engine plans each layer once from this answer.
    /// </summary>
    KernelPaths Paths { get; }

    /// <summary>C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n].</summary>
    void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc);

    /// <summary>y[m or n] = alpha * op(A) * x + beta * y, with A stored [m,n].</summary>
    void Gemv(bool transA, int m, int n, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> x, float beta, Span<float> y);

    /// <summary>Where this provider sends C = op(A)[m,k] op(B)[k,n].</summary>
    Route RouteGemm(bool transA, bool transB, int m, int n, int k);

    /// <summary>Where this provider sends y = op(A) x with A [m,n].</summary>
    Route RouteGemv(bool transA, int m, int n);
}

/// <summary>Argument checks shared by the providers: a wrong size is a bug, caught before native code runs.</summary>
internal static class Check
{
    /// <summary>The spans of C = op(A) op(B) hold the matrices their sizes and leading dimensions say.</summary>
    public static void Gemm(int aLength, bool transA, int bLength, bool transB, int cLength, int m, int n, int k, int lda, int ldb, int ldc)
    {
        Matrix("A", aLength, transA, m, k, lda);
        Matrix("B", bLength, transB, k, n, ldb);
        Matrix("C", cLength, false, m, n, ldc);
    }

    public static void Matrix(string name, int length, bool trans, int rows, int cols, int ld)
    {
        // op(X) is rows x cols; stored row-major it is rows x cols (no trans) or cols x rows (trans).
        int storedRows = trans ? cols : rows, storedCols = trans ? rows : cols;
        if (storedRows == 0 || storedCols == 0) return;
        if (ld < storedCols) throw new ArgumentException($"{name}: leading dimension {ld} < {storedCols} columns");
        long needed = (long)(storedRows - 1) * ld + storedCols;
        if (length < needed) throw new ArgumentException($"{name}: span of {length} floats, needs {needed}");
    }

    public static void Vector(string name, int length, int needed)
    {
        if (length < needed) throw new ArgumentException($"{name}: span of {length} floats, needs {needed}");
    }
}
