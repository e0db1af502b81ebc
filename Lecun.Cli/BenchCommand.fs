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
open Lecun.Cli.BenchMeasure

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
            | Data _ -> "folder holding the data sets (default: $LECUN_DATA, ./data, then the embedded copy)."

/// What the MAC counts (Lecun.Model.Macs) cover, in words.
let private describeMacs (layout: NetLayout) =
    let fwd = Macs.forward layout
    let first = List.head layout.Layers
    $"forward {thousands (int fwd)} per digit; training {thousands (int (Macs.trainingPresentation layout))} per presentation = "
    + $"forward {thousands (int fwd)} + weight gradients {thousands (int fwd)} + input gradients {thousands (int (fwd - Macs.notComputed layout))} "
    + $"(every layer but {first.Name}, whose input gradient is not computed). Not counted: bias terms, tanh, the loss gradient, "
    + $"the SGD update ({thousands layout.ParamCount} FMAs)."

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
    let net = Recipe.network Recipe.lecun1989
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
    let paperTrainMacs = Paper.Workstation.trainPresentationsPerSecond * train
    let paperInferMacs = Paper.Workstation.normalizedDigitsPerSecond * fwd
    let paperShare macs = percent (100.0 * macs / Paper.Workstation.peakMacsPerSecond) + "*"
    [ ("training presentations/s (1 core)", rate f.TrainPresentationsPerSecond, rate Paper.Workstation.trainPresentationsPerSecond, ratio (f.TrainPresentationsPerSecond / Paper.Workstation.trainPresentationsPerSecond))
      ("training MAC/s (1 core)", si (f.TrainPresentationsPerSecond * train), si paperTrainMacs + "*", ratio (f.TrainPresentationsPerSecond * train / paperTrainMacs))
      ("training share of FMA peak (1 core)", share (f.TrainPresentationsPerSecond * train) 1, paperShare paperTrainMacs, "")
      ("recognition digits/s, one at a time (1 core)", rate f.SingleDigitsPerSecond, rate Paper.Workstation.normalizedDigitsPerSecond, ratio (f.SingleDigitsPerSecond / Paper.Workstation.normalizedDigitsPerSecond))
      ($"recognition digits/s, batches of {b} (1 core)", rate f.BatchedDigitsPerSecond, rate Paper.Workstation.normalizedDigitsPerSecond, ratio (f.BatchedDigitsPerSecond / Paper.Workstation.normalizedDigitsPerSecond))
      ($"recognition digits/s, batches of {b} ({cores} cores)", rate f.AllCoresDigitsPerSecond, rate Paper.Workstation.normalizedDigitsPerSecond, ratio (f.AllCoresDigitsPerSecond / Paper.Workstation.normalizedDigitsPerSecond))
      ("  the same against full recognition (10-12/s)", rate f.AllCoresDigitsPerSecond, rate Paper.Workstation.fullRecognitionDigitsPerSecond, ratio (f.AllCoresDigitsPerSecond / Paper.Workstation.fullRecognitionDigitsPerSecond))
      ($"recognition MAC/s, batches of {b} ({cores} cores)", si (f.AllCoresDigitsPerSecond * fwd), si paperInferMacs + "*", ratio (f.AllCoresDigitsPerSecond * fwd / paperInferMacs))
      ($"recognition share of FMA peak ({cores} cores)", share (f.AllCoresDigitsPerSecond * fwd) cores, paperShare paperInferMacs, "")
      ($"peak MAC/s ({cores} cores)", (match peak cores with Some p -> si p | None -> "-"), si Paper.Workstation.peakMacsPerSecond, (match peak cores with Some p -> ratio (p / Paper.Workstation.peakMacsPerSecond) | None -> "-")) ]

let private table (layout: NetLayout) (m: Machine) (settings: Settings) (data: TrainTest) (figures: BackendFigures list) (training: TrainingFigures list) (timings: ProductTiming list) =
    let sb = StringBuilder()
    let line (s: string) = sb.AppendLine s |> ignore
    let clock = m.ClockMhz |> Option.map (fun c -> $"{c:F0} MHz") |> Option.defaultValue "unknown clock"
    line $"machine: {m.Processor}, {m.Cores} cores, {clock}, {m.VectorBits}-bit vectors"
    let peakText = m.PeakGmacsPerCore |> Option.map (fun g -> si (g * 1e9) + " MAC/s per core") |> Option.defaultValue "unknown"
    line $"FMA peak: {peakText}; {m.PeakSource}"
    line $"MACs counted: {describeMacs layout}"
    line $"1989: SUN-4/260 with DSP, {si Paper.Workstation.peakMacsPerSecond} MAC/s peak; {thousands Paper.Workstation.presentations} presentations in 3 days; 10-12 digits/s, 30 on normalized digits."
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
    if not training.IsEmpty then
        line ""
        line "training presentations/s by provider, batch size and threads (lecun1989's network, SGD; batch 1 is the paper's per-example path, B > 1 one batched forward and backward per batch: on the 16-lane path under auto and managed, threads splitting its 16-example groups; as im2col GEMMs under mkl, threads MKL's)"
        line $"""{"provider",-9} {"batch",5} {"threads",7} {"path",-12} {"presentations/s",15} {"share of FMA peak",17} {"MACs through MKL",16} {"x per-example",13}"""
        for t in training do
            let peak = (if t.Threads > 1 then m.PeakGmacsAllCores else m.PeakGmacsPerCore) |> Option.map (fun g -> percent (100.0 * t.PresentationsPerSecond * float (Macs.trainingPresentation layout) / (g * 1e9))) |> Option.defaultValue "-"
            let speedup = Training.perExampleRatio training t |> Option.map ratio |> Option.defaultValue "-"
            line $"{t.Backend,-9} {t.Batch,5} {t.Threads,7} {t.Path,-12} {rate t.PresentationsPerSecond,15} {peak,17} {percent (100.0 * t.MklMacShare),16} {speedup,13}"
        line "x per-example: the median over the rounds of this configuration's rate over its provider's batch-1 rate in the same round (the rounds interleave every configuration, so both saw the machine alike)"
    if not timings.IsEmpty then
        line ""
        line "routing: every product of the per-example, batched-training and evaluation paths, its time per call on each provider (best of 3), and where each provider runs it"
        line $"""{"path",-28} {"layer",-5} {"product",-16} {"shape",-22} {"calls",5} {"managed us",10} {"mkl us",8}  auto -> """
        for t in timings do
            let p = t.Product
            let mklText = t.MklMicroseconds |> Option.map (fun v -> inv v "0.000") |> Option.defaultValue "-"
            let routed = match Backend.Auto with null -> "managed" | auto -> Routing.routeOf auto p
            let managedText = inv t.ManagedMicroseconds "0.000"
            let shapeText = ProductShape.describe p.Shape
            line $"{p.Path,-28} {p.Layer,-5} {p.Role,-16} {shapeText,-22} {p.Calls,5} {managedText,10} {mklText,8}  {routed}"
    if figures |> List.exists (fun f -> f.Backend = "mkl") then
        let cbwr = Environment.GetEnvironmentVariable "MKL_CBWR" |> Option.ofObj |> Option.defaultValue "AVX2,STRICT"
        line $"note: MKL_CBWR={cbwr} (the engine pins a code branch for bit-reproducible training); MKL runs on one thread unless a row says otherwise; under auto each product goes where the routing table says."
    sb.ToString()

let private toJson (layout: NetLayout) (m: Machine) (settings: Settings) (data: TrainTest) (figures: BackendFigures list) (training: TrainingFigures list) (timings: ProductTiming list) =
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
              obj [ "train_presentations", num (f.TrainPresentationsPerSecond / Paper.Workstation.trainPresentationsPerSecond)
                    "infer_one_at_a_time", num (f.SingleDigitsPerSecond / Paper.Workstation.normalizedDigitsPerSecond)
                    "infer_batched_one_core", num (f.BatchedDigitsPerSecond / Paper.Workstation.normalizedDigitsPerSecond)
                    "infer_batched_all_cores", num (f.AllCoresDigitsPerSecond / Paper.Workstation.normalizedDigitsPerSecond) ] ]
    let root =
      obj [ "train_presentations_per_s", num bestTrain.TrainPresentationsPerSecond
            "train_backend", str bestTrain.Backend
            "infer_digits_per_s", num bestInfer.AllCoresDigitsPerSecond
            "infer_backend", str bestInfer.Backend
            "ratios_1989",
            obj [ "train_presentations", num (bestTrain.TrainPresentationsPerSecond / Paper.Workstation.trainPresentationsPerSecond)
                  "infer_digits", num (bestInfer.AllCoresDigitsPerSecond / Paper.Workstation.normalizedDigitsPerSecond)
                  "infer_digits_full_recognition", num (bestInfer.AllCoresDigitsPerSecond / Paper.Workstation.fullRecognitionDigitsPerSecond)
                  "peak_macs", opt (peak m.Cores |> Option.map (fun p -> p / Paper.Workstation.peakMacsPerSecond)) ]
            "paper_1989",
            obj [ "machine", str "SUN-4/260 with DSP"
                  "peak_macs_per_s", num Paper.Workstation.peakMacsPerSecond
                  "train_presentations_per_s", num Paper.Workstation.trainPresentationsPerSecond
                  "infer_digits_per_s", num Paper.Workstation.normalizedDigitsPerSecond
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
            "backends", JsonArray(figures |> List.map backend |> Array.ofList)
            "training",
            JsonArray(
                training
                |> List.map (fun t ->
                    obj [ "backend", str t.Backend
                          "batch", int' t.Batch
                          "threads", int' t.Threads
                          "path", str t.Path
                          "presentations_per_s", num t.PresentationsPerSecond
                          "presentations_per_s_samples", JsonArray(t.Samples |> Array.map num)
                          "peak_share", opt (shareOf (t.PresentationsPerSecond * trainMacs) t.Threads)
                          "mkl_mac_share", num t.MklMacShare
                          "per_example_ratio", opt (Training.perExampleRatio training t) ])
                |> Array.ofList)
            "routing",
            JsonArray(
                timings
                |> List.map (fun t ->
                    let p = t.Product
                    obj [ "path", str p.Path
                          "layer", str p.Layer
                          "product", str p.Role
                          "shape", str (ProductShape.describe p.Shape)
                          "calls", int' p.Calls
                          "managed_us", num t.ManagedMicroseconds
                          "mkl_us", opt t.MklMicroseconds
                          "auto", str (match Backend.Auto with null -> "managed" | auto -> Routing.routeOf auto p) ])
                |> Array.ofList) ]
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
    let data = Data.load DataSetName.Usps (args.TryGetResult Data) |> orFail
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
    let layout = ModelFile.layout
    let batches = if quick then [ 1; 64 ] else [ 1; 16; 64; 256 ]
    let training =
        let configs =
            [ for b in backends do
                for batch in batches do
                    for threads in [ 1; 2 ] do
                        // Two threads split a batch's 16-example groups on the lanes; elsewhere the managed
                        // kernels run on one thread and more threads are MKL's.
                        let lanes = Train.runsOnLanes b (Recipe.network Recipe.lecun1989) batch
                        if threads = 1 || lanes || (b.Name <> "managed" && Lecun.Native.Mkl.MklLibrary.Threaded) then yield b, batch, threads ]
        Training.measureAll configs data.Train settings.TrainWarmUp settings.Repeat (fun line -> if not json then eprintfn "%s" line)
    if not json then eprintfn "measuring every product on both providers ..."
    // The routing table at batch 64, and (full runs) the batched products at 16 and 256, which AutoBackend's rule also covers.
    let products =
        Routing.table (Recipe.network Recipe.lecun1989) 64 Evaluate.batch
        @ [ for b in (if quick then [] else [ 16; 256 ]) do yield! Routing.products (Recipe.network Recipe.lecun1989) $"batched training, batch {b}" b true ]
    let timings = Products.measure products (if quick then 0.002 else 0.05)
    if json then printfn "%s" (toJson layout machine settings data figures training timings)
    else printf "%s" (table layout machine settings data figures training timings)
    0
