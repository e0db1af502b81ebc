/// What the layer kinds share: the activations, bias gradients and the re-layouts between
/// example-major outputs and plane-major GEMM matrices. The kinds themselves are Engine/Local.fs and
/// Engine/Dense.fs (one module each: forward, backward, batched backward, curvature, products, lanes).
namespace Lecun.Model

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

module Layers =
    let inline internal ro (a: float32 array) (offset: int) (length: int) = ReadOnlySpan<float32>(a, offset, length)
    let inline internal rw (a: float32 array) (offset: int) (length: int) = Span<float32>(a, offset, length)

    /// y = act(a) in place over the first `length` values of a layer's output buffer (any count of examples).
    let activationForward (act: Activation) (y: float32 array) (length: int) =
        match act with
        | Tanh -> FastTanh.Apply(ro y 0 length, rw y 0 length)
        | ScaledTanh ->
            let s = rw y 0 length
            Elementwise.Multiply(s, Elementwise.ScaledTanhS, s)
            FastTanh.Apply(s, s)
            Elementwise.Multiply(s, Elementwise.ScaledTanhA, s)
        | Relu -> Elementwise.ReluForward(ro y 0 length, rw y 0 length)
        | Identity -> ()

    /// dPre = act'(pre) * dY over the first `length` values, written through the units' outputs y.
    let activationBackward (act: Activation) (y: float32 array) (dy: float32 array) (dPre: float32 array) (length: int) =
        match act with
        | Tanh -> Elementwise.TanhBackward(ro y 0 length, ro dy 0 length, rw dPre 0 length)
        | ScaledTanh -> Elementwise.ScaledTanhBackward(ro y 0 length, ro dy 0 length, rw dPre 0 length)
        | Relu -> Elementwise.ReluBackward(ro y 0 length, ro dy 0 length, rw dPre 0 length)
        | Identity -> Array.blit dy 0 dPre 0 length

    /// [count, planes, positions] <-> [planes, count * positions]: example-major outputs and the
    /// plane-major matrices of a batched locally-connected layer's GEMMs.
    let internal toPlaneMajor (source: float32 array) (target: float32 array) (planes: int) (positions: int) (count: int) =
        let ld = count * positions
        for b in 0 .. count - 1 do
            for p in 0 .. planes - 1 do
                Array.blit source ((b * planes + p) * positions) target (p * ld + b * positions) positions

    let internal toExampleMajor (source: float32 array) (target: float32 array) (planes: int) (positions: int) (count: int) =
        let ld = count * positions
        for p in 0 .. planes - 1 do
            for b in 0 .. count - 1 do
                Array.blit source (p * ld + b * positions) target ((b * planes + p) * positions) positions

    /// out[b] += bias for each of `count` examples.
    let internal addBias (parameters: float32 array) (g: LayerGeometry) (out: float32 array) (count: int) =
        let units = g.Units
        for b in 0 .. count - 1 do
            let o = rw out (b * units) units
            Elementwise.Add(o, ro parameters g.Bias.Offset units, o)

    /// A bias gradient (one per unit) into its slice of the sink.
    let internal biasGradient (sink: GradientSink) (offset: int) (dPre: float32 array) (units: int) =
        let target = rw sink.Target offset units
        if sink.Beta = 0.0f && sink.Alpha = 1.0f then (ro dPre 0 units).CopyTo target
        elif sink.Beta = 0.0f then Elementwise.Multiply(ro dPre 0 units, sink.Alpha, target)
        else Elementwise.MultiplyAdd(ro dPre 0 units, sink.Alpha, target, target)

    /// The bias gradient of a batch: dPre [count, units] summed over the examples (into `sum`), then into the sink.
    let internal batchBiasGradient (sink: GradientSink) (g: LayerGeometry) (dPre: float32 array) (count: int) (sum: float32 array) =
        let units = g.Units
        Array.blit dPre 0 sum 0 units
        for b in 1 .. count - 1 do
            Elementwise.Add(ro sum 0 units, ro dPre (b * units) units, rw sum 0 units)
        biasGradient sink g.Bias.Offset sum units

    /// Lane training: one group's bias gradients (its pre-activation gradients, per lane) added to the
    /// batch's per-lane bias sums.
    let internal addLaneBiases (layer: LaneTrainingLayer) =
        let n = layer.BiasLanes.Length
        Elementwise.Add(ro layer.BiasLanes 0 n, ro layer.DeltaPre 0 n, rw layer.BiasLanes 0 n)

    /// Lane training, the end of a batch: per-lane sums of the first stream (plus the second's, lane by
    /// lane, when it ran) summed over the lanes into grad, the biases and, when `weights`, the weights
    /// too (LaneGradients.SumLanes: one fixed order).
    let internal laneSums (plan: LayerPlan) (first: LaneTrainingLayer) (second: LaneTrainingLayer voption) (grad: float32 array) (weights: bool) =
        let g = plan.Geometry
        let otherWeights, otherBiases =
            match second with
            | ValueSome b -> b.WeightLanes, b.BiasLanes
            | ValueNone -> Array.empty, Array.empty
        if weights then
            LaneGradients.SumLanes(ReadOnlySpan first.WeightLanes, ReadOnlySpan otherWeights, rw grad g.Weight.Offset g.Weight.Length)
        LaneGradients.SumLanes(ReadOnlySpan first.BiasLanes, ReadOnlySpan otherBiases, rw grad g.Bias.Offset g.Bias.Length)
