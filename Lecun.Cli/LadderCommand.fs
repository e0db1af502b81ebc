/// `ladder`: the essay's 33 years of improvements, one change per step, each over several seeds.
module Lecun.Cli.LadderCommand

open System
open System.IO
open System.Text.Json.Nodes
open Argu
open Spectre.Console
open Lecun.Model
open Lecun.Cli.Output

type LadderArgs =
    | Data_Set of name: string
    | Data of dir: string
    | Seeds of count: int
    | Seed of first: int
    | Steps of list: string
    | Jobs of count: int
    | Backend of name: string
    | Out of dir: string
    | Force
    | Limit of digits: int

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Data_Set _ -> "usps (default, the paper's digits) or mnist-sim (the essay's simulated set; step 5 needs MNIST's training files)."
            | Data _ -> "folder holding the data sets."
            | Seeds _ -> "seeds per step (default 5)."
            | Seed _ -> "first seed (default 1337); seed s of every step starts from the same weights."
            | Steps _ -> "steps to run: all (default), a range like 0-4, or a list like 0,2,4 (6.. are the refinements)."
            | Jobs _ -> "runs at a time (default: one per core)."
            | Backend _ -> Providers.usage
            | Out _ -> "folder for ladder.json, ladder.csv and ladder.png (default: a new folder under runs/); refused when it already holds files, unless they are a finished run and --force is given."
            | Force -> "replace an --out folder that holds a finished run of this program (no other folder, never the working folder or one that contains it)."
            | Limit _ -> "use only the first N digits of each split (a quick look; the figures are then not comparable)."

type private StepResult =
    { Step: LadderStep
      Runs: (int * PassMetrics) array
      Seconds: float }

let private summary (r: StepResult) = SeedsSummary.ofFinals (Array.map snd r.Runs)

let private toJson (dataSet: DataSetName) (seeds: int) (seconds: float) (results: StepResult list) (skipped: (LadderStep * string) list) =
    let essay (step: LadderStep) =
        match step.Essay with
        | Some (train, test) -> JsonObject(dict [ "train_error", JsonValue.Create train :> JsonNode; "test_error", JsonValue.Create test ]) :> JsonNode
        | None -> null
    let step (r: StepResult) =
        JsonObject(
            dict [ "step", JsonValue.Create r.Step.Label :> JsonNode
                   "adds", JsonValue.Create r.Step.Adds
                   "passes", JsonValue.Create r.Step.Recipe.Passes
                   "data_set", JsonValue.Create(DataSetName.name r.Step.DataSet)
                   "command", JsonValue.Create r.Step.Command
                   "seconds", JsonValue.Create r.Seconds
                   "train", RunJson.splitSummary (summary r).Train
                   "test", RunJson.splitSummary (summary r).Test
                   "essay", essay r.Step
                   "runs",
                   JsonArray(
                       r.Runs
                       |> Array.map (fun (seed, m) ->
                           JsonObject(dict [ "seed", JsonValue.Create seed :> JsonNode; "train_error", JsonValue.Create m.Train.Error
                                             "test_error", JsonValue.Create m.Test.Error; "train_misses", JsonValue.Create m.Train.Misses
                                             "test_misses", JsonValue.Create m.Test.Misses ]) :> JsonNode)) ])
        :> JsonNode
    let skip (s: LadderStep, why: string) =
        JsonObject(dict [ "step", JsonValue.Create s.Label :> JsonNode; "adds", JsonValue.Create s.Adds; "command", JsonValue.Create s.Command; "skipped", JsonValue.Create why ]) :> JsonNode
    JsonObject(
        dict [ "data_set", JsonValue.Create(DataSetName.name dataSet) :> JsonNode
               "seeds", JsonValue.Create seeds
               "seconds", JsonValue.Create seconds
               "steps", JsonArray(results |> List.map step |> Array.ofList)
               "skipped", JsonArray(skipped |> List.map skip |> Array.ofList) ])
        .ToJsonString(jsonOptions)

let private toCsv (results: StepResult list) =
    let inv (x: float) = x.ToString("0.####", Globalization.CultureInfo.InvariantCulture)
    let quote (s: string) = "\"" + s.Replace("\"", "\"\"") + "\""
    let rows =
        results |> List.map (fun r ->
            let sum = summary r
            let train, trainMisses, test, testMisses = sum.Train.Error, sum.Train.Misses, sum.Test.Error, sum.Test.Misses
            let essayTrain, essayTest = match r.Step.Essay with Some (a, b) -> inv a, inv b | None -> "", ""
            String.Join(",", [ r.Step.Label; quote r.Step.Adds; string r.Step.Recipe.Passes; string r.Runs.Length
                               inv train.Mean; inv train.Sd; inv trainMisses; inv test.Mean; inv test.Sd; inv testMisses
                               essayTrain; essayTest; inv r.Seconds; quote r.Step.Command ]))
    String.Join("\n", "step,adds,passes,seeds,train_error_mean,train_error_sd,train_misses_mean,test_error_mean,test_error_sd,test_misses_mean,essay_train_error,essay_test_error,run_seconds,command" :: rows) + "\n"

let private table (results: StepResult list) (skipped: (LadderStep * string) list) =
    let addsWidth = (results |> List.map (fun r -> r.Step.Adds.Length)) @ (skipped |> List.map (fun (s, _) -> s.Adds.Length)) |> List.fold max 4
    let row (step: string) (adds: string) (passes: string) (train: string) (test: string) (essay: string) (secs: string) =
        $"{step,-4} {adds.PadRight addsWidth} {passes,6}  {train,-22} {test,-22} {essay,-16} {secs,7}"
    [ yield row "step" "adds" "passes" "train error (misses)" "test error (misses)" "essay train/test" "run s"
      for r in results do
          let sum = summary r
          let train, trainMisses, test, testMisses = sum.Train.Error, sum.Train.Misses, sum.Test.Error, sum.Test.Misses
          let essay = match r.Step.Essay with Some (a, b) -> $"{a:F2}%% / {b:F2}%%" | None -> "-"
          yield row r.Step.Label r.Step.Adds (string r.Step.Recipe.Passes)
                    $"{train.Mean:F2} ± {train.Sd:F2}%% ({trainMisses:F1})" $"{test.Mean:F2} ± {test.Sd:F2}%% ({testMisses:F1})" essay $"{r.Seconds:F1}"
      for s, why in skipped do
          yield row s.Label s.Adds (string s.Recipe.Passes) "skipped" "" "" ""
          yield $"     {why}" ]
    |> String.concat "\n"

let run (args: ParseResults<LadderArgs>) =
    let dataSet = args.GetResult(Data_Set, "usps") |> Ladder.parseDataSet |> orFail
    let firstSeed = args.GetResult(Seed, Recipe.lecun1989.Seed)
    let seedList = Recipe.seeds firstSeed (args.GetResult(Seeds, 5)) |> orFail
    let seeds = seedList.Length
    let jobsAtOnce = args.GetResult(Jobs, Environment.ProcessorCount) |> Runs.checkJobs |> orFail
    let wanted = Ladder.parseSteps (args.GetResult(Steps, "all")) |> orFail
    let selected = Ladder.select dataSet wanted
    Ladder.checkRunCount seeds selected.Length |> orFail
    let backend = Providers.choose (args.TryGetResult Backend)
    let folder =
        RunFolder.stageRun (args.TryGetResult Out) (args.Contains Force)
            (fun () -> $"""ladder-{DataSetName.name dataSet}-{DateTime.Now.ToString("yyyyMMdd-HHmmss", Globalization.CultureInfo.InvariantCulture)}""")
        |> orFail
    RunFolder.write folder (fun outDir ->
        let dataDir = args.TryGetResult Data
        // Each data set is loaded once; a step whose data cannot be found is skipped with the reason.
        let limit = args.TryGetResult Limit
        Ladder.checkLimit limit |> orFail
        let loaded =
            dataSet :: (selected |> List.map (fun s -> s.DataSet)) |> List.distinct
            |> List.map (fun d -> d, Data.load d dataDir |> Result.bind (Ladder.limit limit)) |> Map.ofList
        match loaded.[dataSet] with
        | Error e -> fail e
        | Ok _ -> ()
        let runnable, skipped =
            selected |> List.partition (fun s -> match loaded.[s.DataSet] with Ok _ -> true | Error _ -> false)
        let skipped =
            [ for s in skipped -> s, (match loaded.[s.DataSet] with Error e -> e | Ok _ -> "") ]
            @ Ladder.unavailable dataSet wanted
        let layout = ModelFile.layout
        let jobs =
            [| for s in runnable do
                   let data = match loaded.[s.DataSet] with Ok d -> d | Error e -> fail e
                   for seed in seedList do
                       yield s, { Recipe = { s.Recipe with Seed = seed }; Data = data; Initial = fun () -> Init.create s.Recipe.WeightInit layout seed } |]
        let totalPresentations = jobs |> Array.sumBy (fun (_, j) -> j.Recipe.Passes * j.Data.Train.Count)
        printfn "ladder on %s: %d steps x %d seeds = %d runs, %s presentations, %d at a time, backend %s"
            (DataSetName.name dataSet) runnable.Length seeds jobs.Length (thousands totalPresentations) (Runs.workerCount jobsAtOnce jobs.Length) backend.Name
        let clock = Diagnostics.Stopwatch.StartNew()
        let runJobs = jobs |> Array.map snd
        let label j = let s, job = jobs.[j] in $"step {s.Label} seed {job.Recipe.Seed}"
        let results =
            if isInteractive () then
                progressDisplay()
                    .Start(fun ctx ->
                        let task = ctx.AddTask($"ladder ({jobs.Length} runs)", true, float totalPresentations)
                        let counts = Array.zeroCreate<int> jobs.Length
                        let sync = obj ()
                        let update j value =
                            lock sync (fun () ->
                                counts.[j] <- value
                                task.Value <- float (Array.sum counts))
                        Runs.run backend jobsAtOnce runJobs
                            (fun j pass n -> update j ((pass - 1) * runJobs.[j].Data.Train.Count + n))
                            (fun j m ->
                                update j (m.Pass * runJobs.[j].Data.Train.Count)
                                if m.Pass = runJobs.[j].Recipe.Passes then
                                    AnsiConsole.WriteLine($"{label j}: train {m.Train.Error:F2}%% test {m.Test.Error:F2}%% ({m.Seconds:F1} s)")))
            else
                let gate = obj ()
                Runs.run backend jobsAtOnce runJobs (fun _ _ _ -> ()) (fun j m ->
                    if m.Pass = runJobs.[j].Recipe.Passes then
                        lock gate (fun () -> printfn "%s: train %.2f%% test %.2f%% (%.1f s)" (label j) m.Train.Error m.Test.Error m.Seconds))
        let seconds = clock.Elapsed.TotalSeconds
        let stepResults =
            runnable |> List.map (fun s ->
                let mine = Array.zip jobs results |> Array.filter (fun ((st, _), _) -> st.Label = s.Label)
                { Step = s
                  Runs = mine |> Array.map (fun ((_, job), r) -> job.Recipe.Seed, List.last r.Passes)
                  Seconds = mine |> Array.sumBy (fun (_, r) -> r.Seconds) })
        printfn ""
        printfn "%s" (table stepResults skipped)
        printfn "errors: mean ± sd over %d seeds (mean misses); run s: seconds of the step's runs added up" seeds
        // A distilled step's teachers, as an ensemble with K times the inference cost.
        for s in runnable do
            let ensembles = Array.zip jobs results |> Array.filter (fun ((st, _), _) -> st.Label = s.Label) |> Array.choose (fun (_, r) -> r.Ensemble)
            match s.Recipe.Refine.Distill with
            | Some d when ensembles.Length > 0 -> printfn "step %se %s" s.Label (TrainCommand.ensembleLine "test" d ensembles)
            | _ -> ()
        printfn "ladder: %d runs in %.1f s wall" jobs.Length seconds
        for r in stepResults do printfn "  step %-2s %s" r.Step.Label r.Step.Command
        AtomicFile.writeText (Path.Combine(outDir, "ladder.json")) (toJson dataSet seeds seconds stepResults skipped)
        AtomicFile.writeText (Path.Combine(outDir, "ladder.csv")) (toCsv stepResults)
        let points =
            stepResults |> List.map (fun r ->
                let train, test = (summary r).Train.Error, (summary r).Test.Error
                ({ Label = r.Step.Label; TrainMean = train.Mean; TrainSd = train.Sd; TestMean = test.Mean; TestSd = test.Sd
                   EssayTest = r.Step.Essay |> Option.map snd }: Plots.LadderPoint))
        let references = match dataSet with DataSetName.Usps -> Paper.UspsReferences.levels | _ -> []
        Plots.ladder $"""the 33-year ladder on {DataSetName.name dataSet}, {seeds} {(if seeds = 1 then "seed" else "seeds")}""" points references (Path.Combine(outDir, "ladder.png")))
    |> orFail
    |> fun ((), final) -> printfn "wrote %s: ladder.json ladder.csv ladder.png" final
    0
