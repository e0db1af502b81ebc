/// The paper's optimizer: a "special version of Newton's algorithm that uses a positive, diagonal
/// approximation of the Hessian" (Becker & LeCun 1988), the stochastic diagonal Levenberg-Marquardt
/// method of LeCun et al., "Efficient BackProp" (1998).
///
/// Second derivatives are back-propagated like gradients, with every factor squared and the terms in
/// f'' dropped (the Gauss-Newton approximation), which keeps them positive:
///   d2E/da2 of a unit = f'(a)^2 * sum_k w_ki^2 * d2E/da_k^2
///   d2E/dw2 = sum over the connections sharing w of d2E/da2 * x^2
/// so the same layer code runs on squared weights, squared inputs and squared activation slopes.
module Lecun.Model.Newton

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

/// d2E/dy2 of each output for one example (the Gauss-Newton curvature of the loss at the outputs).
let private outputCurvature (loss: Loss) (y: float32 array) (outputs: int) (h: float32 array) =
    match loss with
    | Mse -> Array.Fill(h, 2.0f / float32 outputs, 0, outputs)
    | MseHalf -> Array.Fill(h, 1.0f, 0, outputs)
    | SoftmaxCrossEntropy ->
        // The diagonal of the softmax Hessian p (1 - p), with respect to the (linear) outputs.
        let mutable m = Single.NegativeInfinity
        for k in 0 .. outputs - 1 do m <- max m y.[k]
        let mutable z = 0.0f
        for k in 0 .. outputs - 1 do z <- z + exp (y.[k] - m)
        for k in 0 .. outputs - 1 do
            let p = exp (y.[k] - m) / z
            h.[k] <- p * (1.0f - p)

/// f'(a)^2, through the unit's output y.
let private slopeSquared (act: Activation) (y: float32) =
    match act with
    | Tanh -> let d = 1.0f - y * y in d * d
    | ScaledTanh ->
        let d = Elementwise.ScaledTanhS * (Elementwise.ScaledTanhA - y * y / Elementwise.ScaledTanhA)
        d * d
    | Relu -> if y > 0.0f then 1.0f else 0.0f
    | Identity -> 1.0f

/// Scratch buffers for the curvature pass, allocated once per estimate.
type private Scratch =
    { SquaredCols: float32 array array
      SquaredInputs: float32 array array
      Curvature: float32 array }

/// The diagonal Gauss-Newton estimate of d2E/dw2 for every parameter, averaged over the first
/// `patterns` training digits (the paper re-estimates it before each pass).
let estimateDiagonal (backend: IBackend) (net: Network) (loss: Loss) (parameters: float32 array) (data: Dataset) (patterns: int) =
    let count = min patterns data.Count
    let ws = Workspace.create net 1
    let squaredWeights = Array.map (fun w -> w * w) parameters
    let hessian = Array.zeroCreate<float32> parameters.Length
    let outputs = net.Layout.OutputSize
    let scratch =
        { SquaredCols = ws.ColsT |> Array.map (fun c -> Array.zeroCreate c.Length)
          SquaredInputs = net.Plans |> Array.map (fun p -> Array.zeroCreate p.Geometry.InUnits)
          Curvature = Array.zeroCreate outputs }
    for n in 0 .. count - 1 do
        let xOffset = n * Dataset.Pixels
        Forward.run backend net parameters ws data.Images xOffset 1
        outputCurvature loss (Forward.outputs net ws) outputs scratch.Curvature
        let mutable hY = scratch.Curvature
        for i in net.Plans.Length - 1 .. -1 .. 0 do
            let plan = net.Plans.[i]
            let g = plan.Geometry
            let y = ws.Outputs.[i]
            let hPre = ws.DeltaPre.[i]
            for u in 0 .. g.Units - 1 do
                hPre.[u] <- slopeSquared plan.Activation y.[u] * hY.[u]
            let input, inputOffset = if i = 0 then data.Images, xOffset else ws.Outputs.[i - 1], 0
            let sqIn = scratch.SquaredInputs.[i]
            Elementwise.Multiply(ReadOnlySpan(input, inputOffset, sqIn.Length), ReadOnlySpan(input, inputOffset, sqIn.Length), Span sqIn)
            (LayerKinds.ofPlan plan).Curvature(backend, plan, ws, i, squaredWeights, sqIn, scratch.SquaredCols.[i], hPre,
                                               GradientSink.into hessian true, (i > 0))
            hY <- ws.DeltaIn.[i]
    if count > 0 then Elementwise.Multiply(ReadOnlySpan hessian, 1.0f / float32 count, Span hessian)
    hessian

/// Per-parameter step sizes eps / (mu + h).
let stepSizes (eps: float32) (mu: float32) (hessian: float32 array) =
    hessian |> Array.map (fun h -> eps / (mu + h))
