/// The 16-lane evaluation path (KernelPath.Lanes): a batch runs through every layer 16 examples at a
/// time, one per vector lane (LaneBatch, AVX-512), activations unit-major.
module Lecun.Model.Lanes

open System
open Lecun.Native.Kernels

/// Runs `count` examples through the network 16 at a time: fills only the last layer's outputs.
/// Needs a workspace with lane buffers.
let run (net: Network) (parameters: float32 array) (ws: Workspace) (x: float32 array) (xOffset: int) (count: int) =
    if ws.Lanes.Length = 0 then invalidArg "ws" "this workspace has no 16-lane buffers"
    if count > ws.Capacity then invalidArg "count" $"{count} examples exceed the workspace capacity {ws.Capacity}"
    let lanes = LaneBatch.Lanes
    let inputSize = net.Layout.InputSize
    let last = net.Plans.Length - 1
    let outUnits = net.Plans.[last].Geometry.Units
    let mutable start = 0
    while start < count do
        let n = min lanes (count - start)
        LaneBatch.ToLanes(ReadOnlySpan(x, xOffset + start * inputSize, n * inputSize), n, inputSize, Span ws.LaneInput)
        let mutable input = ws.LaneInput
        for i in 0 .. last do
            let plan = net.Plans.[i]
            let g = plan.Geometry
            let lane = ws.Lanes.[i]
            (LayerKinds.ofPlan plan).LaneForward(plan, lane, parameters, input)
            Layers.activationForward plan.Activation lane.Out (g.Units * lanes)
            input <- lane.Out
        LaneBatch.FromLanes(ReadOnlySpan input, outUnits, n, Span(ws.Outputs.[last], start * outUnits, n * outUnits))
        start <- start + n
