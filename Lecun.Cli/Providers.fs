/// The one home of the --backend choice every command shares: its help text and the provider it names.
module Lecun.Cli.Providers

open System
open Lecun.Model
open Lecun.Native.Backends
open Lecun.Cli.Output

/// --backend's help text where a command runs many trainings or measures the engine (ladder, bench).
let usage = "auto (default: each product on the provider measured faster for its shape), mkl (every product a CBLAS call) or managed (own kernels only); reference runs in eval, predict, show, serve and train only."

/// --backend's help text where a command reads or trains one model (eval, predict, show, serve, train).
let evaluatorUsage =
    "auto (default: each product on the provider measured faster for its shape), mkl (every product a CBLAS call), managed (own kernels only) or reference (the float64 reference over the connection graph: slow and exact, for checking the others; it trains per-example SGD only)."

let private namesReference (name: string option) =
    name |> Option.exists (fun n -> n.ToLowerInvariant() = Evaluator.referenceName)

/// The provider a --backend value names (the default when absent); a bad or unavailable name, or the
/// reference (too slow for a ladder or a benchmark), is a usage error.
let choose (name: string option) =
    if namesReference name then
        fail "--backend reference runs in eval, predict, show, serve and train only (the float64 reference is slow, for checking one model): use auto, mkl or managed here"
    try
        Backend.Choose(Option.toObj name, fun message -> eprintfn "warning: %s" message)
    with
    | :? ArgumentException as e -> fail e.Message
    | :? InvalidOperationException as e -> fail e.Message

/// What a --backend value names where one model is read or trained: the engine on a provider (as `choose`), or the reference.
let chooseEvaluator (name: string option) =
    match name with
    | _ when namesReference name -> Evaluator.Reference
    | Some n when not (Backend.Names |> Array.contains (n.ToLowerInvariant())) ->
        fail $"""unknown backend '{n}' (known: {String.Join(", ", Backend.Names)}, {Evaluator.referenceName})"""
    | _ -> Evaluator.Engine(choose name)

/// The execution plan of a network under a provider (each layer's kernel path of one example, of a
/// batch's evaluation and of batched training), then its routing table: every product of the
/// per-example, batched-training (batch > 1) and evaluation paths, its shape and calls per pass, and
/// where it runs (README, "routing").
let routing (backend: IBackend) (net: Network) (batch: int) (evalBatch: int) =
    let sb = Text.StringBuilder()
    let plan = ExecutionPlan.create backend net
    sb.AppendLine $"execution plan under {plan.Provider}: layer, one example, evaluation of a batch, batched training" |> ignore
    for l in plan.Layers do
        sb.AppendLine $"  {l.Layer,-5} {KernelPath.name l.Example,-14} {KernelPath.name l.Evaluation,-14} {KernelPath.name l.BatchedTraining}" |> ignore
    sb.AppendLine $"routing under {backend.Name}: path, layer, product, shape, calls per pass -> provider" |> ignore
    for p in Routing.table net batch evalBatch do
        let shape = ProductShape.describe p.Shape
        sb.AppendLine $"  {p.Path,-28} {p.Layer,-5} {p.Role,-16} {shape,-22} {p.Calls,3} -> {Routing.routeOf backend p}" |> ignore
    sb.ToString()
