/// The scalar reference: the network evaluated unit by unit over its explicit connection graph, in
/// float64. Independent of im2col, GEMMs and the parameter views, so the engine is checked against it.
module Lecun.Tests.Reference

open Lecun.Model

let private act (a: Activation) (x: float) =
    match a with
    | Tanh -> tanh x
    | ScaledTanh -> 1.7159 * tanh (2.0 * x / 3.0)
    | Relu -> max x 0.0
    | Identity -> x

let private actDerivative (a: Activation) (x: float) =
    match a with
    | Tanh -> 1.0 - tanh x * tanh x
    | ScaledTanh -> 1.7159 * (2.0 / 3.0) * (1.0 - tanh (2.0 * x / 3.0) ** 2.0)
    | Relu -> if x > 0.0 then 1.0 else 0.0
    | Identity -> 1.0

type Evaluation = { Values: float array; Pre: float array }

/// Values of every unit (input units first), and the pre-activations of the non-input units.
let forward (net: Network) (graph: UnitConnections array) (p: float array) (x: float array) =
    let total = net.Layout.Units
    let values = Array.zeroCreate<float> total
    let pre = Array.zeroCreate<float> total
    Array.blit x 0 values 0 x.Length
    for u in graph do
        let mutable s = p.[u.Bias]
        for source, w in u.Inputs do
            let v =
                match source with
                | FromUnit i -> values.[i]
                | FromPad value -> float value
            s <- s + p.[w] * v
        pre.[u.Unit] <- s
        values.[u.Unit] <- act net.Plans.[u.Layer].Activation s
    { Values = values; Pre = pre }

let outputs (net: Network) (e: Evaluation) =
    let n = net.Layout.OutputSize
    e.Values.[e.Values.Length - n ..]

let lossOf (loss: Loss) (net: Network) (e: Evaluation) (label: int) =
    let y = outputs net e |> Array.map float32
    // The loss formula itself is float64 inside Loss.value; only y is rounded. For finite differences
    // use lossExact instead.
    Loss.value loss y 0 y.Length label

/// The loss in float64 throughout (MSE and cross-entropy), for finite differences.
let lossExact (loss: Loss) (y: float array) (label: int) =
    let t k = if k = label then 1.0 else -1.0
    match loss with
    | Mse -> (y |> Array.mapi (fun k v -> (v - t k) ** 2.0) |> Array.sum) / float y.Length
    | MseHalf -> 0.5 * (y |> Array.mapi (fun k v -> (v - t k) ** 2.0) |> Array.sum)
    | SoftmaxCrossEntropy ->
        let m = Array.max y
        m + log (y |> Array.sumBy (fun v -> exp (v - m))) - y.[label]

let private lossGradient (loss: Loss) (y: float array) (label: int) =
    let t k = if k = label then 1.0 else -1.0
    match loss with
    | Mse -> y |> Array.mapi (fun k v -> 2.0 * (v - t k) / float y.Length)
    | MseHalf -> y |> Array.mapi (fun k v -> v - t k)
    | SoftmaxCrossEntropy ->
        let m = Array.max y
        let e = y |> Array.map (fun v -> exp (v - m))
        let z = Array.sum e
        e |> Array.mapi (fun k v -> v / z - (if k = label then 1.0 else 0.0))

/// Gradient of the loss of one example with respect to every parameter, by plain back-propagation
/// over the graph.
let gradient (loss: Loss) (net: Network) (graph: UnitConnections array) (p: float array) (x: float array) (label: int) =
    let e = forward net graph p x
    let y = outputs net e
    let dValue = Array.zeroCreate<float> e.Values.Length
    let firstOut = e.Values.Length - y.Length
    lossGradient loss y label |> Array.iteri (fun k d -> dValue.[firstOut + k] <- d)
    let grad = Array.zeroCreate<float> p.Length
    for u in Array.rev graph do
        let delta = dValue.[u.Unit] * actDerivative net.Plans.[u.Layer].Activation e.Pre.[u.Unit]
        grad.[u.Bias] <- grad.[u.Bias] + delta
        for source, w in u.Inputs do
            match source with
            | FromUnit i ->
                grad.[w] <- grad.[w] + delta * e.Values.[i]
                dValue.[i] <- dValue.[i] + delta * p.[w]
            | FromPad value -> grad.[w] <- grad.[w] + delta * float value
    grad
