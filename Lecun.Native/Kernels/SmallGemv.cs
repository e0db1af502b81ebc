using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Lecun.Native.Kernels;

/// <summary>
/// Matrix-vector products for one example's dense layers (192x30 and 30x10 in the 1989 network), where
/// a library call costs more than the arithmetic and a single chain of fused multiply-adds waits on
/// itself. Both keep several independent chains and fix their summation order, so a value never
/// depends on where it sits.
/// </summary>
public static unsafe class SmallGemv
{
    const int Lanes = 16;

    /// <summary>y = alpha * op(A) x + beta * y with op(A) = A^T when transA (see the two products below).</summary>
    public static void Product(bool transA, int m, int n, float alpha, float* a, int lda, float* x, float beta, float* y)
    {
        if (transA) VectorTimesMatrix(m, n, alpha, x, a, lda, beta, y);
        else MatrixTimesVector(m, n, alpha, a, lda, x, beta, y);
    }

    /// <summary>
    /// y[j] = alpha * sum_i x[i] * A[i, j] + beta * y[j], A [m, n] row-major with rows lda apart.
    /// The sum over i runs as four chains (i mod 4), added as (s0 + s1) + (s2 + s3).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void VectorTimesMatrix(int m, int n, float alpha, float* x, float* a, int lda, float beta, float* y)
    {
        if (n < Lanes)
        {
            for (int j = 0; j < n; j++)
            {
                float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
                int i = 0;
                for (; i + 4 <= m; i += 4)
                {
                    s0 = MathF.FusedMultiplyAdd(x[i], a[(long)i * lda + j], s0);
                    s1 = MathF.FusedMultiplyAdd(x[i + 1], a[(long)(i + 1) * lda + j], s1);
                    s2 = MathF.FusedMultiplyAdd(x[i + 2], a[(long)(i + 2) * lda + j], s2);
                    s3 = MathF.FusedMultiplyAdd(x[i + 3], a[(long)(i + 3) * lda + j], s3);
                }
                if (i < m) s0 = MathF.FusedMultiplyAdd(x[i], a[(long)i * lda + j], s0);
                if (i + 1 < m) s1 = MathF.FusedMultiplyAdd(x[i + 1], a[(long)(i + 1) * lda + j], s1);
                if (i + 2 < m) s2 = MathF.FusedMultiplyAdd(x[i + 2], a[(long)(i + 2) * lda + j], s2);
                float s = (s0 + s1) + (s2 + s3);
                y[j] = beta == 0f ? s * alpha : s * alpha + y[j] * beta;
            }
            return;
        }
        // Blocks of 16 columns; the last block ends at n and overlaps the one before it, whose
        // overlapping columns it computes bit for bit alike (same chains), so both are stored.
        for (int j = 0; j < n; j += Lanes)
        {
            int start = Math.Min(j, n - Lanes);
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            float* col = a + start;
            int i = 0;
            for (; i + 4 <= m; i += 4, col += 4L * lda)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Create(x[i]), Vector512.Load(col), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Create(x[i + 1]), Vector512.Load(col + lda), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Create(x[i + 2]), Vector512.Load(col + 2L * lda), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Create(x[i + 3]), Vector512.Load(col + 3L * lda), s3);
            }
            if (i < m) s0 = Vector512.FusedMultiplyAdd(Vector512.Create(x[i]), Vector512.Load(col), s0);
            if (i + 1 < m) s1 = Vector512.FusedMultiplyAdd(Vector512.Create(x[i + 1]), Vector512.Load(col + lda), s1);
            if (i + 2 < m) s2 = Vector512.FusedMultiplyAdd(Vector512.Create(x[i + 2]), Vector512.Load(col + 2L * lda), s2);
            var s = (s0 + s1) + (s2 + s3);
            var result = beta == 0f ? s * alpha : s * alpha + Vector512.Load(y + start) * beta;
            if (start < j && beta != 0f)
            {
                // The overlap already holds its result (y was read after it was written): keep it.
                var fresh = Vector512.GreaterThanOrEqual(Vector512<int>.Indices, Vector512.Create(j - start)).AsSingle();
                result = Vector512.ConditionalSelect(fresh, result, Vector512.Load(y + start));
            }
            Vector512.Store(result, y + start);
        }
    }

    /// <summary>
    /// y[i] = alpha * sum_j A[i, j] * x[j] + beta * y[i]. Each row's products are summed in 16 lanes
    /// (blocks of 16 columns in order, the last one ending at n with its overlap masked off), then the
    /// lanes by a fixed tree, sixteen rows at a time (rows past m count as zeros).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatrixTimesVector(int m, int n, float alpha, float* a, int lda, float* x, float beta, float* y)
    {
        if (n < Lanes || !Avx512F.IsSupported)
        {
            for (int i = 0; i < m; i++)
            {
                float s = 0f;
                for (int j = 0; j < n; j++) s = MathF.FusedMultiplyAdd(a[(long)i * lda + j], x[j], s);
                y[i] = beta == 0f ? s * alpha : s * alpha + y[i] * beta;
            }
            return;
        }
        for (int i0 = 0; i0 < m; i0 += Lanes)
        {
            int count = Math.Min(Lanes, m - i0);
            float* r0 = a + (long)i0 * lda;
            Vector512<float> sums;
            if (count == Lanes)
                sums = SumLanes(
                    RowProducts(r0, x, n), RowProducts(r0 + lda, x, n), RowProducts(r0 + 2L * lda, x, n), RowProducts(r0 + 3L * lda, x, n),
                    RowProducts(r0 + 4L * lda, x, n), RowProducts(r0 + 5L * lda, x, n), RowProducts(r0 + 6L * lda, x, n), RowProducts(r0 + 7L * lda, x, n),
                    RowProducts(r0 + 8L * lda, x, n), RowProducts(r0 + 9L * lda, x, n), RowProducts(r0 + 10L * lda, x, n), RowProducts(r0 + 11L * lda, x, n),
                    RowProducts(r0 + 12L * lda, x, n), RowProducts(r0 + 13L * lda, x, n), RowProducts(r0 + 14L * lda, x, n), RowProducts(r0 + 15L * lda, x, n));
            else
            {
                // The last rows: the same tree, with zeros for the rows past m.
                var rows = stackalloc Vector512<float>[Lanes];
                for (int r = 0; r < count; r++) rows[r] = RowProducts(r0 + (long)r * lda, x, n);
                sums = SumLanes(rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], rows[6], rows[7],
                    rows[8], rows[9], rows[10], rows[11], rows[12], rows[13], rows[14], rows[15]);
            }
            if (count == Lanes)
                Vector512.Store(beta == 0f ? sums * alpha : sums * alpha + Vector512.Load(y + i0) * beta, y + i0);
            else
                for (int r = 0; r < count; r++) y[i0 + r] = beta == 0f ? sums[r] * alpha : sums[r] * alpha + y[i0 + r] * beta;
        }
    }

    // The lane-wise running sum of one row's products with x.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> RowProducts(float* row, float* x, int n)
    {
        var acc = Vector512<float>.Zero;
        int j = 0;
        for (; j + Lanes <= n; j += Lanes) acc = Vector512.FusedMultiplyAdd(Vector512.Load(row + j), Vector512.Load(x + j), acc);
        if (j < n)
        {
            int start = n - Lanes;
            var fresh = Vector512.GreaterThanOrEqual(Vector512<int>.Indices, Vector512.Create(j - start)).AsSingle();
            acc = Vector512.FusedMultiplyAdd(Vector512.Load(row + start), Vector512.ConditionalSelect(fresh, Vector512.Load(x + start), Vector512<float>.Zero), acc);
        }
        return acc;
    }

    /// <summary>result[r] = the sum of rows[r]'s lanes, for 16 vectors, by one fixed tree: pairs of
    /// lanes, then pairs of those within each 128-bit lane, then the four 128-bit lanes in pairs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> SumLanes(Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3,
        Vector512<float> v4, Vector512<float> v5, Vector512<float> v6, Vector512<float> v7,
        Vector512<float> v8, Vector512<float> v9, Vector512<float> v10, Vector512<float> v11,
        Vector512<float> v12, Vector512<float> v13, Vector512<float> v14, Vector512<float> v15)
    {
        var u0 = Quad(v0, v1, v2, v3);
        var u1 = Quad(v4, v5, v6, v7);
        var u2 = Quad(v8, v9, v10, v11);
        var u3 = Quad(v12, v13, v14, v15);
        var w0 = Avx512F.Shuffle4x128(u0, u1, 0x88) + Avx512F.Shuffle4x128(u0, u1, 0xdd);
        var w1 = Avx512F.Shuffle4x128(u2, u3, 0x88) + Avx512F.Shuffle4x128(u2, u3, 0xdd);
        return Avx512F.Shuffle4x128(w0, w1, 0x88) + Avx512F.Shuffle4x128(w0, w1, 0xdd);
    }

    // 128-bit lane L of the result holds, for a, b, c, d in order, the sum of their lane L's four floats.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Quad(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        var ab = (Avx512F.UnpackLow(a, b) + Avx512F.UnpackHigh(a, b)).AsDouble();
        var cd = (Avx512F.UnpackLow(c, d) + Avx512F.UnpackHigh(c, d)).AsDouble();
        return Avx512F.UnpackLow(ab, cd).AsSingle() + Avx512F.UnpackHigh(ab, cd).AsSingle();
    }
}
