/// The dense (fully connected) layer kind: x @ W + b, a GEMV for one example and a GEMM for a batch;
/// its lane kernel is LaneBatch.Dense. Everything the engine asks of this kind is here (see ILayerKind).
namespace Lecun.Model

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

module DenseLayer =
    let inline private ro a offset length = Layers.ro a offset length
    let inline private rw a offset length = Layers.rw a offset length

    /// Dense forward for `count` examples: x [count, in] -> out [count, units] = x @ W + b.
    let forward (backend: IBackend) (g: LayerGeometry) (parameters: float32 array)
                     (x: float32 array) (xOffset: int) (count: int) (out: float32 array) =
        let fanIn, units = g.FanIn, g.Units
        let w = ro parameters g.Weight.Offset g.Weight.Length
        if count = 1 then backend.Gemv(true, fanIn, units, 1.0f, w, units, ro x xOffset fanIn, 0.0f, rw out 0 units)
        else backend.Gemm(false, false, count, units, fanIn, 1.0f, ro x xOffset (count * fanIn), fanIn, w, units, 0.0f, rw out 0 (count * units), units)
        Layers.addBias parameters g out count

    /// Dense backward of one example: dIn = W dPre (first, from the weights as they were), then
    /// dW = x^T dPre and db = dPre into the sink.
    let backward (backend: IBackend) (g: LayerGeometry) (parameters: float32 array) (x: float32 array) (xOffset: int)
                      (dPre: float32 array) (sink: GradientSink) (needInput: bool) (dIn: float32 array) =
        let fanIn, units = g.FanIn, g.Units
        if needInput then
            backend.Gemv(false, fanIn, units, 1.0f, ro parameters g.Weight.Offset g.Weight.Length, units, ReadOnlySpan dPre, 0.0f, Span dIn)
        backend.Gemm(false, false, fanIn, units, 1, sink.Alpha, ro x xOffset fanIn, 1, ReadOnlySpan dPre, units,
                     sink.Beta, rw sink.Target g.Weight.Offset g.Weight.Length, units)
        Layers.biasGradient sink g.Bias.Offset dPre units

    /// Dense backward of `count` examples: dIn [count, in] = dPre [count, units] @ W^T (first, from the
    /// weights as they were), then dW = x^T dPre and db = sum of dPre into the sink.
    let batchBackward (backend: IBackend) (g: LayerGeometry) (parameters: float32 array) (x: float32 array) (xOffset: int)
                      (dPre: float32 array) (count: int) (biasSum: float32 array) (sink: GradientSink) (needInput: bool) (dIn: float32 array) =
        let fanIn, units = g.FanIn, g.Units
        if needInput then
            backend.Gemm(false, true, count, fanIn, units, 1.0f, ro dPre 0 (count * units), units,
                         ro parameters g.Weight.Offset g.Weight.Length, units, 0.0f, rw dIn 0 (count * fanIn), fanIn)
        backend.Gemm(true, false, fanIn, units, count, sink.Alpha, ro x xOffset (count * fanIn), fanIn, ro dPre 0 (count * units), units,
                     sink.Beta, rw sink.Target g.Weight.Offset g.Weight.Length, units)
        Layers.batchBiasGradient sink g dPre count biasSum

    /// The products of one pass over `count` examples (see ILayerKind.Products).
    let products (plan: LayerPlan) (layer: int) (path: string) (count: int) (training: bool) =
        let g = plan.Geometry
        let item role shape = { Path = path; Layer = g.Name; Role = role; Shape = shape; Calls = 1; Kernel = Im2colGemm }
        let fanIn, units = g.FanIn, g.Units
        [ if count = 1 then
              yield item "forward" (Gemv(true, fanIn, units))
              if training then
                  yield item "weight gradient" (Gemm(false, false, fanIn, units, 1))
                  if layer > 0 then yield item "input gradient" (Gemv(false, fanIn, units))
          else
              yield item "forward" (Gemm(false, false, count, units, fanIn))
              if training then
                  yield item "weight gradient" (Gemm(true, false, fanIn, units, count))
                  if layer > 0 then yield item "input gradient" (Gemm(false, true, count, fanIn, units)) ]

    /// One lane batch through the layer: LaneBatch.Dense.
    let laneForward (plan: LayerPlan) (lane: LaneLayer) (parameters: float32 array) (input: float32 array) =
        let g = plan.Geometry
        LaneBatch.Dense(ReadOnlySpan input, g.FanIn, ReadOnlySpan(parameters, g.Weight.Offset, g.Weight.Length), g.Units,
                        ReadOnlySpan(parameters, g.Bias.Offset, g.Units), Span lane.Out)

    /// One lane batch's backward (see ILayerKind.LaneBackward): broadcast-weight FMAs for the input
    /// gradient; the weight gradient summed over the lanes at once into [fanIn, padded units] sums (one
    /// product per weight and example, so there is nothing to gain from keeping lanes apart), from the
    /// input and pre-activation gradient laid out example-major; the bias gradients per lane.
    let laneBackward (plan: LayerPlan) (layer: LaneTrainingLayer) (parameters: float32 array) (input: float32 array) (needInput: bool) =
        let g = plan.Geometry
        let lanes = LaneBatch.Lanes
        let fanIn, units = g.FanIn, g.Units
        let columns = LaneGradients.PaddedUnits units
        if needInput then
            LaneGradients.DenseInputGradient(ReadOnlySpan layer.DeltaPre, units, ro parameters g.Weight.Offset g.Weight.Length, fanIn, Span layer.DeltaIn)
        let xT = rw layer.Transposed 0 (lanes * fanIn)
        LaneBatch.FromLanes(ReadOnlySpan input, fanIn, lanes, xT)
        // dT [16, columns]: each example's row of units, its padding left at zero.
        let dT = rw layer.Transposed (lanes * fanIn) (lanes * columns)
        for l in 0 .. lanes - 1 do
            for u in 0 .. units - 1 do
                dT.[l * columns + u] <- layer.DeltaPre.[u * lanes + l]
        LaneGradients.DenseWeightGradient(Span.op_Implicit xT, fanIn, Span.op_Implicit dT, units, rw layer.WeightLanes 0 (fanIn * columns))
        Layers.addLaneBiases layer

    /// The end of a batch (see ILayerKind.LaneGradientSum): the weight sums (already over the lanes)
    /// of both streams added and copied out of their padded rows; the biases summed over the lanes.
    let laneGradientSum (plan: LayerPlan) (first: LaneTrainingLayer) (second: LaneTrainingLayer voption) (grad: float32 array) =
        let g = plan.Geometry
        let fanIn, units = g.FanIn, g.Units
        let columns = LaneGradients.PaddedUnits units
        for i in 0 .. fanIn - 1 do
            let target = rw grad (g.Weight.Offset + i * units) units
            match second with
            | ValueSome b -> Elementwise.Add(ro first.WeightLanes (i * columns) units, ro b.WeightLanes (i * columns) units, target)
            | ValueNone -> (ro first.WeightLanes (i * columns) units).CopyTo target
        Layers.laneSums plan first second grad false

    let kind =
        { new ILayerKind with
            member _.Forward(backend, plan, ws, i, _, _, parameters, input, inputOffset, count) =
                forward backend plan.Geometry parameters input inputOffset count ws.Outputs.[i]

            member _.Backward(backend, plan, ws, i, parameters, input, inputOffset, dPre, sink, needInput) =
                backward backend plan.Geometry parameters input inputOffset dPre sink needInput ws.DeltaIn.[i]

            member _.BatchBackward(backend, plan, ws, i, parameters, input, inputOffset, dPre, count, sink, needInput) =
                batchBackward backend plan.Geometry parameters input inputOffset dPre count ws.DeltaPre.[i] sink needInput ws.BatchDeltaIn.[i]

            member _.Curvature(backend, plan, ws, i, squaredWeights, squaredInput, _, hPre, sink, needInput) =
                backward backend plan.Geometry squaredWeights squaredInput 0 hPre sink needInput ws.DeltaIn.[i]

            member _.Products(plan, layer, path, count, training) = products plan layer path count training

            member _.LaneForward(plan, lane, parameters, input) = laneForward plan lane parameters input

            member _.LaneForwardLaidIn(plan, _, _) = invalidOp $"{plan.Geometry.Name}: a dense layer reads no padded planes"

            member _.LaneBackward(plan, layer, parameters, input, needInput) = laneBackward plan layer parameters input needInput

            member _.LaneGradientSum(plan, first, second, grad) = laneGradientSum plan first second grad }
