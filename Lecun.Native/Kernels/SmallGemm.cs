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
/// beta, whatever block or tail it falls in: so the AVX2 path (blocks of 8 columns) gives the bits of
/// the AVX-512 path (blocks of 16); both run <see cref="Blocked{TW, TV}"/>.
/// </remarks>
public static unsafe class SmallGemm
{
    /// <summary>C[m,n] = alpha * A(m x k) * B[k,n] + beta * C, B and C row-major.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ProductAB(int m, int n, int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (!KernelWidth.UseAvx512)
            Blocked<Width256, Vector256<float>>.ProductAB(m, n, k, alpha, a, ai, ap, b, ldb, beta, c, ldc);
        else if (k == 1 && n < 16)
            ShortOuter(m, n, alpha, a, ai, b, beta, c, ldc);
        else
            Blocked<Width512, Vector512<float>>.ProductAB(m, n, k, alpha, a, ai, ap, b, ldb, beta, c, ldc);
    }

    /// <summary>
    /// C[m,n] = alpha * a b^T + beta * C for vectors a (stride ai) and b, n &lt; 16, on AVX-512: a dense
    /// layer's weight gradient for one example, or with beta = 1 its SGD step. Same roundings as the
    /// blocked kernels (the product a_i b_j as fma(a_i, b_j, +0) first, then alpha and beta); wider rows
    /// take <see cref="Blocked{TW, TV}.Outer"/>.
    /// </summary>
    /// <remarks>
    /// One masked vector when C is not read, and scalars when it is: masked stores, on this CPU, stall a
    /// following load of the next row's first bytes (measurably, on the 192x30 step with beta = 1).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ShortOuter(int m, int n, float alpha, float* a, int ai, float* b, float beta, float* c, int ldc)
    {
        if (beta == 0f)
        {
            var keep = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(n)).AsSingle();
            var bRow = Avx512F.MaskLoad(b, keep, Vector512<float>.Zero);
            for (int i = 0; i < m; i++)
                Avx512F.MaskStore(c + (long)i * ldc, keep,
                    Vector512.FusedMultiplyAdd(Vector512.Create(a[(long)i * ai]), bRow, Vector512<float>.Zero) * alpha);
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Finish(float acc, float alpha, float beta, float* c) => beta == 0f ? acc * alpha : acc * alpha + *c * beta;

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
    /// The blocked kernels of ProductAB, written once for both widths: blocks of <c>TW.Count</c> columns
    /// (16 on AVX-512, 8 on AVX2). Each column's chain is the same at either width, so the results are
    /// the same bits.
    /// </summary>
    internal static class Blocked<TW, TV> where TW : struct, IWidth<TV> where TV : struct
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void ProductAB(int m, int n, int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc)
        {
            if (k == 1 && n >= TW.Count)
            {
                Outer(m, n, alpha, a, ai, b, beta, c, ldc);
                return;
            }
            int i = 0;
            for (; i + 4 <= m; i += 4) Rows4(n, k, alpha, a + (long)i * ai, ai, ap, b, ldb, beta, c + (long)i * ldc, ldc);
            for (; i < m; i++) Row1(n, k, alpha, a + (long)i * ai, ap, b, ldb, beta, c + (long)i * ldc);
        }

        // a b as the blocked kernels' first step computes it, fma(a, b, +0): the same rounding, and a
        // product of -0 comes out as +0 there too.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static TV Product(TV a, TV b) => TW.FusedMultiplyAdd(a, b, TW.Zero);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static TV Finish(TV acc, float alpha, float beta, float* c) =>
            beta == 0f ? TW.Multiply(acc, TW.Splat(alpha)) : TW.Add(TW.Multiply(acc, TW.Splat(alpha)), TW.Multiply(TW.Load(c), TW.Splat(beta)));

        /// <summary>
        /// k = 1, n at least one vector: C = alpha a b^T + beta C, a dense layer's weight gradient for one
        /// example, or with beta = 1 its SGD step. Whole vectors plus one last vector that overlaps the one
        /// before (C read for both before either is written): no masked stores, which on AVX-512 stall a
        /// following load of the next row's first bytes.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Outer(int m, int n, float alpha, float* a, int ai, float* b, float beta, float* c, int ldc)
        {
            int last = n - TW.Count;
            var bLast = TW.Load(b + last);
            for (int i = 0; i < m; i++)
            {
                var s = TW.Splat(a[(long)i * ai]);
                float* row = c + (long)i * ldc;
                var tail = Finish(Product(s, bLast), alpha, beta, row + last);
                for (int j = 0; j < last; j += TW.Count)
                    TW.Store(Finish(Product(s, TW.Load(b + j)), alpha, beta, row + j), row + j);
                TW.Store(tail, row + last);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void Rows4(int n, int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc)
        {
            int w = TW.Count;
            float* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai;
            float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
            int j = 0;
            for (; j + 2 * w <= n; j += 2 * w) TwoBlocks(k, alpha, a, ai, ap, b, ldb, beta, c, ldc, j, j + w);
            if (n - j > w)
            {
                // Between one and two blocks of columns left: the next block and the one that ends at n
                // in one pass, eight chains instead of two passes of four.
                TwoBlocks(k, alpha, a, ai, ap, b, ldb, beta, c, ldc, j, n - w);
                return;
            }
            if (j + w == n)
            {
                OneBlock(k, a0, a1, a2, a3, ap, b + j, ldb, out var x0, out var x1, out var x2, out var x3);
                TW.Store(Finish(x0, alpha, beta, c0 + j), c0 + j);
                TW.Store(Finish(x1, alpha, beta, c1 + j), c1 + j);
                TW.Store(Finish(x2, alpha, beta, c2 + j), c2 + j);
                TW.Store(Finish(x3, alpha, beta, c3 + j), c3 + j);
                return;
            }
            if (j < n && n >= w)
            {
                // The last partial block: recompute the block that ends at n and keep only the new
                // columns, so no column is updated twice (that would apply beta twice).
                int start = n - w;
                var fresh = TW.LanesFrom(j - start);
                OneBlock(k, a0, a1, a2, a3, ap, b + start, ldb, out var x0, out var x1, out var x2, out var x3);
                StoreFresh(x0, alpha, beta, c0 + start, fresh); StoreFresh(x1, alpha, beta, c1 + start, fresh);
                StoreFresh(x2, alpha, beta, c2 + start, fresh); StoreFresh(x3, alpha, beta, c3 + start, fresh);
                return;
            }
            ScalarColumns4(j, n, k, alpha, a, ai, ap, b, ldb, beta, c, ldc);
        }

        /// <summary>One block of columns of four rows of C from B's block at bp: four independent chains over k.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void OneBlock(int k, float* a0, float* a1, float* a2, float* a3, int ap, float* bp, int ldb,
            out TV x0, out TV x1, out TV x2, out TV x3)
        {
            x0 = TW.Zero; x1 = TW.Zero; x2 = TW.Zero; x3 = TW.Zero;
            for (int p = 0; p < k; p++, bp += ldb)
            {
                var u = TW.Load(bp);
                long o = (long)p * ap;
                x0 = TW.FusedMultiplyAdd(TW.Splat(a0[o]), u, x0);
                x1 = TW.FusedMultiplyAdd(TW.Splat(a1[o]), u, x1);
                x2 = TW.FusedMultiplyAdd(TW.Splat(a2[o]), u, x2);
                x3 = TW.FusedMultiplyAdd(TW.Splat(a3[o]), u, x3);
            }
        }

        /// <summary>
        /// The blocks of columns at first and second of four rows of C in one pass over k: eight
        /// independent chains. The blocks may overlap (see StorePair).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void TwoBlocks(int k, float alpha, float* a, int ai, int ap, float* b, int ldb, float beta, float* c, int ldc, int first, int second)
        {
            float* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai;
            TV x0 = TW.Zero, y0 = TW.Zero, x1 = TW.Zero, y1 = TW.Zero, x2 = TW.Zero, y2 = TW.Zero, x3 = TW.Zero, y3 = TW.Zero;
            float* bp = b + first;
            float* bq = b + second;
            for (int p = 0; p < k; p++, bp += ldb, bq += ldb)
            {
                var u = TW.Load(bp);
                var v = TW.Load(bq);
                long o = (long)p * ap;
                var s0 = TW.Splat(a0[o]); x0 = TW.FusedMultiplyAdd(s0, u, x0); y0 = TW.FusedMultiplyAdd(s0, v, y0);
                var s1 = TW.Splat(a1[o]); x1 = TW.FusedMultiplyAdd(s1, u, x1); y1 = TW.FusedMultiplyAdd(s1, v, y1);
                var s2 = TW.Splat(a2[o]); x2 = TW.FusedMultiplyAdd(s2, u, x2); y2 = TW.FusedMultiplyAdd(s2, v, y2);
                var s3 = TW.Splat(a3[o]); x3 = TW.FusedMultiplyAdd(s3, u, x3); y3 = TW.FusedMultiplyAdd(s3, v, y3);
            }
            float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
            StorePair(x0, y0, alpha, beta, c0 + first, c0 + second); StorePair(x1, y1, alpha, beta, c1 + first, c1 + second);
            StorePair(x2, y2, alpha, beta, c2 + first, c2 + second); StorePair(x3, y3, alpha, beta, c3 + first, c3 + second);
        }

        /// <summary>
        /// Stores two overlapping blocks. The overlap's columns went through identical chains in both, so
        /// they agree bit for bit; C is read for both before either is written, so beta applies once.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void StorePair(TV x, TV y, float alpha, float beta, float* cx, float* cy)
        {
            var fx = Finish(x, alpha, beta, cx);
            var fy = Finish(y, alpha, beta, cy);
            TW.Store(fy, cy);
            TW.Store(fx, cx);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void StoreFresh(TV acc, float alpha, float beta, float* c, TV fresh)
        {
            var old = TW.Load(c);
            TW.Store(TW.ConditionalSelect(fresh, Finish(acc, alpha, beta, c), old), c);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void Row1(int n, int k, float alpha, float* a, int ap, float* b, int ldb, float beta, float* c)
        {
            // Whole blocks while at least two or exactly one are left, so what remains is none, between
            // one and two (one pass for both blocks below), or all of n below one block (scalar).
            int w = TW.Count;
            int j = 0;
            for (; j + 2 * w <= n || j + w == n; j += w)
            {
                TV x = TW.Zero;
                float* bp = b + j;
                for (int p = 0; p < k; p++, bp += ldb) x = TW.FusedMultiplyAdd(TW.Splat(a[(long)p * ap]), TW.Load(bp), x);
                TW.Store(Finish(x, alpha, beta, c + j), c + j);
            }
            if (n - j > w)
            {
                // Both blocks in one pass, two chains (see Rows4).
                int start = n - w;
                TV x = TW.Zero, y = TW.Zero;
                float* bp = b + j;
                float* bq = b + start;
                for (int p = 0; p < k; p++, bp += ldb, bq += ldb)
                {
                    var s = TW.Splat(a[(long)p * ap]);
                    x = TW.FusedMultiplyAdd(s, TW.Load(bp), x);
                    y = TW.FusedMultiplyAdd(s, TW.Load(bq), y);
                }
                StorePair(x, y, alpha, beta, c + j, c + start);
                return;
            }
            ScalarColumns1(j, n, k, alpha, a, ap, b, ldb, beta, c);
        }
    }
}
