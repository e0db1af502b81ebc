/// `bench`: throughput on this machine against the 1989 workstation (a SUN-4/260 with a DSP board):
/// training presentations/s, recognition digits/s, effective multiply-accumulates/s and the share of
/// this CPU's FMA peak, each beside the paper's figure.
module Lecun.Cli.BenchCommand

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Runtime.Intrinsics
open System.Text
open System.Text.Json.Nodes
open System.Threading
open Argu
open Lecun.Model
open Lecun.Native.Backends
open Lecun.Cli.Output

type BenchArgs =
    | Backend of name: string
    | Repeat of n: int
    | Quick
    | Json
    | Peak_Gmacs of gmacs: float
    | Data of dir: string

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Backend _ -> "auto, mkl, managed or all (default: every backend that loads)."
            | Repeat _ -> "timed repetitions of each measurement; the median is reported (default 5)."
            | Quick -> "one repetition and short timings (a smoke test; the figures are rough)."
            | Json -> "print one JSON object instead of the table."
            | Peak_Gmacs _ -> "FMA peak of one core in G multiply-accumulates/s (default: measured with independent FMA chains)."
            | Data _ -> "folder holding the data sets (default: $LECUN_DATA, ./data, ../shared/data)."

/// The paper's machine and figures (LeCun et al. 1989, section 6; see DESIGN, "Throughput against the 1989 workstation").
module Paper =
    /// The DSP board's peak multiply-accumulates per second.
    let peakMacsPerSecond = 12.5e6
    /// 23 passes over 7291 digits (167,693 presentations) in 3 days.
    let presentations = 167_693
    let trainingSeconds = 3.0 * 86_400.0
    let trainPresentationsPerSecond = float presentations / trainingSeconds
    /// Recognition of already normalized digits (what this engine does: USPS digits are normalized 16x16).
    let normalizedDigitsPerSecond = 30.0
    /// Recognition including the normalization of the raw digit: 10 to 12 digits/s; ratios use 12.
    let fullRecognitionDigitsPerSecond = 12.0

/// What the MAC counts (Lecun.Model.Macs) cover, in words.
let private describeMacs (layout: NetLayout) =
    let fwd = Macs.forward layout
    let first = List.head layout.Layers
    $"forward {thousands (int fwd)} per digit; training {thousands (int (Macs.trainingPresentation layout))} per presentation = "
    + $"forward {thousands (int fwd)} + weight gradients {thousands (int fwd)} + input gradients {thousands (int (fwd - Macs.notComputed layout))} "
    + $"(every layer but {first.Name}, whose input gradient is not computed). Not counted: bias terms, tanh, the loss gradient, "
    + $"the SGD update ({thousands layout.ParamCount} FMAs)."

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

module private Measure =
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

let private inv (x: float) (format: string) = x.ToString(format, CultureInfo.InvariantCulture)

/// 1,234,567 for large rates, 0.647 for small ones.
let private rate (x: float) =
    if x >= 1000.0 then inv x "N0" elif x >= 10.0 then inv x "0.#" else inv x "0.###"

/// 4.18 G, 12.5 M.
let private si (x: float) =
    let scaled, unit = if x >= 1e9 then x / 1e9, "G" elif x >= 1e6 then x / 1e6, "M" elif x >= 1e3 then x / 1e3, "k" else x, ""
    let digits = if scaled >= 100.0 then "0" elif scaled >= 10.0 then "0.0" else "0.00"
    $"{inv scaled digits} {unit}"

let private ratio (x: float) = if x >= 100.0 then inv x "N0" + "x" else inv x "0.##" + "x"
let private percent (x: float) = (if x >= 10.0 then inv x "0.0" elif x >= 0.1 then inv x "0.00" else inv x "0.0000") + " %"

let private backendsFor (name: string option) =
    match name |> Option.map (fun s -> s.Trim().ToLowerInvariant()) with
    | None | Some "all" ->
        if isNull Backend.Mkl then eprintfn "note: MKL is not available (%s); measuring the managed backend only." Backend.MklUnavailableReason
        // auto, the default, first.
        List.ofSeq Backend.Available
    | Some one -> [ Providers.choose (Some one) ]

type private Settings =
    { Repeat: int
      TrainWarmUp: Measure.WarmUp
      InferWarmUp: Measure.WarmUp
      /// Length of one timed recognition repetition.
      MinSeconds: float }

let private measure (settings: Settings) (data: TrainTest) (backend: IBackend) =
    let net = Network.lecun1989
    let trainSamples, collections, bytes, warmupPasses = Measure.training backend data.Train settings.TrainWarmUp settings.Repeat
    // Recognition uses the trained-from-seed weights' shapes only; its cost does not depend on their values.
    let parameters = Init.create Recipe.lecun1989.WeightInit net.Layout Recipe.lecun1989.Seed
    let single = Measure.oneCore backend net parameters data.Test 1 settings.InferWarmUp settings.MinSeconds settings.Repeat
    let batched = Measure.oneCore backend net parameters data.Test Evaluate.batch settings.InferWarmUp settings.MinSeconds settings.Repeat
    let cores = Environment.ProcessorCount
    let all = Measure.allCores backend net parameters data.Test Evaluate.batch cores settings.InferWarmUp settings.MinSeconds settings.Repeat
    { Backend = backend.Name
      TrainPresentationsPerSecond = Measure.median trainSamples
      TrainSamples = trainSamples
      TrainPresentationsTimed = settings.Repeat * data.Train.Count
      TrainWarmupPasses = warmupPasses
      TrainCollections = collections
      TrainAllocatedBytes = bytes
      SingleDigitsPerSecond = Measure.median single
      BatchedDigitsPerSecond = Measure.median batched
      AllCoresDigitsPerSecond = Measure.median all }

/// Rows of (figure, this machine, 1989, ratio) of one backend.
let private rows (layout: NetLayout) (m: Machine) (f: BackendFigures) =
    let fwd = float (Macs.forward layout)
    let train = float (Macs.trainingPresentation layout)
    // One core's peak, or all cores' measured together (shared virtual cores do not add up).
    let peak cores =
        if cores > 1 then m.PeakGmacsAllCores |> Option.orElse (m.PeakGmacsPerCore |> Option.map (fun g -> g * float cores)) |> Option.map ((*) 1e9)
        else m.PeakGmacsPerCore |> Option.map ((*) 1e9)
    let share macs cores = match peak cores with Some p -> percent (100.0 * macs / p) | None -> "-"
    let b = Evaluate.batch
    let cores = m.Cores
    let paperTrainMacs = Paper.trainPresentationsPerSecond * train
    let paperInferMacs = Paper.normalizedDigitsPerSecond * fwd
    let paperShare macs = percent (100.0 * macs / Paper.peakMacsPerSecond) + "*"
    [ ("training presentations/s (1 core)", rate f.TrainPresentationsPerSecond, rate Paper.trainPresentationsPerSecond, ratio (f.TrainPresentationsPerSecond / Paper.trainPresentationsPerSecond))
      ("training MAC/s (1 core)", si (f.TrainPresentationsPerSecond * train), si paperTrainMacs + "*", ratio (f.TrainPresentationsPerSecond * train / paperTrainMacs))
      ("training share of FMA peak (1 core)", share (f.TrainPresentationsPerSecond * train) 1, paperShare paperTrainMacs, "")
      ("recognition digits/s, one at a time (1 core)", rate f.SingleDigitsPerSecond, rate Paper.normalizedDigitsPerSecond, ratio (f.SingleDigitsPerSecond / Paper.normalizedDigitsPerSecond))
      ($"recognition digits/s, batches of {b} (1 core)", rate f.BatchedDigitsPerSecond, rate Paper.normalizedDigitsPerSecond, ratio (f.BatchedDigitsPerSecond / Paper.normalizedDigitsPerSecond))
      ($"recognition digits/s, batches of {b} ({cores} cores)", rate f.AllCoresDigitsPerSecond, rate Paper.normalizedDigitsPerSecond, ratio (f.AllCoresDigitsPerSecond / Paper.normalizedDigitsPerSecond))
      ("  the same against full recognition (10-12/s)", rate f.AllCoresDigitsPerSecond, rate Paper.fullRecognitionDigitsPerSecond, ratio (f.AllCoresDigitsPerSecond / Paper.fullRecognitionDigitsPerSecond))
      ($"recognition MAC/s, batches of {b} ({cores} cores)", si (f.AllCoresDigitsPerSecond * fwd), si paperInferMacs + "*", ratio (f.AllCoresDigitsPerSecond * fwd / paperInferMacs))
      ($"recognition share of FMA peak ({cores} cores)", share (f.AllCoresDigitsPerSecond * fwd) cores, paperShare paperInferMacs, "")
      ($"peak MAC/s ({cores} cores)", (match peak cores with Some p -> si p | None -> "-"), si Paper.peakMacsPerSecond, (match peak cores with Some p -> ratio (p / Paper.peakMacsPerSecond) | None -> "-")) ]

let private table (layout: NetLayout) (m: Machine) (settings: Settings) (data: TrainTest) (figures: BackendFigures list) =
    let sb = StringBuilder()
    let line (s: string) = sb.AppendLine s |> ignore
    let clock = m.ClockMhz |> Option.map (fun c -> $"{c:F0} MHz") |> Option.defaultValue "unknown clock"
    line $"machine: {m.Processor}, {m.Cores} cores, {clock}, {m.VectorBits}-bit vectors"
    let peakText = m.PeakGmacsPerCore |> Option.map (fun g -> si (g * 1e9) + " MAC/s per core") |> Option.defaultValue "unknown"
    line $"FMA peak: {peakText}; {m.PeakSource}"
    line $"MACs counted: {describeMacs layout}"
    line $"1989: SUN-4/260 with DSP, {si Paper.peakMacsPerSecond} MAC/s peak; {thousands Paper.presentations} presentations in 3 days; 10-12 digits/s, 30 on normalized digits."
    line $"data: {data.Source} ({data.Train.Count} train, {data.Test.Count} test digits); median of {settings.Repeat} repetition(s) after warm-up (until the timings settle)"
    for f in figures do
        line ""
        line $"backend {f.Backend}"
        let header = [ "figure", "this machine", "1989", "ratio" ]
        let all = header @ rows layout m f
        let w1 = all |> List.map (fun (a, _, _, _) -> a.Length) |> List.max
        let w2 = all |> List.map (fun (_, b, _, _) -> b.Length) |> List.max
        let w3 = all |> List.map (fun (_, _, c, _) -> c.Length) |> List.max
        let w4 = all |> List.map (fun (_, _, _, d) -> d.Length) |> List.max
        for a, b, c, d in all do
            line ($"{a.PadRight w1}  {b.PadLeft w2}  {c.PadLeft w3}  {d.PadLeft w4}".TrimEnd())
        let c = f.TrainCollections
        line $"GC during the timed training ({thousands f.TrainPresentationsTimed} presentations, after {f.TrainWarmupPasses} warm-up passes): collections gen0/1/2 {c.[0]}/{c.[1]}/{c.[2]}, allocated {f.TrainAllocatedBytes} bytes"
    line ""
    let bestTrain = figures |> List.maxBy (fun f -> f.TrainPresentationsPerSecond)
    let bestInfer = figures |> List.maxBy (fun f -> f.AllCoresDigitsPerSecond)
    line $"best: training {rate bestTrain.TrainPresentationsPerSecond} presentations/s ({bestTrain.Backend}, 1 core), recognition {rate bestInfer.AllCoresDigitsPerSecond} digits/s ({bestInfer.Backend}, {m.Cores} cores)"
    line "* derived: the 1989 rate times the MACs counted above; its share is of the DSP's 12.5 M MAC/s peak."
    if figures |> List.exists (fun f -> f.Backend = "mkl") then
        let cbwr = Environment.GetEnvironmentVariable "MKL_CBWR" |> Option.ofObj |> Option.defaultValue "AVX2,STRICT"
        line $"note: MKL runs sequentially with MKL_CBWR={cbwr} (the engine pins a code branch for bit-reproducible training); small products run on the managed kernels."
    sb.ToString()

let private toJson (layout: NetLayout) (m: Machine) (settings: Settings) (data: TrainTest) (figures: BackendFigures list) =
    let num (x: float) = JsonValue.Create x :> JsonNode
    let int' (x: int) = JsonValue.Create x :> JsonNode
    let str (s: string) = JsonValue.Create s :> JsonNode
    let opt (x: float option) = match x with Some v -> num v | None -> null
    let obj (pairs: (string * JsonNode) list) = JsonObject(pairs |> List.map (fun (k, v) -> Collections.Generic.KeyValuePair(k, v))) :> JsonNode
    let fwd = float (Macs.forward layout)
    let trainMacs = float (Macs.trainingPresentation layout)
    // One core's peak, or all cores' measured together (shared virtual cores do not add up).
    let peak cores =
        if cores > 1 then m.PeakGmacsAllCores |> Option.orElse (m.PeakGmacsPerCore |> Option.map (fun g -> g * float cores)) |> Option.map ((*) 1e9)
        else m.PeakGmacsPerCore |> Option.map ((*) 1e9)
    let shareOf macs cores = peak cores |> Option.map (fun p -> macs / p)
    let best f = figures |> List.maxBy f
    let bestTrain = best (fun f -> f.TrainPresentationsPerSecond)
    let bestInfer = best (fun f -> f.AllCoresDigitsPerSecond)
    let backend (f: BackendFigures) =
        obj [ "backend", str f.Backend
              "train_presentations_per_s", num f.TrainPresentationsPerSecond
              "train_presentations_per_s_samples", JsonArray(f.TrainSamples |> Array.map num)
              "train_macs_per_s", num (f.TrainPresentationsPerSecond * trainMacs)
              "train_peak_share", opt (shareOf (f.TrainPresentationsPerSecond * trainMacs) 1)
              "train_presentations_timed", int' f.TrainPresentationsTimed
              "train_warmup_passes", int' f.TrainWarmupPasses
              "train_gc_collections", JsonArray(f.TrainCollections |> Array.map int')
              "train_allocated_bytes", (JsonValue.Create f.TrainAllocatedBytes :> JsonNode)
              "infer_one_at_a_time_digits_per_s", num f.SingleDigitsPerSecond
              "infer_batched_one_core_digits_per_s", num f.BatchedDigitsPerSecond
              "infer_batched_all_cores_digits_per_s", num f.AllCoresDigitsPerSecond
              "infer_macs_per_s", num (f.AllCoresDigitsPerSecond * fwd)
              "infer_peak_share", opt (shareOf (f.AllCoresDigitsPerSecond * fwd) m.Cores)
              "ratios_1989",
              obj [ "train_presentations", num (f.TrainPresentationsPerSecond / Paper.trainPresentationsPerSecond)
                    "infer_one_at_a_time", num (f.SingleDigitsPerSecond / Paper.normalizedDigitsPerSecond)
                    "infer_batched_one_core", num (f.BatchedDigitsPerSecond / Paper.normalizedDigitsPerSecond)
                    "infer_batched_all_cores", num (f.AllCoresDigitsPerSecond / Paper.normalizedDigitsPerSecond) ] ]
    let root =
      obj [ "train_presentations_per_s", num bestTrain.TrainPresentationsPerSecond
            "train_backend", str bestTrain.Backend
            "infer_digits_per_s", num bestInfer.AllCoresDigitsPerSecond
            "infer_backend", str bestInfer.Backend
            "ratios_1989",
            obj [ "train_presentations", num (bestTrain.TrainPresentationsPerSecond / Paper.trainPresentationsPerSecond)
                  "infer_digits", num (bestInfer.AllCoresDigitsPerSecond / Paper.normalizedDigitsPerSecond)
                  "infer_digits_full_recognition", num (bestInfer.AllCoresDigitsPerSecond / Paper.fullRecognitionDigitsPerSecond)
                  "peak_macs", opt (peak m.Cores |> Option.map (fun p -> p / Paper.peakMacsPerSecond)) ]
            "paper_1989",
            obj [ "machine", str "SUN-4/260 with DSP"
                  "peak_macs_per_s", num Paper.peakMacsPerSecond
                  "train_presentations_per_s", num Paper.trainPresentationsPerSecond
                  "infer_digits_per_s", num Paper.normalizedDigitsPerSecond
                  "infer_digits_per_s_full_recognition", str "10-12" ]
            "machine",
            obj [ "processor", str m.Processor
                  "cores", int' m.Cores
                  "clock_mhz", opt m.ClockMhz
                  "vector_bits", int' m.VectorBits
                  "vector_lanes", int' m.VectorLanes
                  "peak_gmacs_per_core", opt m.PeakGmacsPerCore
                  "peak_gmacs_all_cores", opt m.PeakGmacsAllCores
                  "peak_source", str m.PeakSource ]
            "counts",
            obj [ "macs_forward", int' (int (Macs.forward layout))
                  "macs_training_presentation", int' (int (Macs.trainingPresentation layout))
                  "macs_note", str (describeMacs layout)
                  "train_digits", int' data.Train.Count
                  "test_digits", int' data.Test.Count
                  "eval_batch", int' Evaluate.batch
                  "repeat", int' settings.Repeat ]
            "backends", JsonArray(figures |> List.map backend |> Array.ofList) ]
    root.ToJsonString(jsonOptions)

let run (args: ParseResults<BenchArgs>) =
    let quick = args.Contains Quick
    let repeat = args.GetResult(Repeat, if quick then 1 else 5)
    if repeat < 1 then fail $"--repeat must be at least 1, got {repeat}"
    let peakOverride = args.TryGetResult Peak_Gmacs
    match peakOverride with
    | Some g when not (g > 0.0 && Double.IsFinite g) -> fail $"--peak-gmacs must be a positive number, got {g}"
    | _ -> ()
    let backends = backendsFor (args.TryGetResult Backend)
    let data = Data.load "usps" (args.TryGetResult Data) |> orFail
    let machine = Machine.detect peakOverride
    let settings =
        if quick then
            { Repeat = repeat
              TrainWarmUp = { MinRuns = 1; MinSeconds = 0.0; MaxSeconds = 0.0 }
              InferWarmUp = { MinRuns = 3; MinSeconds = 0.0; MaxSeconds = 0.0 }
              MinSeconds = 0.02 }
        else
            { Repeat = repeat
              TrainWarmUp = { MinRuns = 3; MinSeconds = 1.0; MaxSeconds = 10.0 }
              InferWarmUp = { MinRuns = 3; MinSeconds = 0.5; MaxSeconds = 5.0 }
              MinSeconds = 0.3 }
    let json = args.Contains Json
    let figures =
        backends
        |> List.map (fun b ->
            if not json then eprintfn "measuring %s ..." b.Name
            measure settings data b)
    let layout = Layout.lecun1989
    if json then printfn "%s" (toJson layout machine settings data figures)
    else printf "%s" (table layout machine settings data figures)
    0
