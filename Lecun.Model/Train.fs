/// Training and evaluation: the per-example loop of the paper and the per-pass report.
namespace Lecun.Model

open System
open System.Diagnostics
open System.Threading.Tasks
open Lecun.Native.Backends

type OptimizerKind =
    /// Plain stochastic gradient descent at a constant learning rate.
    | Sgd

/// Everything that defines a training run; a recipe is a named default of this record.
type Recipe =
    { Name: string
      Passes: int
      LearningRate: float32
      /// 1 = per-example updates (the paper); B > 1 = minibatch SGD on the averaged gradient.
      BatchSize: int
      Hidden: Activation
      Output: Activation
      Loss: Loss
      Optimizer: OptimizerKind
      Seed: int }

module Recipe =
    /// The paper's experiment: per-example SGD in file order, 23 passes, MSE, tanh everywhere, lr 0.03.
    let lecun1989 =
        { Name = "lecun1989"; Passes = 23; LearningRate = 0.03f; BatchSize = 1; Hidden = Tanh; Output = Tanh
          Loss = Mse; Optimizer = Sgd; Seed = 1337 }

    let all = [ lecun1989 ]

    let tryFind (name: string) =
        match all |> List.tryFind (fun r -> r.Name = name) with
        | Some r -> Ok r
        | None -> Error $"""unknown recipe '{name}' (known: {all |> List.map (fun r -> r.Name) |> String.concat ", "})"""

    let network (r: Recipe) = Network.create Layout.lecun1989 r.Hidden r.Output

/// Outputs and metrics of one split, from one batched evaluation.
type SplitEvaluation = { Metrics: SplitMetrics; Predictions: int array }

module Evaluate =
    /// Batch size of evaluation: large enough for MKL to pay off, small enough to stay in cache.
    let batch = 256

    /// Loss, error and misses of a whole data set, evaluated in batches on the given workspace.
    let split (backend: IBackend) (net: Network) (loss: Loss) (parameters: float32 array) (ws: Workspace) (data: Dataset) =
        let outputs = net.Layout.OutputSize
        let predictions = Array.zeroCreate data.Count
        let mutable lossSum = 0.0
        let mutable misses = 0
        let mutable start = 0
        while start < data.Count do
            let count = min ws.Capacity (data.Count - start)
            Forward.run backend net parameters ws data.Images (start * Dataset.Pixels) count
            let y = Forward.outputs net ws
            for b in 0 .. count - 1 do
                let label = data.Labels.[start + b]
                lossSum <- lossSum + Loss.value loss y (b * outputs) outputs label
                let predicted = Loss.argmax y (b * outputs) outputs
                predictions.[start + b] <- predicted
                if predicted <> label then misses <- misses + 1
            start <- start + count
        let n = max data.Count 1
        { Metrics = { Loss = lossSum / float n; Error = 100.0 * float misses / float n; Misses = misses; Count = data.Count }
          Predictions = predictions }

    /// Evaluates several splits at once, one per core (each with its own workspace).
    let splits (backend: IBackend) (net: Network) (loss: Loss) (parameters: float32 array) (workspaces: Workspace array) (data: Dataset array) =
        let results = Array.zeroCreate data.Length
        Parallel.For(0, data.Length, fun i -> results.[i] <- split backend net loss parameters workspaces.[i] data.[i]) |> ignore
        results

type TrainResult =
    { Parameters: float32 array
      Passes: PassMetrics list
      /// Wall time of training and per-pass evaluation.
      Seconds: float
      /// Test-set predictions after the last pass.
      TestPredictions: int array }

module Train =
    /// How often (in presentations) progress is reported: often enough for a smooth bar, rarely enough to cost nothing.
    let progressEvery = 512

    /// One pass of training over `data` in file order; parameters are updated in place.
    let trainOnePass (backend: IBackend) (net: Network) (recipe: Recipe) (parameters: float32 array) (ws: Workspace)
                     (grad: float32 array) (dOut: float32 array) (data: Dataset) (onProgress: int -> unit) =
        let outputs = net.Layout.OutputSize
        let batch = max 1 recipe.BatchSize
        let rate = recipe.LearningRate / float32 batch
        for i in 0 .. data.Count - 1 do
            let x = i * Dataset.Pixels
            Forward.run backend net parameters ws data.Images x 1
            Loss.gradient recipe.Loss (Forward.outputs net ws) 0 outputs data.Labels.[i] dOut
            let first = i % batch = 0
            Backward.run backend net parameters ws data.Images x dOut grad (not first)
            if (i + 1) % batch = 0 || i = data.Count - 1 then Optimizer.sgdStep rate parameters grad
            if (i + 1) % progressEvery = 0 then onProgress (i + 1)

    /// Trains from `initial` for recipe.Passes passes, evaluating both splits after each pass.
    /// `onProgress pass presentations` reports within a pass; `onPass` after each pass's evaluation.
    let run (backend: IBackend) (recipe: Recipe) (data: TrainTest) (initial: float32 array)
            (onProgress: int -> int -> unit) (onPass: PassMetrics -> unit) =
        if recipe.Passes < 0 then invalidArg "recipe" "passes must not be negative"
        let net = Recipe.network recipe
        let parameters = Array.copy initial
        let ws = Workspace.create net 1
        let grad = Array.zeroCreate<float32> parameters.Length
        let dOut = Array.zeroCreate<float32> net.Layout.OutputSize
        let evalWorkspaces = Array.init 2 (fun _ -> Workspace.create net Evaluate.batch)
        let clock = Stopwatch.StartNew()
        let mutable testPredictions = Array.empty
        let passes =
            [ for pass in 1 .. recipe.Passes do
                  trainOnePass backend net recipe parameters ws grad dOut data.Train (onProgress pass)
                  let results = Evaluate.splits backend net recipe.Loss parameters evalWorkspaces [| data.Train; data.Test |]
                  testPredictions <- results.[1].Predictions
                  let metrics = { Pass = pass; Train = results.[0].Metrics; Test = results.[1].Metrics; Seconds = clock.Elapsed.TotalSeconds }
                  onPass metrics
                  yield metrics ]
        { Parameters = parameters; Passes = passes; Seconds = clock.Elapsed.TotalSeconds; TestPredictions = testPredictions }
