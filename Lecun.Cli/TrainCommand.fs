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

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Recipe _ -> $"""training recipe (default lecun1989; known: {Recipe.all |> List.map (fun r -> r.Name) |> String.concat ", "})."""
            | Data_Set _ -> "usps (default, the paper's digits) or mnist-sim."
            | Data _ -> "folder holding the data sets (default: $LECUN_DATA, ./data, ../shared/data)."
            | Passes _ -> "passes over the training set (default: the recipe's, 23 for lecun1989)."
            | Lr _ -> "learning rate (default: the recipe's, 0.03 for lecun1989)."
            | Seed _ -> "seed of the initial weights (default 1337)."
            | Backend _ -> "mkl or managed (default: mkl when libmkl_rt loads)."
            | Batch_Size _ -> "examples per update: 1 = the paper's per-example SGD (default), more = minibatch SGD on the averaged gradient."
            | Init _ -> "start from this checkpoint instead of a fresh initialization."
            | Out _ -> "folder for the run's files (default: a new folder under runs/)."

/// The paper's final figures (LeCun et al. 1989, on its 7291 + 2007 digits).
let paperTrainError, paperTrainMisses, paperTestError, paperTestMisses = 0.14, 10, 5.0, 102

/// `2.5e-03`, the paper's way of writing a loss.
let formatLoss (x: float) = x.ToString("0.0e+00", Globalization.CultureInfo.InvariantCulture)

let passLine (m: PassMetrics) =
    $"pass {m.Pass,2}  train loss {formatLoss m.Train.Loss} error {m.Train.Error:F2}%% misses {m.Train.Misses,4} | test loss {formatLoss m.Test.Loss} error {m.Test.Error:F2}%% misses {m.Test.Misses,4}"

let private metricsJson (recipe: Recipe) (dataSet: string) (backend: string) (seconds: float) (passes: PassMetrics list) =
    let split (s: SplitMetrics) =
        JsonObject(dict [ "loss", JsonValue.Create s.Loss :> JsonNode; "error", JsonValue.Create s.Error; "misses", JsonValue.Create s.Misses ])
        :> JsonNode
    let pass (m: PassMetrics) =
        JsonObject(dict [ "pass", JsonValue.Create m.Pass :> JsonNode; "train", split m.Train; "test", split m.Test; "seconds", JsonValue.Create m.Seconds ])
        :> JsonNode
    JsonObject(
        dict [ "recipe", JsonValue.Create recipe.Name :> JsonNode
               "seed", JsonValue.Create recipe.Seed
               "data_set", JsonValue.Create dataSet
               "backend", JsonValue.Create backend
               "learning_rate", JsonValue.Create(float recipe.LearningRate)
               "batch_size", JsonValue.Create recipe.BatchSize
               "seconds", JsonValue.Create seconds
               "passes", JsonArray(passes |> List.map pass |> Array.ofList) ])
        .ToJsonString(jsonOptions)

let private metricsCsv (passes: PassMetrics list) =
    let inv (x: float) = x.ToString("R", Globalization.CultureInfo.InvariantCulture)
    let rows =
        passes
        |> List.map (fun m ->
            String.Join(",", [ string m.Pass; inv m.Train.Loss; inv m.Train.Error; string m.Train.Misses
                               inv m.Test.Loss; inv m.Test.Error; string m.Test.Misses; inv m.Seconds ]))
    String.Join("\n", "pass,train_loss,train_error,train_misses,test_loss,test_error,test_misses,seconds" :: rows) + "\n"

/// Checkpoint metadata: enough to rebuild the network that produced the weights.
let checkpointMetadata (recipe: Recipe) (dataSet: string) (passes: int) =
    Map.ofList
        [ "recipe", recipe.Name
          "seed", string recipe.Seed
          "passes", string passes
          "data_set", dataSet
          "hidden", Activation.name recipe.Hidden
          "output", Activation.name recipe.Output
          "loss", Loss.name recipe.Loss
          "spec", "lecun1989" ]

let private defaultOutDir (recipe: Recipe) =
    let stamp = DateTime.Now.ToString("yyyyMMdd-HHmmss", Globalization.CultureInfo.InvariantCulture)
    Path.Combine("runs", $"{stamp}-{recipe.Name}-seed{recipe.Seed}")

/// A folder we can write to, created if needed; refused with a clear message otherwise.
let ensureWritableDir (dir: string) =
    try
        Directory.CreateDirectory dir |> ignore
        let probe = Path.Combine(dir, $".write-test-{Guid.NewGuid():N}")
        File.WriteAllBytes(probe, [||])
        File.Delete probe
    with e ->
        fail $"cannot write to output folder '{dir}': {e.Message}"

let chooseBackend (name: string option) =
    try
        Backend.Choose(Option.toObj name, fun message -> eprintfn "warning: %s" message)
    with
    | :? ArgumentException as e -> fail e.Message
    | :? InvalidOperationException as e -> fail e.Message

/// The recipe after the command line's overrides, each checked.
let recipeFrom (args: ParseResults<TrainArgs>) =
    let recipe = args.TryGetResult Recipe |> Option.defaultValue Recipe.lecun1989.Name |> Recipe.tryFind |> orFail
    let passes = args.GetResult(Passes, recipe.Passes)
    let lr = args.GetResult(Lr, float recipe.LearningRate)
    let batch = args.GetResult(Batch_Size, recipe.BatchSize)
    if passes < 1 then fail $"--passes must be at least 1, got {passes}"
    if not (lr > 0.0 && Double.IsFinite lr) then fail $"--lr must be a positive number, got {lr}"
    if batch < 1 then fail $"--batch-size must be at least 1, got {batch}"
    { recipe with Passes = passes; LearningRate = float32 lr; BatchSize = batch; Seed = args.GetResult(Seed, recipe.Seed) }

/// Trains with a live progress bar on a terminal, plain pass lines otherwise.
let private trainWithProgress (backend: IBackend) (recipe: Recipe) (data: TrainTest) (initial: float32 array) =
    let total = float (recipe.Passes * data.Train.Count)
    if isInteractive () then
        AnsiConsole
            .Progress()
            .AutoClear(true)
            .Columns(TaskDescriptionColumn(), ProgressBarColumn(), PercentageColumn(), ElapsedTimeColumn(), RemainingTimeColumn())
            .Start(fun ctx ->
                let task = ctx.AddTask("training", true, total)
                let run =
                    Train.run backend recipe data initial
                        (fun pass done' -> task.Value <- float ((pass - 1) * data.Train.Count + done'))
                        (fun m ->
                            task.Value <- float (m.Pass * data.Train.Count)
                            task.Description <- $"pass {m.Pass}/{recipe.Passes}"
                            AnsiConsole.WriteLine(passLine m))
                run)
    else
        Train.run backend recipe data initial (fun _ _ -> ()) (fun m -> printfn "%s" (passLine m))

let finalTable (dataSet: string) (passes: PassMetrics list) =
    let last = List.last passes
    let row (name: string) (trainError: float) (trainMisses: int) (testError: float) (testMisses: int) =
        $"{name,-26} {trainError,8:F2}%% {trainMisses,7} | {testError,8:F2}%% {testMisses,7}"
    String.concat "\n" [
        $"""{"",-26} {"train",9} {"misses",7} | {"test",9} {"misses",7}"""
        row "LeCun et al. 1989" paperTrainError paperTrainMisses paperTestError paperTestMisses
        row $"this run ({dataSet}, pass {last.Pass})" last.Train.Error last.Train.Misses last.Test.Error last.Test.Misses ]

let run (args: ParseResults<TrainArgs>) =
    let recipe = recipeFrom args
    let dataSet = args.GetResult(Data_Set, "usps")
    let backend = chooseBackend (args.TryGetResult Backend)
    let outDir = args.TryGetResult Out |> Option.defaultWith (fun () -> defaultOutDir recipe)
    ensureWritableDir outDir
    let data = Data.load dataSet (args.TryGetResult Data) |> orFail
    let net = Recipe.network recipe
    let initial =
        match args.TryGetResult Init with
        | Some file -> Checkpoint.load file net.Layout |> orFail |> fst
        | None -> Init.lecun1989 net.Layout recipe.Seed
    printfn "training %s on %s (%d train, %d test digits), %d passes, lr %g, batch %d, seed %d, backend %s"
        recipe.Name data.Source data.Train.Count data.Test.Count recipe.Passes recipe.LearningRate recipe.BatchSize recipe.Seed backend.Name
    let result = trainWithProgress backend recipe data initial
    printfn ""
    printfn "%s" (finalTable dataSet result.Passes)
    printfn "%d passes in %.2f s (%.0f presentations/s including evaluation)" recipe.Passes result.Seconds
        (float (recipe.Passes * data.Train.Count) / result.Seconds)
    // The run's files, each written whole or not at all.
    Checkpoint.save (Path.Combine(outDir, "model.safetensors")) net.Layout result.Parameters (checkpointMetadata recipe dataSet recipe.Passes)
    AtomicFile.writeText (Path.Combine(outDir, "metrics.csv")) (metricsCsv result.Passes)
    AtomicFile.writeText (Path.Combine(outDir, "metrics.json")) (metricsJson recipe dataSet backend.Name result.Seconds result.Passes)
    Plots.curves $"{recipe.Name} on {dataSet}" result.Passes (Path.Combine(outDir, "curves.png"))
    let missed = [| for i in 0 .. data.Test.Count - 1 do if result.TestPredictions.[i] <> data.Test.Labels.[i] then i |]
    Plots.errorGallery $"{recipe.Name} on {dataSet}: misclassified test digits" (missed |> Array.map (fun i -> data.Test.Image(i).ToArray()))
        (missed |> Array.map (fun i -> data.Test.Labels.[i])) (missed |> Array.map (fun i -> result.TestPredictions.[i])) (Path.Combine(outDir, "errors.png"))
    printfn "wrote %s: model.safetensors metrics.csv metrics.json curves.png errors.png" outDir
    0
