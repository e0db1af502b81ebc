/// The one home of the --backend choice every command shares: its help text and the provider it names.
module Lecun.Cli.Providers

open System
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
