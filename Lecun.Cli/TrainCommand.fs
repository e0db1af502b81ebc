/// `train`: the paper's experiment (or any recipe), with the paper's per-pass report, a progress bar,
/// and the run's files: checkpoint, metrics, curves and the misclassified digits.
module Lecun.Cli.TrainCommand

open System
open System.IO
open System.Text.Json.Nodes
open Argu
open Spectre.Console
open Lecun.Model
open Lecun.Native.Backends
open Lecun.Cli.Output

type TrainArgs =
    | Recipe of name: string
    | Data_Set of name: string
    | Data of dir: string
    | Passes of n: int
    | Lr of rate: float
    | Seed of seed: int
    | Backend of name: string
    | Batch_Size of size: int
    | Init of checkpoint: string
    | Out of dir: string
    | Force
    | Activation of name: string
    | Weight_Init of scheme: string
    | Loss of name: string
    | Optimizer of name: string
    | Shift of pixels: int
    | Dropout of rate: float
    | Mu of damping: float
    | Seeds of count: int
    | Jobs of count: int
    | Holdout of digits: int
    // The refinements.
    | Rotation of degrees: float
    | Scaling of fraction: float
    | Shear of factor: float
    | Elastic of alpha: float
    | Elastic_Sigma of pixels: float
    | Average_Last of passes: int
    | Label_Smoothing of epsilon: float
    | Schedule of name: string
    | Distill of teachers: int
    | Temperature of t: float
    | Distill_Weight of weight: float
    | Sam of rho: float
    | Tangent_Prop of weight: float

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Recipe _ -> $"""training recipe (default lecun1989; known: {Recipe.all |> List.map (fun r -> r.Name) |> String.concat ", "})."""
            | Data_Set _ -> "usps (default, the paper's digits) or mnist-sim."
            | Data _ -> "folder holding the data sets (default: $LECUN_DATA, ./data, then the embedded copy)."
            | Passes _ -> "passes over the training set (default: the recipe's, 23 for lecun1989)."
            | Lr _ -> "learning rate, or Newton's eps (default: the recipe's, 0.03 for lecun1989, 0.0005 for newton1989)."
            | Seed _ -> "seed of the initial weights (default 1337)."
            | Backend _ -> Providers.usage
            | Batch_Size _ -> "examples per update: 1 = the paper's per-example training (default); B > 1 = batched forward and backward passes (256 digits at a time at most) per B digits on the averaged gradient (AdamW's rate then scales with sqrt(B) unless --lr is given); at most the training digits."
            | Init _ -> "start from this checkpoint instead of a fresh initialization."
            | Out _ -> "folder for the run's files (default: a new folder under runs/); refused when it already holds files, unless they are a finished run and --force is given."
            | Force -> "replace an --out folder that holds a finished run of this program (no other folder, never the working folder or one that contains it)."
            | Activation _ -> "tanh (lecun1989's), scaled-tanh (1.7159 tanh(2a/3), the paper's scaled tanh, newton1989's) or relu, on every unit that is not a linear output."
            | Weight_Init _ -> "initial weights U[-b, b] with b = 2.4/sqrt(F) (sqrt-fan-in, lecun1989's) or 2.4/F (fan-in, newton1989's), F the unit's fan-in."
            | Loss _ -> "mse (mean over the 10 outputs, the paper), mse-half (half the summed squares) or softmax-ce (makes the outputs linear)."
            | Optimizer _ -> "sgd, newton (the paper's diagonal Newton) or adamw (lr falling linearly to a third, weight decay 0.01)."
            | Shift _ -> "random shifts of the digit by up to this many pixels in x and y on each presentation, inside the first layer's padding (0 = none)."
            | Dropout _ -> "dropout rate on H3's input during training (0 = none)."
            | Mu _ -> "newton: the damping mu of the steps eps / (mu + h) (default: newton1989's, 0.01); --lr sets eps."
            | Seeds _ -> "train this many seeds (seed, seed+1, ...) and report mean and spread of the final errors."
            | Jobs _ -> "runs at a time with --seeds (default: one per core)."
            | Holdout _ -> "train on all but the last N training digits and report those N where the test set would be (to choose settings without the test set)."
            | Rotation _ -> "distortion: rotate each training presentation by up to this many degrees (0 = none)."
            | Scaling _ -> "distortion: scale each presentation by 1 + s in x and in y, s up to this fraction (0 = none)."
            | Shear _ -> "distortion: shear each presentation by up to this factor (0 = none)."
            | Elastic _ -> "distortion: elastic deformation (Simard et al. 2003) of this strength alpha in pixels (0 = none)."
            | Elastic_Sigma _ -> "distortion: width in pixels of the elastic field's Gaussian smoothing (default 2)."
            | Average_Last _ -> "evaluate and save the average of the weights at the end of each of the last N passes (0 = none)."
            | Label_Smoothing _ -> "softmax-ce: smooth the targets, 1 - e + e/10 on the label and e/10 elsewhere (0 = none)."
            | Schedule _ -> "adamw: how the learning rate falls to its final value, linear (default) or cosine."
            | Distill _ -> "first train this many teachers (the same recipe, other seeds), then train on their averaged soft outputs (0 = none)."
            | Temperature _ -> "distillation: softmax temperature of the teachers' and the student's soft outputs (default 2)."
            | Distill_Weight _ -> "distillation: weight of the teachers' term; the labels' term gets the rest (default 1)."
            | Tangent_Prop _ -> "adamw, with distortions: tangent propagation (Simard et al. 1992, finite-difference form), the outputs held still along a random mix of the presented digit's translation, rotation, scaling and thickening tangents, with this weight (twice the training cost; 0 = none)."
            | Sam _ -> "adamw: sharpness-aware minimization, each example's gradient taken at the weights moved this distance rho up its own gradient (twice the training cost; 0 = none)."

/// One pass's report; `testName` is the second split's name ("test", or "held-out" with --holdout).
let passLine (testName: string) (m: PassMetrics) =
    $"pass {m.Pass,2}  train loss {formatLoss m.Train.Loss} error {m.Train.Error:F2}%% misses {m.Train.Misses,4} | {testName} loss {formatLoss m.Test.Loss} error {m.Test.Error:F2}%% misses {m.Test.Misses,4}"

let private metricsCsv (passes: PassMetrics list) =
    let inv (x: float) = x.ToString("R", Globalization.CultureInfo.InvariantCulture)
    let rows =
        passes
        |> List.map (fun m ->
            String.Join(",", [ string m.Pass; inv m.Train.Loss; inv m.Train.Error; string m.Train.Misses
                               inv m.Test.Loss; inv m.Test.Error; string m.Test.Misses; inv m.Seconds ]))
    String.Join("\n", "pass,train_loss,train_error,train_misses,test_loss,test_error,test_misses,seconds" :: rows) + "\n"

let private timeStamp () = DateTime.Now.ToString("yyyyMMdd-HHmmss", Globalization.CultureInfo.InvariantCulture)

/// The options that change the recipe, as overrides (Lecun.Model applies and checks them).
let overridesFrom (args: ParseResults<TrainArgs>) : RecipeOverride list =
    let named (parse: string -> Result<'T, string>) (toOverride: 'T -> RecipeOverride) (value: string option) =
        value |> Option.map (parse >> orFail >> toOverride)
    List.choose id
        [ args.TryGetResult Passes |> Option.map RecipeOverride.Passes
          args.TryGetResult Lr |> Option.map RecipeOverride.LearningRate
          args.TryGetResult Batch_Size |> Option.map RecipeOverride.BatchSize
          args.TryGetResult Seed |> Option.map RecipeOverride.Seed
          args.TryGetResult Loss |> named Loss.parse RecipeOverride.Loss
          args.TryGetResult Activation |> named Activation.parse RecipeOverride.Activation
          args.TryGetResult Weight_Init |> named WeightInit.parse RecipeOverride.WeightInit
          args.TryGetResult Optimizer |> named Recipe.parseOptimizer RecipeOverride.Optimizer
          args.TryGetResult Mu |> Option.map RecipeOverride.Mu
          args.TryGetResult Shift |> Option.map RecipeOverride.Shift
          args.TryGetResult Dropout |> Option.map RecipeOverride.Dropout
          // The refinements.
          args.TryGetResult Rotation |> Option.map RecipeOverride.Rotation
          args.TryGetResult Scaling |> Option.map RecipeOverride.Scaling
          args.TryGetResult Shear |> Option.map RecipeOverride.Shear
          args.TryGetResult Elastic |> Option.map RecipeOverride.Elastic
          args.TryGetResult Elastic_Sigma |> Option.map RecipeOverride.ElasticSigma
          args.TryGetResult Average_Last |> Option.map RecipeOverride.AverageLast
          args.TryGetResult Label_Smoothing |> Option.map RecipeOverride.LabelSmoothing
          args.TryGetResult Schedule |> named LrSchedule.parse RecipeOverride.Schedule
          args.TryGetResult Distill |> Option.map RecipeOverride.Distill
          args.TryGetResult Temperature |> Option.map RecipeOverride.Temperature
          args.TryGetResult Distill_Weight |> Option.map RecipeOverride.DistillWeight
          args.TryGetResult Sam |> Option.map RecipeOverride.Sam
          args.TryGetResult Tangent_Prop |> Option.map RecipeOverride.TangentProp ]

/// The recipe `--recipe` names (lecun1989 by default) with the other options' overrides.
let recipeFrom (args: ParseResults<TrainArgs>) =
    let named = args.TryGetResult Recipe |> Option.defaultValue Recipe.lecun1989.Name |> Recipe.tryFind |> orFail
    Recipe.apply (overridesFrom args) named |> orFail

/// Runs jobs with one progress bar per run on a terminal, plain lines otherwise; `finish` as Runs.runEach.
let runWithProgress (backend: IBackend) (parallelism: int) (jobs: RunJob array) (label: int -> string) (testName: string) (finish: int -> TrainResult -> 'R) =
    if isInteractive () then
        progressDisplay()
            .Start(fun ctx ->
                let tasks = jobs |> Array.mapi (fun j job -> ctx.AddTask(label j, true, float (job.Recipe.Passes * job.Data.Train.Count)))
                Runs.runEach backend parallelism jobs
                    (fun j pass done' -> tasks.[j].Value <- float ((pass - 1) * jobs.[j].Data.Train.Count + done'))
                    (fun j m ->
                        tasks.[j].Value <- float (m.Pass * jobs.[j].Data.Train.Count)
                        AnsiConsole.WriteLine((if jobs.Length > 1 then label j + "  " else "") + passLine testName m))
                    finish)
    else
        let gate = obj ()
        Runs.runEach backend parallelism jobs (fun _ _ _ -> ()) (fun j m ->
            lock gate (fun () -> printfn "%s%s" (if jobs.Length > 1 then label j + "  " else "") (passLine testName m))) finish

/// The last pass beside the paper's figures (which are left out when the second split is not the test set).
let finalTable (dataSet: string) (testName: string) (passes: PassMetrics list) =
    let last = List.last passes
    let row (name: string) (trainError: float) (trainMisses: int) (testError: float) (testMisses: int) =
        $"{name,-26} {trainError,8:F2}%% {trainMisses,7} | {testError,8:F2}%% {testMisses,7}"
    String.concat "\n" [
        $"""{"",-26} {"train",9} {"misses",7} | {testName,9} {"misses",7}"""
        if testName = "test" then row "LeCun et al. 1989" Paper.trainError Paper.trainMisses Paper.testError Paper.testMisses
        // With --holdout the header has said which digits were held out; the row stays short.
        row (if testName = "test" then $"this run ({dataSet}, pass {last.Pass})" else $"this run (pass {last.Pass})") last.Train.Error last.Train.Misses last.Test.Error last.Test.Misses ]

/// What a run's files say about it besides its results.
type RunContext =
    { Recipe: Recipe
      DataSet: DataSetName
      /// With --holdout, the count of training digits held out (the report and files say so).
      HeldOut: int option
      /// The second split's name: "test", or "held-out" with --holdout.
      TestName: string
      Backend: string
      Data: TrainTest }

    /// The data set as the report names it (with --holdout, which digits were held out).
    member r.DataSetLabel = DataSetName.describe r.DataSet r.HeldOut

let private metricsJson (run: RunContext) (result: TrainResult) =
    let split (s: SplitMetrics) =
        JsonObject(dict [ "loss", JsonValue.Create s.Loss :> JsonNode; "error", JsonValue.Create s.Error; "misses", JsonValue.Create s.Misses ])
        :> JsonNode
    let pass (m: PassMetrics) =
        JsonObject(dict [ "pass", JsonValue.Create m.Pass :> JsonNode; "train", split m.Train; "test", split m.Test; "seconds", JsonValue.Create m.Seconds ])
        :> JsonNode
    JsonObject(
        dict [ "recipe", JsonValue.Create run.Recipe.Name :> JsonNode
               "seed", JsonValue.Create run.Recipe.Seed
               "data_set", JsonValue.Create run.DataSetLabel
               "backend", JsonValue.Create run.Backend
               "learning_rate", JsonValue.Create(float run.Recipe.LearningRate)
               "batch_size", JsonValue.Create run.Recipe.BatchSize
               "seconds", JsonValue.Create result.Seconds
               "passes", JsonArray(result.Passes |> List.map pass |> Array.ofList) ])
        .ToJsonString(jsonOptions)

/// The run's files, each written whole or not at all.
let writeRunFiles (outDir: string) (run: RunContext) (result: TrainResult) =
    let recipe, dataSet, data = run.Recipe, run.DataSetLabel, run.Data
    ModelFile.save (Path.Combine(outDir, "model.safetensors")) recipe run.DataSet run.HeldOut result.Parameters
    AtomicFile.writeText (Path.Combine(outDir, "metrics.csv")) (metricsCsv result.Passes)
    AtomicFile.writeText (Path.Combine(outDir, "metrics.json")) (metricsJson run result)
    // The two pictures are drawn side by side, one per core.
    let curves = Threading.Tasks.Task.Run(fun () -> Plots.curvesPng $"{recipe.Name} on {dataSet}, seed {recipe.Seed}" result.Passes)
    let missed = [| for i in 0 .. data.Test.Count - 1 do if result.TestPredictions.[i] <> data.Test.Labels.[i] then i |]
    let errors =
        Plots.errorGalleryPng $"{recipe.Name} on {dataSet}: misclassified {run.TestName} digits" (missed |> Array.map (fun i -> data.Test.Image(i).ToArray()))
            (missed |> Array.map (fun i -> data.Test.Labels.[i])) (missed |> Array.map (fun i -> result.TestPredictions.[i]))
    AtomicFile.writeBytes (Path.Combine(outDir, "curves.png")) curves.Result
    AtomicFile.writeBytes (Path.Combine(outDir, "errors.png")) errors
    // The first training digit of each class under the run's distortions (a stream of their own).
    if not (DistortionSettings.isNone recipe.Refine.Distortion) then
        let firsts = [| for c in 0 .. 9 do match Array.tryFindIndex ((=) c) data.Train.Labels with Some i -> data.Train.Image(i).ToArray() | None -> () |]
        let picture =
            DistortionPlot.png (DistortionPlot.title recipe.Name recipe.Refine.Distortion recipe.Shift) (Recipe.network recipe) recipe.Refine.Distortion recipe.Shift (recipe.Seed + 7919) firsts 9
        AtomicFile.writeBytes (Path.Combine(outDir, "distortions.png")) picture

/// The line on the teachers' ensemble of a distilled run (or runs).
let ensembleLine (testName: string) (teachers: int) (ensembles: SplitMetrics array) =
    let s = Runs.summarize (ensembles |> Array.map (fun m -> m.Error))
    let spread = if ensembles.Length > 1 then $" ± {s.Sd:F2}" else ""
    $"side row: the {teachers} teachers' ensemble ({teachers} x the inference cost): {testName} error {s.Mean:F2}{spread}%% misses {ensembles |> Array.averageBy (fun m -> float m.Misses):F1}"

let private seedsJson (recipe: Recipe) (dataSet: string) (seconds: float) (results: (int * PassMetrics) array) (ensembles: SplitMetrics array) =
    let summary = SeedsSummary.ofFinals (Array.map snd results)
    let run (seed: int, m: PassMetrics) =
        JsonObject(dict [ "seed", JsonValue.Create seed :> JsonNode; "train_error", JsonValue.Create m.Train.Error; "train_misses", JsonValue.Create m.Train.Misses
                          "test_error", JsonValue.Create m.Test.Error; "test_misses", JsonValue.Create m.Test.Misses ]) :> JsonNode
    JsonObject(
        dict [ "recipe", JsonValue.Create recipe.Name :> JsonNode
               "details", JsonValue.Create(Recipe.describe recipe)
               "data_set", JsonValue.Create dataSet
               "seconds", JsonValue.Create seconds
               "train", splitSummaryJson summary.Train
               "test", splitSummaryJson summary.Test
               if ensembles.Length > 0 then
                   let e = SeedsSummary.ofFinals (ensembles |> Array.map (fun m -> { Pass = 0; Train = m; Test = m; Seconds = 0.0 }))
                   "teachers_ensemble", splitSummaryJson e.Test
               "runs", JsonArray(results |> Array.map run) ])
        .ToJsonString(jsonOptions)

let run (verbose: bool) (args: ParseResults<TrainArgs>) =
    let recipe = recipeFrom args
    let dataSet = args.GetResult(Data_Set, "usps") |> DataSetName.parse |> orFail
    let seedCount = args.GetResult(Seeds, 1) |> Runs.checkSeedCount |> orFail
    let seeds = Recipe.seeds recipe.Seed seedCount |> orFail
    let parallelism = args.GetResult(Jobs, Environment.ProcessorCount) |> Runs.checkJobs |> orFail
    let backend = Providers.choose (args.TryGetResult Backend)
    let folder = RunFolder.stageRun (args.TryGetResult Out) (args.Contains Force) (fun () -> $"{timeStamp ()}-{recipe.Name}-seed{recipe.Seed}") |> orFail
    RunFolder.write folder (fun outDir ->
        // The other core compiles the training code and loads the plotting code while this one reads the data.
        // A failed warm-up costs only its time: the run itself reports any real problem.
        let warmUp = Threading.Tasks.Task.Run(fun () -> (try Train.warmUp backend recipe with _ -> ()); Plots.warmUp ())
        let data = Data.load dataSet (args.TryGetResult Data) |> orFail
        // With --holdout the files and tables say so wherever they name the data set.
        let heldOut = args.TryGetResult Holdout
        let data = Runs.holdOut heldOut data |> orFail
        let testName = if heldOut.IsSome then data.Test.Name else "test"
        Recipe.fitsTrainingSet data.Train.Count recipe |> orFail |> ignore
        let initial =
            match args.TryGetResult Init with
            | Some file -> let model = ModelFile.load file |> orFail in fun (_: int) -> model.Parameters
            | None -> Init.create recipe.WeightInit ModelFile.layout
        let jobs = [| for seed in seeds -> ({ Recipe = { recipe with Seed = seed }; Data = data; Initial = fun () -> initial seed }: RunJob) |]
        let context (r: Recipe) : RunContext = { Recipe = r; DataSet = dataSet; HeldOut = heldOut; TestName = testName; Backend = backend.Name; Data = data }
        let count = seeds.Length
        printfn "training %s on %s (%d train, %d %s digits): %s; seed %s; backend %s"
            recipe.Name data.Source data.Train.Count data.Test.Count testName (Recipe.describe recipe)
            (if count = 1 then string recipe.Seed else $"{recipe.Seed}..{List.last seeds}") backend.Name
        if verbose then printf "%s" (Providers.routing backend (Recipe.network recipe) recipe.BatchSize Evaluate.batch)
        let clock = Diagnostics.Stopwatch.StartNew()
        let seedFolder (job: RunJob) = Path.Combine(outDir, $"seed-{job.Recipe.Seed}")
        // With several seeds, each run's files are written as it ends, and only its metrics are kept.
        let finish (j: int) (r: TrainResult) =
            if count = 1 then r
            else
                writeRunFiles (seedFolder jobs.[j]) (context jobs.[j].Recipe) r
                { r with Parameters = Array.empty; TestPredictions = Array.empty }
        let results = runWithProgress backend parallelism jobs (fun j -> if count = 1 then "training" else $"seed {jobs.[j].Recipe.Seed}") testName finish
        let seconds = clock.Elapsed.TotalSeconds
        warmUp.Wait()
        printfn ""
        if count = 1 then
            let result = results.[0]
            printfn "%s" (finalTable (DataSetName.describe dataSet heldOut) testName result.Passes)
            result.Ensemble |> Option.iter (fun e -> printfn "%s" (ensembleLine testName recipe.Refine.Distill.Value.Teachers [| e |]))
            printfn "%d passes in %.2f s (%.0f presentations/s including evaluation)" recipe.Passes result.Seconds
                (float (recipe.Passes * data.Train.Count) / result.Seconds)
            writeRunFiles outDir (context recipe) result
            "model.safetensors metrics.csv metrics.json curves.png errors.png"
            + (if DistortionSettings.isNone recipe.Refine.Distortion then "" else " distortions.png")
        else
            let finals = Array.map2 (fun (job: RunJob) (r: TrainResult) -> job.Recipe.Seed, List.last r.Passes) jobs results
            printfn "%6s %9s %7s | %9s %7s" "seed" "train" "misses" testName "misses"
            for seed, m in finals do
                printfn "%6d %8.2f%% %7d | %8.2f%% %7d" seed m.Train.Error m.Train.Misses m.Test.Error m.Test.Misses
            let summary = SeedsSummary.ofFinals (Array.map snd finals)
            printfn "%6s %5.2f±%.2f%% %7.1f | %5.2f±%.2f%% %7.1f   (mean ± sd over %d seeds)" "mean"
                summary.Train.Error.Mean summary.Train.Error.Sd summary.Train.Misses summary.Test.Error.Mean summary.Test.Error.Sd summary.Test.Misses count
            if testName = "test" then
                printfn "%s %8.2f%% %7d | %8.2f%% %7d" "paper " Paper.trainError Paper.trainMisses Paper.testError Paper.testMisses
            let ensembles = results |> Array.choose (fun r -> r.Ensemble)
            if ensembles.Length > 0 then printfn "%s" (ensembleLine testName recipe.Refine.Distill.Value.Teachers ensembles)
            printfn "%d runs in %.1f s wall" count seconds
            AtomicFile.writeText (Path.Combine(outDir, "seeds.json")) (seedsJson recipe (DataSetName.describe dataSet heldOut) seconds finals ensembles)
            "seeds.json and one folder per seed")
    |> orFail
    |> fun (written, final) -> printfn "wrote %s: %s" final written
    0
