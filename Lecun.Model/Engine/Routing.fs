/// Every matrix product of the engine's paths (per-example training, batched training, evaluation)
/// with its shape, and which provider runs it: the routing table that README, `train --verbose` and
/// `bench` print.
module Lecun.Model.Routing

open Lecun.Native.Backends

/// The shape of one product call, as the engine issues it (row-major, CBLAS conventions).
type Shape =
    /// C[m,n] = op(A)[m,k] op(B)[k,n].
    | Gemm of transA: bool * transB: bool * m: int * n: int * k: int
    /// y = op(A) x, A [m,n].
    | Gemv of trans: bool * m: int * n: int

module Shape =
    let macs = function Gemm(_, _, m, n, k) -> int64 m * int64 n * int64 k | Gemv(_, m, n) -> int64 m * int64 n
    let describe = function
        | Gemm(ta, tb, m, n, k) -> $"""gemm {(if ta then "A^T" else "A")}{(if tb then "B^T" else "B")} {m}x{n}x{k}"""
        | Gemv(t, m, n) -> $"""gemv {(if t then "A^T x" else "A x")} {m}x{n}"""

/// One product of a path: `Calls` calls of `Shape` per pass of the path (per example or per batch).
type Product =
    { Path: string
      Layer: string
      /// forward, weight gradient or input gradient.
      Role: string
      Shape: Shape
      Calls: int
      /// The layer's planned path for it (PhasePermute products are fused where the provider allows).
      Kernel: KernelPath }

/// Where a product runs under a provider: "mkl", "managed", or the fused kernel that replaces it.
let routeOf (backend: IBackend) (p: Product) =
    match KernelPath.under backend p.Kernel with
    | PhasePermute -> "managed (phase-permute, fused)"
    | Lanes -> "managed (lanes, fused)"
    | Im2colGemm ->
        match backend.Name with
        | "mkl" -> "mkl"
        | "managed" -> "managed"
        | _ ->
            let route =
                match p.Shape with
                | Gemm(ta, tb, m, n, k) -> AutoBackend.GemmRoute(ta, tb, m, n, k)
                | Gemv(t, m, n) -> AutoBackend.GemvRoute(t, m, n)
            if route = Route.Mkl then "mkl" else "managed"

/// The products of one pass over `count` examples: forward for every layer, and when `training`,
/// the weight gradients and the input gradients (every layer but the first) of one example (count 1,
/// the per-example path) or of a batch (the batched GEMMs of BatchLayers).
let products (net: Network) (path: string) (count: int) (training: bool) =
    [ for i, plan in Array.indexed net.Plans do
        let g = plan.Geometry
        let item role shape calls kernel = { Path = path; Layer = g.Name; Role = role; Shape = shape; Calls = calls; Kernel = kernel }
        let group (items: Product list) =
            items |> List.groupBy (fun p -> p.Role, p.Shape) |> List.map (fun (_, ps) -> { ps.Head with Calls = ps |> List.sumBy (fun p -> p.Calls) })
        match plan.Unfold with
        | Some u ->
            let n = u.Positions * count
            let fused = if count = 1 then plan.ExamplePath else Im2colGemm
            yield!
                group
                    [ for grp in plan.Groups do
                        for run in grp.Runs do
                            yield item "forward" (Gemm(false, false, grp.Planes, n, run.Length)) 1 fused
                            if training then
                                if count = 1 then yield item "weight gradient" (Gemm(false, false, grp.Planes, run.Length, n)) 1 Im2colGemm
                                else yield item "weight gradient" (Gemm(false, true, grp.Planes, run.Length, n)) 1 Im2colGemm
                                if i > 0 && count = 1 then yield item "input gradient" (Gemm(true, false, run.Length, n, grp.Planes)) 1 fused
                                elif i > 0 then
                                    // A batch's input gradient runs a few examples at a time (BatchLayers.inputGradientChunk).
                                    let chunk = BatchLayers.inputGradientChunk u.Rows u.Positions count
                                    if count / chunk > 0 then
                                        yield item "input gradient" (Gemm(true, false, run.Length, chunk * u.Positions, grp.Planes)) (count / chunk) fused
                                    if count % chunk > 0 then
                                        yield item "input gradient" (Gemm(true, false, run.Length, (count % chunk) * u.Positions, grp.Planes)) 1 fused ]
        | None ->
            let fanIn, units = g.FanIn, g.Units
            if count = 1 then
                yield item "forward" (Gemv(true, fanIn, units)) 1 Im2colGemm
                if training then
                    yield item "weight gradient" (Gemm(false, false, fanIn, units, 1)) 1 Im2colGemm
                    if i > 0 then yield item "input gradient" (Gemv(false, fanIn, units)) 1 Im2colGemm
            else
                yield item "forward" (Gemm(false, false, count, units, fanIn)) 1 Im2colGemm
                if training then
                    yield item "weight gradient" (Gemm(true, false, fanIn, units, count)) 1 Im2colGemm
                    if i > 0 then yield item "input gradient" (Gemm(false, true, count, fanIn, units)) 1 Im2colGemm ]

/// The products of per-example training, batched training at `batch` (per chunk of at most
/// Workspace.batchChunk examples, as the engine runs a larger batch), and evaluation at `evalBatch`
/// (its lane path, where the network has one, replaces them all under providers that allow it).
let table (net: Network) (batch: int) (evalBatch: int) =
    let chunk = Workspace.trainingCapacity batch
    let batched = if chunk < batch then $"batched training, batch {batch} in chunks of {chunk}" else $"batched training, batch {batch}"
    products net "per-example training" 1 true
    @ (if batch > 1 then products net batched chunk true else [])
    @ (products net $"evaluation, batch {evalBatch}" evalBatch false
       |> List.map (fun p -> if net.BatchPath = Lanes then { p with Kernel = Lanes } else p))
