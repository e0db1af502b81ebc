using System.Runtime.CompilerServices;

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

    /// <summary>Floats of scratch that Forward needs: the input plus one pad slot.</summary>
    public int ScratchSize => InputSize + 1;

    /// <summary>
    /// Unfolds one example. Its columns start at column <paramref name="colOffset"/> of a matrix whose
    /// rows are <paramref name="ld"/> floats long, so a batch fills one [Rows, batch * Positions] matrix.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Forward(ReadOnlySpan<float> input, float padValue, Span<float> cols, int colOffset, int ld, Span<float> scratch) =>
        Forward(input, padValue, cols, colOffset, ld, scratch, Span<float>.Empty);

    /// <summary>
    /// As <see cref="Forward(ReadOnlySpan{float}, float, Span{float}, int, int, Span{float})"/>, and also writes
    /// the transposed columns colsT[position, row] when <paramref name="colsT"/> is not empty: the layout in
    /// which a layer's weight gradient is a plain matrix product.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Forward(ReadOnlySpan<float> input, float padValue, Span<float> cols, int colOffset, int ld, Span<float> scratch, Span<float> colsT)
    {
        int n = Positions;
        if (input.Length < InputSize || scratch.Length < ScratchSize || colOffset + n > ld || cols.Length < (Rows - 1) * ld + colOffset + n)
            throw new ArgumentException("im2col: span too small");
        bool transposed = !colsT.IsEmpty;
        if (transposed && colsT.Length < Rows * n) throw new ArgumentException("im2col: transposed span too small");
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
