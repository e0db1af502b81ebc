/// A training run as one application call (what `train` and `serve` do): a recipe trained for one or
/// more seeds, its run folder written (model files, metrics, the seeds' summary) through RunFolder,
/// and what was written returned. The caller hears the run through callbacks and may add files of
/// its own (the command line's pictures); it parses, prints and draws, nothing else.
namespace Lecun.Model

open System
open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open FsToolkit.ErrorHandling
open Lecun.Native.Backends

/// JSON as every file of a run is written.
module RunJson =
    /// Indented; a non-finite number (a diverged loss, say) is written as the string "NaN",
    /// "Infinity" or "-Infinity" instead of making the writer throw.
    let options =
        JsonSerializerOptions(WriteIndented = true, NumberHandling = Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals)

    /// The `error_mean`, `error_sd` and `misses_mean` of one split over seeds, as seeds.json and ladder.json write them.
    let splitSummary (s: SplitSummary) =
        JsonObject(dict [ "error_mean", JsonValue.Create s.Error.Mean :> JsonNode; "error_sd", JsonValue.Create s.Error.Sd; "misses_mean", JsonValue.Create s.Misses ]) :> JsonNode

/// What one run's files say about it besides its results.
type RunContext =
    { Recipe: Recipe
      DataSet: DataSetName
      /// With a hold-out, the count of training digits held out (the files say so).
      HeldOut: int option
      /// The second split's name: "test", or "held-out" with a hold-out.
      TestName: string
      Backend: string
      /// The data the run trained and was evaluated on (after any hold-out).
      Data: TrainTest }

    /// The data set as the files name it (with a hold-out, which digits were held out).
    member r.DataSetLabel = DataSetName.describe r.DataSet r.HeldOut

/// What is about to train, told to the caller before the first pass.
type RunStart =
    { /// The recipe of each run (the request's, with each seed), in job order.
      Recipes: Recipe array
      /// The data the runs train and are evaluated on (after any hold-out).
      Data: TrainTest
      /// The second split's name: "test", or "held-out" with a hold-out.
      TestName: string }

/// Where the caller hears the runs while they train.
type RunWatch =
    { /// Run j (in job order), its pass (from 1) and the digits presented in it so far.
      Progress: int -> int -> int -> unit
      /// Run j's figures after each pass.
      Pass: int -> PassMetrics -> unit }

/// A training run to carry out and write.
type RunRequest =
    { /// The recipe, its seed the first of `Seeds` seeds (seed, seed+1, ...).
      Recipe: Recipe
      Seeds: int
      /// The data set's name, as the model files record it.
      DataSet: DataSetName
      Data: TrainTest
      /// Train on all but the last N training digits and evaluate on those N instead of the test set.
      HeldOut: int option
      /// The starting weights of every seed (a checkpoint's), or None for the recipe's initialization.
      Initial: float32 array option
      /// The saved teachers a distilling recipe learns from (`train --teacher`; the recipe names as many).
      Teachers: SavedTeacher array
      /// What trains: the engine on a provider, or the float64 reference (per-example SGD only).
      Backend: Evaluator
      /// Runs at a time (at most the cores).
      Jobs: int
      /// The run folder: None for a new folder under runs/ named after the recipe and seed.
      Out: string option
      /// Replace an `Out` folder that holds a finished run of this program.
      Force: bool
      /// Called once the request is checked, with what will train and the runs to start: it calls
      /// the function it is given (once) with its callbacks, inside a display of its own if it likes.
      Watch: RunStart -> (RunWatch -> unit) -> unit
      /// Files of the caller's own for each run, written into the run's folder (given) beside the
      /// model's files before the folder is moved into place; returns their names in the folder.
      ExtraFiles: string -> RunContext -> TrainResult -> string list }

/// One seed's run as written.
type WrittenRun =
    { Seed: int
      Passes: PassMetrics list
      /// Wall time of the run's training and per-pass evaluation.
      Seconds: float
      /// With distillation: the teachers' ensemble on the second split.
      Ensemble: SplitMetrics option
      /// The run's folder (the run folder itself, or its `seed-N` folder with several seeds).
      Folder: string
      /// The model file.
      ModelFile: string
      /// The run's files, by name in its folder, in the order they were written.
      Files: string list }

    /// The figures after the last pass.
    member r.Final = List.last r.Passes

/// What a training run wrote.
type RunResult =
    { /// The run folder, moved into place (relative to the working folder when inside it).
      Folder: string
      /// Every file written, relative to `Folder` ('/'-separated), the marker left out.
      Files: string list
      /// Each seed's run, in seed order.
      Runs: WrittenRun array
      /// With several seeds: the summary seeds.json holds.
      Summary: SeedsSummary option
      /// Wall time of all the runs.
      Seconds: float
      /// The data the runs trained and were evaluated on, and its second split's name.
      Data: TrainTest
      TestName: string }

module TrainRun =
    let private invariant = Globalization.CultureInfo.InvariantCulture

    /// A request with the defaults of `lecun train`: one seed, the recipe's initialization, one run per
    /// core, a new folder under runs/, no callbacks and no files besides the model's.
    let request (recipe: Recipe) (dataSet: DataSetName) (data: TrainTest) (backend: Evaluator) : RunRequest =
        { Recipe = recipe; Seeds = 1; DataSet = dataSet; Data = data; HeldOut = None; Initial = None; Teachers = [||]; Backend = backend
          Jobs = Environment.ProcessorCount; Out = None; Force = false
          Watch = (fun _ run -> run { Progress = (fun _ _ _ -> ()); Pass = (fun _ _ -> ()) })
          ExtraFiles = fun _ _ _ -> [] }

    /// metrics.csv: one row per pass.
    let metricsCsv (passes: PassMetrics list) =
        let inv (x: float) = x.ToString("R", invariant)
        let rows =
            passes
            |> List.map (fun m ->
                String.Join(",", [ string m.Pass; inv m.Train.Loss; inv m.Train.Error; string m.Train.Misses
                                   inv m.Test.Loss; inv m.Test.Error; string m.Test.Misses; inv m.Seconds ]))
        String.Join("\n", "pass,train_loss,train_error,train_misses,test_loss,test_error,test_misses,seconds" :: rows) + "\n"

    /// metrics.json: what made the run and its figures after each pass.
    let metricsJson (run: RunContext) (result: TrainResult) =
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
            .ToJsonString(RunJson.options)

    /// seeds.json: the recipe, each seed's final figures and their summary (and the teachers' ensembles').
    let seedsJson (recipe: Recipe) (dataSet: string) (seconds: float) (finals: (int * PassMetrics) array) (ensembles: SplitMetrics array) =
        let summary = SeedsSummary.ofFinals (Array.map snd finals)
        let run (seed: int, m: PassMetrics) =
            JsonObject(dict [ "seed", JsonValue.Create seed :> JsonNode; "train_error", JsonValue.Create m.Train.Error; "train_misses", JsonValue.Create m.Train.Misses
                              "test_error", JsonValue.Create m.Test.Error; "test_misses", JsonValue.Create m.Test.Misses ]) :> JsonNode
        JsonObject(
            dict [ "recipe", JsonValue.Create recipe.Name :> JsonNode
                   "details", JsonValue.Create(Recipe.describe recipe)
                   "data_set", JsonValue.Create dataSet
                   "seconds", JsonValue.Create seconds
                   "train", RunJson.splitSummary summary.Train
                   "test", RunJson.splitSummary summary.Test
                   if ensembles.Length > 0 then
                       let e = SeedsSummary.ofFinals (ensembles |> Array.map (fun m -> { Pass = 0; Train = m; Test = m; Seconds = 0.0 }))
                       "teachers_ensemble", RunJson.splitSummary e.Test
                   "runs", JsonArray(finals |> Array.map run) ])
            .ToJsonString(RunJson.options)

    /// The name of a new run's folder under runs/: when it started, the recipe and its first seed.
    let folderName (recipe: Recipe) =
        $"""{DateTime.Now.ToString("yyyyMMdd-HHmmss", invariant)}-{recipe.Name}-seed{recipe.Seed}"""

    /// Writes one run's files into `dir` (each whole or not at all); returns their names.
    let private writeRun (dir: string) (context: RunContext) (result: TrainResult) (extraFiles: string -> RunContext -> TrainResult -> string list) =
        Directory.CreateDirectory dir |> ignore
        ModelFile.save (Path.Combine(dir, "model.safetensors")) context.Recipe context.DataSet context.HeldOut result.Parameters
        AtomicFile.writeText (Path.Combine(dir, "metrics.csv")) (metricsCsv result.Passes)
        AtomicFile.writeText (Path.Combine(dir, "metrics.json")) (metricsJson context result)
        [ "model.safetensors"; "metrics.csv"; "metrics.json" ] @ extraFiles dir context result

    /// Trains the request's recipe for each of its seeds and writes the run folder: with one seed the
    /// run's files (model.safetensors, metrics.csv, metrics.json and the caller's), with several
    /// seeds.json and a `seed-N` folder per seed holding its run's files. The folder is staged and moved
    /// into place at the end, so a run that fails leaves nothing (RunFolder). A bad request is an Error
    /// before anything is written; a diverging run raises TrainingDiverged, as Train.run does.
    let train (request: RunRequest) : Result<RunResult, string> =
        result {
            let! recipe = Recipe.validate request.Recipe
            let! seedCount = Runs.checkSeedCount request.Seeds
            let! seeds = Recipe.seeds recipe.Seed seedCount
            let! parallelism = Runs.checkJobs request.Jobs
            let! data = Runs.holdOut request.HeldOut request.Data
            let! _ = Recipe.fitsTrainingSet data.Train.Count recipe
            do! match request.Backend, ReferenceTraining.unsupported recipe with
                | Evaluator.Reference, Some why -> Error why
                | _ -> Ok()
            let! teachers = Train.checkSavedTeachers recipe request.Teachers
            let layout = Recipe.layout recipe
            let parameters = layout.ParamCount
            do! match request.Initial with
                | Some weights when isNull weights || weights.Length <> parameters ->
                    Error $"the starting weights hold {(if isNull weights then 0 else weights.Length)} values; the network has {parameters}"
                | _ -> Ok()
            let testName = if request.HeldOut.IsSome then data.Test.Name else "test"
            let initial seed =
                match request.Initial with
                | Some weights -> weights
                | None -> Init.create recipe.WeightInit layout seed
            let jobs = [| for seed in seeds -> { Recipe = { recipe with Seed = seed }; Data = data; Initial = fun () -> initial seed } |]
            let context (r: Recipe) : RunContext =
                { Recipe = r; DataSet = request.DataSet; HeldOut = request.HeldOut; TestName = testName; Backend = Evaluator.name request.Backend; Data = data }
            let! folder = RunFolder.stageRun request.Out request.Force (fun () -> folderName recipe)
            let! (runs, summary, seconds), final =
                RunFolder.write folder (fun outDir ->
                    let single = jobs.Length = 1
                    let seedFolder (r: Recipe) = if single then "" else $"seed-{r.Seed}"
                    // Each run's files are written as it ends (on its worker), and only its figures are kept;
                    // its folder and model file are named relative to the staging folder until it is in place.
                    let finish (j: int) (r: TrainResult) =
                        let recipe = jobs.[j].Recipe
                        let files = writeRun (Path.Combine(outDir, seedFolder recipe)) (context recipe) r request.ExtraFiles
                        { Seed = recipe.Seed; Passes = r.Passes; Seconds = r.Seconds; Ensemble = r.Ensemble
                          Folder = seedFolder recipe; ModelFile = "model.safetensors"; Files = files }
                    let clock = Diagnostics.Stopwatch.StartNew()
                    let mutable written = None
                    request.Watch { Recipes = jobs |> Array.map (fun j -> j.Recipe); Data = data; TestName = testName } (fun watch ->
                        if written.IsSome then invalidOp "a run request's Watch called its run twice"
                        let train =
                            match request.Backend with
                            | Evaluator.Engine backend -> Train.runWithTeachers backend teachers
                            | Evaluator.Reference -> ReferenceTraining.run
                        written <- Some(Runs.runEachWith train parallelism jobs watch.Progress watch.Pass finish))
                    let runs = match written with Some runs -> runs | None -> invalidOp "a run request's Watch did not call its run"
                    let seconds = clock.Elapsed.TotalSeconds
                    if single then runs, None, seconds
                    else
                        let finals = runs |> Array.map (fun r -> r.Seed, r.Final)
                        let ensembles = runs |> Array.choose (fun r -> r.Ensemble)
                        AtomicFile.writeText (Path.Combine(outDir, "seeds.json"))
                            (seedsJson recipe (DataSetName.describe request.DataSet request.HeldOut) seconds finals ensembles)
                        runs, Some(SeedsSummary.ofFinals (Array.map snd finals)), seconds)
            let files =
                [ for r in runs do
                      for f in r.Files -> if r.Folder = "" then f else $"{r.Folder}/{f}" ]
                @ (if summary.IsSome then [ "seeds.json" ] else [])
            let runs =
                runs |> Array.map (fun r ->
                    let dir = if r.Folder = "" then final else Path.Combine(final, r.Folder)
                    { r with Folder = dir; ModelFile = Path.Combine(dir, r.ModelFile) })
            return { Folder = final; Files = files; Runs = runs; Summary = summary; Seconds = seconds; Data = data; TestName = testName }
        }
