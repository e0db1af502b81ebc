/// `train`: the paper's experiment (or any recipe), with the paper's per-pass report, a progress bar,
/// and the run's files: checkpoint, metrics, curves and the misclassified digits.
module Lecun.Cli.TrainCommand

open System
open System.IO
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
    | Network of file: string
    | Teacher of model: string

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Recipe _ -> $"""training recipe (default lecun1989; known: {Recipe.all |> List.map (fun r -> r.Name) |> String.concat ", "})."""
            | Data_Set _ -> "usps (default, the paper's digits) or mnist-sim."
            | Data _ -> "folder holding the data sets (default: $LECUN_DATA, ./data, then the embedded copy)."
            | Passes _ -> "passes over the training set (default: the recipe's, 23 for lecun1989)."
            | Lr _ -> "learning rate, or Newton's eps (default: the recipe's, 0.03 for lecun1989, 0.0005 for newton1989)."
            | Seed _ -> "seed of the initial weights (default 1337)."
            | Backend _ -> Providers.evaluatorUsage
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
            | Network _ -> "train this network (a JSON network text, as model files record it: layers and squashing, which must be the recipe's; examples/networks/) instead of the 1989 one; the model file records it. Only train --teacher reads such a model file."
            | Teacher _ -> "distil from this saved model (repeat for an ensemble; any network with the same input, 10 linear outputs and a first layer that reads its input as the student's), run on each presentation's frame; trained on the same data set, and with --holdout without those digits. Not with --distill."
            | Sam _ -> "adamw: sharpness-aware minimization, each example's gradient taken at the weights moved this distance rho up its own gradient (twice the training cost; 0 = none)."

/// One pass's report; `testName` is the second split's name ("test", or "held-out" with --holdout).
let passLine (testName: string) (m: PassMetrics) =
    $"pass {m.Pass,2}  train loss {formatLoss m.Train.Loss} error {m.Train.Error:F2}%% misses {m.Train.Misses,4} | {testName} loss {formatLoss m.Test.Loss} error {m.Test.Error:F2}%% misses {m.Test.Misses,4}"

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
          (match args.GetResults Teacher with [] -> None | files -> Some(RecipeOverride.SavedTeachers files.Length))
          args.TryGetResult Temperature |> Option.map RecipeOverride.Temperature
          args.TryGetResult Distill_Weight |> Option.map RecipeOverride.DistillWeight
          args.TryGetResult Sam |> Option.map RecipeOverride.Sam
          args.TryGetResult Tangent_Prop |> Option.map RecipeOverride.TangentProp ]

/// The recipe `--recipe` names (lecun1989 by default) with the other options' overrides, training the
/// network `--network` names.
let recipeFrom (args: ParseResults<TrainArgs>) =
    let named = args.TryGetResult Recipe |> Option.defaultValue Recipe.lecun1989.Name |> Recipe.tryFind |> orFail
    let recipe = Recipe.apply (overridesFrom args) named |> orFail
    match args.TryGetResult Network with
    | Some file -> NetworkText.readFile file |> Result.bind (fun network -> NetworkText.trainedBy network recipe) |> orFail
    | None -> recipe

/// Hears the runs of a training run: one progress bar per run on a terminal, plain lines otherwise.
let private watchWithProgress (start: RunStart) (run: RunWatch -> unit) =
    let count = start.Recipes.Length
    let label j = if count = 1 then "training" else $"seed {start.Recipes.[j].Seed}"
    let perPass = start.Data.Train.Count
    if isInteractive () then
        progressDisplay()
            .Start(fun ctx ->
                let tasks = start.Recipes |> Array.mapi (fun j recipe -> ctx.AddTask(label j, true, float (recipe.Passes * perPass)))
                run { Progress = (fun j pass done' -> tasks.[j].Value <- float ((pass - 1) * perPass + done'))
                      Pass = (fun j m ->
                          tasks.[j].Value <- float (m.Pass * perPass)
                          AnsiConsole.WriteLine((if count > 1 then label j + "  " else "") + passLine start.TestName m)) })
    else
        let gate = obj ()
        run { Progress = (fun _ _ _ -> ())
              Pass = fun j m -> lock gate (fun () -> printfn "%s%s" (if count > 1 then label j + "  " else "") (passLine start.TestName m)) }

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

/// A run's pictures, drawn into its folder beside the model's files: the curves, the misclassified
/// digits and (with distortions) the first digit of each class distorted; returns their names.
let private pictures (outDir: string) (run: RunContext) (result: TrainResult) =
    let recipe, dataSet, data = run.Recipe, run.DataSetLabel, run.Data
    // The two pictures are drawn side by side, one per core.
    let curves = Threading.Tasks.Task.Run(fun () -> Plots.curvesPng $"{recipe.Name} on {dataSet}, seed {recipe.Seed}" result.Passes)
    let missed = [| for i in 0 .. data.Test.Count - 1 do if result.TestPredictions.[i] <> data.Test.Labels.[i] then i |]
    let errors =
        Plots.errorGalleryPng $"{recipe.Name} on {dataSet}: misclassified {run.TestName} digits" (missed |> Array.map (fun i -> data.Test.Image(i).ToArray()))
            (missed |> Array.map (fun i -> data.Test.Labels.[i])) (missed |> Array.map (fun i -> result.TestPredictions.[i]))
    AtomicFile.writeBytes (Path.Combine(outDir, "curves.png")) curves.Result
    AtomicFile.writeBytes (Path.Combine(outDir, "errors.png")) errors
    // The first training digit of each class under the run's distortions (a stream of their own).
    if DistortionSettings.isNone recipe.Refine.Distortion then [ "curves.png"; "errors.png" ]
    else
        let firsts = [| for c in 0 .. 9 do match Array.tryFindIndex ((=) c) data.Train.Labels with Some i -> data.Train.Image(i).ToArray() | None -> () |]
        let picture =
            DistortionPlot.png (DistortionPlot.title recipe.Name recipe.Refine.Distortion recipe.Shift) (Recipe.network recipe) recipe.Refine.Distortion recipe.Shift (recipe.Seed + 7919) firsts 9
        AtomicFile.writeBytes (Path.Combine(outDir, "distortions.png")) picture
        [ "curves.png"; "errors.png"; "distortions.png" ]

/// The line on the teachers' ensemble of a distilled run (or runs); saved teachers' networks have
/// inference costs of their own (count-params --network).
let ensembleLine (testName: string) (distill: DistillSettings) (ensembles: SplitMetrics array) =
    let s = Runs.summarize (ensembles |> Array.map (fun m -> m.Error))
    let spread = if ensembles.Length > 1 then $" ± {s.Sd:F2}" else ""
    let teachers = distill.Teachers
    let what = if distill.Saved then $"the {teachers} saved teachers' ensemble" else $"the {teachers} teachers' ensemble ({teachers} x the inference cost)"
    $"side row: {what}: {testName} error {s.Mean:F2}{spread}%% misses {ensembles |> Array.averageBy (fun m -> float m.Misses):F1}"

/// Carries out a training run (TrainRun.train) with the command's report: the header, each pass, the
/// final table (or the seeds' table) and the files written. `warmUp` is waited for before the tables.
let trainAndReport (verbose: bool) (request: RunRequest) (warmUp: Threading.Tasks.Task) : RunResult =
    let recipe = request.Recipe
    let watch (start: RunStart) (run: RunWatch -> unit) =
        let data, count = start.Data, start.Recipes.Length
        printfn "training %s on %s (%d train, %d %s digits): %s; seed %s; backend %s"
            recipe.Name data.Source data.Train.Count data.Test.Count start.TestName (Recipe.describe recipe)
            (if count = 1 then string recipe.Seed else $"{recipe.Seed}..{(Array.last start.Recipes).Seed}") (Evaluator.name request.Backend)
        match request.Backend with
        | Evaluator.Engine backend when verbose -> printf "%s" (Providers.routing backend (Recipe.network recipe) recipe.BatchSize Evaluate.batch)
        | _ -> ()
        watchWithProgress start run
    let written = TrainRun.train { request with Watch = watch; ExtraFiles = pictures } |> orFail
    warmUp.Wait()
    printfn ""
    let testName = written.TestName
    let dataSet = DataSetName.describe request.DataSet request.HeldOut
    match written.Summary with
    | None ->
        let run = written.Runs.[0]
        printfn "%s" (finalTable dataSet testName run.Passes)
        run.Ensemble |> Option.iter (fun e -> printfn "%s" (ensembleLine testName recipe.Refine.Distill.Value [| e |]))
        printfn "%d passes in %.2f s (%.0f presentations/s including evaluation)" recipe.Passes run.Seconds
            (float (recipe.Passes * written.Data.Train.Count) / run.Seconds)
        printfn "wrote %s: %s" written.Folder (String.concat " " written.Files)
    | Some summary ->
        printfn "%6s %9s %7s | %9s %7s" "seed" "train" "misses" testName "misses"
        for r in written.Runs do
            let m = r.Final
            printfn "%6d %8.2f%% %7d | %8.2f%% %7d" r.Seed m.Train.Error m.Train.Misses m.Test.Error m.Test.Misses
        printfn "%6s %5.2f±%.2f%% %7.1f | %5.2f±%.2f%% %7.1f   (mean ± sd over %d seeds)" "mean"
            summary.Train.Error.Mean summary.Train.Error.Sd summary.Train.Misses summary.Test.Error.Mean summary.Test.Error.Sd summary.Test.Misses summary.Seeds
        if testName = "test" then
            printfn "%s %8.2f%% %7d | %8.2f%% %7d" "paper " Paper.trainError Paper.trainMisses Paper.testError Paper.testMisses
        let ensembles = written.Runs |> Array.choose (fun r -> r.Ensemble)
        if ensembles.Length > 0 then printfn "%s" (ensembleLine testName recipe.Refine.Distill.Value ensembles)
        printfn "%d runs in %.1f s wall" written.Runs.Length written.Seconds
        printfn "wrote %s: seeds.json and one folder per seed" written.Folder
    written

/// The warm-up of a training run: the other core compiles the training code and loads the plotting
/// code while this one reads the data. A failed warm-up costs only its time: the run itself reports
/// any real problem.
let warmUp (evaluator: Evaluator) (recipe: Recipe) =
    Threading.Tasks.Task.Run(fun () ->
        match evaluator with
        | Evaluator.Engine backend -> (try Train.warmUp backend recipe with _ -> ())
        | Evaluator.Reference -> ()
        Plots.warmUp ())

let run (verbose: bool) (args: ParseResults<TrainArgs>) =
    let recipe = recipeFrom args
    let dataSet = args.GetResult(Data_Set, "usps") |> DataSetName.parse |> orFail
    let evaluator = Providers.chooseEvaluator (args.TryGetResult Backend)
    let warming = warmUp evaluator recipe
    let data = Data.load dataSet (args.TryGetResult Data) |> orFail
    let initial = args.TryGetResult Init |> Option.map (fun file -> (ModelFile.load file |> orFail).Parameters)
    let teachers =
        args.GetResults Teacher
        |> List.map (fun file -> ModelFile.loadAny file |> Result.bind (ModelFile.teacherFor dataSet (args.TryGetResult Holdout)) |> orFail)
        |> Array.ofList
    trainAndReport verbose
        { TrainRun.request recipe dataSet data evaluator with
            Seeds = args.GetResult(Seeds, 1)
            HeldOut = args.TryGetResult Holdout
            Initial = initial
            Teachers = teachers
            Jobs = args.GetResult(Jobs, Environment.ProcessorCount)
            Out = args.TryGetResult Out
            Force = args.Contains Force }
        warming
    |> ignore
    0
