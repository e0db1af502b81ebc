using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Lecun.Native.Kernels;

/// <summary>
/// im2col and col2im by register permutes, for a layer whose output plane is exactly 16 positions (one
/// Vector512) and whose stride (1 or 2) tiles its input: h = stride * oh, w = stride * ow. H2 of the
/// 1989 network (8x8 planes to 4x4) is such a layer.
/// </summary>
/// <remarks>
/// Such an input plane splits into stride x stride phase planes of 16 floats (every stride-th row and
/// column, starting at each offset), and every kernel tap reads one phase plane shifted by a whole
/// number of positions, with padding where the shift leaves the plane. A column row is then one
/// two-source permute of (phase, pad vector); its adjoint permutes a column-gradient row back onto its
/// phase with zeros from outside. The general gather of <see cref="Im2ColPlan"/> moves one float at a
/// time and its scatter-add reads nine; here every instruction moves sixteen.
/// </remarks>
internal sealed unsafe class PhaseUnfold
{
    const int Lanes = 16;
    readonly int _planes, _planeSize, _taps, _phases;
    // Phase split: phase ph takes plane[_split[ph] lanes] from the plane's (at most 64) floats.
    readonly Vector512<int>[] _split;
    // Per tap: lanes 0-15 pick from the tap's phase, 16 picks the pad vector.
    readonly Vector512<int>[] _tapIndex;
    // Per tap: lanes 0-15 pick from the column-gradient row, 16 picks zero.
    readonly Vector512<int>[] _tapAdjoint;
    readonly int[] _tapPhase;
    // The taps in (phase, tap) order; phase ph's taps are _byPhase[_phaseStart[ph] .. _phaseStart[ph+1]].
    readonly int[] _byPhase, _phaseStart;
    // Merge: the plane's 16-float chunk q takes _merge[q] lanes from the phases laid end to end.
    readonly Vector512<int>[] _merge;
    // The distinct shifts of the taps' adjoints, and which one each tap uses.
    readonly Vector512<int>[] _shiftAdjoint;
    readonly int[] _tapShift;
    // The AVX2 path's forms of the same tables: gather indices per 8-lane half for the split and the
    // merge, and two 8-lane permute tables per 16-lane permute (see Halves).
    readonly Vector256<int>[] _splitHalf, _mergeHalf;
    readonly PermuteTable8[] _tapHalf, _tapAdjointHalf, _shiftAdjointHalf;

    int Shifts => _shiftAdjoint.Length;

    public static bool Fits(int planes, int height, int width, int k, int stride, int pad)
    {
        int oh = Im2ColPlan.OutputSide(height, k, stride, pad), ow = Im2ColPlan.OutputSide(width, k, stride, pad);
        return KernelWidth.HasVectorKernels && planes > 0 && (stride == 1 || stride == 2) && oh * ow == Lanes
            && height == stride * oh && width == stride * ow;
    }

    public PhaseUnfold(int planes, int height, int width, int k, int stride, int pad)
    {
        if (!Fits(planes, height, width, k, stride, pad)) throw new ArgumentException("phase unfold: unsupported geometry");
        int s = stride, ow = width / s;
        _planes = planes;
        _planeSize = height * width;
        _taps = k * k;
        _phases = s * s;
        _split = new Vector512<int>[_phases];
        for (int ph = 0; ph < _phases; ph++)
        {
            int py = ph / s, px = ph % s;
            _split[ph] = Vector512.Create(Enumerable.Range(0, Lanes).Select(l => (s * (l / ow) + py) * width + s * (l % ow) + px).ToArray());
        }
        _tapIndex = new Vector512<int>[_taps];
        _tapAdjoint = new Vector512<int>[_taps];
        _tapPhase = new int[_taps];
        for (int t = 0; t < _taps; t++)
        {
            int dy = t / k - pad, dx = t % k - pad;
            int py = Mod(dy, s), px = Mod(dx, s), sy = (dy - py) / s, sx = (dx - px) / s;
            _tapPhase[t] = py * s + px;
            // Column lane (oy, ox) reads phase lane (oy + sy, ox + sx); the adjoint sends it back.
            _tapIndex[t] = Vector512.Create(Enumerable.Range(0, Lanes).Select(l => Shifted(l, sy, sx, ow)).ToArray());
            _tapAdjoint[t] = Vector512.Create(Enumerable.Range(0, Lanes).Select(l => Shifted(l, -sy, -sx, ow)).ToArray());
        }
        var shifts = Enumerable.Range(0, _taps).Select(t => _tapAdjoint[t]).Distinct().ToArray();
        _shiftAdjoint = shifts;
        _tapShift = Enumerable.Range(0, _taps).Select(t => Array.IndexOf(shifts, _tapAdjoint[t])).ToArray();
        _byPhase = Enumerable.Range(0, _taps).OrderBy(t => _tapPhase[t]).ThenBy(t => t).ToArray();
        _phaseStart = Enumerable.Range(0, _phases + 1).Select(ph => _tapPhase.Count(p => p < ph)).ToArray();
        _merge = new Vector512<int>[_planeSize / Lanes];
        for (int q = 0; q < _merge.Length; q++)
            _merge[q] = Vector512.Create(Enumerable.Range(q * Lanes, Lanes).Select(e =>
            {
                int y = e / width, x = e % width;
                return (y % s * s + x % s) * Lanes + y / s * ow + x / s;
            }).ToArray());
        _splitHalf = Halves16(_split);
        _mergeHalf = Halves16(_merge);
        _tapHalf = PermuteHalves(_tapIndex);
        _tapAdjointHalf = PermuteHalves(_tapAdjoint);
        _shiftAdjointHalf = PermuteHalves(_shiftAdjoint);
    }

    static Vector256<int>[] Halves16(Vector512<int>[] v) => v.SelectMany(x => new[] { x.GetLower(), x.GetUpper() }).ToArray();

    static PermuteTable8[] PermuteHalves(Vector512<int>[] v) => v.SelectMany(x =>
    {
        var index = new int[Lanes];
        for (int l = 0; l < Lanes; l++) index[l] = x[l];
        var (lo, hi) = Halves.Table(index);
        return new[] { lo, hi };
    }).ToArray();

    static int Mod(int a, int m) => (a % m + m) % m;

    // Lane l = (y, x) of a 4x4 plane shifted by (sy, sx), or 16 (the other source) outside it.
    static int Shifted(int l, int sy, int sx, int ow)
    {
        int y = l / ow + sy, x = l % ow + sx;
        return (uint)y < (uint)(Lanes / ow) && (uint)x < (uint)ow ? y * ow + x : Lanes;
    }

    // table[index] for a table of up to 64 floats held in four vectors: two 32-float permutes, then
    // the index's bit 5 picks between them.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Lookup(Vector512<float> t0, Vector512<float> t1, Vector512<float> t2, Vector512<float> t3, Vector512<int> index)
    {
        var low = Avx512F.PermuteVar16x32x2(t0, index, t1);
        var high = Avx512F.PermuteVar16x32x2(t2, index, t3);
        var useHigh = Vector512.GreaterThan(index, Vector512.Create(31)).AsSingle();
        return Vector512.ConditionalSelect(useHigh, high, low);
    }

    /// <summary>cols[(c*k*k + tap)*ld + position] for every plane c: one example's 16 columns of a matrix with rows of ld floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Unfold(float* input, float padValue, float* cols, int ld)
    {
        if (!KernelWidth.UseAvx512)
        {
            NarrowUnfold(input, padValue, cols, ld);
            return;
        }
        var pad = Vector512.Create(padValue);
        var phase = stackalloc Vector512<float>[4];
        bool wide = _planeSize > Lanes;
        for (int c = 0; c < _planes; c++, input += _planeSize)
        {
            var t0 = Vector512.Load(input);
            var t1 = wide ? Vector512.Load(input + 16) : t0;
            var t2 = wide ? Vector512.Load(input + 32) : t0;
            var t3 = wide ? Vector512.Load(input + 48) : t0;
            for (int ph = 0; ph < _phases; ph++) phase[ph] = Lookup(t0, t1, t2, t3, _split[ph]);
            for (int t = 0; t < _taps; t++, cols += ld)
                Vector512.Store(Avx512F.PermuteVar16x32x2(phase[_tapPhase[t]], _tapIndex[t], pad), cols);
        }
    }

    // One input plane from its phase planes (the inverse of the split).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Merge(Vector512<float>* phase, float* plane)
    {
        for (int q = 0; q < _merge.Length; q++)
            Vector512.Store(Lookup(phase[0], phase[1], phase[2], phase[3], _merge[q]), plane + q * Lanes);
    }

    /// <summary>
    /// The adjoint of <see cref="Unfold"/>: dInput[i] is the sum, in column order, of the column entries
    /// that read input i. Each phase gathers only its own taps, which keeps that order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Fold(float* dCols, float* dInput)
    {
        if (!KernelWidth.UseAvx512)
        {
            NarrowFold(dCols, dInput);
            return;
        }
        var phase = stackalloc Vector512<float>[4];
        for (int c = 0; c < _planes; c++, dCols += _taps * Lanes, dInput += _planeSize)
        {
            for (int ph = 0; ph < _phases; ph++)
            {
                var sum = Vector512<float>.Zero;
                for (int i = _phaseStart[ph]; i < _phaseStart[ph + 1]; i++)
                {
                    int t = _byPhase[i];
                    sum += Avx512F.PermuteVar16x32x2(Vector512.Load(dCols + t * Lanes), _tapAdjoint[t], Vector512<float>.Zero);
                }
                phase[ph] = sum;
            }
            Merge(phase, dInput);
        }
    }

    /// <summary>Floats of scratch <see cref="InputGradient"/> needs (with room to align it to 64 bytes).</summary>
    public int InputGradientScratch(int outPlanes) => (outPlanes * Shifts + _planes * _taps + 1) * Lanes;

    /// <summary>
    /// The input gradient of one example, fused: what <see cref="Fold"/> gives for the column gradient
    /// dCols[(c, tap), :] = sum over the segments reading plane c of (sum over their planes p of
    /// W[p, j, tap] * dPre[p, :]), with every sum rounded in the order of the products and the fold it replaces.
    /// </summary>
    /// <param name="segments">The products, in the order they ran, as 5-tuples (first output plane, planes,
    /// first input plane, input planes, weight column of the first input plane's kernel).</param>
    /// <remarks>
    /// A tap's adjoint permute moves lanes and fills zeros, so it commutes with the weighted sums: each
    /// output plane's delta is shifted once per distinct shift, and a loaded shifted delta then serves
    /// the segment's input planes, four at a time.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void InputGradient(float* weights, int fanIn, float* dPre, int outPlanes, int* segments, int segmentCount, float* scratch, float* dInput)
    {
        if (!KernelWidth.UseAvx512)
        {
            NarrowInputGradient(weights, fanIn, dPre, outPlanes, segments, segmentCount, scratch, dInput);
            return;
        }
        int shifts = _shiftAdjoint.Length, taps = _taps;
        float* shifted = (float*)(((nint)scratch + 63) & ~(nint)63);
        float* columns = shifted + outPlanes * shifts * Lanes;
        for (int p = 0; p < outPlanes; p++)
        {
            var d = Vector512.Load(dPre + p * Lanes);
            for (int k = 0; k < shifts; k++)
                Vector512.StoreAligned(Avx512F.PermuteVar16x32x2(d, _shiftAdjoint[k], Vector512<float>.Zero), shifted + (p * shifts + k) * Lanes);
        }
        for (int i = 0; i < _planes * taps; i++) Vector512.StoreAligned(Vector512<float>.Zero, columns + i * Lanes);
        SegmentColumns<Width512, Vector512<float>>(weights, fanIn, shifted, segments, segmentCount, columns);
        fixed (int* byPhase = _byPhase)
        {
            var phase = stackalloc Vector512<float>[4];
            for (int c = 0; c < _planes; c++, dInput += _planeSize)
            {
                float* col = columns + c * taps * Lanes;
                for (int ph = 0; ph < _phases; ph++)
                {
                    var sum = Vector512<float>.Zero;
                    for (int i = _phaseStart[ph]; i < _phaseStart[ph + 1]; i++) sum += Vector512.LoadAligned(col + byPhase[i] * Lanes);
                    phase[ph] = sum;
                }
                Merge(phase, dInput);
            }
        }
    }

    /// <summary>
    /// The forward products of one example: out[p, :] = sum over the segments of plane p, in order, of
    /// W[p, segment's kernels] . cols[segment's rows, :], each segment's sum one chain of fused
    /// multiply-adds in kernel order, as the per-segment matrix products compute it (the first segment
    /// of a plane stores, the others add). A plane's segments must follow one another in the list.
    /// </summary>
    /// <remarks>
    /// A segment gives four chains at most (one per plane); two segments of equal shape run side by side,
    /// which keeps eight chains in flight where one product at a time would wait on four.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Product(float* weights, int fanIn, float* cols, int* segments, int segmentCount, float* output)
    {
        if (KernelWidth.UseAvx512) Product<Width512, Vector512<float>>(weights, fanIn, cols, segments, segmentCount, output);
        else Product<Width256, Vector256<float>>(weights, fanIn, cols, segments, segmentCount, output);
    }

    // Product at one width. A 16-lane row is 16 / TW.Count vectors: one on AVX-512, two halves on AVX2
    // (TW.Count is a constant to the JIT, so each width compiles only its own branch).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Product<TW, TV>(float* weights, int fanIn, float* cols, int* segments, int segmentCount, float* output)
        where TW : struct, IWidth<TV> where TV : struct
    {
        int taps = _taps, previous = -1;
        for (int s = 0; s < segmentCount; s++)
        {
            int* a = segments + 5 * s;
            bool firstA = a[0] != previous;
            previous = a[0];
            int* b = s + 1 < segmentCount ? a + 5 : null;
            if (b != null && b[1] == a[1] && b[3] == a[3] && a[1] == 4)
            {
                bool firstB = b[0] != previous;
                previous = b[0];
                Chains4x2<TW, TV>(weights, fanIn, cols, a, b, firstA, firstB, output, 0);
                if (TW.Count < Lanes) Chains4x2<TW, TV>(weights, fanIn, cols, a, b, firstA, firstB, output, TW.Count);
                s++;
                continue;
            }
            for (int q = 0; q < a[1]; q++)
            {
                float* w = weights + (long)(a[0] + q) * fanIn + a[4];
                float* x = cols + a[2] * taps * Lanes;
                // On AVX2 both halves in one loop: two chains in flight.
                TV lo = TW.Zero, hi = TW.Zero;
                for (int i = 0; i < a[3] * taps; i++, x += Lanes)
                {
                    var sw = TW.Splat(w[i]);
                    lo = TW.FusedMultiplyAdd(sw, TW.Load(x), lo);
                    if (TW.Count < Lanes) hi = TW.FusedMultiplyAdd(sw, TW.Load(x + TW.Count), hi);
                }
                float* o = output + (a[0] + q) * Lanes;
                Put<TW, TV>(lo, o, firstA);
                if (TW.Count < Lanes) Put<TW, TV>(hi, o + TW.Count, firstA);
            }
        }
    }

    // Eight chains, four planes of each segment, over lanes half .. half + TW.Count - 1: the whole
    // 16 lanes at once on AVX-512; on AVX2 one 8-lane half per call, so the eight chains fit its
    // sixteen registers.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    void Chains4x2<TW, TV>(float* weights, int fanIn, float* cols, int* a, int* b, bool firstA, bool firstB, float* output, int half)
        where TW : struct, IWidth<TV> where TV : struct
    {
        int length = a[3] * _taps;
        float* wa = weights + (long)a[0] * fanIn + a[4];
        float* wb = weights + (long)b[0] * fanIn + b[4];
        float* xa = cols + a[2] * _taps * Lanes + half;
        float* xb = cols + b[2] * _taps * Lanes + half;
        // One base pointer per plane, indexed by the step: no per-plane offsets to recompute.
        float* wa0 = wa, wa1 = wa + fanIn, wa2 = wa + 2 * fanIn, wa3 = wa + 3 * fanIn;
        float* wb0 = wb, wb1 = wb + fanIn, wb2 = wb + 2 * fanIn, wb3 = wb + 3 * fanIn;
        TV a0 = TW.Zero, a1 = TW.Zero, a2 = TW.Zero, a3 = TW.Zero, b0 = TW.Zero, b1 = TW.Zero, b2 = TW.Zero, b3 = TW.Zero;
        for (int i = 0; i < length; i++, xa += Lanes, xb += Lanes)
        {
            var u = TW.Load(xa);
            var v = TW.Load(xb);
            a0 = TW.FusedMultiplyAdd(TW.Splat(wa0[i]), u, a0);
            a1 = TW.FusedMultiplyAdd(TW.Splat(wa1[i]), u, a1);
            a2 = TW.FusedMultiplyAdd(TW.Splat(wa2[i]), u, a2);
            a3 = TW.FusedMultiplyAdd(TW.Splat(wa3[i]), u, a3);
            b0 = TW.FusedMultiplyAdd(TW.Splat(wb0[i]), v, b0);
            b1 = TW.FusedMultiplyAdd(TW.Splat(wb1[i]), v, b1);
            b2 = TW.FusedMultiplyAdd(TW.Splat(wb2[i]), v, b2);
            b3 = TW.FusedMultiplyAdd(TW.Splat(wb3[i]), v, b3);
        }
        float* oa = output + a[0] * Lanes + half, ob = output + b[0] * Lanes + half;
        Put<TW, TV>(a0, oa, firstA); Put<TW, TV>(a1, oa + Lanes, firstA); Put<TW, TV>(a2, oa + 2 * Lanes, firstA); Put<TW, TV>(a3, oa + 3 * Lanes, firstA);
        Put<TW, TV>(b0, ob, firstB); Put<TW, TV>(b1, ob + Lanes, firstB); Put<TW, TV>(b2, ob + 2 * Lanes, firstB); Put<TW, TV>(b3, ob + 3 * Lanes, firstB);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Put<TW, TV>(TV acc, float* o, bool first) where TW : struct, IWidth<TV> where TV : struct =>
        TW.Store(first ? acc : TW.Add(acc, TW.Load(o)), o);

    // The AVX2 path: every 16-lane value as two Vector256 halves, lanes 0-7 and 8-15. Permutes move
    // the same floats; the sums add the same terms in the same order, so the results are the bits
    // of the AVX-512 path above. It stays apart from that path where the instructions differ (the
    // permutes are gathers and blends here).

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Permute(Vector256<float>* v, in PermuteTable8 t, Vector256<float> pad) => Halves.Permute(v[0], v[1], t, pad);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void NarrowUnfold(float* input, float padValue, float* cols, int ld)
    {
        var pad = Vector256.Create(padValue);
        var phase = stackalloc Vector256<float>[8];
        fixed (Vector256<int>* split = _splitHalf)
        fixed (PermuteTable8* tap = _tapHalf)
        fixed (int* tapPhase = _tapPhase)
        {
            for (int c = 0; c < _planes; c++, input += _planeSize)
            {
                for (int h = 0; h < 2 * _phases; h++) phase[h] = Avx2.GatherVector256(input, split[h], 4);
                for (int t = 0; t < _taps; t++, cols += ld)
                {
                    var p = phase + 2 * tapPhase[t];
                    Vector256.Store(Permute(p, tap[2 * t], pad), cols);
                    Vector256.Store(Permute(p, tap[2 * t + 1], pad), cols + 8);
                }
            }
        }
    }

    // One input plane from its phase planes laid end to end in `phases` (64 floats at most).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void NarrowMerge(float* phases, float* plane)
    {
        fixed (Vector256<int>* merge = _mergeHalf)
            for (int h = 0; h < _mergeHalf.Length; h++)
                Vector256.Store(Avx2.GatherVector256(phases, merge[h], 4), plane + h * 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void NarrowFold(float* dCols, float* dInput)
    {
        var phases = stackalloc float[4 * Lanes];
        var d = stackalloc Vector256<float>[2];
        fixed (PermuteTable8* adjoint = _tapAdjointHalf)
        fixed (int* byPhase = _byPhase, phaseStart = _phaseStart)
        {
            for (int c = 0; c < _planes; c++, dCols += _taps * Lanes, dInput += _planeSize)
            {
                for (int ph = 0; ph < _phases; ph++)
                {
                    Vector256<float> lo = Vector256<float>.Zero, hi = Vector256<float>.Zero;
                    for (int i = phaseStart[ph]; i < phaseStart[ph + 1]; i++)
                    {
                        int t = byPhase[i];
                        d[0] = Vector256.Load(dCols + t * Lanes);
                        d[1] = Vector256.Load(dCols + t * Lanes + 8);
                        lo += Permute(d, adjoint[2 * t], Vector256<float>.Zero);
                        hi += Permute(d, adjoint[2 * t + 1], Vector256<float>.Zero);
                    }
                    Vector256.Store(lo, phases + ph * Lanes);
                    Vector256.Store(hi, phases + ph * Lanes + 8);
                }
                NarrowMerge(phases, dInput);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void NarrowInputGradient(float* weights, int fanIn, float* dPre, int outPlanes, int* segments, int segmentCount, float* scratch, float* dInput)
    {
        int shifts = _shiftAdjoint.Length, taps = _taps;
        float* shifted = (float*)(((nint)scratch + 63) & ~(nint)63);
        float* columns = shifted + outPlanes * shifts * Lanes;
        var d = stackalloc Vector256<float>[2];
        fixed (PermuteTable8* shiftAdjoint = _shiftAdjointHalf)
        {
            for (int p = 0; p < outPlanes; p++)
            {
                d[0] = Vector256.Load(dPre + p * Lanes);
                d[1] = Vector256.Load(dPre + p * Lanes + 8);
                for (int k = 0; k < shifts; k++)
                {
                    float* to = shifted + (p * shifts + k) * Lanes;
                    Vector256.StoreAligned(Permute(d, shiftAdjoint[2 * k], Vector256<float>.Zero), to);
                    Vector256.StoreAligned(Permute(d, shiftAdjoint[2 * k + 1], Vector256<float>.Zero), to + 8);
                }
            }
        }
        for (int i = 0; i < 2 * _planes * taps; i++) Vector256.StoreAligned(Vector256<float>.Zero, columns + i * 8);
        SegmentColumns<Width256, Vector256<float>>(weights, fanIn, shifted, segments, segmentCount, columns);
        fixed (int* byPhase = _byPhase, phaseStart = _phaseStart)
        {
            var phases = stackalloc float[4 * Lanes];
            for (int c = 0; c < _planes; c++, dInput += _planeSize)
            {
                float* col = columns + c * taps * Lanes;
                for (int ph = 0; ph < _phases; ph++)
                {
                    Vector256<float> lo = Vector256<float>.Zero, hi = Vector256<float>.Zero;
                    for (int i = phaseStart[ph]; i < phaseStart[ph + 1]; i++)
                    {
                        lo += Vector256.LoadAligned(col + byPhase[i] * Lanes);
                        hi += Vector256.LoadAligned(col + byPhase[i] * Lanes + 8);
                    }
                    Vector256.Store(lo, phases + ph * Lanes);
                    Vector256.Store(hi, phases + ph * Lanes + 8);
                }
                NarrowMerge(phases, dInput);
            }
        }
    }

    // The column gradients of InputGradient: for each segment and tap, each input plane's column row
    // gains the sum over the segment's planes of W[p, j, tap] * shifted dPre[p]. A 16-lane row is
    // 16 / TW.Count vectors (TW.Count is a constant to the JIT, so each width compiles only its own
    // branch): one on AVX-512, two halves on AVX2, both in the same loop.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    void SegmentColumns<TW, TV>(float* weights, int fanIn, float* shifted, int* segments, int segmentCount, float* columns)
        where TW : struct, IWidth<TV> where TV : struct
    {
        int shifts = _shiftAdjoint.Length, taps = _taps;
        fixed (int* tapShift = _tapShift)
        {
            for (int s = 0; s < segmentCount; s++, segments += 5)
            {
                int p0 = segments[0], planes = segments[1], c0 = segments[2], inputs = segments[3];
                float* w0 = weights + (long)p0 * fanIn + segments[4];
                float* d0 = shifted + p0 * shifts * Lanes;
                for (int t = 0; t < taps; t++)
                {
                    float* dt = d0 + tapShift[t] * Lanes;
                    int j = 0;
                    // Four input planes at a time: four chains (per half) over the segment's planes share each load.
                    for (; j + 4 <= inputs; j += 4)
                    {
                        TV a0 = TW.Zero, a1 = TW.Zero, a2 = TW.Zero, a3 = TW.Zero, b0 = TW.Zero, b1 = TW.Zero, b2 = TW.Zero, b3 = TW.Zero;
                        float* w = w0 + j * taps + t;
                        float* dq = dt;
                        for (int q = 0; q < planes; q++, w += fanIn, dq += shifts * Lanes)
                        {
                            var v = TW.LoadAligned(dq);
                            var u = TW.Count < Lanes ? TW.LoadAligned(dq + TW.Count) : v;
                            var s0 = TW.Splat(w[0]); a0 = TW.FusedMultiplyAdd(s0, v, a0); if (TW.Count < Lanes) b0 = TW.FusedMultiplyAdd(s0, u, b0);
                            var s1 = TW.Splat(w[taps]); a1 = TW.FusedMultiplyAdd(s1, v, a1); if (TW.Count < Lanes) b1 = TW.FusedMultiplyAdd(s1, u, b1);
                            var s2 = TW.Splat(w[2 * taps]); a2 = TW.FusedMultiplyAdd(s2, v, a2); if (TW.Count < Lanes) b2 = TW.FusedMultiplyAdd(s2, u, b2);
                            var s3 = TW.Splat(w[3 * taps]); a3 = TW.FusedMultiplyAdd(s3, v, a3); if (TW.Count < Lanes) b3 = TW.FusedMultiplyAdd(s3, u, b3);
                        }
                        float* col = columns + ((c0 + j) * taps + t) * Lanes;
                        AddTo<TW, TV>(a0, b0, col); AddTo<TW, TV>(a1, b1, col + taps * Lanes);
                        AddTo<TW, TV>(a2, b2, col + 2 * taps * Lanes); AddTo<TW, TV>(a3, b3, col + 3 * taps * Lanes);
                    }
                    for (; j < inputs; j++)
                    {
                        TV a = TW.Zero, b = TW.Zero;
                        float* w = w0 + j * taps + t;
                        float* dq = dt;
                        for (int q = 0; q < planes; q++, w += fanIn, dq += shifts * Lanes)
                        {
                            var sw = TW.Splat(*w);
                            a = TW.FusedMultiplyAdd(sw, TW.LoadAligned(dq), a);
                            if (TW.Count < Lanes) b = TW.FusedMultiplyAdd(sw, TW.LoadAligned(dq + TW.Count), b);
                        }
                        AddTo<TW, TV>(a, b, columns + ((c0 + j) * taps + t) * Lanes);
                    }
                }
            }
        }
    }

    // col[0..16] += the row held as lo (and, on AVX2, hi for lanes 8-15).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void AddTo<TW, TV>(TV lo, TV hi, float* col) where TW : struct, IWidth<TV> where TV : struct
    {
        TW.StoreAligned(TW.Add(lo, TW.LoadAligned(col)), col);
        if (TW.Count < Lanes) TW.StoreAligned(TW.Add(hi, TW.LoadAligned(col + TW.Count)), col + TW.Count);
    }
}
