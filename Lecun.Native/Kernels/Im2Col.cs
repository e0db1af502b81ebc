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
    readonly int[] _readersTransposed;
    readonly int _maxReaders;

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

    public Im2ColPlan(int planes, int height, int width, int k, int stride, int pad)
    {
        if (planes <= 0 || height <= 0 || width <= 0 || k <= 0 || stride <= 0 || pad < 0)
            throw new ArgumentException("im2col: sizes must be positive");
        Planes = planes; Height = height; Width = width; Kernel = k; Stride = stride; Pad = pad;
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
            int y = oy * stride + ky - pad, x = ox * stride + kx - pad;
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
        // The same entries addressed in the transposed layout: (row r, position n) lives at n*Rows + r.
        _readersTransposed = _readers.Select(e => e == _source.Length ? e : e % Positions * Rows + e / Positions).ToArray();
    }

    /// <summary>Floats Backward reads from its column matrix: Rows * Positions, then one zero.</summary>
    public int ColumnsWithZero => Rows * Positions + 1;

    int PaddedHeight => Height + 2 * Pad;
    int PaddedWidth => Width + 2 * Pad;

    /// <summary>Floats a vector load or store may run past the end of a buffer (see ForwardBoth).</summary>
    public const int Slack = 16;

    /// <summary>Floats of scratch that Forward and ForwardBoth need.</summary>
    public int ScratchSize => Math.Max(InputSize + 1, Planes * PaddedHeight * PaddedWidth + Slack);

    /// <summary>Floats of the transposed column buffer of ForwardBoth: [Positions, Rows] and slack.</summary>
    public int TransposedSize => Rows * Positions + Slack;

    // The vectorised path: 16x16 register transposes need whole tiles of 16 positions, and each kernel
    // row of a window must fit one 8-float load.
    bool VectorPath => Avx512F.IsSupported && Positions % 16 == 0 && Kernel <= 8;

    /// <summary>
    /// Unfolds one example. Its columns start at column <paramref name="colOffset"/> of a matrix whose
    /// rows are <paramref name="ld"/> floats long, so a batch fills one [Rows, batch * Positions] matrix.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Forward(ReadOnlySpan<float> input, float padValue, Span<float> cols, int colOffset, int ld, Span<float> scratch)
    {
        int n = Positions;
        if (input.Length < InputSize || scratch.Length < InputSize + 1 || colOffset + n > ld || cols.Length < (Rows - 1) * ld + colOffset + n)
            throw new ArgumentException("im2col: span too small");
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
    /// With AVX-512 the input is first copied into a padded buffer; each window row of colsT is then
    /// one contiguous 8-float copy, and cols comes from colsT by 16x16 register transposes. A scalar
    /// gather stores every value twice, one float at a time; this stores vectors.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void ForwardBoth(ReadOnlySpan<float> input, float padValue, Span<float> cols, Span<float> colsT, Span<float> scratch)
    {
        int n = Positions, rows = Rows;
        if (input.Length < InputSize || scratch.Length < ScratchSize || cols.Length < rows * n || colsT.Length < TransposedSize)
            throw new ArgumentException("im2col: span too small");
        if (!VectorPath)
        {
            Gather(input, padValue, cols, 0, n, scratch, colsT);
            return;
        }
        int ph = PaddedHeight, pw = PaddedWidth, plane = ph * pw, k = Kernel, s = Stride;
        int ow = OutputSide(Width, k, s, Pad);
        scratch.Slice(0, Planes * plane + Slack).Fill(padValue);
        fixed (float* padded = scratch, t0 = colsT, c0 = cols, x0 = input)
        {
            // Rows are short (8 or 16 floats here): plain vector copies, no per-row library call.
            for (int c = 0; c < Planes; c++)
            for (int y = 0; y < Height; y++)
            {
                float* from = x0 + (c * Height + y) * Width;
                float* to = padded + c * plane + (y + Pad) * pw + Pad;
                int x = 0;
                for (; x + 8 <= Width; x += 8) Vector256.Store(Vector256.Load(from + x), to + x);
                for (; x < Width; x++) to[x] = from[x];
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
            var tile = stackalloc Vector512<float>[16];
            for (int p0 = 0; p0 < n; p0 += 16)
            for (int r0 = 0; r0 < rows; r0 += 16)
            {
                for (int i = 0; i < 16; i++) tile[i] = Vector512.Load(t0 + (long)(p0 + i) * rows + r0);
                Transpose16(tile);
                int count = Math.Min(16, rows - r0);
                for (int j = 0; j < count; j++) Vector512.Store(tile[j], c0 + (long)(r0 + j) * n + p0);
            }
        }
    }

    // Index vectors of the 16x16 transpose: stage h swaps the off-diagonal h x h blocks of every
    // 2h x 2h block; row i (bit h clear) keeps lanes with bit h clear and takes row i+h's lanes l-h.
    static readonly Vector512<int>[] KeepLow = new[] { 8, 4, 2, 1 }.Select(h => Vector512.Create(Enumerable.Range(0, 16).Select(l => (l & h) == 0 ? l : 16 + l - h).ToArray())).ToArray();
    static readonly Vector512<int>[] KeepHigh = new[] { 8, 4, 2, 1 }.Select(h => Vector512.Create(Enumerable.Range(0, 16).Select(l => (l & h) == 0 ? l + h : 16 + l).ToArray())).ToArray();

    /// <summary>result = tile^T for a row-major 16x16 tile (needs AVX-512).</summary>
    public static unsafe void Transpose16(ReadOnlySpan<float> tile, Span<float> result)
    {
        if (tile.Length < 256 || result.Length < 256) throw new ArgumentException("transpose: 256 floats expected");
        var rows = stackalloc Vector512<float>[16];
        fixed (float* src = tile, dst = result)
        {
            for (int i = 0; i < 16; i++) rows[i] = Vector512.Load(src + 16 * i);
            Transpose16(rows);
            for (int i = 0; i < 16; i++) Vector512.Store(rows[i], dst + 16 * i);
        }
    }

    /// <summary>Transposes a 16x16 float tile held as 16 row vectors, in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Transpose16(Vector512<float>* rows)
    {
        for (int stage = 0, h = 8; h >= 1; stage++, h >>= 1)
        {
            var low = KeepLow[stage];
            var high = KeepHigh[stage];
            for (int i = 0; i < 16; i++)
            {
                if ((i & h) != 0) continue;
                var a = rows[i];
                var b = rows[i + h];
                rows[i] = Avx512F.PermuteVar16x32x2(a, low, b);
                rows[i + h] = Avx512F.PermuteVar16x32x2(a, high, b);
            }
        }
    }

    /// <summary>
    /// The adjoint of <see cref="Forward"/> for one example: dInput[i] is the sum of the column entries
    /// that read input i, in column order; entries that read padding are dropped. dCols holds the
    /// [Rows, Positions] columns followed by one 0 (<see cref="ColumnsWithZero"/> floats). Overwrites dInput.
    /// </summary>
    public void Backward(ReadOnlySpan<float> dCols, Span<float> dInput) => Backward(dCols, dInput, transposed: false);

    /// <summary>
    /// The adjoint of <see cref="Forward"/>, reading the column gradient in [Rows, Positions] layout or,
    /// when <paramref name="transposed"/>, in [Positions, Rows] layout; followed by one 0 either way.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Backward(ReadOnlySpan<float> dCols, Span<float> dInput, bool transposed)
    {
        int zero = Rows * Positions;
        if (dCols.Length < zero + 1 || dInput.Length < InputSize)
            throw new ArgumentException("col2im: span too small");
        if (dCols[zero] != 0f) throw new ArgumentException("col2im: the float after the columns must be 0");
        int r = _maxReaders;
        fixed (float* src = dCols, dst = dInput)
        fixed (int* readers = transposed ? _readersTransposed : _readers)
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
