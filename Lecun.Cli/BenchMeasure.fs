/// bench's measurement harness: CPU facts and the FMA peak (Kernels.FmaPeak, the widest native FMA), timing with warm-up, and the measured
/// rates (training per provider, batch and MKL threads; recognition; every product under both
/// providers). BenchCommand renders what this measures.
module Lecun.Cli.BenchMeasure

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Runtime.Intrinsics
open System.Threading
open Lecun.Model
open Lecun.Native.Backends
open Lecun.Native.Mkl

type Machine =
    { Processor: string
      Cores: int
      ClockMhz: float option
      VectorBits: int
      /// Floats per vector register.
      VectorLanes: int
      /// G MAC/s of one core, if known.
      PeakGmacsPerCore: float option
      /// G MAC/s of all cores running at once, if measured.
      PeakGmacsAllCores: float option
      PeakSource: string }

module Machine =
    let private cpuinfo () =
        try
            if File.Exists "/proc/cpuinfo" then File.ReadAllLines "/proc/cpuinfo" else [||]
        with _ -> [||]

    let private field (lines: string array) (name: string) =
        lines
        |> Array.choose (fun l ->
            let i = l.IndexOf ':'
            if i > 0 && l.Substring(0, i).Trim() = name then Some(l.Substring(i + 1).Trim()) else None)

    let detect (peakOverride: float option) =
        let lines = cpuinfo ()
        let processor =
            field lines "model name" |> Array.tryHead
            |> Option.defaultValue (Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString())
        let clock =
            field lines "cpu MHz"
            |> Array.choose (fun s -> match Double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture) with | true, v when v > 0.0 -> Some v | _ -> None)
            |> fun mhz -> if mhz.Length = 0 then None else Some(Array.max mhz)
        let bits, lanes =
            if Vector512.IsHardwareAccelerated then 512, 16
            elif Vector256.IsHardwareAccelerated then 256, 8
            elif Vector128.IsHardwareAccelerated then 128, 4
            else 32, 1
        let peak, all, source =
            match peakOverride with
            | Some g -> Some g, None, $"--peak-gmacs {g.ToString(CultureInfo.InvariantCulture)} per core"
            | None ->
                let one = Lecun.Native.Kernels.FmaPeak.MeasureMacsPerSecond 1 / 1e9
                let every = Lecun.Native.Kernels.FmaPeak.MeasureMacsPerSecond Environment.ProcessorCount / 1e9
                Some one, Some every,
                $"measured: twelve independent {bits}-bit FMA chains per core, best of 5 runs; one core {one:F1} G, all {Environment.ProcessorCount} at once {every:F1} G (the boost clock a busy core runs at, not the base clock of /proc/cpuinfo)"
        { Processor = processor; Cores = Environment.ProcessorCount; ClockMhz = clock; VectorBits = bits; VectorLanes = lanes; PeakGmacsAllCores = all
          PeakGmacsPerCore = peak; PeakSource = source }

/// Figures of one backend. Rates are medians over the repetitions.
type BackendFigures =
    { Backend: string
      TrainPresentationsPerSecond: float
      TrainSamples: float array
      TrainPresentationsTimed: int
      /// Untimed passes before the timed ones (until the JIT's tiers settle).
      TrainWarmupPasses: int
      /// gen 0, 1, 2 collections during the timed training passes (process-wide).
      TrainCollections: int array
      /// Bytes allocated by the training thread during the timed passes.
      TrainAllocatedBytes: int64
      SingleDigitsPerSecond: float
      BatchedDigitsPerSecond: float
      /// Batched, one thread per core.
      AllCoresDigitsPerSecond: float }

module Measure =
    let median (xs: float array) =
        let s = Array.sort xs
        let n = s.Length
        if n % 2 = 1 then s.[n / 2] else 0.5 * (s.[n / 2 - 1] + s.[n / 2])

    let seconds (start: int64) = Stopwatch.GetElapsedTime(start).TotalSeconds

    /// How long to warm up: the JIT's tiers (tier 0, instrumented, optimized) take a few passes to settle.
    type WarmUp =
        { MinRuns: int
          MinSeconds: float
          /// Warm-up stops here even when the timings have not settled.
          MaxSeconds: float }

    /// Runs `run` until it has run `MinRuns` times for `MinSeconds` and its last two timings agree within 5%
    /// (or `MaxSeconds` have passed). Returns the runs and the fastest run's seconds.
    let warmUp (w: WarmUp) (run: unit -> unit) =
        let clock = Stopwatch.GetTimestamp()
        let mutable runs = 0
        let mutable last = Double.PositiveInfinity
        let mutable previous = Double.PositiveInfinity
        let mutable best = Double.PositiveInfinity
        let settled () = runs >= w.MinRuns && seconds clock >= w.MinSeconds && abs (last - previous) <= 0.05 * previous
        while runs < 1 || (not (settled ()) && seconds clock < w.MaxSeconds) do
            let start = Stopwatch.GetTimestamp()
            run ()
            previous <- last
            last <- seconds start
            best <- min best last
            runs <- runs + 1
        runs, best

    /// Per-example SGD (the paper's recipe) on the training digits: untimed passes until the speed settles,
    /// then `repeat` timed ones; presentations/s of each timed pass, the GC activity across them, and
    /// the warm-up passes.
    let training (backend: IBackend) (train: Dataset) (warm: WarmUp) (repeat: int) =
        let recipe = Recipe.lecun1989
        let net = Recipe.network recipe
        let parameters = Init.create recipe.WeightInit net.Layout recipe.Seed
        let ws = Workspace.create net 1
        let state = Train.createState net recipe
        let progress: int -> unit = ignore
        let mutable pass = 0
        let warmupPasses, _ =
            warmUp warm (fun () ->
                pass <- pass + 1
                Train.trainOnePass backend net recipe pass parameters ws state train progress)
        let samples = Array.zeroCreate<float> repeat
        let gcBefore = Array.init 3 GC.CollectionCount
        let bytesBefore = GC.GetAllocatedBytesForCurrentThread()
        for r in 0 .. repeat - 1 do
            let start = Stopwatch.GetTimestamp()
            Train.trainOnePass backend net recipe (warmupPasses + r + 1) parameters ws state train progress
            samples.[r] <- float train.Count / seconds start
        let bytes = GC.GetAllocatedBytesForCurrentThread() - bytesBefore
        let collections = Array.init 3 (fun g -> GC.CollectionCount g - gcBefore.[g])
        samples, collections, bytes, warmupPasses

    /// Classifies digits [first, first+count) in batches; returns a checksum of the predictions.
    let recognize (backend: IBackend) (net: Network) (parameters: float32 array) (ws: Workspace) (images: float32 array) (first: int) (count: int) =
        let outputs = net.Layout.OutputSize
        let mutable sum = 0
        let mutable start = first
        let stop = first + count
        while start < stop do
            let n = min ws.Capacity (stop - start)
            Forward.run backend net parameters ws images (start * Dataset.Pixels) n
            let y = Forward.outputs net ws
            for b in 0 .. n - 1 do
                sum <- sum + Loss.argmax y (b * outputs) outputs
            start <- start + n
        sum

    /// Warms up, then says how many sweeps over the digits make one timed repetition last `minSeconds`.
    let calibrate (warm: WarmUp) (sweep: unit -> int) (minSeconds: float) =
        let _, perSweep = warmUp warm (fun () -> sweep () |> ignore)
        max 1 (int (ceil (minSeconds / perSweep)))

    /// Recognition on the calling thread, `batch` digits per forward pass: digits/s per repetition.
    let oneCore (backend: IBackend) (net: Network) (parameters: float32 array) (test: Dataset) (batch: int) (warm: WarmUp) (minSeconds: float) (repeat: int) =
        let ws = Workspace.create net batch
        let sweep () = recognize backend net parameters ws test.Images 0 test.Count
        let sweeps = calibrate warm sweep minSeconds
        Array.init repeat (fun _ ->
            let start = Stopwatch.GetTimestamp()
            for _ in 1 .. sweeps do sweep () |> ignore
            float (sweeps * test.Count) / seconds start)

    /// Recognition on `threads` threads, each with its own workspace and its own contiguous share of the
    /// digits, started together; digits/s of all threads per repetition (the first run is a warm-up).
    let allCores (backend: IBackend) (net: Network) (parameters: float32 array) (test: Dataset) (batch: int) (threads: int) (warm: WarmUp) (minSeconds: float) (repeat: int) =
        let bounds = Array.init (threads + 1) (fun t -> t * test.Count / threads)
        let workspaces = Array.init threads (fun _ -> Workspace.create net batch)
        let share t () = recognize backend net parameters workspaces.[t] test.Images bounds.[t] (bounds.[t + 1] - bounds.[t])
        let sweeps = calibrate warm (share 0) minSeconds
        let runOnce () =
            use ready = new Barrier(threads + 1)
            let workers =
                Array.init threads (fun t ->
                    let th = Thread((fun () ->
                                ready.SignalAndWait()
                                for _ in 1 .. sweeps do share t () |> ignore), IsBackground = true, Name = $"bench-{t}")
                    th.Start()
                    th)
            ready.SignalAndWait()
            let start = Stopwatch.GetTimestamp()
            for w in workers do w.Join()
            float (sweeps * test.Count) / seconds start
        runOnce () |> ignore
        Array.init repeat (fun _ -> runOnce ())

/// Training throughput of one provider at one batch size and thread count.
type TrainingFigures =
    { Backend: string
      Batch: int
      /// Threads of the run: on the 16-lane path, the threads its 16-example groups are split over;
      /// otherwise the threads MKL may use for its products (the managed kernels run on one).
      Threads: int
      /// The path the batches run on: per-example, im2col+gemm or lanes.
      Path: string
      PresentationsPerSecond: float
      Samples: float array
      /// Multiply-adds MKL served during the timed passes over the MACs of those presentations
      /// (Macs.trainingPresentation each).
      MklMacShare: float }

/// The time of each product of the routing table under managed and under MKL.
type ProductTiming =
    { Product: Product
      /// Microseconds per call, managed kernels.
      ManagedMicroseconds: float
      /// Microseconds per call through MKL (None without MKL).
      MklMicroseconds: float option }

module Training =
    /// One configuration of the training table, warmed up and ready to time one pass at a time.
    type private Session =
        { Backend: IBackend
          Batch: int
          Threads: int
          MklThreads: int
          Pass: unit -> unit
          mutable Samples: float list
          mutable Macs: int64 }

    /// The paper's recipe (SGD; its cost does not depend on the optimizer's details) under each
    /// (provider, batch size, MKL threads) of `configs`: each warmed up (untimed passes until the speed
    /// settles), then `repeat` rounds in which every configuration times one pass over the training digits
    /// in turn. Round-robin, so a slow spell of the machine (this VM's speed drifts by up to 1.7x within
    /// seconds) falls on every configuration alike instead of on whichever was measured then.
    let measureAll (configs: (IBackend * int * int) list) (train: Dataset) (warm: Measure.WarmUp) (repeat: int) (progress: string -> unit) =
        let withThreads threads (f: unit -> 'a) =
            let previous = if threads > 1 then MklLibrary.SetThreadsOnThisThread threads else 0
            try f () finally if threads > 1 then MklLibrary.SetThreadsOnThisThread previous |> ignore
        let sessions =
            configs |> List.map (fun (backend, batch, threads) ->
                progress $"warming up training: {backend.Name}, batch {batch}, {threads} thread(s) ..."
                let recipe = { Recipe.lecun1989 with BatchSize = batch }
                let net = Recipe.network recipe
                let parameters = Init.create recipe.WeightInit net.Layout recipe.Seed
                let ws = Workspace.create net batch
                let state = { Train.createState net recipe with LaneThreads = threads }
                let mutable pass = 0
                let one () =
                    pass <- pass + 1
                    Train.trainOnePass backend net recipe pass parameters ws state train ignore
                // On the lanes the threads are the lane groups'; MKL's only where MKL runs the batch's products.
                let mklThreads = if Train.runsOnLanes backend net batch then 1 else threads
                withThreads mklThreads (fun () -> Measure.warmUp warm one |> ignore)
                { Backend = backend; Batch = batch; Threads = threads; MklThreads = mklThreads; Pass = one; Samples = []; Macs = 0L })
        progress $"timing training: {repeat} round(s) over {sessions.Length} configurations ..."
        for _ in 1 .. repeat do
            for s in sessions do
                withThreads s.MklThreads (fun () ->
                    let before = MklCalls.OnThisThread
                    let start = Stopwatch.GetTimestamp()
                    s.Pass ()
                    s.Samples <- float train.Count / Measure.seconds start :: s.Samples
                    s.Macs <- s.Macs + (MklCalls.OnThisThread - before).Macs)
        let perPresentation = float (Macs.trainingPresentation ModelFile.layout)
        sessions |> List.map (fun s ->
            let samples = s.Samples |> List.rev |> Array.ofList
            let net = Recipe.network Recipe.lecun1989
            let path =
                if s.Batch = 1 then "per-example"
                elif Train.runsOnLanes s.Backend net s.Batch then KernelPath.name Lanes
                else KernelPath.name Im2colGemm
            { Backend = s.Backend.Name; Batch = s.Batch; Threads = s.Threads; Path = path
              PresentationsPerSecond = Measure.median samples; Samples = samples
              MklMacShare = float s.Macs / (float repeat * float train.Count * perPresentation) })

    /// A configuration's speed over its provider's per-example (batch 1, one thread) speed: the median over
    /// the rounds of measureAll of the two rates measured in the same round.
    let perExampleRatio (all: TrainingFigures list) (t: TrainingFigures) =
        all
        |> List.tryFind (fun b -> b.Backend = t.Backend && b.Batch = 1 && b.Threads = 1 && b.Samples.Length = t.Samples.Length)
        |> Option.map (fun b -> Measure.median (Array.map2 (/) t.Samples b.Samples))

module Products =
    /// Microseconds per call of one product shape on a provider: random operands, calls repeated for
    /// about `seconds`, the best of 3 such runs.
    let time (backend: IBackend) (shape: ProductShape) (seconds: float) =
        let rng = Rng 5UL
        let fill n = Array.init (max n 1) (fun _ -> rng.NextFloat32() - 0.5f)
        let call =
            match shape with
            | Gemm(ta, tb, m, n, k) ->
                let a, b, c = fill (m * k), fill (k * n), fill (m * n)
                let lda, ldb = (if ta then m else k), (if tb then k else n)
                fun () -> backend.Gemm(ta, tb, m, n, k, 1.0f, ReadOnlySpan a, lda, ReadOnlySpan b, ldb, 0.0f, Span c, n)
            | Gemv(t, m, n) ->
                let a, x, y = fill (m * n), fill (if t then m else n), fill (if t then n else m)
                fun () -> backend.Gemv(t, m, n, 1.0f, ReadOnlySpan a, n, ReadOnlySpan x, 0.0f, Span y)
        for _ in 1 .. 20 do call ()
        let once () =
            let mutable calls = 0
            let start = Stopwatch.GetTimestamp()
            while Measure.seconds start < seconds do
                for _ in 1 .. 10 do call ()
                calls <- calls + 10
            1e6 * Measure.seconds start / float calls
        List.min [ once (); once (); once () ]

    /// Both providers' time for every distinct product of the routing table.
    let measure (table: Product list) (seconds: float) =
        let cache = Collections.Generic.Dictionary<string * ProductShape, float>()
        let timed (backend: IBackend) shape =
            match cache.TryGetValue((backend.Name, shape)) with
            | true, t -> t
            | _ ->
                let t = time backend shape seconds
                cache.[(backend.Name, shape)] <- t
                t
        table
        |> List.map (fun p ->
            { Product = p
              ManagedMicroseconds = timed Backend.Managed p.Shape
              MklMicroseconds = Backend.Mkl |> Option.ofObj |> Option.map (fun mkl -> timed mkl p.Shape) })
