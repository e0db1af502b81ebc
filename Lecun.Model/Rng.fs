namespace Lecun.Model

/// A small seeded generator (SplitMix64) whose stream is fixed by this code alone, so a seed gives the
/// same numbers on every machine and .NET version (System.Random makes no such promise).
type Rng(seed: uint64) =
    let mutable state = seed

    member _.NextUInt64() =
        state <- state + 0x9E3779B97F4A7C15UL
        let mutable z = state
        z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
        z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z ^^^ (z >>> 31)

    /// Uniform in [0, 1) with 24 random bits: every value is exactly representable as float32.
    member r.NextFloat32() = float32 (r.NextUInt64() >>> 40) * (1.0f / 16777216.0f)

    /// Uniform in [0, 1) with 53 random bits.
    member r.NextDouble() = float (r.NextUInt64() >>> 11) * (1.0 / 9007199254740992.0)

    /// Uniform integer in [0, n), without modulo bias (Lemire's multiply-shift with rejection).
    member r.NextInt(n: int) =
        if n <= 0 then invalidArg "n" "must be positive"
        let bound = uint64 n
        let threshold = (0UL - bound) % bound
        let rec draw () =
            let x = r.NextUInt64()
            let hi = uint64 ((System.UInt128.op_Implicit x * System.UInt128.op_Implicit bound) >>> 64)
            let lo = x * bound
            if lo < threshold then draw () else int hi
        draw ()

    /// A standard normal draw (Box-Muller), for the recipes that need one.
    member r.NextGaussian() =
        let u1 = 1.0 - r.NextDouble()
        let u2 = r.NextDouble()
        sqrt (-2.0 * log u1) * cos (2.0 * System.Math.PI * u2)

    /// Fisher-Yates shuffle in place.
    member r.Shuffle(a: 'T array) =
        for i in a.Length - 1 .. -1 .. 1 do
            let j = r.NextInt(i + 1)
            let t = a.[i]
            a.[i] <- a.[j]
            a.[j] <- t

    /// An independent stream for a sub-task (e.g. one seed of a run), derived from this one's seed.
    static member Derive(seed: uint64, stream: uint64) = Rng(seed * 0x9E3779B97F4A7C15UL + stream * 0xD1B54A32D192ED03UL + 1UL)
