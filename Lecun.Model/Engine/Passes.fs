/// Whole-network passes: forward over any count of examples, backward over one example (the paper's
/// fused per-example training) or over a whole batch (minibatch training as batched GEMMs).
namespace Lecun.Model

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

module Forward =
    /// Forward through every layer for `count` examples, filling each layer's outputs. The first layer
    /// reads example b through `firstUnfold` (one example) or ws.FirstUnfolds.[b] (`shifted` batch);
    /// otherwise through its own plan. `dropLayer`'s outputs are multiplied by their masks (-1: none).
    let private runFrom (backend: IBackend) (net: Network) (parameters: float32 array) (ws: Workspace)
                        (firstUnfold: Im2ColPlan voption) (shifted: bool)
                        (x: float32 array) (xOffset: int) (count: int) (dropLayer: int) =
        if count > ws.Capacity then invalidArg "count" $"{count} examples exceed the workspace capacity {ws.Capacity}"
        let mutable input = x
        let mutable inputOffset = xOffset
        for i in 0 .. net.Plans.Length - 1 do
            let plan = net.Plans.[i]
            let g = plan.Geometry
            let out = ws.Outputs.[i]
            (LayerKinds.ofPlan plan).Forward(backend, plan, ws, i, (if i = 0 then firstUnfold else ValueNone), (shifted && i = 0),
                                             parameters, input, inputOffset, count)
            let length = count * g.Units
            Layers.activationForward plan.Activation out length
            if i = dropLayer then
                Elementwise.Multiply(ReadOnlySpan(out, 0, length), ReadOnlySpan(ws.DropMask.[i], 0, length), Span(ws.Dropped.[i], 0, length))
                input <- ws.Dropped.[i]
            else input <- out
            inputOffset <- 0

    /// Runs `count` examples with dropout after layer `dropLayer` (their masks in ws.DropMask), or
    /// without dropout when dropLayer is -1. Images start at x[xOffset..], input-sized each; the last
    /// layer's outputs are ws.Outputs[last], [count, outputs].
    let runWith backend net parameters ws x xOffset count dropLayer =
        runFrom backend net parameters ws ValueNone false x xOffset count dropLayer

    /// runWith for one training example whose first layer reads its input through `firstUnfold`,
    /// one of InputShifts' plans.
    let runShifted backend net parameters ws (firstUnfold: Im2ColPlan) x xOffset dropLayer =
        runFrom backend net parameters ws (ValueSome firstUnfold) false x xOffset 1 dropLayer

    /// runWith for a training batch whose example b is read through ws.FirstUnfolds.[b] (InputShifts' plans).
    let runBatchShifted backend net parameters ws x xOffset count dropLayer =
        runFrom backend net parameters ws ValueNone true x xOffset count dropLayer

    /// Runs `count` examples through the network 16 at a time, one per vector lane (see Lanes).
    let runLanes (net: Network) (parameters: float32 array) (ws: Workspace) (x: float32 array) (xOffset: int) (count: int) =
        Lanes.run net parameters ws x xOffset count

    /// Runs `count` examples through the network, without dropout (evaluation and inference): on the
    /// network's batch path under the provider (Lanes where the workspace has them), otherwise layer by
    /// layer through im2col GEMMs (which also fills every layer's outputs).
    let run (backend: IBackend) net parameters (ws: Workspace) x xOffset count =
        if count > 1 && ws.Lanes.Length > 0 && KernelPath.under backend net.BatchPath = Lanes then Lanes.run net parameters ws x xOffset count
        else runWith backend net parameters ws x xOffset count -1

    /// The output layer's values of the last forward pass.
    let outputs (net: Network) (ws: Workspace) = ws.Outputs.[net.Plans.Length - 1]

module Backward =
    /// Back-propagates dOut (the loss gradient with respect to the network's outputs) for the one example
    /// of the last forward pass (run with count = 1 on the same workspace) into the sink: a gradient
    /// buffer, or the parameters themselves for a fused SGD step. `dropLayer` must be the one the
    /// forward pass used (-1 for none).
    let runInto (backend: IBackend) (net: Network) (parameters: float32 array) (ws: Workspace)
                (x: float32 array) (xOffset: int) (dOut: float32 array) (sink: GradientSink) (dropLayer: int) =
        let last = net.Plans.Length - 1
        let mutable dY = dOut
        for i in last .. -1 .. 0 do
            let plan = net.Plans.[i]
            let g = plan.Geometry
            let dPre = ws.DeltaPre.[i]
            if i = dropLayer then
                // The next layer saw mask * y: the gradient reaching y passes through the same mask.
                Elementwise.Multiply(ReadOnlySpan(dY, 0, g.Units), ReadOnlySpan(ws.DropMask.[i], 0, g.Units), Span(dY, 0, g.Units))
            Layers.activationBackward plan.Activation ws.Outputs.[i] dY dPre g.Units
            let input = if i = 0 then x elif i - 1 = dropLayer then ws.Dropped.[i - 1] else ws.Outputs.[i - 1]
            let inputOffset = if i = 0 then xOffset else 0
            let needInput = i > 0
            (LayerKinds.ofPlan plan).Backward(backend, plan, ws, i, parameters, input, inputOffset, dPre, sink, needInput)
            dY <- ws.DeltaIn.[i]

    /// The gradient of one example into `grad` (added to it when `accumulate`).
    let runWith backend net parameters ws x xOffset dOut (grad: float32 array) (accumulate: bool) dropLayer =
        runInto backend net parameters ws x xOffset dOut (GradientSink.into grad accumulate) dropLayer

    let run backend net parameters ws x xOffset dOut grad accumulate =
        runWith backend net parameters ws x xOffset dOut grad accumulate -1

    /// Back-propagates dOut [count, outputs] for the `count` examples of the last forward pass (run with
    /// that count on the same workspace) as batched GEMMs: the sum of their gradients goes into the sink.
    /// dOut is overwritten where dropout masks it.
    let runBatchInto (backend: IBackend) (net: Network) (parameters: float32 array) (ws: Workspace)
                     (x: float32 array) (xOffset: int) (count: int) (dOut: float32 array) (sink: GradientSink) (dropLayer: int) =
        if count > ws.Capacity || ws.BatchDeltaPre.[0].Length = 0 then invalidArg "count" $"{count} examples need a batch workspace of that capacity"
        let last = net.Plans.Length - 1
        let mutable dY = dOut
        for i in last .. -1 .. 0 do
            let plan = net.Plans.[i]
            let g = plan.Geometry
            let length = count * g.Units
            let dPre = ws.BatchDeltaPre.[i]
            if i = dropLayer then
                Elementwise.Multiply(ReadOnlySpan(dY, 0, length), ReadOnlySpan(ws.DropMask.[i], 0, length), Span(dY, 0, length))
            Layers.activationBackward plan.Activation ws.Outputs.[i] dY dPre length
            let input = if i = 0 then x elif i - 1 = dropLayer then ws.Dropped.[i - 1] else ws.Outputs.[i - 1]
            let inputOffset = if i = 0 then xOffset else 0
            let needInput = i > 0
            (LayerKinds.ofPlan plan).BatchBackward(backend, plan, ws, i, parameters, input, inputOffset, dPre, count, sink, needInput)
            dY <- ws.BatchDeltaIn.[i]
