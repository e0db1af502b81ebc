using System;
using System.Globalization;
using System.Runtime.CompilerServices;

namespace Lecun.Native.Text;

/// <summary>Why <see cref="DecimalText.ParseRow"/> stopped.</summary>
public enum RowStatus
{
    /// <summary>All requested values were parsed.</summary>
    Full = 0,
    /// <summary>The line (or text) ended first; the count says how many values it held.</summary>
    EndOfLine = 1,
    /// <summary>A token is not a number; the position is at its start.</summary>
    NotANumber = 2,
    /// <summary>A token parsed as NaN or infinity.</summary>
    NotFinite = 3,
    /// <summary>A value lies outside [min, max].</summary>
    OutOfRange = 4,
}

/// <summary>
/// The hot loop of the text data loaders: whitespace-separated decimals (ASCII bytes) to float32,
/// each equal to <see cref="float.Parse(string)"/> of the same text. It lives here, in C#, because
/// it runs once per file: only <see cref="MethodImplOptions.AggressiveOptimization"/> (which the F#
/// compiler does not emit) keeps it out of slow tier-0/OSR code, which a cold start would otherwise run.
/// </summary>
public static class DecimalText
{
    // 10^k for k <= 10 is exact in float32 (5^10 < 2^24).
    static readonly float[] Pow10 = [1f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f, 1e10f];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    /// <summary>Whether a byte separates numbers: a space, tab or carriage return, or a comma or
    /// semicolon (rows written by hand or by a spreadsheet).</summary>
    public static bool IsSeparator(byte b) => b == (byte)' ' || b == (byte)'\t' || b == (byte)'\r' || b == (byte)',' || b == (byte)';';

    /// <summary>
    /// Parses one number. Fast path (Clinger): a plain decimal with a mantissa below 2^24 and at
    /// most 10 fraction digits is mantissa / 10^k with both operands exact in float32, and IEEE
    /// division rounds correctly, so one division gives the correctly rounded value that
    /// float.Parse returns. Anything else (exponents, long mantissas, NaN, words) goes to
    /// float.TryParse on the bytes. False when the text is not a number.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryParse(ReadOnlySpan<byte> token, out float value)
    {
        int i = 0, n = token.Length;
        bool neg = n > 0 && token[0] == (byte)'-';
        if (n > 0 && (neg || token[0] == (byte)'+')) i++;
        long mant = 0;
        int digits = 0, frac = 0;
        while (i < n && (uint)(token[i] - '0') <= 9 && digits < 18)
        {
            mant = mant * 10 + (token[i] - '0');
            digits++;
            i++;
        }
        if (i < n && token[i] == (byte)'.')
        {
            i++;
            while (i < n && (uint)(token[i] - '0') <= 9 && digits < 18)
            {
                mant = mant * 10 + (token[i] - '0');
                digits++;
                frac++;
                i++;
            }
        }
        if (i == n && digits > 0 && mant < (1L << 24) && frac <= 10)
        {
            float v = mant / Pow10[frac];
            value = neg ? -v : v;
            return true;
        }
        return float.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>
    /// Parses up to <c>values.Length</c> numbers from <paramref name="text"/> at <paramref name="pos"/>,
    /// separated by <see cref="IsSeparator"/> bytes, stopping at a newline or the end of the text.
    /// On return <paramref name="count"/> values are stored; <paramref name="pos"/> is after the last
    /// value read (status Full), at the newline or end (EndOfLine), or at the start of the bad token.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static RowStatus ParseRow(ReadOnlySpan<byte> text, ref int pos, Span<float> values, float min, float max, out int count)
    {
        int n = text.Length, p = pos, k = 0;
        while (k < values.Length)
        {
            while (p < n && IsSeparator(text[p])) p++;
            if (p >= n || text[p] == (byte)'\n')
            {
                pos = p; count = k;
                return RowStatus.EndOfLine;
            }
            int start = p;
            while (p < n && !IsSeparator(text[p]) && text[p] != (byte)'\n') p++;
            RowStatus bad = RowStatus.Full;
            if (!TryParse(text.Slice(start, p - start), out float v)) bad = RowStatus.NotANumber;
            else if (!float.IsFinite(v)) bad = RowStatus.NotFinite;
            else if (v < min || v > max) bad = RowStatus.OutOfRange;
            if (bad != RowStatus.Full)
            {
                pos = start; count = k;
                return bad;
            }
            values[k++] = v;
        }
        pos = p; count = k;
        return RowStatus.Full;
    }
}
