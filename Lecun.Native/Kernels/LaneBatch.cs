using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Lecun.Native.Kernels;

/// <summary>
/// Forward kernels for 16 examples at once, one example per lane of a 512-bit vector (with AVX2, of
/// two 256-bit vectors; each lane runs the same chain either way, so the results are the same bits): a layer's
/// activations are stored unit-major, [units, 16], so every connection of the network is one
/// broadcast weight times one vector of 16 examples. A locally-connected layer becomes an implicit
/// GEMM: its windows are read in place through a table of offsets into the padded input, with no
/// im2col matrix and no transposes, and each weight is loaded once for 16 digits.
/// </summary>
/// <remarks>
/// Why lanes hold examples: the 1989 network's matrices are tiny (4 or 12 output planes, 16 or 64
/// positions), so any layout that vectorises within one example spends most of its time unfolding,
/// transposing and reducing. With examples in the lanes every layer is the same dense FMA loop and
/// the register blocks below keep 16 independent accumulators in flight. Sums run in a different
/// order from the im2col GEMMs, so results agree with them to rounding, not bit for bit.
/// </remarks>
public static class LaneBatch
{
    /// <summary>Examples per batch: the float lanes of a 512-bit vector.</summary>
    public const int Lanes = 16;

    /// <summary>The kernels need AVX-512 or AVX2 with FMA; callers fall back to the im2col path without them.</summary>
    public static bool IsSupported => KernelWidth.HasVectorKernels;

    /// <summary>
    /// lanes[u, :] = examples[:, u] for the first <paramref name="count"/> of 16 examples, row-major
    /// [count, units] in, [units, 16] out; the lanes of missing examples are zero.
    /// </summary>
    public static unsafe void ToLanes(ReadOnlySpan<float> examples, int count, int units, Span<float> lanes)
    {
        if (count < 1 || count > Lanes) throw new ArgumentOutOfRangeException(nameof(count), $"1..{Lanes} examples expected, got {count}");
        if (examples.Length < count * units || lanes.Length < units * Lanes) throw new ArgumentException("lanes: buffer too small");
        int whole = units & ~15;
        lanes.Slice(whole * Lanes, (units - whole) * Lanes).Clear();
        fixed (float* src = examples, dst = lanes)
        {
            // Whole 16-unit tiles by register transposes; a last partial tile unit by unit, since
            // its 16-float rows would read past the last example.
            for (int u0 = 0; u0 < whole; u0 += 16)
                Im2ColPlan.Transpose16(src + u0, units, count, dst + (long)u0 * Lanes, Lanes, 16, Lanes);
            for (int u = whole; u < units; u++)
                for (int e = 0; e < count; e++)
                    dst[(long)u * Lanes + e] = src[(long)e * units + u];
        }
    }

    /// <summary>examples[b, u] = lanes[u, b] for the first <paramref name="count"/> lanes: the inverse of ToLanes.</summary>
    public static unsafe void FromLanes(ReadOnlySpan<float> lanes, int units, int count, Span<float> examples)
    {
        if (count < 1 || count > Lanes) throw new ArgumentOutOfRangeException(nameof(count), $"1..{Lanes} examples expected, got {count}");
        if (lanes.Length < units * Lanes || examples.Length < count * units) throw new ArgumentException("lanes: buffer too small");
        fixed (float* src = lanes, dst = examples)
        {
            // Whole 16-unit tiles by register transposes; a last partial tile unit by unit, since
            // Transpose16 rewrites whole 16-float rows and the last example's would run past the span.
            int whole = units & ~15;
            for (int u0 = 0; u0 < whole; u0 += 16)
                Im2ColPlan.Transpose16(src + (long)u0 * Lanes, Lanes, 16, dst + u0, units, count, 16);
            for (int u = whole; u < units; u++)
                for (int e = 0; e < count; e++)
                    dst[(long)e * units + u] = src[(long)u * Lanes + e];
        }
    }

    /// <summary>
    /// Copies planes [planes, height, width, 16] into the interior of padded planes
    /// [planes, height + 2 pad, width + 2 pad, 16]; the border is left as it is (the caller fills it
    /// with the pad value once).
    /// </summary>
    public static unsafe void Pad(ReadOnlySpan<float> lanes, int planes, int height, int width, int pad, Span<float> padded)
    {
        CheckInterior(lanes.Length, planes, height, width, pad, padded.Length);
        fixed (float* from = lanes, to = padded) CopyInterior(from, to, planes, height, width, pad, toPadded: true);
    }

    /// <summary>
    /// The interior of padded planes [planes, height + 2 pad, width + 2 pad, 16] into planes
    /// [planes, height, width, 16]: the inverse of <see cref="Pad"/> (in training, a padded input
    /// gradient to the gradient of the layer below's outputs; what reached the border is dropped, as
    /// the padding is constant).
    /// </summary>
    public static unsafe void Unpad(ReadOnlySpan<float> padded, int planes, int height, int width, int pad, Span<float> lanes)
    {
        CheckInterior(lanes.Length, planes, height, width, pad, padded.Length);
        fixed (float* from = padded, to = lanes) CopyInterior(to, from, planes, height, width, pad, toPadded: false);
    }

    static void CheckInterior(int lanes, int planes, int height, int width, int pad, int padded)
    {
        if (planes < 0 || height < 0 || width < 0 || pad < 0) throw new ArgumentException("pad: negative size");
        if (lanes < planes * height * width * Lanes || padded < planes * (height + 2 * pad) * (width + 2 * pad) * Lanes)
            throw new ArgumentException("pad: buffer too small");
    }

    // Row by row between the planes and the interior of the padded planes, in the direction asked.
    static unsafe void CopyInterior(float* planesBase, float* paddedBase, int planes, int height, int width, int pad, bool toPadded)
    {
        int ph = height + 2 * pad, pw = width + 2 * pad;
        long row = (long)width * Lanes, bytes = row * sizeof(float);
        for (int p = 0; p < planes; p++)
            for (int y = 0; y < height; y++)
            {
                float* unpadded = planesBase + (p * height + y) * row;
                float* inside = paddedBase + (((long)p * ph + y + pad) * pw + pad) * Lanes;
                if (toPadded) Buffer.MemoryCopy(unpadded, inside, bytes, bytes);
                else Buffer.MemoryCopy(inside, unpadded, bytes, bytes);
            }
    }

    /// <summary>
    /// One group of a locally-connected layer, planes that read the same input planes:
    /// output[p, s, :] = sum_t weights[p * fanIn + t] * input[origins[s] + taps[t] .. +16] + bias[p * positions + s],
    /// with fanIn = taps.Length and positions = origins.Length. Offsets count floats of the padded,
    /// unit-major input. The output is [planes, positions, 16].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Local(ReadOnlySpan<float> input, ReadOnlySpan<int> origins, ReadOnlySpan<int> taps,
        ReadOnlySpan<float> weights, int planes, ReadOnlySpan<float> bias, Span<float> output)
    {
        int positions = origins.Length, fanIn = taps.Length;
        if (planes < 1 || positions < 1 || fanIn < 1) throw new ArgumentException("lanes: empty layer");
        if (weights.Length < planes * fanIn || bias.Length < planes * positions || output.Length < planes * positions * Lanes)
            throw new ArgumentException("lanes: weight, bias or output span too small");
        int reach = 0;
        foreach (int o in origins) { if (o < 0) throw new ArgumentException("lanes: negative origin"); reach = Math.Max(reach, o); }
        int tapReach = 0;
        foreach (int t in taps) { if (t < 0) throw new ArgumentException("lanes: negative tap"); tapReach = Math.Max(tapReach, t); }
        if ((long)reach + tapReach + Lanes > input.Length) throw new ArgumentException("lanes: a window reaches past the input");

        fixed (float* x = input, w = weights, b = bias, y = output)
        fixed (int* o = origins, t = taps)
        {
            if (!KernelWidth.UseAvx512)
            {
                // Blocks of 4 positions x 2 planes, each 8-lane half on its own: eight accumulators.
                for (int p0 = 0; p0 < planes; p0 += 2)
                    for (int s0 = 0; s0 < positions; s0 += 4)
                        for (int half = 0; half < Lanes; half += 8)
                            NarrowBlock(x + half, o, s0, Math.Min(4, positions - s0), t, fanIn, w, p0, Math.Min(2, planes - p0), b, positions, y + half);
                return;
            }
            // Blocks of 4 positions x 4 planes; a block at an edge repeats its last valid position or
            // plane and stores only the valid ones.
            for (int p0 = 0; p0 < planes; p0 += 4)
                for (int s0 = 0; s0 < positions; s0 += 4)
                    Block(x, o, s0, Math.Min(4, positions - s0), t, fanIn, w, p0, Math.Min(4, planes - p0), b, positions, y);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Block(float* x, int* origins, int s0, int ns, int* taps, int fanIn, float* w, int p0, int np,
        float* bias, int positions, float* y)
    {
        float* x0 = x + origins[s0], x1 = x + origins[s0 + Math.Min(1, ns - 1)],
            x2 = x + origins[s0 + Math.Min(2, ns - 1)], x3 = x + origins[s0 + Math.Min(3, ns - 1)];
        float* w0 = w + (long)p0 * fanIn, w1 = w + (long)(p0 + Math.Min(1, np - 1)) * fanIn,
            w2 = w + (long)(p0 + Math.Min(2, np - 1)) * fanIn, w3 = w + (long)(p0 + Math.Min(3, np - 1)) * fanIn;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default,
            a10 = default, a11 = default, a12 = default, a13 = default,
            a20 = default, a21 = default, a22 = default, a23 = default,
            a30 = default, a31 = default, a32 = default, a33 = default;
        for (int k = 0; k < fanIn; k++)
        {
            int off = taps[k];
            var v0 = Vector512.Load(x0 + off);
            var v1 = Vector512.Load(x1 + off);
            var v2 = Vector512.Load(x2 + off);
            var v3 = Vector512.Load(x3 + off);
            var c = Vector512.Create(w0[k]);
            a00 = Vector512.FusedMultiplyAdd(v0, c, a00); a10 = Vector512.FusedMultiplyAdd(v1, c, a10);
            a20 = Vector512.FusedMultiplyAdd(v2, c, a20); a30 = Vector512.FusedMultiplyAdd(v3, c, a30);
            c = Vector512.Create(w1[k]);
            a01 = Vector512.FusedMultiplyAdd(v0, c, a01); a11 = Vector512.FusedMultiplyAdd(v1, c, a11);
            a21 = Vector512.FusedMultiplyAdd(v2, c, a21); a31 = Vector512.FusedMultiplyAdd(v3, c, a31);
            c = Vector512.Create(w2[k]);
            a02 = Vector512.FusedMultiplyAdd(v0, c, a02); a12 = Vector512.FusedMultiplyAdd(v1, c, a12);
            a22 = Vector512.FusedMultiplyAdd(v2, c, a22); a32 = Vector512.FusedMultiplyAdd(v3, c, a32);
            c = Vector512.Create(w3[k]);
            a03 = Vector512.FusedMultiplyAdd(v0, c, a03); a13 = Vector512.FusedMultiplyAdd(v1, c, a13);
            a23 = Vector512.FusedMultiplyAdd(v2, c, a23); a33 = Vector512.FusedMultiplyAdd(v3, c, a33);
        }
        Put<Width512, Vector512<float>>(a00, a10, a20, a30, 0, s0, ns, p0, np, bias, positions, y);
        Put<Width512, Vector512<float>>(a01, a11, a21, a31, 1, s0, ns, p0, np, bias, positions, y);
        Put<Width512, Vector512<float>>(a02, a12, a22, a32, 2, s0, ns, p0, np, bias, positions, y);
        Put<Width512, Vector512<float>>(a03, a13, a23, a33, 3, s0, ns, p0, np, bias, positions, y);
    }

    // Stores one plane's column of a block: the block's valid positions, plus each unit's bias (a
    // whole 16-lane row on AVX-512, one 8-lane half on AVX2, y offset to it).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Put<TW, TV>(TV s0v, TV s1v, TV s2v, TV s3v, int j, int s0, int ns, int p0, int np, float* bias, int positions, float* y)
        where TW : struct, IWidth<TV> where TV : struct
    {
        if (j >= np) return;
        long unit = (long)(p0 + j) * positions + s0;
        TW.Store(TW.Add(s0v, TW.Splat(bias[unit])), y + unit * Lanes);
        if (ns > 1) TW.Store(TW.Add(s1v, TW.Splat(bias[unit + 1])), y + (unit + 1) * Lanes);
        if (ns > 2) TW.Store(TW.Add(s2v, TW.Splat(bias[unit + 2])), y + (unit + 2) * Lanes);
        if (ns > 3) TW.Store(TW.Add(s3v, TW.Splat(bias[unit + 3])), y + (unit + 3) * Lanes);
    }

    // Block for one 8-lane half (x and y offset to it) and at most two planes. It stays a twin of Block
    // because the blocks differ in shape: Block's 16 accumulators need AVX-512's 32 registers, AVX2 has 16.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void NarrowBlock(float* x, int* origins, int s0, int ns, int* taps, int fanIn, float* w, int p0, int np,
        float* bias, int positions, float* y)
    {
        float* x0 = x + origins[s0], x1 = x + origins[s0 + Math.Min(1, ns - 1)],
            x2 = x + origins[s0 + Math.Min(2, ns - 1)], x3 = x + origins[s0 + Math.Min(3, ns - 1)];
        float* w0 = w + (long)p0 * fanIn, w1 = w + (long)(p0 + Math.Min(1, np - 1)) * fanIn;
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default,
            a20 = default, a21 = default, a30 = default, a31 = default;
        for (int k = 0; k < fanIn; k++)
        {
            int off = taps[k];
            var v0 = Vector256.Load(x0 + off);
            var v1 = Vector256.Load(x1 + off);
            var v2 = Vector256.Load(x2 + off);
            var v3 = Vector256.Load(x3 + off);
            var c = Vector256.Create(w0[k]);
            a00 = Vector256.FusedMultiplyAdd(v0, c, a00); a10 = Vector256.FusedMultiplyAdd(v1, c, a10);
            a20 = Vector256.FusedMultiplyAdd(v2, c, a20); a30 = Vector256.FusedMultiplyAdd(v3, c, a30);
            c = Vector256.Create(w1[k]);
            a01 = Vector256.FusedMultiplyAdd(v0, c, a01); a11 = Vector256.FusedMultiplyAdd(v1, c, a11);
            a21 = Vector256.FusedMultiplyAdd(v2, c, a21); a31 = Vector256.FusedMultiplyAdd(v3, c, a31);
        }
        Put<Width256, Vector256<float>>(a00, a10, a20, a30, 0, s0, ns, p0, np, bias, positions, y);
        Put<Width256, Vector256<float>>(a01, a11, a21, a31, 1, s0, ns, p0, np, bias, positions, y);
    }

    /// <summary>
    /// A dense layer: output[u, :] = sum_i weights[i * units + u] * input[i, :] + bias[u], input
    /// [fanIn, 16], weights [fanIn, units] (the x @ W layout), output [units, 16].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Dense(ReadOnlySpan<float> input, int fanIn, ReadOnlySpan<float> weights, int units,
        ReadOnlySpan<float> bias, Span<float> output)
    {
        if (fanIn < 1 || units < 1) throw new ArgumentException("lanes: empty layer");
        if (input.Length < fanIn * Lanes || weights.Length < fanIn * units || bias.Length < units || output.Length < units * Lanes)
            throw new ArgumentException("lanes: input, weight, bias or output span too small");
        fixed (float* x = input, w = weights, b = bias, y = output)
        {
            if (!KernelWidth.UseAvx512)
            {
                for (int u0 = 0; u0 < units; u0 += 4)
                    for (int half = 0; half < Lanes; half += 8)
                        NarrowDenseBlock(x + half, fanIn, w, units, u0, Math.Min(4, units - u0), b, y + half);
                return;
            }
            for (int u0 = 0; u0 < units; u0 += 8)
                DenseBlock(x, fanIn, w, units, u0, Math.Min(8, units - u0), b, y);
        }
    }

    // Eight units over all inputs, the inputs split into two interleaved halves so 16 accumulators
    // are in flight; a block at the edge repeats its last valid unit and stores only the valid ones.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void DenseBlock(float* x, int fanIn, float* w, int units, int u0, int nu, float* bias, float* y)
    {
        int c0 = u0, c1 = u0 + Math.Min(1, nu - 1), c2 = u0 + Math.Min(2, nu - 1), c3 = u0 + Math.Min(3, nu - 1),
            c4 = u0 + Math.Min(4, nu - 1), c5 = u0 + Math.Min(5, nu - 1), c6 = u0 + Math.Min(6, nu - 1), c7 = u0 + Math.Min(7, nu - 1);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector512<float> e0 = default, e1 = default, e2 = default, e3 = default, e4 = default, e5 = default, e6 = default, e7 = default;
        int i = 0;
        for (; i + 2 <= fanIn; i += 2)
        {
            var v = Vector512.Load(x + (long)i * Lanes);
            var u = Vector512.Load(x + (long)(i + 1) * Lanes);
            float* r = w + (long)i * units, q = r + units;
            a0 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c0]), a0); e0 = Vector512.FusedMultiplyAdd(u, Vector512.Create(q[c0]), e0);
            a1 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c1]), a1); e1 = Vector512.FusedMultiplyAdd(u, Vector512.Create(q[c1]), e1);
            a2 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c2]), a2); e2 = Vector512.FusedMultiplyAdd(u, Vector512.Create(q[c2]), e2);
            a3 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c3]), a3); e3 = Vector512.FusedMultiplyAdd(u, Vector512.Create(q[c3]), e3);
            a4 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c4]), a4); e4 = Vector512.FusedMultiplyAdd(u, Vector512.Create(q[c4]), e4);
            a5 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c5]), a5); e5 = Vector512.FusedMultiplyAdd(u, Vector512.Create(q[c5]), e5);
            a6 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c6]), a6); e6 = Vector512.FusedMultiplyAdd(u, Vector512.Create(q[c6]), e6);
            a7 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c7]), a7); e7 = Vector512.FusedMultiplyAdd(u, Vector512.Create(q[c7]), e7);
        }
        if (i < fanIn)
        {
            var v = Vector512.Load(x + (long)i * Lanes);
            float* r = w + (long)i * units;
            a0 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c0]), a0); a1 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c1]), a1);
            a2 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c2]), a2); a3 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c3]), a3);
            a4 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c4]), a4); a5 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c5]), a5);
            a6 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c6]), a6); a7 = Vector512.FusedMultiplyAdd(v, Vector512.Create(r[c7]), a7);
        }
        Vector512.Store(a0 + e0 + Vector512.Create(bias[c0]), y + (long)c0 * Lanes);
        if (nu > 1) Vector512.Store(a1 + e1 + Vector512.Create(bias[c1]), y + (long)c1 * Lanes);
        if (nu > 2) Vector512.Store(a2 + e2 + Vector512.Create(bias[c2]), y + (long)c2 * Lanes);
        if (nu > 3) Vector512.Store(a3 + e3 + Vector512.Create(bias[c3]), y + (long)c3 * Lanes);
        if (nu > 4) Vector512.Store(a4 + e4 + Vector512.Create(bias[c4]), y + (long)c4 * Lanes);
        if (nu > 5) Vector512.Store(a5 + e5 + Vector512.Create(bias[c5]), y + (long)c5 * Lanes);
        if (nu > 6) Vector512.Store(a6 + e6 + Vector512.Create(bias[c6]), y + (long)c6 * Lanes);
        if (nu > 7) Vector512.Store(a7 + e7 + Vector512.Create(bias[c7]), y + (long)c7 * Lanes);
    }

    // DenseBlock for one 8-lane half (x and y offset to it) and four units: the same two interleaved
    // chains per unit and lane, added as (a + e) + bias. It stays a twin of DenseBlock because the
    // blocks differ in shape: DenseBlock's 16 accumulators need AVX-512's 32 registers, AVX2 has 16.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void NarrowDenseBlock(float* x, int fanIn, float* w, int units, int u0, int nu, float* bias, float* y)
    {
        int c0 = u0, c1 = u0 + Math.Min(1, nu - 1), c2 = u0 + Math.Min(2, nu - 1), c3 = u0 + Math.Min(3, nu - 1);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, e0 = default, e1 = default, e2 = default, e3 = default;
        int i = 0;
        for (; i + 2 <= fanIn; i += 2)
        {
            var v = Vector256.Load(x + (long)i * Lanes);
            var u = Vector256.Load(x + (long)(i + 1) * Lanes);
            float* r = w + (long)i * units, q = r + units;
            a0 = Vector256.FusedMultiplyAdd(v, Vector256.Create(r[c0]), a0); e0 = Vector256.FusedMultiplyAdd(u, Vector256.Create(q[c0]), e0);
            a1 = Vector256.FusedMultiplyAdd(v, Vector256.Create(r[c1]), a1); e1 = Vector256.FusedMultiplyAdd(u, Vector256.Create(q[c1]), e1);
            a2 = Vector256.FusedMultiplyAdd(v, Vector256.Create(r[c2]), a2); e2 = Vector256.FusedMultiplyAdd(u, Vector256.Create(q[c2]), e2);
            a3 = Vector256.FusedMultiplyAdd(v, Vector256.Create(r[c3]), a3); e3 = Vector256.FusedMultiplyAdd(u, Vector256.Create(q[c3]), e3);
        }
        if (i < fanIn)
        {
            var v = Vector256.Load(x + (long)i * Lanes);
            float* r = w + (long)i * units;
            a0 = Vector256.FusedMultiplyAdd(v, Vector256.Create(r[c0]), a0); a1 = Vector256.FusedMultiplyAdd(v, Vector256.Create(r[c1]), a1);
            a2 = Vector256.FusedMultiplyAdd(v, Vector256.Create(r[c2]), a2); a3 = Vector256.FusedMultiplyAdd(v, Vector256.Create(r[c3]), a3);
        }
        Vector256.Store(a0 + e0 + Vector256.Create(bias[c0]), y + (long)c0 * Lanes);
        if (nu > 1) Vector256.Store(a1 + e1 + Vector256.Create(bias[c1]), y + (long)c1 * Lanes);
        if (nu > 2) Vector256.Store(a2 + e2 + Vector256.Create(bias[c2]), y + (long)c2 * Lanes);
        if (nu > 3) Vector256.Store(a3 + e3 + Vector256.Create(bias[c3]), y + (long)c3 * Lanes);
    }
}
