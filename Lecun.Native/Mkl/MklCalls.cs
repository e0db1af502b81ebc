using System.Runtime.CompilerServices;

namespace Lecun.Native.Mkl;

/// <summary>What MKL served on one thread: BLAS calls and the multiply-adds they did.</summary>
public readonly record struct MklCount(long Calls, long Macs)
{
    public static MklCount operator -(MklCount a, MklCount b) => new(a.Calls - b.Calls, a.Macs - b.Macs);
}

/// <summary>
/// The only way the engine calls MKL's BLAS: each call is counted (calls and multiply-adds) on the
/// calling thread before it goes to libmkl_rt, so a test can fail when a product meant for MKL does
/// not reach it, and bench can say which share of the work MKL did. Per thread, so parallel tests and
/// an evaluation on another core do not disturb a count.
/// </summary>
public static unsafe class MklCalls
{
    [ThreadStatic] static long _calls;
    [ThreadStatic] static long _macs;

    /// <summary>Calls and multiply-adds served by MKL on this thread so far.</summary>
    public static MklCount OnThisThread => new(_calls, _macs);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Count(long macs)
    {
        _calls++;
        _macs += macs;
    }

    /// <summary>cblas_sgemm, row-major: C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C (m n k multiply-adds).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda,
        float* b, int ldb, float beta, float* c, int ldc)
    {
        Count((long)m * n * k);
        MklNative.cblas_sgemm(CblasLayout.RowMajor, transA ? CblasTranspose.Trans : CblasTranspose.NoTrans,
            transB ? CblasTranspose.Trans : CblasTranspose.NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    /// <summary>cblas_sgemv, row-major A[m,n]: y = alpha op(A) x + beta y (m n multiply-adds).</summary>
    public static void Sgemv(bool transA, int m, int n, float alpha, float* a, int lda, float* x, float beta, float* y)
    {
        Count((long)m * n);
        MklNative.cblas_sgemv(CblasLayout.RowMajor, transA ? CblasTranspose.Trans : CblasTranspose.NoTrans,
            m, n, alpha, a, lda, x, 1, beta, y, 1);
    }
}
