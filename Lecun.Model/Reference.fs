/// The reference: the network evaluated unit by unit over its explicit connection graph, in float64.
/// Independent of im2col, GEMMs, kernel paths and providers, so every provider and path of the engine
/// is checked against it; slow and exact, it is for checking, not for training. (The one thing in the
/// code called "reference"; the engine's plain path is im2col+GEMM, see KernelPath.)
module Lecun.Model.Reference

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

/// Unit roundoff of float32.
let private u32 = 5.9604644775390625e-8

/// A first-order running bound on how far a float32 engine's gradient of one example may lie from the
/// exact one (`gradient`), element by element, whatever the order of its sums: every float32 sum of n
/// terms is off by at most n u times the sum of their magnitudes (u = 2^-24), every rounding of a value
/// by u of it, tanh (a rational approximation) by 4u, and each error is carried forward and back through
/// the same connections as the values. It grows where the gradient is ill-conditioned: a tanh unit
/// near saturation forms 1 - y^2 from a y that is already off by u, and outputs near their targets
/// leave a loss gradient made of cancellation.
/// Returns the bounds for the outputs and for the gradient.
let errorBounds (loss: Loss) (net: Network) (graph: UnitConnections array) (p: float array) (x: float array) (label: int) =
    let e = forward net graph p x
    let total = e.Values.Length
    let absP = p |> Array.map abs
    // Forward: error of each pre-activation and value.
    let errValue = Array.zeroCreate<float> total
    let errPre = Array.zeroCreate<float> total
    for unit in graph do
        let n = float (unit.Inputs.Length + 1)
        let mutable magnitude = absP.[unit.Bias]
        let mutable carried = 0.0
        for source, w in unit.Inputs do
            match source with
            | FromUnit i ->
                magnitude <- magnitude + absP.[w] * abs e.Values.[i]
                carried <- carried + absP.[w] * errValue.[i]
            | FromPad value -> magnitude <- magnitude + absP.[w] * abs (float value)
        errPre.[unit.Unit] <- carried + n * u32 * magnitude
        let a = net.Plans.[unit.Layer].Activation
        let slope = abs (actDerivative a e.Pre.[unit.Unit])
        let own = match a with Tanh | ScaledTanh -> 4.0 * u32 * 1.7159 | Relu | Identity -> u32 * abs e.Values.[unit.Unit]
        errValue.[unit.Unit] <- slope * errPre.[unit.Unit] + own
    // The loss gradient at the outputs.
    let outputs = net.Layout.OutputSize
    let firstOut = total - outputs
    let y = e.Values.[firstOut ..]
    let dValue = Array.zeroCreate<float> total
    let errDValue = Array.zeroCreate<float> total
    let dy = lossGradient loss y label
    let worstOut = [ for k in 0 .. outputs - 1 -> errValue.[firstOut + k] ] |> List.max
    for k in 0 .. outputs - 1 do
        dValue.[firstOut + k] <- dy.[k]
        errDValue.[firstOut + k] <-
            match loss with
            | Mse -> 2.0 / float outputs * errValue.[firstOut + k] + 2.0 * u32 * abs dy.[k] + u32
            | MseHalf -> errValue.[firstOut + k] + u32 * abs dy.[k] + u32
            | SoftmaxCrossEntropy -> 2.0 * worstOut + float (4 * outputs) * u32
    // Backward: error of each unit's delta, of the values' gradients and of every parameter's gradient.
    let gradMagnitude = Array.zeroCreate<float> p.Length
    let gradErr = Array.zeroCreate<float> p.Length
    let uses = Array.zeroCreate<int> p.Length
    let fanOut = Array.zeroCreate<int> total
    let dMagnitude = Array.zeroCreate<float> total
    for unit in graph do
        uses.[unit.Bias] <- uses.[unit.Bias] + 1
        for source, w in unit.Inputs do
            uses.[w] <- uses.[w] + 1
            match source with FromUnit i -> fanOut.[i] <- fanOut.[i] + 1 | FromPad _ -> ()
    for unit in Array.rev graph do
        let a = net.Plans.[unit.Layer].Activation
        let v = e.Values.[unit.Unit]
        let d = dValue.[unit.Unit]
        // The unit's value gradient is complete (every later unit has passed its share back): add its sum's rounding.
        let errD = errDValue.[unit.Unit] + float (fanOut.[unit.Unit] + 1) * u32 * dMagnitude.[unit.Unit]
        let slope = abs (actDerivative a e.Pre.[unit.Unit])
        // The engine forms the derivative from its stored value.
        let slopeErr =
            match a with
            | Tanh -> 2.0 * abs v * errValue.[unit.Unit] + 2.0 * u32
            | ScaledTanh -> 2.0 / 3.0 * (2.0 * abs v / 1.7159 * errValue.[unit.Unit] + 4.0 * u32)
            | Relu -> if abs e.Pre.[unit.Unit] <= errPre.[unit.Unit] then 1.0 else 0.0
            | Identity -> 0.0
        let delta = d * actDerivative a e.Pre.[unit.Unit]
        // With the second-order term: at a saturated unit the exact slope is ~0 but the engine's is not.
        let deltaErr = (slope + slopeErr) * errD + abs d * slopeErr + u32 * abs delta
        let contribute w (value: float) (valueErr: float) =
            gradMagnitude.[w] <- gradMagnitude.[w] + abs (delta * value)
            gradErr.[w] <- gradErr.[w] + abs value * deltaErr + abs delta * valueErr + valueErr * deltaErr
        contribute unit.Bias 1.0 0.0
        for source, w in unit.Inputs do
            match source with
            | FromUnit i ->
                contribute w e.Values.[i] errValue.[i]
                dValue.[i] <- dValue.[i] + delta * p.[w]
                dMagnitude.[i] <- dMagnitude.[i] + abs (delta * p.[w])
                errDValue.[i] <- errDValue.[i] + absP.[w] * deltaErr
            | FromPad value -> contribute w (float value) 0.0
    // Each weight's gradient is a float32 sum over its uses: add its rounding.
    errValue.[firstOut ..], Array.init p.Length (fun w -> gradErr.[w] + float (uses.[w] + 1) * u32 * gradMagnitude.[w])
