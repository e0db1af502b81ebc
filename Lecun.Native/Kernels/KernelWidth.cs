using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

[assembly: InternalsVisibleTo("Lecun.Tests")]

namespace Lecun.Native.Kernels;

/// <summary>
/// Which vector width the hand-written kernels run at. With AVX-512 a 16-float value is one Vector512;
/// with AVX2 and FMA it is two Vector256 halves (lanes 0-7 and 8-15). Every output element goes through
/// the same operations in the same order at either width (the same fused multiply-adds, the same
/// horizontal-sum trees), so both kinds of CPU give the same bits.
/// </summary>
public static class KernelWidth
{
    /// <summary>AVX-512 runs natively (Vector512 is not emulated in software).</summary>
    public static bool HasAvx512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    /// <summary>AVX2 and FMA run natively: the 256-bit path.</summary>
    public static bool HasAvx2 => Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported;

    /// <summary>
    /// The vector kernels run natively here: on the AVX-512 path, or on the AVX2 path. The runtime enables
    /// AVX-512 only where AVX2 and FMA run too, so wherever the AVX-512 path is not taken this also says
    /// whether the AVX2 path runs (else the scalar loops do, and callers use the im2col path).
    /// </summary>
    public static bool HasVectorKernels => HasAvx512 || HasAvx2;

    // Set by tests (through Avx2Forced) to run the AVX2 path on an AVX-512 CPU. An AsyncLocal, not a
    // static: it holds for the flow that set it (its thread and the tasks that thread starts), so tests
    // running in parallel each see their own setting and never restore each other's.
    static readonly AsyncLocal<bool> avx2Forced = new();

    /// <summary>
    /// Whether the calling flow has the kernels take the AVX2 path even on an AVX-512 CPU. Tests set it to
    /// compare the two paths bit for bit there; it changes no other thread's kernels.
    /// </summary>
    internal static bool Avx2Forced
    {
        get => avx2Forced.Value;
        set => avx2Forced.Value = value;
    }

    /// <summary>Whether the kernels take their AVX-512 path (for the calling flow; see Avx2Forced).</summary>
    internal static bool UseAvx512 => HasAvx512 && !Avx2Forced;

    /// <summary>The path the kernels take here (for the calling flow), for reports.</summary>
    public static SimdPath Path => UseAvx512 ? SimdPath.Avx512 : HasVectorKernels ? SimdPath.Avx2 : SimdPath.Scalar;
}

/// <summary>The code path of the hand-written kernels: 16 floats as one Vector512, as two Vector256
/// halves, or scalar loops (no vector kernels: callers use the im2col path).</summary>
public enum SimdPath
{
    Scalar,
    Avx2,
    Avx512,
}

/// <summary>Register permutes of 16 floats held as two Vector256 halves (the AVX2 path's Vector512).</summary>
internal static class Halves
{
    /// <summary>
    /// out[l] = src[index[l]] for index 0-15, or pad for 16: what Avx512F.PermuteVar16x32x2(src, index, pad)
    /// gives for such indices. The index table is precomputed by <see cref="Table"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Permute(Vector256<float> lo, Vector256<float> hi, in PermuteTable8 t, Vector256<float> pad)
    {
        var fromLo = Avx2.PermuteVar8x32(lo, t.Index);
        var fromHi = Avx2.PermuteVar8x32(hi, t.Index);
        return Avx.BlendVariable(Avx.BlendVariable(fromLo, fromHi, t.High), pad, t.Pad);
    }

    /// <summary>The AVX2 form of one 16-lane index vector (values 0-16): two tables of 8 lanes.</summary>
    public static (PermuteTable8 Lo, PermuteTable8 Hi) Table(int[] index)
    {
        PermuteTable8 Half(int from)
        {
            var l = index.Skip(from).Take(8).ToArray();
            return new PermuteTable8(
                Vector256.Create(l.Select(i => i & 7).ToArray()),
                Vector256.Create(l.Select(i => i is >= 8 and < 16 ? -1 : 0).ToArray()).AsSingle(),
                Vector256.Create(l.Select(i => i >= 16 ? -1 : 0).ToArray()).AsSingle());
        }
        return (Half(0), Half(8));
    }

    /// <summary>
    /// Transposes an 8x8 block: rows r0..r7 in, columns c0..c7 out (c_j[i] = r_i[j]). Interleave floats,
    /// then pairs, within 128-bit lanes; then swap 128-bit lanes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose8(ref Vector256<float> r0, ref Vector256<float> r1, ref Vector256<float> r2, ref Vector256<float> r3,
        ref Vector256<float> r4, ref Vector256<float> r5, ref Vector256<float> r6, ref Vector256<float> r7)
    {
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var s0 = Avx.Shuffle(t0, t2, 0x44); var s1 = Avx.Shuffle(t0, t2, 0xee);
        var s2 = Avx.Shuffle(t1, t3, 0x44); var s3 = Avx.Shuffle(t1, t3, 0xee);
        var s4 = Avx.Shuffle(t4, t6, 0x44); var s5 = Avx.Shuffle(t4, t6, 0xee);
        var s6 = Avx.Shuffle(t5, t7, 0x44); var s7 = Avx.Shuffle(t5, t7, 0xee);
        r0 = Avx.Permute2x128(s0, s4, 0x20); r1 = Avx.Permute2x128(s1, s5, 0x20);
        r2 = Avx.Permute2x128(s2, s6, 0x20); r3 = Avx.Permute2x128(s3, s7, 0x20);
        r4 = Avx.Permute2x128(s0, s4, 0x31); r5 = Avx.Permute2x128(s1, s5, 0x31);
        r6 = Avx.Permute2x128(s2, s6, 0x31); r7 = Avx.Permute2x128(s3, s7, 0x31);
    }
}

/// <summary>One half of a 16-lane permute for <see cref="Halves.Permute"/>: lane indices mod 8, the lanes
/// that take the high half, and the lanes that take the pad value.</summary>
internal readonly struct PermuteTable8(Vector256<int> index, Vector256<float> high, Vector256<float> pad)
{
    public readonly Vector256<int> Index = index;
    public readonly Vector256<float> High = high;
    public readonly Vector256<float> Pad = pad;
}

/// <summary>
/// One native vector width for kernels written once: a kernel generic over a width (a struct type
/// argument) is compiled by the JIT once per width with these calls inlined, so each width runs the
/// code its own twin would, with no virtual call. Every operation rounds as the Vector256/Vector512
/// operation of the same name, so a kernel's lanes give the same bits at either width.
/// </summary>
internal unsafe interface IWidth<TV> where TV : struct
{
    /// <summary>Floats in one vector.</summary>
    static abstract int Count { get; }
    static abstract TV Load(float* p);
    static abstract void Store(TV v, float* p);
    /// <summary>Load from an address aligned to the vector's size.</summary>
    static abstract TV LoadAligned(float* p);
    static abstract void StoreAligned(TV v, float* p);
    static abstract TV Splat(float x);
    static abstract TV Zero { get; }
    static abstract TV Add(TV x, TV y);
    static abstract TV Subtract(TV x, TV y);
    static abstract TV Multiply(TV x, TV y);
    static abstract TV Divide(TV x, TV y);
    /// <summary>x * y + z rounded once.</summary>
    static abstract TV FusedMultiplyAdd(TV x, TV y, TV z);
    /// <summary>Min(x, y) for y broadcast. The float reaches the vector operation as a constant where the
    /// caller passes one, so the JIT can emit the plain min instruction rather than the NaN-propagating sequence.</summary>
    static abstract TV Min(TV x, float y);
    /// <summary>Max(x, y) for y broadcast (see Min).</summary>
    static abstract TV Max(TV x, float y);
    static abstract TV Sqrt(TV x);
    static abstract float First(TV x);
    /// <summary>Per lane, x where mask's bits are set, else y.</summary>
    static abstract TV ConditionalSelect(TV mask, TV x, TV y);
    /// <summary>A mask of the lanes at index <paramref name="first"/> and after.</summary>
    static abstract TV LanesFrom(int first);
}

/// <summary>The AVX-512 width: one Vector512 of 16 floats.</summary>
internal readonly unsafe struct Width512 : IWidth<Vector512<float>>
{
    public static int Count => 16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<float> v, float* p) => Vector512.Store(v, p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LoadAligned(float* p) => Vector512.LoadAligned(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreAligned(Vector512<float> v, float* p) => Vector512.StoreAligned(v, p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Splat(float x) => Vector512.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> x, Vector512<float> y) => x + y;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> x, Vector512<float> y) => x - y;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> x, Vector512<float> y) => x * y;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Divide(Vector512<float> x, Vector512<float> y) => x / y;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> FusedMultiplyAdd(Vector512<float> x, Vector512<float> y, Vector512<float> z) => Vector512.FusedMultiplyAdd(x, y, z);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> x, float y) => Vector512.Min(x, Vector512.Create(y));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> x, float y) => Vector512.Max(x, Vector512.Create(y));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Sqrt(Vector512<float> x) => Vector512.Sqrt(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float First(Vector512<float> x) => x.ToScalar();
    public static Vector512<float> Zero => Vector512<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> ConditionalSelect(Vector512<float> mask, Vector512<float> x, Vector512<float> y) => Vector512.ConditionalSelect(mask, x, y);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LanesFrom(int first) => Vector512.GreaterThanOrEqual(Vector512<int>.Indices, Vector512.Create(first)).AsSingle();
}

/// <summary>The AVX2 width: one Vector256 of 8 floats.</summary>
internal readonly unsafe struct Width256 : IWidth<Vector256<float>>
{
    public static int Count => 8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<float> v, float* p) => Vector256.Store(v, p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LoadAligned(float* p) => Vector256.LoadAligned(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreAligned(Vector256<float> v, float* p) => Vector256.StoreAligned(v, p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Splat(float x) => Vector256.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> x, Vector256<float> y) => x + y;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> x, Vector256<float> y) => x - y;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> x, Vector256<float> y) => x * y;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> x, Vector256<float> y) => x / y;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> FusedMultiplyAdd(Vector256<float> x, Vector256<float> y, Vector256<float> z) => Vector256.FusedMultiplyAdd(x, y, z);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> x, float y) => Vector256.Min(x, Vector256.Create(y));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> x, float y) => Vector256.Max(x, Vector256.Create(y));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Sqrt(Vector256<float> x) => Vector256.Sqrt(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float First(Vector256<float> x) => x.ToScalar();
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> ConditionalSelect(Vector256<float> mask, Vector256<float> x, Vector256<float> y) => Vector256.ConditionalSelect(mask, x, y);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LanesFrom(int first) => Vector256.GreaterThanOrEqual(Vector256<int>.Indices, Vector256.Create(first)).AsSingle();
}
