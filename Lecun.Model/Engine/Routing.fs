/// Every matrix product of the engine's paths (per-example training, batched training, evaluation)
/// with its shape, and which provider runs it: the routing table that README, `train --verbose` and
/// `bench` print.
module Lecun.Model.Routing

open Lecun.Native.Backends

/// Where a product runs under a provider: "mkl", "managed" (as the provider answers), or the fused
/// kernel that replaces it where the plan has one and the provider serves that path (KernelPath.under).
let routeOf (backend: IBackend) (p: Product) =
    match KernelPath.under backend p.Kernel with
    | PhasePermute -> "managed (phase-permute, fused)"
    | Lanes -> "managed (lanes, fused)"
    | Im2colGemm ->
        let route =
            match p.Shape with
            | Gemm(ta, tb, m, n, k) -> backend.RouteGemm(ta, tb, m, n, k)
            | Gemv(t, m, n) -> backend.RouteGemv(t, m, n)
        if route = Route.Mkl then "mkl" else "managed"

/// The products of one pass over `count` examples: forward for every layer, and when `training`,
/// the weight gradients and the input gradients (every layer but the first) of one example (count 1,
/// the per-example path) or of a batch, as each layer's kind lists them.
let products (net: Network) (path: string) (count: int) (training: bool) =
    [ for i, plan in Array.indexed net.Plans do
        yield! (LayerKinds.ofPlan plan).Products(plan, i, path, count, training) ]

/// The products of per-example training, batched training at `batch` (per chunk of at most
/// Workspace.batchChunk examples, as the engine runs a larger batch), and evaluation at `evalBatch`.
/// Where the network has a lane path, it replaces the batched products under providers that serve it (IBackend.Paths),
/// in training (LaneTraining, 16 examples per vector) as in evaluation; under mkl they stay the im2col
/// GEMMs listed here, every one a CBLAS call.
let table (net: Network) (batch: int) (evalBatch: int) =
    let chunk = Workspace.trainingCapacity batch
    let batched = if chunk < batch then $"batched training, batch {batch} in chunks of {chunk}" else $"batched training, batch {batch}"
    let onLanes (p: Product) = if net.BatchPath = Lanes then { p with Kernel = Lanes } else p
    products net "per-example training" 1 true
    @ (if batch > 1 then products net batched chunk true |> List.map onLanes else [])
    @ (products net $"evaluation, batch {evalBatch}" evalBatch false |> List.map onLanes)
