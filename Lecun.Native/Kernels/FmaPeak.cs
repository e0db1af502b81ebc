using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Lecun.Native.Kernels;

/// <summary>
/// Measures what one core retires in fused multiply-adds when nothing else limits it: twelve
/// independent chains of the widest native vector FMA (512 or 256 bits), no memory traffic. The clock in /proc/cpuinfo is the
/// base clock, not the boost clock a busy core runs at, and how many FMA units a core has differs
/// between CPU generations; measuring avoids assuming either.
/// </summary>
public static class FmaPeak
{
    /// <summary>
    /// Best of <paramref name="runs"/> timings, in multiply-accumulates per second summed over
    /// <paramref name="threads"/> threads running at once (one per core; on shared virtual cores the
    /// sum can be well under threads times one core's figure).
    /// </summary>
    public static double MeasureMacsPerSecond(int threads = 1, int runs = 5, int iterations = 2_000_000)
    {
        bool wide = KernelWidth.UseAvx512;
        int lanes = wide ? Width512.Count : Width256.Count;
        Func<int, float, float> chains = wide ? Chains<Width512, Vector512<float>> : Chains<Width256, Vector256<float>>;
        chains(1000, 1f); // compile before timing
        double best = 0;
        for (int r = 0; r < runs; r++)
        {
            var clock = Stopwatch.StartNew();
            var sums = new float[threads];
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t => sums[t] = chains(iterations, 1f + t * 1e-9f));
            double seconds = clock.Elapsed.TotalSeconds;
            if (sums.Any(float.IsNaN)) throw new InvalidOperationException("unreachable: keeps the results alive");
            best = Math.Max(best, threads * 12.0 * lanes * iterations / seconds);
        }
        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static float Chains<TW, TV>(int iterations, float seed) where TW : struct, IWidth<TV> where TV : struct
    {
        var m = TW.Splat(0.999f);
        var c = TW.Splat(1e-3f);
        TV a0 = TW.Splat(seed), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
            a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (int i = 0; i < iterations; i++)
        {
            a0 = TW.FusedMultiplyAdd(a0, m, c); a1 = TW.FusedMultiplyAdd(a1, m, c);
            a2 = TW.FusedMultiplyAdd(a2, m, c); a3 = TW.FusedMultiplyAdd(a3, m, c);
            a4 = TW.FusedMultiplyAdd(a4, m, c); a5 = TW.FusedMultiplyAdd(a5, m, c);
            a6 = TW.FusedMultiplyAdd(a6, m, c); a7 = TW.FusedMultiplyAdd(a7, m, c);
            a8 = TW.FusedMultiplyAdd(a8, m, c); a9 = TW.FusedMultiplyAdd(a9, m, c);
            a10 = TW.FusedMultiplyAdd(a10, m, c); a11 = TW.FusedMultiplyAdd(a11, m, c);
        }
        return TW.First(TW.Add(TW.Add(TW.Add(TW.Add(TW.Add(TW.Add(a0, a1), TW.Add(a2, a3)), TW.Add(a4, a5)), TW.Add(a6, a7)),
            TW.Add(a8, a9)), TW.Add(a10, a11)));
    }
}
