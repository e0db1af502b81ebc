using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Lecun.Native.Kernels;

/// <summary>
/// Register-blocked matrix products for the tiny matrices of one example (12x25 by 25x64 and the like),
/// where a library call costs more than the arithmetic. Four rows of C are computed together, so each
/// row of B is loaded once per four rows and the four accumulator chains hide the FMA latency.
/// A is addressed with two strides, A(i,p) = a[i*ai + p*ap], which covers A and its transpose.
/// </summary>
/// <remarks>
/// Every element of C is one chain of fused multiply-adds over k in order, from +0, then alpha and
/// beta, whatever block or tail it falls in: so the AVX2 path (blocks of 8 columns, <see cref="Narrow"/>)
/// gives the bits of the AVX-512 path (blocks of 16).
/// </remarks>
public static unsafe class SmallGemm
{
    /// <summary>C[m,n] = alpha * A(m x k) * B[k,n] + beta * C, B and C row-major.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ProductAB(int m, int n, int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (!KernelWidth.UseAvx512)
        {
            Narrow.ProductAB(m, n, k, alpha, a, ai, ap, b, ldb, beta, c, ldc);
            return;
        }
        if (k == 1)
        {
            Outer(m, n, alpha, a, ai, b, beta, c, ldc);
            return;
        }
        int i = 0;
        for (; i + 4 <= m; i += 4) Rows4(n, k, alpha, a + (long)i * ai, ai, ap, b, ldb, beta, c + (long)i * ldc, ldc);
        for (; i < m; i++) Row1(n, k, alpha, a + (long)i * ai, ap, b, ldb, beta, c + (long)i * ldc);
    }

    /// <summary>
    /// C[m,n] = alpha * a b^T + beta * C for vectors a (stride ai) and b: a dense layer's weight gradient
    /// for one example, or with beta = 1 its SGD step. Same roundings as the blocked kernels (the product
    /// a_i b_j as fma(a_i, b_j, +0) first, then alpha and beta).
    /// </summary>
    /// <remarks>
    /// Rows of 16 columns or more are whole vectors plus one last vector that overlaps the one before
    /// (C read for both before either is written): no masked stores, which on this CPU stall a following
    /// load of the next row's first bytes (measurably, on the 192x30 step with beta = 1). Narrower rows
    /// use one masked vector when C is not read, and scalars when it is.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Outer(int m, int n, float alpha, float* a, int ai, float* b, float beta, float* c, int ldc)
    {
        if (n >= 16)
        {
            int last = n - 16;
            var bLast = Vector512.Load(b + last);
            for (int i = 0; i < m; i++)
            {
                var s = Vector512.Create(a[(long)i * ai]);
                float* row = c + (long)i * ldc;
                var tail = Finish512(Product(s, bLast), alpha, beta, row + last);
                for (int j = 0; j < last; j += 16)
                    Vector512.Store(Finish512(Product(s, Vector512.Load(b + j)), alpha, beta, row + j), row + j);
                Vector512.Store(tail, row + last);
            }
        }
        else if (beta == 0f)
        {
            var keep = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(n)).AsSingle();
            var bRow = Avx512F.MaskLoad(b, keep, Vector512<float>.Zero);
            for (int i = 0; i < m; i++)
                Avx512F.MaskStore(c + (long)i * ldc, keep, Product(Vector512.Create(a[(long)i * ai]), bRow) * alpha);
        }
        else
        {
            for (int i = 0; i < m; i++)
            {
                float s = a[(long)i * ai];
                float* row = c + (long)i * ldc;
                for (int j = 0; j < n; j++) row[j] = Finish(MathF.FusedMultiplyAdd(s, b[j], 0f), alpha, beta, row + j);
            }
        }
    }

    // a b as the blocked kernels' first step computes it, fma(a, b, +0): the same rounding, and a
    // product of -0 comes out as +0 there too.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Product(Vector512<float> a, Vector512<float> b) => Vector512.FusedMultiplyAdd(a, b, Vector512<float>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Finish512(Vector512<float> acc, float alpha, float beta, float* c) =>
        beta == 0f ? acc * alpha : acc * alpha + Vector512.Load(c) * beta;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Finish256(Vector256<float> acc, float alpha, float beta, float* c) =>
        beta == 0f ? acc * alpha : acc * alpha + Vector256.Load(c) * beta;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Finish(float acc, float alpha, float beta, float* c) => beta == 0f ? acc * alpha : acc * alpha + *c * beta;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Rows4(int n, int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc)
    {
        float* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai;
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        int j = 0;
        for (; j + 32 <= n; j += 32) TwoBlocks(k, alpha, a, ai, ap, b, ldb, beta, c, ldc, j, j + 16);
        if (n - j > 16)
        {
            // Between 16 and 32 columns left: the next 16 and the 16 that end at n in one pass, eight
            // chains instead of two passes of four.
            TwoBlocks(k, alpha, a, ai, ap, b, ldb, beta, c, ldc, j, n - 16);
            return;
        }
        for (; j + 16 <= n; j += 16)
        {
            OneBlock(k, a0, a1, a2, a3, ap, b + j, ldb, out var x0, out var x1, out var x2, out var x3);
            Vector512.Store(Finish512(x0, alpha, beta, c0 + j), c0 + j);
            Vector512.Store(Finish512(x1, alpha, beta, c1 + j), c1 + j);
            Vector512.Store(Finish512(x2, alpha, beta, c2 + j), c2 + j);
            Vector512.Store(Finish512(x3, alpha, beta, c3 + j), c3 + j);
        }
        if (j < n && n >= 16)
        {
            // The last partial block: recompute the 16 columns that end at n and keep only the new
            // ones, so no column is updated twice (that would apply beta twice).
            int start = n - 16;
            var fresh = TailMask(j - start);
            OneBlock(k, a0, a1, a2, a3, ap, b + start, ldb, out var x0, out var x1, out var x2, out var x3);
            StoreFresh(x0, alpha, beta, c0 + start, fresh); StoreFresh(x1, alpha, beta, c1 + start, fresh);
            StoreFresh(x2, alpha, beta, c2 + start, fresh); StoreFresh(x3, alpha, beta, c3 + start, fresh);
            j = n;
        }
        ScalarColumns4(j, n, k, alpha, a, ai, ap, b, ldb, beta, c, ldc);
    }

    // Columns j0..n-1 of four rows of C one at a time, the chains of the vector blocks.
    static void ScalarColumns4(int j0, int n, int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc)
    {
        float* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai;
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        for (int j = j0; j < n; j++)
        {
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            float* bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb)
            {
                long o = (long)p * ap;
                float u = *bp;
                s0 = MathF.FusedMultiplyAdd(a0[o], u, s0); s1 = MathF.FusedMultiplyAdd(a1[o], u, s1);
                s2 = MathF.FusedMultiplyAdd(a2[o], u, s2); s3 = MathF.FusedMultiplyAdd(a3[o], u, s3);
            }
            c0[j] = Finish(s0, alpha, beta, c0 + j); c1[j] = Finish(s1, alpha, beta, c1 + j);
            c2[j] = Finish(s2, alpha, beta, c2 + j); c3[j] = Finish(s3, alpha, beta, c3 + j);
        }
    }

    // Columns j0..n-1 of one row of C one at a time.
    static void ScalarColumns1(int j0, int n, int k, float alpha, float* a, int ap, float* b, int ldb, float beta, float* c)
    {
        for (int j = j0; j < n; j++)
        {
            float s = 0f;
            float* bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb) s = MathF.FusedMultiplyAdd(a[(long)p * ap], *bp, s);
            c[j] = Finish(s, alpha, beta, c + j);
        }
    }

    /// <summary>16 columns of four rows of C from B's block at bp: four independent chains over k.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void OneBlock(int k, float* a0, float* a1, float* a2, float* a3, int ap, float* bp, int ldb,
        out Vector512<float> x0, out Vector512<float> x1, out Vector512<float> x2, out Vector512<float> x3)
    {
        x0 = default; x1 = default; x2 = default; x3 = default;
        for (int p = 0; p < k; p++, bp += ldb)
        {
            var u = Vector512.Load(bp);
            long o = (long)p * ap;
            x0 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[o]), u, x0);
            x1 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[o]), u, x1);
            x2 = Vector512.FusedMultiplyAdd(Vector512.Create(a2[o]), u, x2);
            x3 = Vector512.FusedMultiplyAdd(Vector512.Create(a3[o]), u, x3);
        }
    }

    /// <summary>
    /// Columns first..first+15 and second..second+15 of four rows of C in one pass over k: eight
    /// independent chains. The blocks may overlap (see StorePair).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void TwoBlocks(int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc, int first, int second)
    {
        float* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai;
        Vector512<float> x0 = default, y0 = default, x1 = default, y1 = default, x2 = default, y2 = default, x3 = default, y3 = default;
        float* bp = b + first;
        float* bq = b + second;
        for (int p = 0; p < k; p++, bp += ldb, bq += ldb)
        {
            var u = Vector512.Load(bp);
            var v = Vector512.Load(bq);
            long o = (long)p * ap;
            var s0 = Vector512.Create(a0[o]); x0 = Vector512.FusedMultiplyAdd(s0, u, x0); y0 = Vector512.FusedMultiplyAdd(s0, v, y0);
            var s1 = Vector512.Create(a1[o]); x1 = Vector512.FusedMultiplyAdd(s1, u, x1); y1 = Vector512.FusedMultiplyAdd(s1, v, y1);
            var s2 = Vector512.Create(a2[o]); x2 = Vector512.FusedMultiplyAdd(s2, u, x2); y2 = Vector512.FusedMultiplyAdd(s2, v, y2);
            var s3 = Vector512.Create(a3[o]); x3 = Vector512.FusedMultiplyAdd(s3, u, x3); y3 = Vector512.FusedMultiplyAdd(s3, v, y3);
        }
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        StorePair(x0, y0, alpha, beta, c0 + first, c0 + second); StorePair(x1, y1, alpha, beta, c1 + first, c1 + second);
        StorePair(x2, y2, alpha, beta, c2 + first, c2 + second); StorePair(x3, y3, alpha, beta, c3 + first, c3 + second);
    }

    /// <summary>
    /// Stores two overlapping 16-column blocks. The overlap's columns went through identical chains in
    /// both, so they agree bit for bit; C is read for both before either is written, so beta applies once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StorePair(Vector512<float> x, Vector512<float> y, float alpha, float beta, float* cx, float* cy)
    {
        var fx = Finish512(x, alpha, beta, cx);
        var fy = Finish512(y, alpha, beta, cy);
        Vector512.Store(fy, cy);
        Vector512.Store(fx, cx);
    }

    /// <summary>Lanes at or after `first` are set: the columns a tail block has not written yet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> TailMask(int first) =>
        Vector512.GreaterThanOrEqual(Vector512<int>.Indices, Vector512.Create(first)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreFresh(Vector512<float> acc, float alpha, float beta, float* c, Vector512<float> fresh)
    {
        var old = Vector512.Load(c);
        Vector512.Store(Vector512.ConditionalSelect(fresh, Finish512(acc, alpha, beta, c), old), c);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Row1(int n, int k, float alpha, float* a, int ap, float* b, int ldb, float beta, float* c)
    {
        // Whole blocks while at least 32 columns or exactly 16 are left, so what remains is none, 17-31
        // (one pass for both blocks below), or all of n < 16 (scalar).
        int j = 0;
        for (; j + 32 <= n || j + 16 == n; j += 16)
        {
            Vector512<float> x = default;
            float* bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb) x = Vector512.FusedMultiplyAdd(Vector512.Create(a[(long)p * ap]), Vector512.Load(bp), x);
            Vector512.Store(Finish512(x, alpha, beta, c + j), c + j);
        }
        if (n - j > 16)
        {
            // Between 16 and 32 columns left: both blocks in one pass, two chains (see Rows4).
            int start = n - 16;
            Vector512<float> x = default, y = default;
            float* bp = b + j;
            float* bq = b + start;
            for (int p = 0; p < k; p++, bp += ldb, bq += ldb)
            {
                var s = Vector512.Create(a[(long)p * ap]);
                x = Vector512.FusedMultiplyAdd(s, Vector512.Load(bp), x);
                y = Vector512.FusedMultiplyAdd(s, Vector512.Load(bq), y);
            }
            StorePair(x, y, alpha, beta, c + j, c + start);
            return;
        }
        ScalarColumns1(j, n, k, alpha, a, ap, b, ldb, beta, c);
    }

    /// <summary>C[m,n] = alpha * A[m,k] * B[n,k]^T + beta * C: dot products of contiguous rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ProductABt(int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        int i = 0;
        if (k >= 16)
        {
            // 2x2 blocks of outputs share their loads (8 loads feed 8 FMAs instead of 16 feeding 8);
            // every output keeps Dot's own chain, so the results are Dot's bits.
            for (; i + 2 <= m; i += 2)
            {
                float* a0 = a + (long)i * lda, a1 = a0 + lda;
                float* c0 = c + (long)i * ldc, c1 = c0 + ldc;
                int j = 0;
                for (; j + 2 <= n; j += 2)
                {
                    float* b0 = b + (long)j * ldb;
                    Dot2x2(a0, a1, b0, b0 + ldb, k, out float s00, out float s01, out float s10, out float s11);
                    c0[j] = Finish(s00, alpha, beta, c0 + j);
                    c0[j + 1] = Finish(s01, alpha, beta, c0 + j + 1);
                    c1[j] = Finish(s10, alpha, beta, c1 + j);
                    c1[j + 1] = Finish(s11, alpha, beta, c1 + j + 1);
                }
                for (; j < n; j++)
                {
                    c0[j] = Finish(Dot(a0, b + (long)j * ldb, k), alpha, beta, c0 + j);
                    c1[j] = Finish(Dot(a1, b + (long)j * ldb, k), alpha, beta, c1 + j);
                }
            }
        }
        for (; i < m; i++)
        {
            float* ar = a + (long)i * lda;
            float* cr = c + (long)i * ldc;
            for (int j = 0; j < n; j++) cr[j] = Finish(Dot(ar, b + (long)j * ldb, k), alpha, beta, cr + j);
        }
    }

    /// <summary>
    /// Four dot products x_r . y_s (r, s in 0..1) of length k >= 16, each with <see cref="Dot"/>'s
    /// summation order: two 8-lane chains over blocks of 16 (the AVX-512 path's one 16-lane chain, lane
    /// for lane), summed by Vector256.Sum, then the scalar tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Dot2x2(float* x0, float* x1, float* y0, float* y1, int k, out float s00, out float s01, out float s10, out float s11)
    {
        Vector256<float> l00 = default, l01 = default, l10 = default, l11 = default;
        Vector256<float> h00 = default, h01 = default, h10 = default, h11 = default;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var u0 = Vector256.Load(x0 + p);
            var u1 = Vector256.Load(x1 + p);
            var v0 = Vector256.Load(y0 + p);
            var v1 = Vector256.Load(y1 + p);
            l00 = Vector256.FusedMultiplyAdd(u0, v0, l00);
            l01 = Vector256.FusedMultiplyAdd(u0, v1, l01);
            l10 = Vector256.FusedMultiplyAdd(u1, v0, l10);
            l11 = Vector256.FusedMultiplyAdd(u1, v1, l11);
            u0 = Vector256.Load(x0 + p + 8);
            u1 = Vector256.Load(x1 + p + 8);
            v0 = Vector256.Load(y0 + p + 8);
            v1 = Vector256.Load(y1 + p + 8);
            h00 = Vector256.FusedMultiplyAdd(u0, v0, h00);
            h01 = Vector256.FusedMultiplyAdd(u0, v1, h01);
            h10 = Vector256.FusedMultiplyAdd(u1, v0, h10);
            h11 = Vector256.FusedMultiplyAdd(u1, v1, h11);
        }
        s00 = Vector256.Sum(l00) + Vector256.Sum(h00);
        s01 = Vector256.Sum(l01) + Vector256.Sum(h01);
        s10 = Vector256.Sum(l10) + Vector256.Sum(h10);
        s11 = Vector256.Sum(l11) + Vector256.Sum(h11);
        for (; p < k; p++)
        {
            s00 = MathF.FusedMultiplyAdd(x0[p], y0[p], s00);
            s01 = MathF.FusedMultiplyAdd(x0[p], y1[p], s01);
            s10 = MathF.FusedMultiplyAdd(x1[p], y0[p], s10);
            s11 = MathF.FusedMultiplyAdd(x1[p], y1[p], s11);
        }
    }

    /// <summary>Dot product with a fixed summation order (lanes, then the lanes' sum, then the tail).</summary>
    /// <remarks>
    /// Vector512.Sum of floats is, as the JIT expands it, Sum(lower 256 bits) + Sum(upper 256 bits), each
    /// of those Sum(lower 128) + Sum(upper 128), each of those (x0 + x1) + (x2 + x3); the AVX2 path
    /// keeps the 16 lanes as two halves and adds them by Vector256.Sum, the same tree.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(float* x, float* y, int k)
    {
        int p = 0;
        float s = 0f;
        if (k >= 16 && KernelWidth.UseAvx512)
        {
            var acc = Vector512<float>.Zero;
            for (; p + 16 <= k; p += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(x + p), Vector512.Load(y + p), acc);
            s = Vector512.Sum(acc);
        }
        else if (k >= 16)
        {
            Vector256<float> lo = default, hi = default;
            for (; p + 16 <= k; p += 16)
            {
                lo = Vector256.FusedMultiplyAdd(Vector256.Load(x + p), Vector256.Load(y + p), lo);
                hi = Vector256.FusedMultiplyAdd(Vector256.Load(x + p + 8), Vector256.Load(y + p + 8), hi);
            }
            s = Vector256.Sum(lo) + Vector256.Sum(hi);
        }
        for (; p < k; p++) s = MathF.FusedMultiplyAdd(x[p], y[p], s);
        return s;
    }

    /// <summary>
    /// ProductAB on AVX2: the blocked kernels above with blocks of 8 columns (Vector256). Each column's
    /// chain is the one the 16-column blocks run, so the results are the same bits.
    /// </summary>
    internal static class Narrow
    {
        const int W = 8;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void ProductAB(int m, int n, int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc)
        {
            if (k == 1 && n >= W)
            {
                Outer(m, n, alpha, a, ai, b, beta, c, ldc);
                return;
            }
            int i = 0;
            for (; i + 4 <= m; i += 4) Rows4(n, k, alpha, a + (long)i * ai, ai, ap, b, ldb, beta, c + (long)i * ldc, ldc);
            for (; i < m; i++) Row1(n, k, alpha, a + (long)i * ai, ap, b, ldb, beta, c + (long)i * ldc);
        }

        // k = 1: C = alpha a b^T + beta C, whole vectors plus one last vector that overlaps the one
        // before (C read for both before either is written). The product is fma(a, b, +0) as in the chains.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void Outer(int m, int n, float alpha, float* a, int ai, float* b, float beta, float* c, int ldc)
        {
            int last = n - W;
            var bLast = Vector256.Load(b + last);
            for (int i = 0; i < m; i++)
            {
                var s = Vector256.Create(a[(long)i * ai]);
                float* row = c + (long)i * ldc;
                var tail = Finish256(Vector256.FusedMultiplyAdd(s, bLast, Vector256<float>.Zero), alpha, beta, row + last);
                for (int j = 0; j < last; j += W)
                    Vector256.Store(Finish256(Vector256.FusedMultiplyAdd(s, Vector256.Load(b + j), Vector256<float>.Zero), alpha, beta, row + j), row + j);
                Vector256.Store(tail, row + last);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void Rows4(int n, int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc)
        {
            float* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai;
            float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
            int j = 0;
            for (; j + 2 * W <= n; j += 2 * W) TwoBlocks(k, alpha, a, ai, ap, b, ldb, beta, c, ldc, j, j + W);
            if (n - j > W)
            {
                TwoBlocks(k, alpha, a, ai, ap, b, ldb, beta, c, ldc, j, n - W);
                return;
            }
            if (j + W == n)
            {
                OneBlock(k, a0, a1, a2, a3, ap, b + j, ldb, out var x0, out var x1, out var x2, out var x3);
                Vector256.Store(Finish256(x0, alpha, beta, c0 + j), c0 + j);
                Vector256.Store(Finish256(x1, alpha, beta, c1 + j), c1 + j);
                Vector256.Store(Finish256(x2, alpha, beta, c2 + j), c2 + j);
                Vector256.Store(Finish256(x3, alpha, beta, c3 + j), c3 + j);
                return;
            }
            if (j < n && n >= W)
            {
                // The last partial block: recompute the 8 columns that end at n, keep only the new ones.
                int start = n - W;
                var fresh = Vector256.GreaterThanOrEqual(Vector256<int>.Indices, Vector256.Create(j - start)).AsSingle();
                OneBlock(k, a0, a1, a2, a3, ap, b + start, ldb, out var x0, out var x1, out var x2, out var x3);
                StoreFresh(x0, alpha, beta, c0 + start, fresh); StoreFresh(x1, alpha, beta, c1 + start, fresh);
                StoreFresh(x2, alpha, beta, c2 + start, fresh); StoreFresh(x3, alpha, beta, c3 + start, fresh);
                return;
            }
            ScalarColumns4(j, n, k, alpha, a, ai, ap, b, ldb, beta, c, ldc);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void OneBlock(int k, float* a0, float* a1, float* a2, float* a3, int ap, float* bp, int ldb,
            out Vector256<float> x0, out Vector256<float> x1, out Vector256<float> x2, out Vector256<float> x3)
        {
            x0 = default; x1 = default; x2 = default; x3 = default;
            for (int p = 0; p < k; p++, bp += ldb)
            {
                var u = Vector256.Load(bp);
                long o = (long)p * ap;
                x0 = Vector256.FusedMultiplyAdd(Vector256.Create(a0[o]), u, x0);
                x1 = Vector256.FusedMultiplyAdd(Vector256.Create(a1[o]), u, x1);
                x2 = Vector256.FusedMultiplyAdd(Vector256.Create(a2[o]), u, x2);
                x3 = Vector256.FusedMultiplyAdd(Vector256.Create(a3[o]), u, x3);
            }
        }

        // Columns first..first+7 and second..second+7 of four rows: eight chains (see StorePair above).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void TwoBlocks(int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc, int first, int second)
        {
            float* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai;
            Vector256<float> x0 = default, y0 = default, x1 = default, y1 = default, x2 = default, y2 = default, x3 = default, y3 = default;
            float* bp = b + first;
            float* bq = b + second;
            for (int p = 0; p < k; p++, bp += ldb, bq += ldb)
            {
                var u = Vector256.Load(bp);
                var v = Vector256.Load(bq);
                long o = (long)p * ap;
                var s0 = Vector256.Create(a0[o]); x0 = Vector256.FusedMultiplyAdd(s0, u, x0); y0 = Vector256.FusedMultiplyAdd(s0, v, y0);
                var s1 = Vector256.Create(a1[o]); x1 = Vector256.FusedMultiplyAdd(s1, u, x1); y1 = Vector256.FusedMultiplyAdd(s1, v, y1);
                var s2 = Vector256.Create(a2[o]); x2 = Vector256.FusedMultiplyAdd(s2, u, x2); y2 = Vector256.FusedMultiplyAdd(s2, v, y2);
                var s3 = Vector256.Create(a3[o]); x3 = Vector256.FusedMultiplyAdd(s3, u, x3); y3 = Vector256.FusedMultiplyAdd(s3, v, y3);
            }
            float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
            StorePair(x0, y0, alpha, beta, c0 + first, c0 + second); StorePair(x1, y1, alpha, beta, c1 + first, c1 + second);
            StorePair(x2, y2, alpha, beta, c2 + first, c2 + second); StorePair(x3, y3, alpha, beta, c3 + first, c3 + second);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void StorePair(Vector256<float> x, Vector256<float> y, float alpha, float beta, float* cx, float* cy)
        {
            var fx = Finish256(x, alpha, beta, cx);
            var fy = Finish256(y, alpha, beta, cy);
            Vector256.Store(fy, cy);
            Vector256.Store(fx, cx);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void StoreFresh(Vector256<float> acc, float alpha, float beta, float* c, Vector256<float> fresh)
        {
            var old = Vector256.Load(c);
            Vector256.Store(Vector256.ConditionalSelect(fresh, Finish256(acc, alpha, beta, c), old), c);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void Row1(int n, int k, float alpha, float* a, int ap, float* b, int ldb, float beta, float* c)
        {
            int j = 0;
            for (; j + 2 * W <= n || j + W == n; j += W)
            {
                Vector256<float> x = default;
                float* bp = b + j;
                for (int p = 0; p < k; p++, bp += ldb) x = Vector256.FusedMultiplyAdd(Vector256.Create(a[(long)p * ap]), Vector256.Load(bp), x);
                Vector256.Store(Finish256(x, alpha, beta, c + j), c + j);
            }
            if (n - j > W)
            {
                int start = n - W;
                Vector256<float> x = default, y = default;
                float* bp = b + j;
                float* bq = b + start;
                for (int p = 0; p < k; p++, bp += ldb, bq += ldb)
                {
                    var s = Vector256.Create(a[(long)p * ap]);
                    x = Vector256.FusedMultiplyAdd(s, Vector256.Load(bp), x);
                    y = Vector256.FusedMultiplyAdd(s, Vector256.Load(bq), y);
                }
                StorePair(x, y, alpha, beta, c + j, c + start);
                return;
            }
            ScalarColumns1(j, n, k, alpha, a, ap, b, ldb, beta, c);
        }
    }
}
