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
            ScalarColumns(m, n, alpha, x, a, lda, beta, y);
            return;
        }
        if (!KernelWidth.Wide)
        {
            NarrowVectorTimesMatrix(m, n, alpha, x, a, lda, beta, y);
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

    // Columns one at a time, the same four chains per column as the vector blocks.
    static void ScalarColumns(int m, int n, float alpha, float* x, float* a, int lda, float beta, float* y)
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
    }

    /// <summary>
    /// y[i] = alpha * sum_j A[i, j] * x[j] + beta * y[i]. Each row's products are summed in 16 lanes
    /// (blocks of 16 columns in order, the last one ending at n with its overlap masked off), then the
    /// lanes by a fixed tree, sixteen rows at a time (rows past m count as zeros).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatrixTimesVector(int m, int n, float alpha, float* a, int lda, float* x, float beta, float* y)
    {
        if (n >= Lanes && !KernelWidth.Wide)
        {
            if (Avx2.IsSupported) NarrowMatrixTimesVector(m, n, alpha, a, lda, x, beta, y);
            else ScalarMatrixTimesVector(m, n, alpha, a, lda, x, beta, y);
            return;
        }
        if (n < Lanes)
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

    /// <summary>
    /// VectorTimesMatrix on AVX2: blocks of 16 columns as two halves (eight chains), then of 8, the
    /// last block overlapping the one before; every column runs the chains of the AVX-512 path.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void NarrowVectorTimesMatrix(int m, int n, float alpha, float* x, float* a, int lda, float beta, float* y)
    {
        const int W = 8;
        if (n < W)
        {
            ScalarColumns(m, n, alpha, x, a, lda, beta, y);
            return;
        }
        int block = n >= 2 * W ? 2 * W : W;
        for (int j = 0; j < n; j += block)
        {
            int start = Math.Min(j, n - block);
            if (block == 2 * W)
            {
                // Two 8-column halves of one 16-column block: eight chains.
                Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default, t0 = default, t1 = default, t2 = default, t3 = default;
                float* col = a + start;
                int i = 0;
                for (; i + 4 <= m; i += 4, col += 4L * lda)
                {
                    var x0 = Vector256.Create(x[i]); var x1 = Vector256.Create(x[i + 1]);
                    var x2 = Vector256.Create(x[i + 2]); var x3 = Vector256.Create(x[i + 3]);
                    s0 = Vector256.FusedMultiplyAdd(x0, Vector256.Load(col), s0); t0 = Vector256.FusedMultiplyAdd(x0, Vector256.Load(col + W), t0);
                    s1 = Vector256.FusedMultiplyAdd(x1, Vector256.Load(col + lda), s1); t1 = Vector256.FusedMultiplyAdd(x1, Vector256.Load(col + lda + W), t1);
                    s2 = Vector256.FusedMultiplyAdd(x2, Vector256.Load(col + 2L * lda), s2); t2 = Vector256.FusedMultiplyAdd(x2, Vector256.Load(col + 2L * lda + W), t2);
                    s3 = Vector256.FusedMultiplyAdd(x3, Vector256.Load(col + 3L * lda), s3); t3 = Vector256.FusedMultiplyAdd(x3, Vector256.Load(col + 3L * lda + W), t3);
                }
                if (i < m) { var x0 = Vector256.Create(x[i]); s0 = Vector256.FusedMultiplyAdd(x0, Vector256.Load(col), s0); t0 = Vector256.FusedMultiplyAdd(x0, Vector256.Load(col + W), t0); }
                if (i + 1 < m) { var x1 = Vector256.Create(x[i + 1]); s1 = Vector256.FusedMultiplyAdd(x1, Vector256.Load(col + lda), s1); t1 = Vector256.FusedMultiplyAdd(x1, Vector256.Load(col + lda + W), t1); }
                if (i + 2 < m) { var x2 = Vector256.Create(x[i + 2]); s2 = Vector256.FusedMultiplyAdd(x2, Vector256.Load(col + 2L * lda), s2); t2 = Vector256.FusedMultiplyAdd(x2, Vector256.Load(col + 2L * lda + W), t2); }
                StoreColumns((s0 + s1) + (s2 + s3), alpha, beta, y + start, j - start);
                StoreColumns((t0 + t1) + (t2 + t3), alpha, beta, y + start + W, j - start - W);
            }
            else
            {
                Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
                float* col = a + start;
                int i = 0;
                for (; i + 4 <= m; i += 4, col += 4L * lda)
                {
                    s0 = Vector256.FusedMultiplyAdd(Vector256.Create(x[i]), Vector256.Load(col), s0);
                    s1 = Vector256.FusedMultiplyAdd(Vector256.Create(x[i + 1]), Vector256.Load(col + lda), s1);
                    s2 = Vector256.FusedMultiplyAdd(Vector256.Create(x[i + 2]), Vector256.Load(col + 2L * lda), s2);
                    s3 = Vector256.FusedMultiplyAdd(Vector256.Create(x[i + 3]), Vector256.Load(col + 3L * lda), s3);
                }
                if (i < m) s0 = Vector256.FusedMultiplyAdd(Vector256.Create(x[i]), Vector256.Load(col), s0);
                if (i + 1 < m) s1 = Vector256.FusedMultiplyAdd(Vector256.Create(x[i + 1]), Vector256.Load(col + lda), s1);
                if (i + 2 < m) s2 = Vector256.FusedMultiplyAdd(Vector256.Create(x[i + 2]), Vector256.Load(col + 2L * lda), s2);
                StoreColumns((s0 + s1) + (s2 + s3), alpha, beta, y + start, j - start);
            }
        }
    }

    // y[0..8] = alpha s + beta y, except the first `done` columns (already written by the block before,
    // which this one overlaps) when y is read: they keep their value. (With beta = 0 they are rewritten
    // with the same bits.)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreColumns(Vector256<float> s, float alpha, float beta, float* y, int done)
    {
        if (beta == 0f) { Vector256.Store(s * alpha, y); return; }
        var old = Vector256.Load(y);
        var result = s * alpha + old * beta;
        if (done > 0) result = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(Vector256<int>.Indices, Vector256.Create(done)).AsSingle(), result, old);
        Vector256.Store(result, y);
    }

    /// <summary>
    /// MatrixTimesVector on AVX2, bit for bit the AVX-512 path: each row's 16 lanes as two halves
    /// (lanes 0-7 and 8-15), summed by the same tree (<see cref="SumLanes"/>) with 256-bit unpacks and
    /// 128-bit lane swaps, eight rows per vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void NarrowMatrixTimesVector(int m, int n, float alpha, float* a, int lda, float* x, float beta, float* y)
    {
        var lo = stackalloc Vector256<float>[Lanes];
        var hi = stackalloc Vector256<float>[Lanes];
        for (int i0 = 0; i0 < m; i0 += Lanes)
        {
            int count = Math.Min(Lanes, m - i0);
            float* r0 = a + (long)i0 * lda;
            for (int r = 0; r < Lanes; r++)
            {
                if (r < count) RowProducts(r0 + (long)r * lda, x, n, out lo[r], out hi[r]);
                else { lo[r] = default; hi[r] = default; }
            }
            var first = SumEight(lo, hi, 0);
            var second = SumEight(lo, hi, 8);
            if (count == Lanes)
            {
                Vector256.Store(beta == 0f ? first * alpha : first * alpha + Vector256.Load(y + i0) * beta, y + i0);
                Vector256.Store(beta == 0f ? second * alpha : second * alpha + Vector256.Load(y + i0 + 8) * beta, y + i0 + 8);
            }
            else
                for (int r = 0; r < count; r++)
                {
                    float s = r < 8 ? first.GetElement(r) : second.GetElement(r - 8);
                    y[i0 + r] = beta == 0f ? s * alpha : s * alpha + y[i0 + r] * beta;
                }
        }
    }

    // One row's lane-wise products as RowProducts computes them, lanes 0-7 and 8-15.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void RowProducts(float* row, float* x, int n, out Vector256<float> lo, out Vector256<float> hi)
    {
        lo = Vector256<float>.Zero;
        hi = Vector256<float>.Zero;
        int j = 0;
        for (; j + Lanes <= n; j += Lanes)
        {
            lo = Vector256.FusedMultiplyAdd(Vector256.Load(row + j), Vector256.Load(x + j), lo);
            hi = Vector256.FusedMultiplyAdd(Vector256.Load(row + j + 8), Vector256.Load(x + j + 8), hi);
        }
        if (j < n)
        {
            int start = n - Lanes, first = j - start;
            var freshLo = Vector256.GreaterThanOrEqual(Vector256<int>.Indices, Vector256.Create(first)).AsSingle();
            var freshHi = Vector256.GreaterThanOrEqual(Vector256<int>.Indices, Vector256.Create(first - 8)).AsSingle();
            lo = Vector256.FusedMultiplyAdd(Vector256.Load(row + start), Vector256.ConditionalSelect(freshLo, Vector256.Load(x + start), Vector256<float>.Zero), lo);
            hi = Vector256.FusedMultiplyAdd(Vector256.Load(row + start + 8), Vector256.ConditionalSelect(freshHi, Vector256.Load(x + start + 8), Vector256<float>.Zero), hi);
        }
    }

    // Rows r0..r0+7's sums by SumLanes's tree: Quad within each 128-bit lane, then the 128-bit lanes
    // L0 + L1 and L2 + L3, then those two.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> SumEight(Vector256<float>* lo, Vector256<float>* hi, int r0)
    {
        // lanes 128-bit 0,1 (from lo) and 2,3 (from hi) of rows r0..r0+3 and r0+4..r0+7
        var a01 = Quad(lo[r0], lo[r0 + 1], lo[r0 + 2], lo[r0 + 3]);
        var a23 = Quad(hi[r0], hi[r0 + 1], hi[r0 + 2], hi[r0 + 3]);
        var b01 = Quad(lo[r0 + 4], lo[r0 + 5], lo[r0 + 6], lo[r0 + 7]);
        var b23 = Quad(hi[r0 + 4], hi[r0 + 5], hi[r0 + 6], hi[r0 + 7]);
        var l01 = Avx.Permute2x128(a01, b01, 0x20) + Avx.Permute2x128(a01, b01, 0x31);
        var l23 = Avx.Permute2x128(a23, b23, 0x20) + Avx.Permute2x128(a23, b23, 0x31);
        return l01 + l23;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Quad(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        var ab = (Avx.UnpackLow(a, b) + Avx.UnpackHigh(a, b)).AsDouble();
        var cd = (Avx.UnpackLow(c, d) + Avx.UnpackHigh(c, d)).AsDouble();
        return Avx.UnpackLow(ab, cd).AsSingle() + Avx.UnpackHigh(ab, cd).AsSingle();
    }

    /// <summary>
    /// MatrixTimesVector without AVX2 or AVX-512, and the definition the tests check both paths against:
    /// each row's 16 lane sums, lane l taking the columns l, l + 16, ... in order (the last block ending
    /// at n, the columns it repeats counted as zero products), then the tree
    /// ((l0 + l2) + (l1 + l3)) per group of four lanes, (g0 + g1) + (g2 + g3) over the groups.
    /// </summary>
    internal static void ScalarMatrixTimesVector(int m, int n, float alpha, float* a, int lda, float* x, float beta, float* y)
    {
        var lanes = stackalloc float[Lanes];
        for (int i = 0; i < m; i++)
        {
            float* row = a + (long)i * lda;
            for (int l = 0; l < Lanes; l++) lanes[l] = 0f;
            int j = 0;
            for (; j + Lanes <= n; j += Lanes)
                for (int l = 0; l < Lanes; l++) lanes[l] = MathF.FusedMultiplyAdd(row[j + l], x[j + l], lanes[l]);
            if (j < n)
            {
                int start = n - Lanes;
                for (int l = 0; l < Lanes; l++) lanes[l] = MathF.FusedMultiplyAdd(row[start + l], start + l >= j ? x[start + l] : 0f, lanes[l]);
            }
            float g0 = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]), g1 = (lanes[4] + lanes[6]) + (lanes[5] + lanes[7]);
            float g2 = (lanes[8] + lanes[10]) + (lanes[9] + lanes[11]), g3 = (lanes[12] + lanes[14]) + (lanes[13] + lanes[15]);
            float s = (g0 + g1) + (g2 + g3);
            y[i] = beta == 0f ? s * alpha : s * alpha + y[i] * beta;
        }
    }
}
