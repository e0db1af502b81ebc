/// The one home of the --backend choice every command shares: its help text and the provider it names.
module Lecun.Cli.Providers

open System
open Lecun.Model
open Lecun.Native.Backends
open Lecun.Cli.Output

/// --backend's help text.
let usage = "auto (default: each product on the provider measured faster for its shape), mkl (every product a CBLAS call) or managed (own kernels only)."

/// The provider a --backend value names (the default when absent); a bad or unavailable name is a usage error.
let choose (name: string option) =
    try
        Backend.Choose(Option.toObj name, fun message -> eprintfn "warning: %s" message)
    with
    | :? ArgumentException as e -> fail e.Message
    | :? InvalidOperationException as e -> fail e.Message

/// The routing table of a provider: every product of the per-example, batched-training (batch > 1)
/// and evaluation paths, its shape and calls per pass, and where it runs (README, "routing").
let routing (backend: IBackend) (net: Network) (batch: int) (evalBatch: int) =
    let sb = Text.StringBuilder()
    sb.AppendLine $"routing under {backend.Name}: path, layer, product, shape, calls per pass -> provider" |> ignore
    for p in Routing.table net batch evalBatch do
        let shape = ProductShape.describe p.Shape
        sb.AppendLine $"  {p.Path,-28} {p.Layer,-5} {p.Role,-16} {shape,-22} {p.Calls,3} -> {Routing.routeOf backend p}" |> ignore
    sb.ToString()
