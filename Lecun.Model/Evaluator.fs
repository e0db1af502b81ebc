/// What computes the network (`--backend`): the engine on a BLAS provider, or the float64 reference,
/// runnable for checking the engine's answers where a model is read (`eval`, `predict`, `show`,
/// `serve`) and where one is trained (ReferenceTraining).
namespace Lecun.Model

open System
open System.Runtime.CompilerServices
open Lecun.Native.Backends

[<RequireQualifiedAccess>]
type Evaluator =
    /// The float32 engine on a provider (auto, mkl or managed).
    | Engine of IBackend
    /// The float64 reference over the connection graph (Reference.fs): slow and exact. It trains
    /// per-example SGD only (ReferenceTraining).
    | Reference

module Evaluator =
    /// The reference's name where a provider's name is asked for (`--backend reference`).
    let referenceName = "reference"

    let name (evaluator: Evaluator) =
        match evaluator with
        | Evaluator.Engine backend -> backend.Name
        | Evaluator.Reference -> referenceName

    /// Each layout's connection graph, built once (it is the network written out unit by unit).
    let private graphs = ConditionalWeakTable<NetLayout, UnitConnections array>()

    let graphOf (net: Network) = graphs.GetValue(net.Layout, fun layout -> ConnectionGraph.build layout)

    /// The reference's values of every unit for one image, in float64.
    let private referenceValues (net: Network) (parameters: float array) (image: float32 array) =
        (Reference.forward net (graphOf net) parameters (Array.map float image)).Values

    /// One layer's units of the reference's values, rounded to float32 as the engine stores them.
    let private layerValues (net: Network) (values: float array) =
        let mutable start = net.Layout.InputSize
        net.Plans |> Array.map (fun plan ->
            let units = plan.Geometry.Units
            let layer = Array.init units (fun u -> float32 values.[start + u])
            start <- start + units
            layer)

    let private checkImage (net: Network) (image: float32 array) =
        if image.Length <> net.Layout.InputSize then
            invalidArg (nameof image) $"{image.Length} values, expected {net.Layout.InputSize}"

    /// Every layer's outputs for one 16x16 image, as Inspect.layers gives them (`ws`, a one-example
    /// workspace, is used by the engine only).
    let layers (evaluator: Evaluator) (net: Network) (parameters: float32 array) (ws: Workspace) (image: float32 array) : float32 array array =
        match evaluator with
        | Evaluator.Engine backend -> Inspect.layers backend net parameters ws image
        | Evaluator.Reference ->
            checkImage net image
            layerValues net (referenceValues net (Array.map float parameters) image)

    /// The output scores of one digit, as ModelFile.scores gives them: refused when one is not finite
    /// (under the reference, when one is too large for float32).
    let scores (evaluator: Evaluator) (model: ModelFile) (ws: Workspace) (image: float32 array) (what: string) : Result<float32 array, string> =
        match evaluator with
        | Evaluator.Engine backend -> ModelFile.scores backend model ws image what
        | Evaluator.Reference ->
            let y = Array.last (layers evaluator model.Network model.Parameters ws image)
            if Array.forall Single.IsFinite y then Ok y
            else Error $"{model.Path}: the network's outputs on {what} are too large for float32"

    /// Loss, error, misses and predictions of float64 parameters on a split under the reference (every
    /// digit's outputs, loss (Reference.lossExact) and class in float64, the digits spread over the
    /// cores), and whether float32 holds every output and the loss.
    let referenceSplit (net: Network) (loss: Loss) (parameters: float array) (digits: Dataset) : SplitEvaluation * bool =
        let outputs = net.Layout.OutputSize
        let perDigit =
            Array.Parallel.init digits.Count (fun i ->
                let values = referenceValues net parameters (digits.Image(i).ToArray())
                let y = values.[values.Length - outputs ..]
                let predicted = Array.findIndex (fun v -> v = Array.max y) y
                Reference.lossExact loss y digits.Labels.[i], predicted, Array.forall (float32 >> Single.IsFinite) y)
        let lossSum = perDigit |> Array.sumBy (fun (l, _, _) -> l)
        let predictions = perDigit |> Array.map (fun (_, predicted, _) -> predicted)
        let misses = Array.fold2 (fun n p l -> if p <> l then n + 1 else n) 0 predictions digits.Labels
        let n = max digits.Count 1
        { Metrics = { Loss = lossSum / float n; Error = 100.0 * float misses / float n; Misses = misses; Count = digits.Count }
          Predictions = predictions },
        perDigit |> Array.forall (fun (_, _, fits) -> fits) && Double.IsFinite lossSum

    /// Loss, error, misses and predictions of the model on a split, as ModelFile.evaluate gives them
    /// (under the reference: referenceSplit).
    let evaluate (evaluator: Evaluator) (model: ModelFile) (digits: Dataset) : Result<SplitEvaluation, string> =
        match evaluator with
        | Evaluator.Engine backend -> ModelFile.evaluate backend model digits
        | Evaluator.Reference ->
            // As under the engine: outputs float32 cannot hold are refused, never reported.
            match referenceSplit model.Network model.Loss (Array.map float model.Parameters) digits with
            | result, true -> Ok result
            | _ -> Error $"{model.Path}: the network's outputs on {digits.Name} are too large for float32 (or not finite)"
