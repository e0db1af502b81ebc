/// The network's view of one digit: every layer's values, for pictures and the `serve` page.
namespace Lecun.Model

open Lecun.Native.Backends

module Inspect =
    /// Runs one 16x16 image (row-major, [-1, 1]) through the network on a one-example workspace and
    /// returns a copy of each layer's outputs in docs/design.md's tensor layout, flattened: for the 1989
    /// network H1 [12,8,8] (768), H2 [12,4,4] (192), H3 [30] and out [10]. The parameters are only
    /// read; the workspace is overwritten (one workspace per thread).
    let layers (backend: IBackend) (net: Network) (parameters: float32 array) (ws: Workspace) (image: float32 array) : float32 array array =
        if image.Length <> net.Layout.InputSize then
            invalidArg (nameof image) $"{image.Length} values, expected {net.Layout.InputSize}"
        Forward.runWith backend net parameters ws image 0 1 -1
        net.Plans |> Array.mapi (fun i plan -> Array.sub ws.Outputs.[i] 0 plan.Geometry.Units)
