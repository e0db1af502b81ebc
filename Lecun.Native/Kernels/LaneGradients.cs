using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Lecun.Native.Kernels;

/// <summary>
/// Backward kernels of the 16-lane path (see <see cref="LaneBatch"/>): training 16 examples at once,
/// one per vector lane, with activations and gradients unit-major, [units, 16]. Input gradients are
/// per lane (lanes never mix). A locally-connected layer's weight and bias gradients are accumulated per
/// lane, over positions and over a run's 16-example groups, and summed over the lanes once per batch
/// (<see cref="SumLanes"/>); a dense layer's weight gradient (one product per weight and example) is
/// summed over each batch's lanes at once, vectorised over the units (<see cref="DenseWeightGradient"/>).
/// </summary>
/// <remarks>
/// Each kernel is written once over the width trait: on AVX2 it runs its loops once per 8-float half,
/// on AVX-512 once per 16 floats, and every float goes through the same fused multiply-adds in the
/// same order either way, so both widths give the same bits. Sums run in a different order from the
/// im2col GEMMs, so results agree with them to rounding, not bit for bit.
/// </remarks>
public static class LaneGradients
{
    const int Lanes = LaneBatch.Lanes;

    // The arguments of a locally-connected layer's kernels: a non-empty layer, weights that fit, a
    // gradient of every plane and position, and windows inside padded planes of `length` floats; when
    // `whole`, windows that start on whole units (multiples of 16 floats, as the engine's tables do).
    static void CheckLocal(int planes, ReadOnlySpan<int> origins, ReadOnlySpan<int> taps, ReadOnlySpan<float> dPre, bool weightsFit, int length, bool whole)
    {
        if (planes < 1 || origins.Length < 1 || taps.Length < 1) throw new ArgumentException("lanes: empty layer");
        if (!weightsFit || dPre.Length < planes * origins.Length * Lanes) throw new ArgumentException("lanes: weight or gradient span too small");
        int reach = 0, tapReach = 0;
        foreach (int o in origins)
        {
            if (o < 0 || (whole && o % Lanes != 0)) throw new ArgumentException("lanes: a negative origin, or one not on a whole unit");
            reach = Math.Max(reach, o);
        }
        foreach (int t in taps)
        {
            if (t < 0 || (whole && t % Lanes != 0)) throw new ArgumentException("lanes: a negative tap, or one not on a whole unit");
            tapReach = Math.Max(tapReach, t);
        }
        if ((long)reach + tapReach + Lanes > length) throw new ArgumentException("lanes: a window reaches past the padded planes");
    }

    /// <summary>
    /// The input gradient of one plane group of a locally-connected layer (the transpose of
    /// <see cref="LaneBatch.Local"/>), added into the padded input gradient:
    /// paddedGradient[origins[s] + taps[t] .. +16] += sum_p weights[p * fanIn + t] * dPre[p, s, :].
    /// Each float's terms are added in one fixed order: by blocks of four planes (then the planes left
    /// one at a time), by pairs of taps (then a last tap), by position, by tap within the pair, by plane.
    /// Origins and taps must be whole units (multiples of 16 floats): windows that overlapped within a
    /// unit would add their terms in another order on AVX2's halves than on AVX-512.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void LocalInputGradient(ReadOnlySpan<float> dPre, ReadOnlySpan<int> origins, ReadOnlySpan<int> taps,
        ReadOnlySpan<float> weights, int planes, Span<float> paddedGradient)
    {
        int positions = origins.Length, fanIn = taps.Length;
        CheckLocal(planes, origins, taps, dPre, weights.Length >= planes * fanIn, paddedGradient.Length, whole: true);
        fixed (float* d = dPre, w = weights, g = paddedGradient)
        fixed (int* o = origins, t = taps)
        {
            if (KernelWidth.UseAvx512) LocalInputGradient<Width512, Vector512<float>>(d, o, positions, t, fanIn, w, planes, g);
            else LocalInputGradient<Width256, Vector256<float>>(d, o, positions, t, fanIn, w, planes, g);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void LocalInputGradient<TW, TV>(float* d, int* o, int positions, int* t, int fanIn, float* w, int planes, float* g)
        where TW : struct, IWidth<TV> where TV : struct
    {
        long planeStride = (long)positions * Lanes;
        for (int half = 0; half < Lanes; half += TW.Count)
        {
            int p = 0;
            // Four planes and two taps at a time: their eight weights broadcast once for all positions.
            for (; p + 4 <= planes; p += 4)
            {
                float* d0 = d + p * planeStride + half, d1 = d0 + planeStride, d2 = d1 + planeStride, d3 = d2 + planeStride;
                float* w0 = w + (long)p * fanIn, w1 = w0 + fanIn, w2 = w1 + fanIn, w3 = w2 + fanIn;
                int k = 0;
                for (; k + 2 <= fanIn; k += 2)
                {
                    TV c00 = TW.Splat(w0[k]), c10 = TW.Splat(w1[k]), c20 = TW.Splat(w2[k]), c30 = TW.Splat(w3[k]);
                    TV c01 = TW.Splat(w0[k + 1]), c11 = TW.Splat(w1[k + 1]), c21 = TW.Splat(w2[k + 1]), c31 = TW.Splat(w3[k + 1]);
                    int t0 = t[k], t1 = t[k + 1];
                    for (int s = 0; s < positions; s++)
                    {
                        float* gs = g + o[s] + half;
                        long ps = (long)s * Lanes;
                        TV v0 = TW.Load(d0 + ps), v1 = TW.Load(d1 + ps), v2 = TW.Load(d2 + ps), v3 = TW.Load(d3 + ps);
                        TV a = TW.Load(gs + t0);
                        a = TW.FusedMultiplyAdd(v0, c00, a); a = TW.FusedMultiplyAdd(v1, c10, a);
                        a = TW.FusedMultiplyAdd(v2, c20, a); a = TW.FusedMultiplyAdd(v3, c30, a);
                        TW.Store(a, gs + t0);
                        TV b = TW.Load(gs + t1);
                        b = TW.FusedMultiplyAdd(v0, c01, b); b = TW.FusedMultiplyAdd(v1, c11, b);
                        b = TW.FusedMultiplyAdd(v2, c21, b); b = TW.FusedMultiplyAdd(v3, c31, b);
                        TW.Store(b, gs + t1);
                    }
                }
                if (k < fanIn)
                {
                    TV c0 = TW.Splat(w0[k]), c1 = TW.Splat(w1[k]), c2 = TW.Splat(w2[k]), c3 = TW.Splat(w3[k]);
                    int t0 = t[k];
                    for (int s = 0; s < positions; s++)
                    {
                        float* gs = g + o[s] + half + t0;
                        long ps = (long)s * Lanes;
                        TV a = TW.Load(gs);
                        a = TW.FusedMultiplyAdd(TW.Load(d0 + ps), c0, a); a = TW.FusedMultiplyAdd(TW.Load(d1 + ps), c1, a);
                        a = TW.FusedMultiplyAdd(TW.Load(d2 + ps), c2, a); a = TW.FusedMultiplyAdd(TW.Load(d3 + ps), c3, a);
                        TW.Store(a, gs);
                    }
                }
            }
            for (; p < planes; p++)
            {
                float* dp = d + p * planeStride + half;
                for (int k = 0; k < fanIn; k++)
                {
                    TV c = TW.Splat(w[(long)p * fanIn + k]);
                    int tk = t[k];
                    for (int s = 0; s < positions; s++)
                    {
                        float* gs = g + o[s] + half + tk;
                        TW.Store(TW.FusedMultiplyAdd(TW.Load(dp + (long)s * Lanes), c, TW.Load(gs)), gs);
                    }
                }
            }
        }
    }

    /// <summary>
    /// The weight gradient of one plane group of a locally-connected layer, per lane, added into
    /// weightLanes [planes * fanIn, 16]:
    /// weightLanes[p * fanIn + t, :] += sum_s dPre[p, s, :] * input[origins[s] + taps[t] .. +16],
    /// one fused multiply-add per position, in position order. `input` is the padded input the forward pass read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void LocalWeightGradient(ReadOnlySpan<float> input, ReadOnlySpan<int> origins, ReadOnlySpan<int> taps,
        ReadOnlySpan<float> dPre, int planes, Span<float> weightLanes)
    {
        int positions = origins.Length, fanIn = taps.Length;
        CheckLocal(planes, origins, taps, dPre, weightLanes.Length >= planes * fanIn * Lanes, input.Length, whole: false);
        fixed (float* x = input, d = dPre, wl = weightLanes)
        fixed (int* o = origins, t = taps)
        {
            if (KernelWidth.UseAvx512) LocalWeightGradient<Width512, Vector512<float>>(x, o, positions, t, fanIn, d, planes, wl);
            else LocalWeightGradient<Width256, Vector256<float>>(x, o, positions, t, fanIn, d, planes, wl);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void LocalWeightGradient<TW, TV>(float* x, int* o, int positions, int* t, int fanIn, float* d, int planes, float* wl)
        where TW : struct, IWidth<TV> where TV : struct
    {
        long planeStride = (long)positions * Lanes;
        for (int half = 0; half < Lanes; half += TW.Count)
        {
            int p = 0;
            // Four planes by two taps: eight chains, each over the positions in order.
            for (; p + 4 <= planes; p += 4)
            {
                float* d0 = d + p * planeStride + half, d1 = d0 + planeStride, d2 = d1 + planeStride, d3 = d2 + planeStride;
                int k = 0;
                // With 32 vector registers (AVX-512), four taps: sixteen chains. The order of each
                // chain (the positions in order) is the same whatever the block.
                if (TW.Count == Lanes)
                    for (; k + 4 <= fanIn; k += 4)
                        WeightBlock4x4<TW, TV>(x, o, positions, t + k, d0, planeStride, wl + ((long)p * fanIn + k) * Lanes + half, (long)fanIn * Lanes, half);
                for (; k + 2 <= fanIn; k += 2)
                {
                    float* w00 = wl + ((long)p * fanIn + k) * Lanes + half, w01 = w00 + Lanes;
                    float* w10 = w00 + (long)fanIn * Lanes, w11 = w10 + Lanes;
                    float* w20 = w10 + (long)fanIn * Lanes, w21 = w20 + Lanes;
                    float* w30 = w20 + (long)fanIn * Lanes, w31 = w30 + Lanes;
                    TV a00 = TW.Load(w00), a01 = TW.Load(w01), a10 = TW.Load(w10), a11 = TW.Load(w11),
                       a20 = TW.Load(w20), a21 = TW.Load(w21), a30 = TW.Load(w30), a31 = TW.Load(w31);
                    int t0 = t[k], t1 = t[k + 1];
                    for (int s = 0; s < positions; s++)
                    {
                        float* xs = x + o[s] + half;
                        TV x0 = TW.Load(xs + t0), x1 = TW.Load(xs + t1);
                        long ps = (long)s * Lanes;
                        TV v = TW.Load(d0 + ps);
                        a00 = TW.FusedMultiplyAdd(v, x0, a00); a01 = TW.FusedMultiplyAdd(v, x1, a01);
                        v = TW.Load(d1 + ps);
                        a10 = TW.FusedMultiplyAdd(v, x0, a10); a11 = TW.FusedMultiplyAdd(v, x1, a11);
                        v = TW.Load(d2 + ps);
                        a20 = TW.FusedMultiplyAdd(v, x0, a20); a21 = TW.FusedMultiplyAdd(v, x1, a21);
                        v = TW.Load(d3 + ps);
                        a30 = TW.FusedMultiplyAdd(v, x0, a30); a31 = TW.FusedMultiplyAdd(v, x1, a31);
                    }
                    TW.Store(a00, w00); TW.Store(a01, w01); TW.Store(a10, w10); TW.Store(a11, w11);
                    TW.Store(a20, w20); TW.Store(a21, w21); TW.Store(a30, w30); TW.Store(a31, w31);
                }
                for (; k < fanIn; k++)
                    for (int q = p; q < p + 4; q++) OneWeight<TW, TV>(x, o, positions, t[k], d + q * planeStride + half, wl + ((long)q * fanIn + k) * Lanes + half, half);
            }
            for (; p < planes; p++)
                for (int k = 0; k < fanIn; k++)
                    OneWeight<TW, TV>(x, o, positions, t[k], d + p * planeStride + half, wl + ((long)p * fanIn + k) * Lanes + half, half);
        }
    }

    // Four planes (rows planeStride apart in d, rowStride apart in wl) by four taps of the weight gradient.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void WeightBlock4x4<TW, TV>(float* x, int* o, int positions, int* t, float* d0, long planeStride, float* wl, long rowStride, int half)
        where TW : struct, IWidth<TV> where TV : struct
    {
        float* d1 = d0 + planeStride, d2 = d1 + planeStride, d3 = d2 + planeStride;
        float* r0 = wl, r1 = r0 + rowStride, r2 = r1 + rowStride, r3 = r2 + rowStride;
        TV a00 = TW.Load(r0), a01 = TW.Load(r0 + Lanes), a02 = TW.Load(r0 + 2 * Lanes), a03 = TW.Load(r0 + 3 * Lanes);
        TV a10 = TW.Load(r1), a11 = TW.Load(r1 + Lanes), a12 = TW.Load(r1 + 2 * Lanes), a13 = TW.Load(r1 + 3 * Lanes);
        TV a20 = TW.Load(r2), a21 = TW.Load(r2 + Lanes), a22 = TW.Load(r2 + 2 * Lanes), a23 = TW.Load(r2 + 3 * Lanes);
        TV a30 = TW.Load(r3), a31 = TW.Load(r3 + Lanes), a32 = TW.Load(r3 + 2 * Lanes), a33 = TW.Load(r3 + 3 * Lanes);
        int t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3];
        for (int s = 0; s < positions; s++)
        {
            float* xs = x + o[s] + half;
            TV x0 = TW.Load(xs + t0), x1 = TW.Load(xs + t1), x2 = TW.Load(xs + t2), x3 = TW.Load(xs + t3);
            long ps = (long)s * Lanes;
            TV v = TW.Load(d0 + ps);
            a00 = TW.FusedMultiplyAdd(v, x0, a00); a01 = TW.FusedMultiplyAdd(v, x1, a01); a02 = TW.FusedMultiplyAdd(v, x2, a02); a03 = TW.FusedMultiplyAdd(v, x3, a03);
            v = TW.Load(d1 + ps);
            a10 = TW.FusedMultiplyAdd(v, x0, a10); a11 = TW.FusedMultiplyAdd(v, x1, a11); a12 = TW.FusedMultiplyAdd(v, x2, a12); a13 = TW.FusedMultiplyAdd(v, x3, a13);
            v = TW.Load(d2 + ps);
            a20 = TW.FusedMultiplyAdd(v, x0, a20); a21 = TW.FusedMultiplyAdd(v, x1, a21); a22 = TW.FusedMultiplyAdd(v, x2, a22); a23 = TW.FusedMultiplyAdd(v, x3, a23);
            v = TW.Load(d3 + ps);
            a30 = TW.FusedMultiplyAdd(v, x0, a30); a31 = TW.FusedMultiplyAdd(v, x1, a31); a32 = TW.FusedMultiplyAdd(v, x2, a32); a33 = TW.FusedMultiplyAdd(v, x3, a33);
        }
        TW.Store(a00, r0); TW.Store(a01, r0 + Lanes); TW.Store(a02, r0 + 2 * Lanes); TW.Store(a03, r0 + 3 * Lanes);
        TW.Store(a10, r1); TW.Store(a11, r1 + Lanes); TW.Store(a12, r1 + 2 * Lanes); TW.Store(a13, r1 + 3 * Lanes);
        TW.Store(a20, r2); TW.Store(a21, r2 + Lanes); TW.Store(a22, r2 + 2 * Lanes); TW.Store(a23, r2 + 3 * Lanes);
        TW.Store(a30, r3); TW.Store(a31, r3 + Lanes); TW.Store(a32, r3 + 2 * Lanes); TW.Store(a33, r3 + 3 * Lanes);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void OneWeight<TW, TV>(float* x, int* o, int positions, int tap, float* dp, float* target, int half)
        where TW : struct, IWidth<TV> where TV : struct
    {
        TV a = TW.Load(target);
        for (int s = 0; s < positions; s++)
            a = TW.FusedMultiplyAdd(TW.Load(dp + (long)s * Lanes), TW.Load(x + o[s] + half + tap), a);
        TW.Store(a, target);
    }

    /// <summary>
    /// A dense layer's input gradient: dIn[i, :] = sum_u weights[i * units + u] * dPre[u, :], one chain
    /// over the units in order from +0; weights [fanIn, units] (the x @ W layout), dPre [units, 16], dIn [fanIn, 16].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DenseInputGradient(ReadOnlySpan<float> dPre, int units, ReadOnlySpan<float> weights, int fanIn, Span<float> dIn)
    {
        if (fanIn < 1 || units < 1) throw new ArgumentException("lanes: empty layer");
        if (dPre.Length < units * Lanes || weights.Length < fanIn * units || dIn.Length < fanIn * Lanes)
            throw new ArgumentException("lanes: gradient or weight span too small");
        fixed (float* d = dPre, w = weights, g = dIn)
        {
            if (KernelWidth.UseAvx512) DenseInputGradient<Width512, Vector512<float>>(d, units, w, fanIn, g);
            else DenseInputGradient<Width256, Vector256<float>>(d, units, w, fanIn, g);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void DenseInputGradient<TW, TV>(float* d, int units, float* w, int fanIn, float* g)
        where TW : struct, IWidth<TV> where TV : struct
    {
        for (int half = 0; half < Lanes; half += TW.Count)
        {
            int i = 0;
            for (; i + 4 <= fanIn; i += 4)
            {
                float* r0 = w + (long)i * units, r1 = r0 + units, r2 = r1 + units, r3 = r2 + units;
                TV a0 = TW.Zero, a1 = TW.Zero, a2 = TW.Zero, a3 = TW.Zero;
                for (int u = 0; u < units; u++)
                {
                    TV v = TW.Load(d + (long)u * Lanes + half);
                    a0 = TW.FusedMultiplyAdd(v, TW.Splat(r0[u]), a0);
                    a1 = TW.FusedMultiplyAdd(v, TW.Splat(r1[u]), a1);
                    a2 = TW.FusedMultiplyAdd(v, TW.Splat(r2[u]), a2);
                    a3 = TW.FusedMultiplyAdd(v, TW.Splat(r3[u]), a3);
                }
                TW.Store(a0, g + (long)i * Lanes + half);
                TW.Store(a1, g + (long)(i + 1) * Lanes + half);
                TW.Store(a2, g + (long)(i + 2) * Lanes + half);
                TW.Store(a3, g + (long)(i + 3) * Lanes + half);
            }
            for (; i < fanIn; i++)
            {
                float* r = w + (long)i * units;
                TV a = TW.Zero;
                for (int u = 0; u < units; u++) a = TW.FusedMultiplyAdd(TW.Load(d + (long)u * Lanes + half), TW.Splat(r[u]), a);
                TW.Store(a, g + (long)i * Lanes + half);
            }
        }
    }

    /// <summary>Columns of a dense layer's weight-gradient sums (<see cref="DenseWeightGradient"/>): the
    /// units rounded up to whole 16-float vectors.</summary>
    public static int PaddedUnits(int units) => (units + Lanes - 1) / Lanes * Lanes;

    /// <summary>
    /// A dense layer's weight gradient of one lane batch, summed over its 16 lanes and added into
    /// sums [fanIn, PaddedUnits(units)]: sums[i, u] += (sum over lanes l in order, from +0, of
    /// xT[l, i] * dT[l, u]). xT [16, fanIn] and dT [16, PaddedUnits(units)] are the layer's input and
    /// pre-activation gradient example-major (<see cref="LaneBatch.FromLanes"/>), dT's columns past
    /// `units` zero. Vectors run over the units, so every sum is the same chain at either width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DenseWeightGradient(ReadOnlySpan<float> xT, int fanIn, ReadOnlySpan<float> dT, int units, Span<float> sums)
    {
        int columns = PaddedUnits(units);
        if (fanIn < 1 || units < 1) throw new ArgumentException("lanes: empty layer");
        if (xT.Length < Lanes * fanIn || dT.Length < Lanes * columns || sums.Length < fanIn * columns)
            throw new ArgumentException("lanes: input, gradient or sum span too small");
        fixed (float* x = xT, d = dT, y = sums)
        {
            if (KernelWidth.UseAvx512) DenseWeightGradient<Width512, Vector512<float>>(x, fanIn, d, columns, y);
            else DenseWeightGradient<Width256, Vector256<float>>(x, fanIn, d, columns, y);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void DenseWeightGradient<TW, TV>(float* x, int fanIn, float* d, int columns, float* y)
        where TW : struct, IWidth<TV> where TV : struct
    {
        for (int u = 0; u < columns; u += TW.Count)
        {
            int i = 0;
            // Eight inputs at a time: eight independent chains over the lanes.
            for (; i + 8 <= fanIn; i += 8)
            {
                TV a0 = TW.Zero, a1 = TW.Zero, a2 = TW.Zero, a3 = TW.Zero, a4 = TW.Zero, a5 = TW.Zero, a6 = TW.Zero, a7 = TW.Zero;
                for (int l = 0; l < Lanes; l++)
                {
                    TV v = TW.Load(d + (long)l * columns + u);
                    float* xl = x + (long)l * fanIn + i;
                    a0 = TW.FusedMultiplyAdd(TW.Splat(xl[0]), v, a0); a1 = TW.FusedMultiplyAdd(TW.Splat(xl[1]), v, a1);
                    a2 = TW.FusedMultiplyAdd(TW.Splat(xl[2]), v, a2); a3 = TW.FusedMultiplyAdd(TW.Splat(xl[3]), v, a3);
                    a4 = TW.FusedMultiplyAdd(TW.Splat(xl[4]), v, a4); a5 = TW.FusedMultiplyAdd(TW.Splat(xl[5]), v, a5);
                    a6 = TW.FusedMultiplyAdd(TW.Splat(xl[6]), v, a6); a7 = TW.FusedMultiplyAdd(TW.Splat(xl[7]), v, a7);
                }
                float* row = y + (long)i * columns + u;
                TW.Store(TW.Add(TW.Load(row), a0), row); row += columns;
                TW.Store(TW.Add(TW.Load(row), a1), row); row += columns;
                TW.Store(TW.Add(TW.Load(row), a2), row); row += columns;
                TW.Store(TW.Add(TW.Load(row), a3), row); row += columns;
                TW.Store(TW.Add(TW.Load(row), a4), row); row += columns;
                TW.Store(TW.Add(TW.Load(row), a5), row); row += columns;
                TW.Store(TW.Add(TW.Load(row), a6), row); row += columns;
                TW.Store(TW.Add(TW.Load(row), a7), row);
            }
            for (; i < fanIn; i++)
            {
                TV a = TW.Zero;
                for (int l = 0; l < Lanes; l++)
                    a = TW.FusedMultiplyAdd(TW.Splat(x[(long)l * fanIn + i]), TW.Load(d + (long)l * columns + u), a);
                float* row = y + (long)i * columns + u;
                TW.Store(TW.Add(TW.Load(row), a), row);
            }
        }
    }

    /// <summary>
    /// target[k] = the sum of the 16 lanes of first[k, :] (+ second[k, :], lane by lane, when second is
    /// not empty), for k below target.Length. One fixed tree at every width: the two accumulators lane by
    /// lane, then lanes i + (i + 8), then i + (i + 4), then (0 + 2) + (1 + 3).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void SumLanes(ReadOnlySpan<float> first, ReadOnlySpan<float> second, Span<float> target)
    {
        int n = target.Length;
        bool both = !second.IsEmpty;
        if (first.Length < n * Lanes || (both && second.Length < n * Lanes)) throw new ArgumentException("lanes: accumulator span too small");
        fixed (float* a = first, b = second, y = target)
        {
            for (int k = 0; k < n; k++)
            {
                float* ak = a + (long)k * Lanes;
                Vector256<float> lo = Vector256.Load(ak), hi = Vector256.Load(ak + 8);
                if (both)
                {
                    float* bk = b + (long)k * Lanes;
                    lo += Vector256.Load(bk);
                    hi += Vector256.Load(bk + 8);
                }
                Vector256<float> v = lo + hi;
                Vector128<float> q = v.GetLower() + v.GetUpper();
                y[k] = (q.GetElement(0) + q.GetElement(2)) + (q.GetElement(1) + q.GetElement(3));
            }
        }
    }
}
