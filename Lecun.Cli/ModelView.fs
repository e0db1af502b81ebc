/// A loaded model as `show` and `serve` present it: the network, its parameters, what its metadata
/// says about it, and (when the data set is found) its test error and misclassified test digits.
module Lecun.Cli.ModelView

open System
open System.IO
open Lecun.Model
open Lecun.Cli.Output

/// A test digit the model gets wrong.
type Miss = { Index: int; Label: int; Predicted: int }

type ModelView =
    { File: string
      Net: Network
      Parameters: float32 array
      /// What the model file says about how it was made.
      Info: ModelInfo
      /// What computes its outputs: the engine on a provider, or the reference.
      Evaluator: Evaluator
      /// The model's data set (named by its metadata), or why it could not be loaded.
      Data: Result<TrainTest, string>
      /// Error on the test split, measured when the model was loaded.
      Test: SplitMetrics option
      Misses: Miss array }

    member v.DataSetName = v.Info.DataSet

/// Loads a checkpoint and evaluates it on its data set's test split. A missing data set is not an
/// error (the model still reads drawings); it is reported in `Data`.
let load (evaluator: Evaluator) (file: string) (dataDir: string option) =
    let model = ModelFile.load file |> orFail
    let info = ModelFile.info model
    let data = DataSetName.parse info.DataSet |> Result.bind (fun d -> Data.load d dataDir)
    let test, misses =
        match data with
        | Ok d ->
            let result = Evaluator.evaluate evaluator model d.Test |> orFail
            let misses =
                [| for i in 0 .. d.Test.Count - 1 do
                       if result.Predictions.[i] <> d.Test.Labels.[i] then
                           { Index = i; Label = d.Test.Labels.[i]; Predicted = result.Predictions.[i] } |]
            Some result.Metrics, misses
        | Error _ -> None, [||]
    { File = file; Net = model.Network; Parameters = model.Parameters; Info = info; Evaluator = evaluator
      Data = data; Test = test; Misses = misses }

/// A split of the model's data set by name ("train" or "test").
let split (view: ModelView) (name: string) : Result<Dataset, string> =
    match name, view.Data with
    | _, Error e -> Error e
    | "train", Ok d -> Ok d.Train
    | "test", Ok d -> Ok d.Test
    | other, _ -> Error $"unknown split '{other}' (train or test)"

/// One digit of a split with its label, or why there is none.
let digit (view: ModelView) (splitName: string) (index: int) : Result<float32 array * int, string> =
    split view splitName
    |> Result.bind (fun d ->
        if index < 0 || index >= d.Count then Error $"{splitName} digit {index} does not exist (0..{d.Count - 1})"
        else Ok(d.Image(index).ToArray(), d.Labels.[index]))

/// The class the network gives to its output layer's values.
let classOf (outputs: float32 array) = Loss.argmax outputs 0 outputs.Length

/// The newest model file under `runs/` (a run's folder or a seed's folder in it), if any.
let newestRun (runsDir: string) =
    if not (Directory.Exists runsDir) then None
    else
        Directory.EnumerateFiles(runsDir, "model.safetensors", SearchOption.AllDirectories)
        |> Seq.sortByDescending (fun f -> File.GetLastWriteTimeUtc f, f)
        |> Seq.tryHead

/// One line about the model, for the terminal and the page's corner.
let describe (view: ModelView) =
    let test = match view.Test with Some m -> $"test error %.2f{m.Error}%% ({m.Misses} misses)" | None -> "test error unknown (data set not found)"
    let known (value: 'T option) = value |> Option.map string |> Option.defaultValue "?"
    $"""{known view.Info.Recipe}, seed {known view.Info.Seed}, {view.DataSetName}, {test}"""
