using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Lecun.Native.Kernels;

/// <summary>
/// Unfolds strided k x k windows of constant-padded planes into columns, so a locally-connected
/// layer becomes a matrix product: cols[(plane*k + ky)*k + kx, oy*outW + ox] =
/// padded[plane, oy*stride + ky, ox*stride + kx], where positions outside the input hold the pad value.
/// </summary>
/// <remarks>
/// The geometry is fixed per layer, so the source of every column entry is worked out once: an index
/// into the input, or the index one past its end for padding. Unfolding is then a branch-free gather
/// from a copy of the input with the pad value appended, and its adjoint a scatter-add.
/// </remarks>
public sealed class Im2ColPlan
{
    readonly int[] _source;
    // The inverse of _source, for the adjoint: the column entries that read input i are
    // _readers[i*_maxReaders ..], padded with the index one past the columns (a zero the caller
    // provides). Summing them per input keeps the sums in registers, where a scatter-add would wait on
    // its own stores, and the fixed count keeps the loop free of mispredicted exits.
    readonly int[] _readers;
    readonly int _maxReaders;
    // Register permutes instead of the gather and scatter-add, where the geometry allows (see PhaseUnfold).
    readonly PhaseUnfold? _phase;

    public int Planes { get; }
    public int Height { get; }
    public int Width { get; }
    public int Kernel { get; }
    public int Stride { get; }
    public int Pad { get; }
    /// <summary>Rows of the column matrix: planes * k * k.</summary>
    public int Rows { get; }
    /// <summary>Output positions: columns of one example.</summary>
    public int Positions { get; }
    public int InputSize => Planes * Height * Width;

    public static int OutputSide(int side, int k, int stride, int pad) => (side + 2 * pad - k) / stride + 1;

    /// <summary>Rows the input is moved down inside its padded planes (negative: up).</summary>
    public int ShiftY { get; }
    /// <summary>Columns the input is moved right inside its padded planes (negative: left).</summary>
    public int ShiftX { get; }

    public Im2ColPlan(int planes, int height, int width, int k, int stride, int pad) : this(planes, height, width, k, stride, pad, 0, 0) { }

    /// <summary>
    /// A plan that unfolds its input moved by (shiftY, shiftX) pixels inside the padded planes:
    /// cols[(plane*k + ky)*k + kx, oy*outW + ox] = input[plane, oy*stride + ky - pad - shiftY, ox*stride + kx - pad - shiftX],
    /// the pad value where that falls outside the input.
    /// </summary>
    /// <remarks>
    /// Training's random shifts of the digit. Moving the input inside the padding, rather than moving
    /// the image inside its own 16x16 frame, keeps the row or column that crosses the edge: it lands
    /// on padding the windows still read, where a shifted 16x16 copy would lose it (most USPS digits
    /// touch the top and bottom rows).
    /// </remarks>
    public Im2ColPlan(int planes, int height, int width, int k, int stride, int pad, int shiftY, int shiftX)
    {
        if (planes <= 0 || height <= 0 || width <= 0 || k <= 0 || stride <= 0 || pad < 0)
            throw new ArgumentException("im2col: sizes must be positive");
        Planes = planes; Height = height; Width = width; Kernel = k; Stride = stride; Pad = pad;
        ShiftY = shiftY; ShiftX = shiftX;
        int oh = OutputSide(height, k, stride, pad), ow = OutputSide(width, k, stride, pad);
        if (oh <= 0 || ow <= 0) throw new ArgumentException("im2col: the kernel does not fit the padded input");
        Rows = planes * k * k;
        Positions = oh * ow;
        _source = new int[Rows * Positions];
        int padSlot = InputSize, i = 0;
        for (int c = 0; c < planes; c++)
        for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++)
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        {
            int y = oy * stride + ky - pad - shiftY, x = ox * stride + kx - pad - shiftX;
            _source[i++] = (uint)y < (uint)height && (uint)x < (uint)width ? (c * height + y) * width + x : padSlot;
        }
        var count = new int[InputSize];
        foreach (var s in _source) if (s != padSlot) count[s]++;
        _maxReaders = count.Length == 0 ? 0 : count.Max();
        _readers = new int[InputSize * _maxReaders];
        Array.Fill(_readers, _source.Length);
        Array.Clear(count);
        for (int e = 0; e < _source.Length; e++)
            if (_source[e] != padSlot) _readers[_source[e] * _maxReaders + count[_source[e]]++] = e;
        if (shiftY == 0 && shiftX == 0 && PhaseUnfold.Fits(planes, height, width, k, stride, pad)) _phase = new PhaseUnfold(planes, height, width, k, stride, pad);
    }

    /// <summary>Floats Backward reads from its column matrix: Rows * Positions, then one zero.</summary>
    public int ColumnsWithZero => Rows * Positions + 1;

    int PaddedHeight => Height + 2 * Pad;
    int PaddedWidth => Width + 2 * Pad;

    /// <summary>Floats a vector load or store may run past the end of a buffer (see ForwardBoth).</summary>
    public const int Slack = 16;

    /// <summary>Floats of scratch that Forward and ForwardBoth need (the vector path's padded input,
    /// and for Forward its transposed columns after it).</summary>
    public int ScratchSize => Math.Max(InputSize + 1, PaddedFloats + (VectorPath ? TransposedSize : 0));

    int PaddedFloats => Planes * PaddedHeight * PaddedWidth + Slack;

    /// <summary>Floats of the transposed column buffer of ForwardBoth: [Positions, Rows] and slack.</summary>
    public int TransposedSize => Rows * Positions + Slack;

    // The vectorised path: 16x16 register transposes need whole tiles of 16 positions, and each kernel
    // row of a window must fit one 8-float load.
    bool VectorPath => (KernelWidth.Wide || Avx2.IsSupported) && Positions % 16 == 0 && Kernel <= 8;

    /// <summary>
    /// Unfolds one example. Its columns start at column <paramref name="colOffset"/> of a matrix whose
    /// rows are <paramref name="ld"/> floats long, so a batch fills one [Rows, batch * Positions] matrix.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Forward(ReadOnlySpan<float> input, float padValue, Span<float> cols, int colOffset, int ld, Span<float> scratch)
    {
        int n = Positions;
        if (input.Length < InputSize || scratch.Length < ScratchSize || colOffset + n > ld || cols.Length < (Rows - 1) * ld + colOffset + n)
            throw new ArgumentException("im2col: span too small");
        if (_phase != null)
        {
            fixed (float* x = input, c = cols) _phase.Unfold(x, padValue, c + colOffset, ld);
            return;
        }
        if (VectorPath)
        {
            // The transposed columns are scratch here, after the padded input.
            fixed (float* x = input, c = cols, sc = scratch) VectorUnfold(x, padValue, c, colOffset, ld, sc + PaddedFloats, sc);
            return;
        }
        Gather(input, padValue, cols, colOffset, ld, scratch, Span<float>.Empty);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    unsafe void Gather(ReadOnlySpan<float> input, float padValue, Span<float> cols, int colOffset, int ld, Span<float> scratch, Span<float> colsT)
    {
        int n = Positions;
        bool transposed = !colsT.IsEmpty;
        input.Slice(0, InputSize).CopyTo(scratch);
        scratch[InputSize] = padValue;
        fixed (float* src = scratch, dst0 = cols, t0 = colsT)
        fixed (int* index0 = _source)
        {
            int* index = index0;
            int rows = Rows;
            for (int r = 0; r < rows; r++)
            {
                float* dst = dst0 + (long)r * ld + colOffset;
                if (transposed)
                {
                    float* t = t0 + r;
                    for (int j = 0; j < n; j++) { float v = src[index[j]]; dst[j] = v; t[(long)j * rows] = v; }
                }
                else
                    for (int j = 0; j < n; j++) dst[j] = src[index[j]];
                index += n;
            }
        }
    }

    /// <summary>
    /// Unfolds one example into both layouts: cols [Rows, Positions] for the forward product and
    /// colsT [Positions, Rows] for the weight gradient. colsT must hold <see cref="TransposedSize"/> floats.
    /// </summary>
    /// <remarks>
    /// With AVX-512 or AVX2 the input is first copied into a padded buffer; each window row of colsT is then
    /// one contiguous 8-float copy, and cols comes from colsT by 16x16 register transposes. A scalar
    /// gather stores every value twice, one float at a time; this stores vectors.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void ForwardBoth(ReadOnlySpan<float> input, float padValue, Span<float> cols, Span<float> colsT, Span<float> scratch)
    {
        int n = Positions, rows = Rows;
        if (input.Length < InputSize || scratch.Length < ScratchSize || cols.Length < rows * n || colsT.Length < TransposedSize)
            throw new ArgumentException("im2col: span too small");
        if (_phase != null)
        {
            fixed (float* x = input, c = cols, t = colsT)
            {
                _phase.Unfold(x, padValue, c, n);
                TransposeColumns(c, t);
            }
            return;
        }
        if (!VectorPath)
        {
            Gather(input, padValue, cols, 0, n, scratch, colsT);
            return;
        }
        fixed (float* x = input, c = cols, t = colsT, padded = scratch) VectorUnfold(x, padValue, c, 0, n, t, padded);
    }

    // The vector unfold: the input is copied into a padded buffer; each window row of colsT is then one
    // contiguous 8-float copy, and cols (rows ld apart, from column colOffset) comes from colsT by
    // 16x16 register transposes. A scalar gather moves every value on its own; this moves vectors.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    unsafe void VectorUnfold(float* x0, float padValue, float* c0, int colOffset, int ld, float* t0, float* padded)
    {
        int n = Positions, rows = Rows;
        int ph = PaddedHeight, pw = PaddedWidth, plane = ph * pw, k = Kernel, s = Stride;
        int ow = OutputSide(Width, k, s, Pad);
        new Span<float>(padded, Planes * plane + Slack).Fill(padValue);
        // Rows are short (8 or 16 floats here): plain vector copies, no per-row library call. A shift
        // may move some rows and columns out of the padded planes; they are not copied.
        int left = Pad + ShiftX, xFrom = Math.Max(0, -left), xTo = Math.Min(Width, pw - left);
        for (int c = 0; c < Planes; c++)
        for (int y = 0; y < Height; y++)
        {
            int py = y + Pad + ShiftY;
            if ((uint)py >= (uint)ph) continue;
            float* from = x0 + (c * Height + y) * Width;
            float* to = padded + c * plane + py * pw + left;
            int x = xFrom;
            for (; x + 8 <= xTo; x += 8) Vector256.Store(Vector256.Load(from + x), to + x);
            for (; x < xTo; x++) to[x] = from[x];
        }
        // colsT[position, (c*k + ky)*k + kx] = padded[c, oy*s + ky, ox*s + kx]: a window row is k
        // contiguous floats. Each 8-float store runs past its k values into the next row's place,
        // which is written after it (addresses only increase), or into the slack.
        float* d = t0;
        for (int p = 0; p < n; p++)
        {
            int oy = p / ow, ox = p - oy * ow;
            for (int c = 0; c < Planes; c++)
            {
                float* src = padded + c * plane + oy * s * pw + ox * s;
                for (int ky = 0; ky < k; ky++, d += k, src += pw)
                    Vector256.Store(Vector256.Load(src), d);
            }
        }
        // cols = colsT transposed, 16 positions by 16 rows at a time.
        for (int p0 = 0; p0 < n; p0 += 16)
        for (int r0 = 0; r0 < rows; r0 += 16)
            Transpose16(t0 + (long)p0 * rows + r0, rows, 16, c0 + (long)r0 * ld + colOffset + p0, ld, Math.Min(16, rows - r0), 16);
    }

    // colsT = cols^T for 16 positions, 16 rows at a time; the last tile writes only its rows' floats.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    unsafe void TransposeColumns(float* cols, float* colsT)
    {
        int rows = Rows;
        for (int r0 = 0; r0 < rows; r0 += 16)
        {
            int count = Math.Min(16, rows - r0);
            Transpose16(cols + (long)r0 * 16, 16, count, colsT + r0, rows, 16, count);
        }
    }

    /// <summary>result = tile^T for a row-major 16x16 tile.</summary>
    public static unsafe void Transpose16(ReadOnlySpan<float> tile, Span<float> result)
    {
        if (tile.Length < 256 || result.Length < 256) throw new ArgumentException("transpose: 256 floats expected");
        fixed (float* src = tile, dst = result) Transpose16(src, 16, 16, dst, 16, 16, 16);
    }

    /// <summary>
    /// Writes the first <paramref name="dstCols"/> floats of the first <paramref name="dstRows"/> rows of
    /// the transpose of a 16x16 tile whose first <paramref name="srcRows"/> rows are read from src (the
    /// others count as zeros). Rows are 16 floats at the given strides.
    /// </summary>
    /// <remarks>
    /// The classic four stages: interleave floats, then pairs (both within 128-bit lanes, which leaves a
    /// transposed 4x4 block in each lane), then move whole lanes twice. Written out in locals so the
    /// tile goes from its loads to its stores in registers; in-lane unpacks are cheaper than full
    /// two-source permutes.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Transpose16(float* src, long srcStride, int srcRows, float* dst, long dstStride, int dstRows, int dstCols)
    {
        if (!KernelWidth.Wide)
        {
            if (Avx2.IsSupported) NarrowTranspose16(src, srcStride, srcRows, dst, dstStride, dstRows, dstCols);
            else ScalarTranspose16(src, srcStride, srcRows, dst, dstStride, dstRows, dstCols);
            return;
        }
        // After stages 1 and 2, b[i + m] holds, in lane L, column 4L + m of rows i..i+3.
        Quad(Row(src, srcStride, 0, srcRows), Row(src, srcStride, 1, srcRows), Row(src, srcStride, 2, srcRows), Row(src, srcStride, 3, srcRows),
            out var b0, out var b1, out var b2, out var b3);
        Quad(Row(src, srcStride, 4, srcRows), Row(src, srcStride, 5, srcRows), Row(src, srcStride, 6, srcRows), Row(src, srcStride, 7, srcRows),
            out var b4, out var b5, out var b6, out var b7);
        Quad(Row(src, srcStride, 8, srcRows), Row(src, srcStride, 9, srcRows), Row(src, srcStride, 10, srcRows), Row(src, srcStride, 11, srcRows),
            out var b8, out var b9, out var b10, out var b11);
        Quad(Row(src, srcStride, 12, srcRows), Row(src, srcStride, 13, srcRows), Row(src, srcStride, 14, srcRows), Row(src, srcStride, 15, srcRows),
            out var b12, out var b13, out var b14, out var b15);
        var keep = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(dstCols)).AsSingle();
        Columns(b0, b4, b8, b12, dst, dstStride, dstRows, keep, 0);
        Columns(b1, b5, b9, b13, dst, dstStride, dstRows, keep, 1);
        Columns(b2, b6, b10, b14, dst, dstStride, dstRows, keep, 2);
        Columns(b3, b7, b11, b15, dst, dstStride, dstRows, keep, 3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe Vector512<float> Row(float* src, long stride, int i, int rows) => i < rows ? Vector512.Load(src + i * stride) : Vector512<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Quad(Vector512<float> r0, Vector512<float> r1, Vector512<float> r2, Vector512<float> r3,
        out Vector512<float> b0, out Vector512<float> b1, out Vector512<float> b2, out Vector512<float> b3)
    {
        var a0 = Avx512F.UnpackLow(r0, r1).AsDouble();
        var a1 = Avx512F.UnpackHigh(r0, r1).AsDouble();
        var a2 = Avx512F.UnpackLow(r2, r3).AsDouble();
        var a3 = Avx512F.UnpackHigh(r2, r3).AsDouble();
        b0 = Avx512F.UnpackLow(a0, a2).AsSingle();
        b1 = Avx512F.UnpackHigh(a0, a2).AsSingle();
        b2 = Avx512F.UnpackLow(a1, a3).AsSingle();
        b3 = Avx512F.UnpackHigh(a1, a3).AsSingle();
    }

    // Columns m, m+4, m+8 and m+12 from the four row blocks' b[m] (lane L = column 4L + m).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Columns(Vector512<float> q0, Vector512<float> q1, Vector512<float> q2, Vector512<float> q3, float* dst, long stride, int rows,
        Vector512<float> keep, int m)
    {
        var even01 = Avx512F.Shuffle4x128(q0, q1, 0x88);
        var odd01 = Avx512F.Shuffle4x128(q0, q1, 0xdd);
        var even23 = Avx512F.Shuffle4x128(q2, q3, 0x88);
        var odd23 = Avx512F.Shuffle4x128(q2, q3, 0xdd);
        if (m < rows) Put(Avx512F.Shuffle4x128(even01, even23, 0x88), dst + m * stride, keep);
        if (m + 4 < rows) Put(Avx512F.Shuffle4x128(odd01, odd23, 0x88), dst + (m + 4) * stride, keep);
        if (m + 8 < rows) Put(Avx512F.Shuffle4x128(even01, even23, 0xdd), dst + (m + 8) * stride, keep);
        if (m + 12 < rows) Put(Avx512F.Shuffle4x128(odd01, odd23, 0xdd), dst + (m + 12) * stride, keep);
    }

    // Stores the kept lanes; the others keep what dst held.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Put(Vector512<float> v, float* dst, Vector512<float> keep)
    {
        if (keep.AsInt32() == Vector512<int>.AllBitsSet) Vector512.Store(v, dst);
        else Vector512.Store(Vector512.ConditionalSelect(keep, v, Vector512.Load(dst)), dst);
    }

    /// <summary>
    /// Transpose16 on AVX2: four 8x8 blocks, each transposed in registers (<see cref="Halves.Transpose8"/>)
    /// and stored to the mirrored block; it reads and writes no float the AVX-512 form does not.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void NarrowTranspose16(float* src, long srcStride, int srcRows, float* dst, long dstStride, int dstRows, int dstCols)
    {
        for (int rb = 0; rb < 16; rb += 8)
        {
            // Source rows rb..rb+7 become destination columns rb..rb+7.
            if (rb >= dstCols) break;
            var keep = Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(dstCols - rb)).AsSingle();
            bool all = dstCols - rb >= 8;
            for (int cb = 0; cb < 16; cb += 8)
            {
                if (cb >= dstRows) break;
                float* s = src + rb * srcStride + cb;
                var r0 = Row8(s, srcStride, 0, srcRows - rb); var r1 = Row8(s, srcStride, 1, srcRows - rb);
                var r2 = Row8(s, srcStride, 2, srcRows - rb); var r3 = Row8(s, srcStride, 3, srcRows - rb);
                var r4 = Row8(s, srcStride, 4, srcRows - rb); var r5 = Row8(s, srcStride, 5, srcRows - rb);
                var r6 = Row8(s, srcStride, 6, srcRows - rb); var r7 = Row8(s, srcStride, 7, srcRows - rb);
                Halves.Transpose8(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
                float* d = dst + cb * dstStride + rb;
                int rows = dstRows - cb;
                Put8(r0, d, keep, all); if (rows > 1) Put8(r1, d + dstStride, keep, all);
                if (rows > 2) Put8(r2, d + 2 * dstStride, keep, all); if (rows > 3) Put8(r3, d + 3 * dstStride, keep, all);
                if (rows > 4) Put8(r4, d + 4 * dstStride, keep, all); if (rows > 5) Put8(r5, d + 5 * dstStride, keep, all);
                if (rows > 6) Put8(r6, d + 6 * dstStride, keep, all); if (rows > 7) Put8(r7, d + 7 * dstStride, keep, all);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe Vector256<float> Row8(float* src, long stride, int i, int rows) => i < rows ? Vector256.Load(src + i * stride) : Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Put8(Vector256<float> v, float* dst, Vector256<float> keep, bool all)
    {
        if (all) Vector256.Store(v, dst);
        else Vector256.Store(Vector256.ConditionalSelect(keep, v, Vector256.Load(dst)), dst);
    }

    // Transpose16 without vector permutes: the same floats, one at a time.
    static unsafe void ScalarTranspose16(float* src, long srcStride, int srcRows, float* dst, long dstStride, int dstRows, int dstCols)
    {
        for (int j = 0; j < dstRows; j++)
            for (int i = 0; i < dstCols; i++)
                dst[j * dstStride + i] = i < srcRows ? src[i * srcStride + j] : 0f;
    }

    /// <summary>
    /// Whether <see cref="Product"/> and <see cref="InputGradient"/> can run: a permute-path geometry (see
    /// PhaseUnfold), where one example's output plane is one 16-lane vector.
    /// </summary>
    /// <remarks>
    /// A layer's matrix products are described by segments, 5-tuples (first output plane, planes, first
    /// input plane, input planes, weight column of the first input plane's kernel), listed in the order
    /// the products run; a plane's segments follow one another. Segment s is the product
    /// W[planes, kernels of its input planes] . cols[rows of its input planes, :].
    /// </remarks>
    public bool FusesProducts => _phase != null;

    /// <summary>Floats of scratch <see cref="InputGradient"/> needs for a layer of outPlanes output planes.</summary>
    public int InputGradientScratch(int outPlanes) => _phase?.InputGradientScratch(outPlanes) ?? 0;

    void CheckSegments(ReadOnlySpan<int> segments, int outPlanes, int fanIn)
    {
        if (_phase == null) throw new InvalidOperationException("fused products: this geometry has no permute path");
        int taps = Kernel * Kernel;
        if (segments.Length % 5 != 0) throw new ArgumentException("fused products: segments come in 5-tuples");
        for (int s = 0; s < segments.Length; s += 5)
        {
            int p0 = segments[s], planes = segments[s + 1], c0 = segments[s + 2], inputs = segments[s + 3], column = segments[s + 4];
            if (p0 < 0 || planes < 0 || p0 + planes > outPlanes || c0 < 0 || inputs < 0 || c0 + inputs > Planes
                || column < 0 || column + inputs * taps > fanIn)
                throw new ArgumentException("fused products: a segment is outside the layer");
        }
    }

    /// <summary>
    /// One example's pre-activations before the bias, output[p, :] for every plane, from its columns:
    /// bit for bit what the segments' matrix products give, run in order (the first of a plane
    /// overwriting, the others accumulating). weights is [outPlanes, fanIn]; cols [Rows, Positions].
    /// </summary>
    public unsafe void Product(ReadOnlySpan<float> weights, int fanIn, ReadOnlySpan<float> cols, int outPlanes,
        ReadOnlySpan<int> segments, Span<float> output)
    {
        CheckSegments(segments, outPlanes, fanIn);
        if (weights.Length < outPlanes * fanIn || cols.Length < Rows * Positions || output.Length < outPlanes * Positions)
            throw new ArgumentException("fused products: span too small");
        fixed (float* w = weights, c = cols, o = output)
        fixed (int* sg = segments)
            _phase!.Product(w, fanIn, c, sg, segments.Length / 5, o);
    }

    /// <summary>
    /// The input gradient of one example, bit for bit what the segments' column-gradient products
    /// dCols[rows of its input planes] += W[planes, kernels]^T dPre[planes], run in order, followed by
    /// <see cref="Backward(ReadOnlySpan{float}, Span{float})"/> give, without the column gradient.
    /// weights is [outPlanes, fanIn]; dPre is [outPlanes, Positions].
    /// </summary>
    public unsafe void InputGradient(ReadOnlySpan<float> weights, int fanIn, ReadOnlySpan<float> dPre, int outPlanes,
        ReadOnlySpan<int> segments, Span<float> scratch, Span<float> dInput)
    {
        CheckSegments(segments, outPlanes, fanIn);
        if (weights.Length < outPlanes * fanIn || dPre.Length < outPlanes * Positions || dInput.Length < InputSize
            || scratch.Length < InputGradientScratch(outPlanes))
            throw new ArgumentException("input gradient: span too small");
        fixed (float* w = weights, d = dPre, sc = scratch, dIn = dInput)
        fixed (int* sg = segments)
            _phase!.InputGradient(w, fanIn, d, outPlanes, sg, segments.Length / 5, sc, dIn);
    }

    /// <summary>
    /// The adjoint of <see cref="Forward"/> for one example: dInput[i] is the sum of the column entries
    /// that read input i, in column order; entries that read padding are dropped. dCols holds the
    /// [Rows, Positions] columns followed by one 0 (<see cref="ColumnsWithZero"/> floats). Overwrites dInput.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Backward(ReadOnlySpan<float> dCols, Span<float> dInput)
    {
        int zero = Rows * Positions;
        if (dCols.Length < zero + 1 || dInput.Length < InputSize)
            throw new ArgumentException("col2im: span too small");
        if (dCols[zero] != 0f) throw new ArgumentException("col2im: the float after the columns must be 0");
        fixed (float* src = dCols, dst = dInput)
        {
            if (_phase != null)
            {
                _phase.Fold(src, dst);
                return;
            }
            int r = _maxReaders;
            fixed (int* readers = _readers)
            {
                int* e = readers;
                for (int i = 0; i < InputSize; i++, e += r)
                {
                    float sum = 0f;
                    for (int j = 0; j < r; j++) sum += src[e[j]];
                    dst[i] = sum;
                }
            }
        }
    }
}
