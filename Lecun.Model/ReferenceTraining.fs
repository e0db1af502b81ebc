/// Training on the float64 reference (`train --backend reference`): the paper's per-example SGD with
/// every forward and backward pass over the connection graph in float64 (Reference.gradient), and each
/// pass evaluated on both splits by the reference. Slow and exact, for checking the engine's training.
namespace Lecun.Model

open System
open System.Diagnostics

module ReferenceTraining =
    /// Why the reference cannot train a recipe, or None. It runs per-example SGD only: it has no
    /// curvature estimate, optimizer state, batches or augmentations.
    let unsupported (recipe: Recipe) : string option =
        let refine = recipe.Refine
        let uses =
            [ (match recipe.Optimizer with Sgd -> None | Newton _ -> Some "newton" | AdamW _ -> Some "adamw")
              (if recipe.BatchSize <> 1 then Some $"--batch-size {recipe.BatchSize}" else None)
              (if recipe.Shift > 0 then Some "shifts" else None)
              (if recipe.Dropout > 0.0f then Some "dropout" else None)
              (if not (DistortionSettings.isNone refine.Distortion) then Some "distortions" else None)
              (if refine.AverageLast > 0 then Some "weight averaging" else None)
              (if refine.LabelSmoothing > 0.0f then Some "label smoothing" else None)
              (if refine.Distill.IsSome then Some "distillation" else None) ]
            |> List.choose id
        if uses.IsEmpty then None
        else
            Some $"""--backend reference trains per-example SGD only, and {recipe.Name} as given uses {String.concat ", " uses}: train it with auto, mkl or managed (or give the reference a recipe without them, such as lecun1989)"""

    /// Trains the recipe from `initial` as Train.run does (the same order of digits, rate and report),
    /// in float64; the result's weights are rounded to float32 once, at the end. `onProgress pass
    /// presentations` and `onPass` run on the calling thread.
    let run (recipe: Recipe) (data: TrainTest) (initial: float32 array) (onProgress: int -> int -> unit) (onPass: PassMetrics -> unit) : TrainResult =
        match unsupported recipe |> Option.map Error |> Option.defaultValue (Recipe.validate recipe) |> Result.bind (Recipe.fitsTrainingSet data.Train.Count) with
        | Error problem -> invalidArg (nameof recipe) problem
        | Ok _ -> ()
        let clock = Stopwatch.StartNew()
        let net = Recipe.network recipe
        let graph = Evaluator.graphOf net
        let parameters = Array.map float initial
        let train = data.Train
        let passes = ResizeArray()
        let mutable testPredictions = Array.empty
        for pass in 1 .. recipe.Passes do
            let rate = float (Recipe.rateAt recipe pass)
            for i in 0 .. train.Count - 1 do
                let gradient = Reference.gradient recipe.Loss net graph parameters (Array.map float (train.Image(i).ToArray())) train.Labels.[i]
                for w in 0 .. parameters.Length - 1 do
                    parameters.[w] <- parameters.[w] - rate * gradient.[w]
                if (i + 1) % Train.progressEvery = 0 then onProgress pass (i + 1)
            match Array.tryFindIndex (float32 >> Single.IsFinite >> not) parameters with
            | Some w -> raise (TrainingDiverged(recipe.Seed, pass, $"weight {w} is {parameters.[w]}"))
            | None -> ()
            let onTrain, trainFits = Evaluator.referenceSplit net recipe.Loss parameters train
            let onTest, testFits = Evaluator.referenceSplit net recipe.Loss parameters data.Test
            for name, fits, loss in [ "training", trainFits, onTrain.Metrics.Loss; "test", testFits, onTest.Metrics.Loss ] do
                if not fits then raise (TrainingDiverged(recipe.Seed, pass, $"the {name} loss ({loss}) or an output is beyond float32"))
            testPredictions <- onTest.Predictions
            let metrics = { Pass = pass; Train = onTrain.Metrics; Test = onTest.Metrics; Seconds = clock.Elapsed.TotalSeconds }
            passes.Add metrics
            onPass metrics
        { Parameters = Array.map float32 parameters; Passes = List.ofSeq passes; Seconds = clock.Elapsed.TotalSeconds
          TestPredictions = testPredictions; Ensemble = None }
