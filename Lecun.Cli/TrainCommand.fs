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
    // issue 19
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

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Recipe _ -> $"""training recipe (default lecun1989; known: {Recipe.all |> List.map (fun r -> r.Name) |> String.concat ", "})."""
            | Data_Set _ -> "usps (default, the paper's digits) or mnist-sim."
            | Data _ -> "folder holding the data sets (default: $LECUN_DATA, ./data, ../shared/data)."
            | Passes _ -> "passes over the training set (default: the recipe's, 23 for lecun1989)."
            | Lr _ -> "learning rate, or Newton's eps (default: the recipe's, 0.03 for lecun1989, 0.0005 for newton1989)."
            | Seed _ -> "seed of the initial weights (default 1337)."
            | Backend _ -> "mkl or managed (default: mkl when libmkl_rt loads)."
            | Batch_Size _ -> "examples per update: 1 = the paper's per-example SGD (default), more = minibatch SGD on the averaged gradient."
            | Init _ -> "start from this checkpoint instead of a fresh initialization."
            | Out _ -> "folder for the run's files (default: a new folder under runs/)."
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

/// The paper's final figures (LeCun et al. 1989, on its 7291 + 2007 digits).
let paperTrainError, paperTrainMisses, paperTestError, paperTestMisses = 0.14, 10, 5.0, 102

/// `2.5e-03`, the paper's way of writing a loss.
let formatLoss (x: float) = x.ToString("0.0e+00", Globalization.CultureInfo.InvariantCulture)

/// One pass's report; `testName` is the second split's name ("test", or "held-out" with --holdout).
let passLine (testName: string) (m: PassMetrics) =
    $"pass {m.Pass,2}  train loss {formatLoss m.Train.Loss} error {m.Train.Error:F2}%% misses {m.Train.Misses,4} | {testName} loss {formatLoss m.Test.Loss} error {m.Test.Error:F2}%% misses {m.Test.Misses,4}"

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

/// Issue 19: the recipe's refinements after the command line's overrides, each checked.
let private refinementsFrom (args: ParseResults<TrainArgs>) (recipe: Recipe) =
    let r = recipe.Refine
    let inRange (name: string) (lo: float) (hi: float) (value: float) =
        if not (value >= lo && value <= hi) then fail $"--{name} must be between {lo} and {hi}, got {value}"
        float32 value
    let d = r.Distortion
    let distortion =
        { Rotation = args.TryGetResult Rotation |> Option.map (inRange "rotation" 0.0 45.0) |> Option.defaultValue d.Rotation
          Scaling = args.TryGetResult Scaling |> Option.map (inRange "scaling" 0.0 0.5) |> Option.defaultValue d.Scaling
          Shear = args.TryGetResult Shear |> Option.map (inRange "shear" 0.0 1.0) |> Option.defaultValue d.Shear
          ElasticAlpha = args.TryGetResult Elastic |> Option.map (inRange "elastic" 0.0 50.0) |> Option.defaultValue d.ElasticAlpha
          ElasticSigma = args.TryGetResult Elastic_Sigma |> Option.map (inRange "elastic-sigma" 0.5 8.0) |> Option.defaultValue d.ElasticSigma }
    let passes = args.GetResult(Passes, recipe.Passes)
    let averageLast = args.GetResult(Average_Last, r.AverageLast)
    if averageLast < 0 || averageLast > passes then fail $"--average-last must be between 0 and the passes ({passes}), got {averageLast}"
    let smoothing = args.TryGetResult Label_Smoothing |> Option.map (inRange "label-smoothing" 0.0 0.5) |> Option.defaultValue r.LabelSmoothing
    let schedule = args.TryGetResult Schedule |> Option.map (LrSchedule.parse >> orFail) |> Option.defaultValue r.Schedule
    let distill =
        let current = r.Distill |> Option.defaultValue { Teachers = 0; Temperature = 2.0f; Weight = 1.0f }
        let teachers = args.GetResult(Distill, current.Teachers)
        if teachers < 0 || teachers > 20 then fail $"--distill must be between 0 and 20 teachers, got {teachers}"
        let settings =
            { Teachers = teachers
              Temperature = args.TryGetResult Temperature |> Option.map (inRange "temperature" 0.1 20.0) |> Option.defaultValue current.Temperature
              Weight = args.TryGetResult Distill_Weight |> Option.map (inRange "distill-weight" 0.0 1.0) |> Option.defaultValue current.Weight }
        if teachers = 0 && (args.Contains Temperature || args.Contains Distill_Weight) then fail "--temperature and --distill-weight need --distill K (K teachers)"
        if teachers > 0 then Some settings else None
    let refine = { Distortion = distortion; AverageLast = averageLast; LabelSmoothing = smoothing; Schedule = schedule; Distill = distill }
    if Refinements.softTargets refine && recipe.Loss <> SoftmaxCrossEntropy then
        fail "--label-smoothing and --distill need softmax cross-entropy (--loss softmax-ce)"
    if schedule <> Linear && (match recipe.Optimizer with AdamW _ -> false | _ -> true) then fail "--schedule applies to the adamw optimizer only"
    refine

/// The recipe after the command line's overrides, each checked.
let recipeFrom (args: ParseResults<TrainArgs>) =
    let recipe = args.TryGetResult Recipe |> Option.defaultValue Recipe.lecun1989.Name |> Recipe.tryFind |> orFail
    let passes = args.GetResult(Passes, recipe.Passes)
    let lr = args.GetResult(Lr, float recipe.LearningRate)
    let batch = args.GetResult(Batch_Size, recipe.BatchSize)
    if passes < 1 then fail $"--passes must be at least 1, got {passes}"
    if not (lr > 0.0 && Double.IsFinite lr) then fail $"--lr must be a positive number, got {lr}"
    if batch < 1 then fail $"--batch-size must be at least 1, got {batch}"
    let recipe = { recipe with Passes = passes; LearningRate = float32 lr; BatchSize = batch; Seed = args.GetResult(Seed, recipe.Seed) }
    let recipe =
        match args.TryGetResult Loss with
        | None -> recipe
        | Some name ->
            match Loss.parse name |> orFail with
            | SoftmaxCrossEntropy -> { recipe with Loss = SoftmaxCrossEntropy; Output = Identity }
            | loss -> { recipe with Loss = loss; Output = (if recipe.Output = Identity then recipe.Hidden else recipe.Output) }
    let recipe =
        match args.TryGetResult Activation with
        | None -> recipe
        | Some name ->
            match Activation.parse name |> orFail with
            | Identity -> fail "--activation identity would make the network linear; use tanh, scaled-tanh or relu"
            | a -> { recipe with Hidden = a; Output = (if recipe.Output = Identity then Identity else a) }
    let recipe =
        match args.TryGetResult Weight_Init with
        | None -> recipe
        | Some name -> { recipe with WeightInit = WeightInit.parse name |> orFail }
    let recipe =
        match args.TryGetResult Optimizer with
        | None -> recipe
        | Some name ->
            let pick (r: Recipe) = args.TryGetResult Lr |> Option.map float32 |> Option.defaultValue r.LearningRate
            match name with
            | "sgd" -> { recipe with Optimizer = Sgd; LearningRate = (args.TryGetResult Lr |> Option.map float32 |> Option.defaultValue Recipe.lecun1989.LearningRate) }
            | "newton" -> { recipe with Optimizer = Recipe.newton1989.Optimizer; LearningRate = pick Recipe.newton1989 }
            | "adamw" -> { recipe with Optimizer = Recipe.modern.Optimizer; LearningRate = pick Recipe.modern }
            | other -> fail $"unknown optimizer '{other}' (known: sgd, newton, adamw)"
    let shift = args.GetResult(Shift, recipe.Shift)
    let dropout = args.GetResult(Dropout, float recipe.Dropout)
    let recipe =
        match args.TryGetResult Mu, recipe.Optimizer with
        | None, _ -> recipe
        | Some mu, Newton n when mu > 0.0 -> { recipe with Optimizer = Newton { n with Mu = float32 mu } }
        | Some mu, Newton _ -> fail $"--mu must be positive, got {mu}"
        | Some _, _ -> fail "--mu applies to the newton optimizer only (use --recipe newton1989 or --optimizer newton)"
    if shift < 0 || shift > 8 then fail $"--shift must be between 0 and 8 pixels, got {shift}"
    if not (dropout >= 0.0 && dropout < 1.0) then fail $"--dropout must be in [0, 1), got {dropout}"
    { recipe with Shift = shift; Dropout = float32 dropout; Refine = refinementsFrom args recipe }

/// One line that says what a recipe does, for headers and metadata.
let describe (r: Recipe) =
    let optimizer =
        match r.Optimizer with
        | Sgd -> $"sgd lr {r.LearningRate}"
        | Newton n -> $"diagonal newton eps {r.LearningRate} mu {n.Mu} ({n.Patterns} patterns)"
        | AdamW a -> $"adamw lr {r.LearningRate}->{a.FinalLearningRate} wd {a.WeightDecay}"
    let f = r.Refine
    let d = f.Distortion
    let extras =
        [ if r.Shift > 0 then $"shifts {r.Shift}px"
          if r.Dropout > 0.0f then $"dropout {r.Dropout}"
          // issue 19
          if d.Rotation > 0.0f then $"rotation {d.Rotation}deg"
          if d.Scaling > 0.0f then $"scaling {d.Scaling}"
          if d.Shear > 0.0f then $"shear {d.Shear}"
          if d.ElasticAlpha > 0.0f then $"elastic {d.ElasticAlpha}/{d.ElasticSigma}"
          if f.Schedule <> Linear then $"{LrSchedule.name f.Schedule} schedule"
          if f.LabelSmoothing > 0.0f then $"label smoothing {f.LabelSmoothing}"
          if f.AverageLast > 0 then $"weights averaged over the last {f.AverageLast} passes"
          match f.Distill with
          | Some t -> $"distilled from {t.Teachers} teachers at T {t.Temperature} weight {t.Weight}"
          | None -> () ]
    String.concat ", " ([ $"{Activation.name r.Hidden}/{Activation.name r.Output}"; $"init {WeightInit.name r.WeightInit}"; Loss.name r.Loss; optimizer; $"batch {r.BatchSize}"; $"{r.Passes} passes" ] @ extras)

/// Runs jobs with one progress bar per run on a terminal, plain lines otherwise.
let runWithProgress (backend: IBackend) (parallelism: int) (jobs: RunJob array) (label: int -> string) (testName: string) =
    if isInteractive () then
        progressDisplay()
            .Start(fun ctx ->
                let tasks = jobs |> Array.mapi (fun j job -> ctx.AddTask(label j, true, float (job.Recipe.Passes * job.Data.Train.Count)))
                Runs.run backend parallelism jobs
                    (fun j pass done' -> tasks.[j].Value <- float ((pass - 1) * jobs.[j].Data.Train.Count + done'))
                    (fun j m ->
                        tasks.[j].Value <- float (m.Pass * jobs.[j].Data.Train.Count)
                        AnsiConsole.WriteLine((if jobs.Length > 1 then label j + "  " else "") + passLine testName m)))
    else
        let gate = obj ()
        Runs.run backend parallelism jobs (fun _ _ _ -> ()) (fun j m ->
            lock gate (fun () -> printfn "%s%s" (if jobs.Length > 1 then label j + "  " else "") (passLine testName m)))

/// The last pass beside the paper's figures (which are left out when the second split is not the test set).
let finalTable (dataSet: string) (testName: string) (passes: PassMetrics list) =
    let last = List.last passes
    let row (name: string) (trainError: float) (trainMisses: int) (testError: float) (testMisses: int) =
        $"{name,-26} {trainError,8:F2}%% {trainMisses,7} | {testError,8:F2}%% {testMisses,7}"
    String.concat "\n" [
        $"""{"",-26} {"train",9} {"misses",7} | {testName,9} {"misses",7}"""
        if testName = "test" then row "LeCun et al. 1989" paperTrainError paperTrainMisses paperTestError paperTestMisses
        // With --holdout the header has said which digits were held out; the row stays short.
        row (if testName = "test" then $"this run ({dataSet}, pass {last.Pass})" else $"this run (pass {last.Pass})") last.Train.Error last.Train.Misses last.Test.Error last.Test.Misses ]

/// The run's files, each written whole or not at all.
let writeRunFiles (outDir: string) (recipe: Recipe) (dataSet: string) (testName: string) (backendName: string) (data: TrainTest) (result: TrainResult) =
    let layout = Layout.lecun1989
    let metadata =
        checkpointMetadata recipe dataSet recipe.Passes |> Map.add "recipe_details" (describe recipe)
    Checkpoint.save (Path.Combine(outDir, "model.safetensors")) layout result.Parameters metadata
    AtomicFile.writeText (Path.Combine(outDir, "metrics.csv")) (metricsCsv result.Passes)
    AtomicFile.writeText (Path.Combine(outDir, "metrics.json")) (metricsJson recipe dataSet backendName result.Seconds result.Passes)
    // The two pictures are drawn side by side, one per core.
    let curves = Threading.Tasks.Task.Run(fun () -> Plots.curvesPng $"{recipe.Name} on {dataSet}, seed {recipe.Seed}" result.Passes)
    let missed = [| for i in 0 .. data.Test.Count - 1 do if result.TestPredictions.[i] <> data.Test.Labels.[i] then i |]
    let errors =
        Plots.errorGalleryPng $"{recipe.Name} on {dataSet}: misclassified {testName} digits" (missed |> Array.map (fun i -> data.Test.Image(i).ToArray()))
            (missed |> Array.map (fun i -> data.Test.Labels.[i])) (missed |> Array.map (fun i -> result.TestPredictions.[i]))
    AtomicFile.writeBytes (Path.Combine(outDir, "curves.png")) curves.Result
    AtomicFile.writeBytes (Path.Combine(outDir, "errors.png")) errors
    // Issue 19: the first training digit of each class under the run's distortions (a stream of their own).
    if not (DistortionSettings.isNone recipe.Refine.Distortion) then
        let firsts = [| for c in 0 .. 9 do match Array.tryFindIndex ((=) c) data.Train.Labels with Some i -> data.Train.Image(i).ToArray() | None -> () |]
        let picture =
            DistortionPlot.png (DistortionPlot.title recipe.Name recipe.Refine.Distortion recipe.Shift) (Recipe.network recipe) recipe.Refine.Distortion recipe.Shift (recipe.Seed + 7919) firsts 9
        AtomicFile.writeBytes (Path.Combine(outDir, "distortions.png")) picture

/// Issue 19: the line on the teachers' ensemble of a distilled run (or runs).
let ensembleLine (testName: string) (teachers: int) (ensembles: SplitMetrics array) =
    let s = Runs.summarize (ensembles |> Array.map (fun m -> m.Error))
    let spread = if ensembles.Length > 1 then $" ± {s.Sd:F2}" else ""
    $"side row: the {teachers} teachers' ensemble ({teachers} x the inference cost): {testName} error {s.Mean:F2}{spread}%% misses {ensembles |> Array.averageBy (fun m -> float m.Misses):F1}"

let private seedsJson (recipe: Recipe) (dataSet: string) (seconds: float) (results: (int * PassMetrics) array) (ensembles: SplitMetrics array) =
    let train = Runs.summarize (results |> Array.map (fun (_, m) -> m.Train.Error))
    let test = Runs.summarize (results |> Array.map (fun (_, m) -> m.Test.Error))
    let split (s: RunSummary) (misses: float) =
        JsonObject(dict [ "error_mean", JsonValue.Create s.Mean :> JsonNode; "error_sd", JsonValue.Create s.Sd; "misses_mean", JsonValue.Create misses ]) :> JsonNode
    let run (seed: int, m: PassMetrics) =
        JsonObject(dict [ "seed", JsonValue.Create seed :> JsonNode; "train_error", JsonValue.Create m.Train.Error; "train_misses", JsonValue.Create m.Train.Misses
                          "test_error", JsonValue.Create m.Test.Error; "test_misses", JsonValue.Create m.Test.Misses ]) :> JsonNode
    JsonObject(
        dict [ "recipe", JsonValue.Create recipe.Name :> JsonNode
               "details", JsonValue.Create(describe recipe)
               "data_set", JsonValue.Create dataSet
               "seconds", JsonValue.Create seconds
               "train", split train (results |> Array.averageBy (fun (_, m) -> float m.Train.Misses))
               "test", split test (results |> Array.averageBy (fun (_, m) -> float m.Test.Misses))
               if ensembles.Length > 0 then
                   let e = Runs.summarize (ensembles |> Array.map (fun m -> m.Error))
                   "teachers_ensemble", split e (ensembles |> Array.averageBy (fun m -> float m.Misses))
               "runs", JsonArray(results |> Array.map run) ])
        .ToJsonString(jsonOptions)

let run (args: ParseResults<TrainArgs>) =
    let recipe = recipeFrom args
    let dataSet = args.GetResult(Data_Set, "usps")
    let seeds = args.GetResult(Seeds, 1)
    let parallelism = args.GetResult(Jobs, Environment.ProcessorCount)
    if seeds < 1 then fail $"--seeds must be at least 1, got {seeds}"
    if parallelism < 1 then fail $"--jobs must be at least 1, got {parallelism}"
    let backend = chooseBackend (args.TryGetResult Backend)
    let outDir = args.TryGetResult Out |> Option.defaultWith (fun () -> defaultOutDir recipe)
    ensureWritableDir outDir
    // The other core compiles the training code and loads the plotting code while this one reads the data.
    // A failed warm-up costs only its time: the run itself reports any real problem.
    let warmUp = Threading.Tasks.Task.Run(fun () -> (try Train.warmUp backend recipe with _ -> ()); Plots.warmUp ())
    let data = Data.load dataSet (args.TryGetResult Data) |> orFail
    // With --holdout the files and tables say so wherever they name the data set.
    let data, dataSet, testName =
        match args.TryGetResult Holdout with
        | None -> data, dataSet, "test"
        | Some n when n >= 1 && n < data.Train.Count ->
            let held = data.HoldOut n
            held, $"{dataSet}, last {n} training digits held out", held.Test.Name
        | Some n -> fail $"--holdout must be between 1 and {data.Train.Count - 1} (the training digits less one), got {n}"
    let layout = Layout.lecun1989
    let initialFor seed =
        match args.TryGetResult Init with
        | Some file -> Checkpoint.load file layout |> orFail |> fst
        | None -> Init.create recipe.WeightInit layout seed
    let jobs = [| for s in 0 .. seeds - 1 -> let r = { recipe with Seed = recipe.Seed + s } in { Recipe = r; Data = data; Initial = initialFor r.Seed } |]
    printfn "training %s on %s (%d train, %d %s digits): %s; seed %s; backend %s"
        recipe.Name data.Source data.Train.Count data.Test.Count testName (describe recipe)
        (if seeds = 1 then string recipe.Seed else $"{recipe.Seed}..{recipe.Seed + seeds - 1}") backend.Name
    let clock = Diagnostics.Stopwatch.StartNew()
    let results = runWithProgress backend parallelism jobs (fun j -> if seeds = 1 then "training" else $"seed {jobs.[j].Recipe.Seed}") testName
    let seconds = clock.Elapsed.TotalSeconds
    warmUp.Wait()
    printfn ""
    if seeds = 1 then
        let result = results.[0]
        printfn "%s" (finalTable dataSet testName result.Passes)
        result.Ensemble |> Option.iter (fun e -> printfn "%s" (ensembleLine testName recipe.Refine.Distill.Value.Teachers [| e |]))
        printfn "%d passes in %.2f s (%.0f presentations/s including evaluation)" recipe.Passes result.Seconds
            (float (recipe.Passes * data.Train.Count) / result.Seconds)
        writeRunFiles outDir recipe dataSet testName backend.Name data result
        printfn "wrote %s: model.safetensors metrics.csv metrics.json curves.png errors.png%s" outDir
            (if DistortionSettings.isNone recipe.Refine.Distortion then "" else " distortions.png")
    else
        let finals = Array.map2 (fun (job: RunJob) (r: TrainResult) -> job.Recipe.Seed, List.last r.Passes) jobs results
        printfn "%6s %9s %7s | %9s %7s" "seed" "train" "misses" testName "misses"
        for seed, m in finals do
            printfn "%6d %8.2f%% %7d | %8.2f%% %7d" seed m.Train.Error m.Train.Misses m.Test.Error m.Test.Misses
        let train = Runs.summarize (finals |> Array.map (fun (_, m) -> m.Train.Error))
        let test = Runs.summarize (finals |> Array.map (fun (_, m) -> m.Test.Error))
        printfn "%6s %5.2f±%.2f%% %7.1f | %5.2f±%.2f%% %7.1f   (mean ± sd over %d seeds)" "mean" train.Mean train.Sd
            (finals |> Array.averageBy (fun (_, m) -> float m.Train.Misses)) test.Mean test.Sd
            (finals |> Array.averageBy (fun (_, m) -> float m.Test.Misses)) seeds
        if testName = "test" then
            printfn "%s %8.2f%% %7d | %8.2f%% %7d" "paper " paperTrainError paperTrainMisses paperTestError paperTestMisses
        let ensembles = results |> Array.choose (fun r -> r.Ensemble)
        if ensembles.Length > 0 then printfn "%s" (ensembleLine testName recipe.Refine.Distill.Value.Teachers ensembles)
        printfn "%d runs in %.1f s wall" seeds seconds
        Array.iter2 (fun (job: RunJob) r -> writeRunFiles (Path.Combine(outDir, $"seed-{job.Recipe.Seed}")) job.Recipe dataSet testName backend.Name data r) jobs results
        AtomicFile.writeText (Path.Combine(outDir, "seeds.json")) (seedsJson recipe dataSet seconds finals ensembles)
        printfn "wrote %s: seeds.json and one folder per seed" outDir
    0
