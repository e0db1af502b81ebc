/// `data info|verify|fetch|prepare`: what data is found where, content checks, download with
/// verification, and building mnist-sim once so later runs load it fast.
module Lecun.Cli.DataCommand

open System
open System.IO
open Argu
open Spectre.Console
open Lecun.Model
open Lecun.Cli.Output

type InfoArgs =
    | [<CustomCommandLine("--data")>] Data_Dir of dir: string
    | Seed of seed: int

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Data_Dir _ -> "search only this folder for data (default: $LECUN_DATA, ./data, then the embedded copy)."
            | Seed _ -> $"the mnist-sim draw seed (default {MnistSim.defaultSeed})."

type VerifyArgs =
    | [<CustomCommandLine("--data")>] Data_Dir of dir: string
    | [<CustomCommandLine("--data-set")>] Data_Set of name: string
    | Seed of seed: int

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Data_Dir _ -> "search only this folder for data (default: $LECUN_DATA, ./data, then the embedded copy)."
            | Data_Set _ -> "check only this data set: usps or mnist-sim (default: every one found)."
            | Seed _ -> $"the mnist-sim draw seed (default {MnistSim.defaultSeed})."

type FetchArgs =
    | From of url_or_dir: string
    | To of dir: string
    | [<CustomCommandLine("--data")>] Data_Dir of dir: string
    | Timeout of seconds: int

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | From _ -> $"base URL or folder holding zip.train.gz and zip.test.gz (default {Fetch.defaultBaseUrl})."
            | To _ -> "data folder to write usps/ into (default: --data, else $LECUN_DATA, else ./data)."
            | Data_Dir _ -> "the data folder (the default for --to)."
            | Timeout _ -> $"give up when the download (both files) has not finished after this many seconds (default 60); a server silent for {Fetch.readTimeout.TotalSeconds} s is given up sooner."

type PrepareArgs =
    | [<MainCommand; ExactlyOnce>] Set of data_set: string
    | Seed of seed: int
    | To of dir: string
    | [<CustomCommandLine("--data")>] Data_Dir of dir: string

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Set _ -> "the data set to build: mnist-sim."
            | Seed _ -> $"the draw seed (default {MnistSim.defaultSeed})."
            | To _ -> "data folder to write mnist-sim/ into (default: --data, else $LECUN_DATA, else ./data)."
            | Data_Dir _ -> "search only this folder for the MNIST files (and the default for --to)."

type DataArgs =
    | [<CliPrefix(CliPrefix.None)>] Info of ParseResults<InfoArgs>
    | [<CliPrefix(CliPrefix.None)>] Verify of ParseResults<VerifyArgs>
    | [<CliPrefix(CliPrefix.None)>] Fetch of ParseResults<FetchArgs>
    | [<CliPrefix(CliPrefix.None)>] Prepare of ParseResults<PrepareArgs>

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Info _ -> "show the search path, what data is found where, and digits per split and class."
            | Verify _ -> "check the data's content (counts, shapes, ranges, classes) and print a content digest."
            | Fetch _ -> "download the USPS zip-code files (or copy them from a folder), verify them, then save them."
            | Prepare _ -> "build mnist-sim from the MNIST files once and save it, so runs load it fast."

/// Where fetch and prepare write by default: --data, else $LECUN_DATA, else ./data.
let private defaultTarget (dataDir: string option) =
    dataDir
    |> Option.orElse (Environment.GetEnvironmentVariable DataPath.envVar |> Option.ofObj |> Option.filter (String.IsNullOrWhiteSpace >> not))
    |> Option.defaultValue "data"
    |> Path.GetFullPath

let private classTable (data: TrainTest) =
    let header = [ 0..9 ] |> List.map (fun c -> $"{c,6}") |> String.concat ""
    printfn "  %-8s%s %8s" "class" header "total"
    for d, split in [ data.Train, "train"; data.Test, "test" ] do
        let counts = Usps.classCounts d |> Array.map (fun c -> $"{c,6}") |> String.concat ""
        printfn "  %-8s%s %8s" split counts (thousands d.Count)

let private info (args: ParseResults<InfoArgs>) =
    let places = DataPath.places (args.TryGetResult InfoArgs.Data_Dir)
    let seed = args.GetResult(InfoArgs.Seed, MnistSim.defaultSeed)
    printfn "data search path (first folder holding a data set wins):"
    for p in places do
        let where =
            match p.Dir with
            | None when p.Origin = EmbeddedData.origin -> "(built into Lecun.Model: the usps digits and MNIST's t10k files)"
            | None -> "(not set)"
            | Some d when Directory.Exists d -> d
            | Some d -> $"{d} (no such folder)"
        printfn "  %-16s %s" p.Origin where
    if not (places |> List.exists (fun p -> p.Origin = "--data")) then printfn "  %-16s %s" "--data DIR" "(not given; when given, only it is searched)"
    for set in Data.knownSets do
        let name = DataSetName.name set
        printfn ""
        let timer = Diagnostics.Stopwatch.StartNew()
        match Data.loadFrom places set seed with
        | Error e -> printfn "%s: %s" name e
        | Ok data ->
            printfn "%s: %s (loaded in %d ms)" name data.Source timer.ElapsedMilliseconds
            if set = DataSetName.Usps then
                match DataPath.findUsps places with
                | Some files -> printfn "  train  %s\n  test   %s" files.Train.Name files.Test.Name
                | None -> ()
            classTable data

/// The checks of `verify` on one loaded set: (description, passed, detail) triples.
let checks (set: DataSetName) (data: TrainTest) =
    let isUsps = (set = DataSetName.Usps)
    let show (a: int array) = a |> Array.map string |> String.concat " "
    let checkSplit = if isUsps then Usps.checkSplit else MnistSim.checkSplit
    [ for d, split in [ data.Train, "train"; data.Test, "test" ] do
        yield $"{split}: 16x16 images", d.Images.Length = d.Count * Dataset.Pixels, $"{d.Images.Length} values for {d.Count} digits"
        let finite = d.Images |> Array.forall Single.IsFinite
        let lo, hi = (if d.Images.Length = 0 then 0f, 0f else Array.min d.Images, Array.max d.Images)
        yield $"{split}: values in [-1, 1] (min {lo:F4}, max {hi:F4})", finite && lo >= -1f && hi <= 1f, "values outside [-1, 1] or not finite"
        yield $"{split}: labels 0..9", d.Labels |> Array.forall (fun l -> l >= 0 && l <= 9), "a label outside 0..9"
        // A blank image (background only) is no digit: what a file of the wrong geometry or an
        // all-zero file would give.
        let blank = Seq.init d.Count id |> Seq.filter (fun i -> d.Image(i).IndexOfAnyExcept(-1f) < 0) |> Seq.length
        yield $"{split}: every digit has ink", blank = 0, $"{blank} images are background only"
        let counts = Usps.classCounts d
        let what = if isUsps then "the usps split's digit and class counts" else "mnist-sim's split size, every class present"
        match checkSplit split d with
        | Ok() -> yield $"{split}: {d.Count} digits, class counts {show counts} ({what})", true, ""
        | Error e -> yield $"{split}: {d.Count} digits, class counts {show counts}", false, e ]

let private verify (args: ParseResults<VerifyArgs>) =
    let places = DataPath.places (args.TryGetResult VerifyArgs.Data_Dir)
    let seed = args.GetResult(VerifyArgs.Seed, MnistSim.defaultSeed)
    let explicitSet = args.TryGetResult VerifyArgs.Data_Set |> Option.map (DataSetName.parse >> orFail)
    let sets = explicitSet |> Option.map List.singleton |> Option.defaultValue Data.knownSets
    let results =
        sets
        |> List.map (fun set ->
            let name = DataSetName.name set
            match Data.loadFrom places set seed with
            | Error e -> name, Error e
            | Ok data ->
                let results = checks set data
                name, Ok(data, results))
    let mutable failures = 0
    let mutable verified = 0
    for name, result in results do
        match result with
        | Error e when explicitSet.IsSome -> fail e
        | Error e when e.Contains " not found; " -> printfn "%s: skipped (not found)\n" name
        | Error e ->
            failures <- failures + 1
            printfn "%s: FAILED: %s\n" name e
        | Ok (data, results) ->
            verified <- verified + 1
            printfn "%s: %s" name data.Source
            for what, ok, detail in results do
                if ok then printfn "  ok    %s" what
                else
                    failures <- failures + 1
                    printfn "  FAIL  %s: %s" what detail
            printfn "  content digest (SHA-256 of labels and float32 values) %s\n" (Data.digest data)
    if failures > 0 then fail $"{failures} check(s) failed"
    elif verified = 0 then
        fail (results |> List.map (fun (_, r) -> match r with Error e -> e | Ok _ -> "") |> String.concat "; ")
    else printfn "all checks passed"

let private fetch (args: ParseResults<FetchArgs>) =
    let source = args.GetResult(FetchArgs.From, Fetch.defaultBaseUrl)
    let target = args.TryGetResult FetchArgs.To |> Option.map Path.GetFullPath |> Option.defaultWith (fun () -> defaultTarget (args.TryGetResult FetchArgs.Data_Dir))
    let timeout = args.GetResult(FetchArgs.Timeout, 60)
    if timeout <= 0 || timeout > 3600 then fail $"--timeout must be between 1 and 3600 seconds, got {timeout}"
    printfn "fetching usps from %s" source
    let fetchWith progress = Fetch.uspsWithProgress source target (TimeSpan.FromSeconds(float timeout)) progress
    let fetched =
        if isInteractive () then
            progressDisplay()
                .Start(fun ctx ->
                    // One bar per file, in bytes; sized by the announced length, else by the
                    // distributed file's size until the download passes it.
                    let tasks = Collections.Generic.Dictionary<string, ProgressTask>()
                    fetchWith (fun p ->
                        let task =
                            match tasks.TryGetValue p.Split with
                            | true, task -> task
                            | _ ->
                                let task = ctx.AddTask($"zip.{p.Split}", true, float (p.Total |> Option.defaultValue 2_000_000L))
                                tasks[p.Split] <- task
                                task
                        task.MaxValue <- max task.MaxValue (float p.Bytes)
                        task.Value <- float p.Bytes))
        else
            let started = Collections.Generic.HashSet<string>()
            fetchWith (fun p -> if started.Add p.Split then printfn "  %-5s reading %s" p.Split p.From)
    let fetched = fetched |> orFail
    for f in fetched do
        printfn "  %-5s %s digits, verified  %s -> %s" f.Split (thousands f.Digits) f.From f.Path
    printfn "saved in %s" (Path.Combine(target, "usps"))

let private prepare (args: ParseResults<PrepareArgs>) =
    let name = args.GetResult PrepareArgs.Set
    if DataSetName.parse name <> Ok DataSetName.MnistSim then
        fail $"only mnist-sim is prepared (usps is read directly from its files); got '{name}'"
    let dataDir = args.TryGetResult PrepareArgs.Data_Dir
    let places = DataPath.places dataDir
    let seed = args.GetResult(PrepareArgs.Seed, MnistSim.defaultSeed)
    let target = args.TryGetResult PrepareArgs.To |> Option.map Path.GetFullPath |> Option.defaultWith (fun () -> defaultTarget dataDir)
    let files =
        match DataPath.findMnist places with
        | Some files -> files
        | None -> fail $"MNIST files for mnist-sim not found; looked in {DataPath.describe places}; {Data.mnistHowTo}"
    let set = withStatus $"building mnist-sim (seed {seed}) from the MNIST files of {files.From}" (fun () -> Data.buildMnistSim files seed) |> orFail
    let path = Path.Combine(target, "mnist-sim", MnistSim.fileName seed)
    MnistSim.save path set
    let origin =
        if set.TrainFromMnistTrain then "training digits from the MNIST training files, test digits from t10k"
        else "no MNIST training files found: training and test digits drawn disjointly from t10k"
    printfn "mnist-sim (seed %d) built from %s: %s" seed files.From origin
    printfn "  train %s digits, test %s digits -> %s" (thousands set.Train.Count) (thousands set.Test.Count) path
    printfn "  content digest %s" (Data.digest { Train = set.Train; Test = set.Test; Source = "" })
    if not (DataPath.folders (DataPath.places None) |> List.contains target) && dataDir <> Some target then
        printfn "  note: %s is not on the data search path; pass --data %s or set %s" target target DataPath.envVar

/// Runs a data subcommand; problems are raised as UserError (exit code 1).
let run (args: ParseResults<DataArgs>) : int =
    match args.GetSubCommand() with
    | Info a -> info a
    | Verify a -> verify a
    | Fetch a -> fetch a
    | Prepare a -> prepare a
    0
