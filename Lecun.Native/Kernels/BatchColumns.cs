namespace Lecun.Native.Kernels;

/// <summary>
/// col2im over a batch: the adjoint of <see cref="Im2ColPlan.Forward"/> run for examples 0..count-1
/// into one [Rows, ld] column matrix (example b's columns starting at column b * Positions), as the
/// batched input gradient of a locally-connected layer needs it.
/// </summary>
public static class BatchColumns
{
    /// <summary>
    /// dInput[b, plane, y, x] = the sum of the column entries of example b that read input (plane, y, x);
    /// entries that read padding are dropped. Overwrites dInput, [count, plan.InputSize]. Each example's
    /// columns are copied into one contiguous [Rows, Positions] block and folded by the plan's own
    /// <see cref="Im2ColPlan.Backward"/> (its permute path where it has one), so every example gets exactly
    /// the one-example col2im's sums.
    /// </summary>
    public static void Fold(Im2ColPlan plan, ReadOnlySpan<float> dCols, int ld, int count, Span<float> dInput)
    {
        int positions = plan.Positions, rows = plan.Rows, inputSize = plan.InputSize;
        if (ld < count * positions) throw new ArgumentException($"ld {ld} < {count} x {positions} columns");
        if (dCols.Length < (long)(rows - 1) * ld + count * positions) throw new ArgumentException("dCols too small");
        if (dInput.Length < (long)count * inputSize) throw new ArgumentException("dInput too small");
        int size = plan.ColumnsWithZero;
        Span<float> own = size <= StackFloats ? stackalloc float[size] : new float[size];
        own[size - 1] = 0f;
        for (int b = 0; b < count; b++)
        {
            for (int r = 0; r < rows; r++)
                dCols.Slice(r * ld + b * positions, positions).CopyTo(own.Slice(r * positions, positions));
            plan.Backward(own, dInput.Slice(b * inputSize, inputSize));
        }
    }

    /// <summary>One example's columns up to this many floats (64 KB) are staged on the stack.</summary>
    const int StackFloats = 16384;
}
