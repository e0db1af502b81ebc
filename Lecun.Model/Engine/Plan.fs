/// Planning: the engine's view of a layout, worked out once when a network is created. Each layer's
/// activation, its plane groups and im2col plan, and the kernel path it runs on.
namespace Lecun.Model

open Lecun.Native.Backends
open Lecun.Native.Kernels

/// The squashing function of hidden or output units.
type Activation =
    | Tanh
    /// 1.7159 tanh(2a/3), as LeCun's later papers use.
    | ScaledTanh
    | Relu
    /// No squashing (the linear outputs of softmax cross-entropy).
    | Identity

module Activation =
    let names = [ Tanh, "tanh"; ScaledTanh, "scaled-tanh"; Relu, "relu"; Identity, "identity" ]
    let name (a: Activation) = NameTable.name names a
    let parse (text: string) = NameTable.parse "activation" names text

/// How the products of a layer (or of a whole batch) are computed.
type KernelPath =
    /// The plain path: im2col (a locally-connected layer) and the provider's GEMM/GEMV, for any count
    /// of examples. Every provider serves it, `mkl` only it (IBackend.Paths); every other path is tested against it.
    | Im2colGemm
    /// One example of a locally-connected layer whose output plane is one 16-lane vector: the products
    /// fused with a permuted unfold (PhaseUnfold, through Im2ColPlan.Product/InputGradient), bit for bit
    /// the plain path's roundings.
    | PhasePermute
    /// A batch, 16 examples per vector lane through every layer: evaluation (LaneBatch) and batched
    /// training (LaneTraining, LaneGradients).
    | Lanes

module KernelPath =
    let name = function Im2colGemm -> "im2col+gemm" | PhasePermute -> "phase-permute" | Lanes -> "lanes"

    /// The provider's flag of a path (IBackend.Paths).
    let private flag = function
        | Im2colGemm -> KernelPaths.Im2colGemm
        | PhasePermute -> KernelPaths.PhasePermute
        | Lanes -> KernelPaths.Lanes

    /// Whether a provider serves a path: the paths it lists (mkl: im2col+GEMM only; managed, auto: all).
    let servedBy (backend: IBackend) (path: KernelPath) =
        // A mask, not Enum.HasFlag: the passes ask per layer and example, and HasFlag may box.
        backend.Paths &&& flag path <> enum<KernelPaths> 0

    /// The path a planned path runs on under a provider: its own where the provider serves it, otherwise
    /// the plain path, which every provider serves. The one rule between plan and provider:
    /// ExecutionPlan, the passes and the routing table all ask it.
    let under (backend: IBackend) (path: KernelPath) = if servedBy backend path then path else Im2colGemm

    /// The path of a batch (evaluation and batched training) on this CPU, the one place that decides
    /// whether the 16-lane path runs: Lanes where LaneBatch runs natively, otherwise Im2colGemm.
    let batchPath = if LaneBatch.IsSupported then Lanes else Im2colGemm

type LayerPlan =
    { Geometry: LayerGeometry
      /// Plane groups of a locally-connected layer (empty for dense layers).
      Groups: PlaneGroup list
      /// How a locally-connected layer unfolds its input (None for dense layers).
      Unfold: Im2ColPlan option
      /// A locally-connected layer's matrix products (one per plane group and run), in the order
      /// localForward and localBackward run them, as Im2ColPlan's fused products read them.
      Segments: int array
      /// The path of one example through this layer where the provider serves it (KernelPath.under):
      /// PhasePermute where the geometry fits, otherwise Im2colGemm.
      ExamplePath: KernelPath
      Activation: Activation }

/// The network as the engine runs it: a layout plus the activation and kernel path of each layer.
type Network =
    { Layout: NetLayout
      Plans: LayerPlan array
      /// The path of a batch (evaluation and batched training) where the provider serves it
      /// (KernelPath.under): Lanes where the CPU has the lane kernels, otherwise Im2colGemm.
      BatchPath: KernelPath }

module Network =
    /// The im2col plan of a locally-connected layer whose input is moved by (shiftY, shiftX) pixels
    /// inside its padding (see Im2ColPlan; 0, 0 for the layer's own); None for a dense layer.
    let unfoldOf (g: LayerGeometry) (shiftY: int) (shiftX: int) =
        g.Spec.Kind.Unfold(g.InShape, shiftY, shiftX)

    /// Builds the engine's view of a layout: `hidden` on every hidden layer, `output` on the last.
    let create (layout: NetLayout) (hidden: Activation) (output: Activation) =
        let last = List.length layout.Layers - 1
        { Layout = layout
          Plans =
            layout.Layers
            |> List.mapi (fun i g ->
                let unfold = unfoldOf g 0 0
                { Geometry = g
                  Groups = g.Spec.Kind.Groups
                  Unfold = unfold
                  Segments = g.Spec.Kind.Segments
                  ExamplePath = (match unfold with Some u when u.FusesProducts -> PhasePermute | _ -> Im2colGemm)
                  Activation = if i = last then output else hidden })
            |> Array.ofList
          BatchPath = KernelPath.batchPath }

    /// The 1989 network: tanh everywhere, the outputs included.
    let lecun1989 = create Layout.lecun1989 Tanh Tanh

/// How one layer runs under a provider.
type LayerExecution =
    { Layer: string
      /// One example (per-example training, `predict`, `show`, `serve`).
      Example: KernelPath
      /// A batch's evaluation.
      Evaluation: KernelPath
      /// A batch's forward and backward passes in batched training.
      BatchedTraining: KernelPath }

/// The execution plan of a network under a provider, decided once from the paths the provider serves
/// (KernelPath.under): per layer, the kernel path of one example, of a batch's evaluation and of
/// batched training. `train --verbose` prints it above the routing table.
type ExecutionPlan =
    { Provider: string
      Layers: LayerExecution array }

module ExecutionPlan =
    let create (backend: IBackend) (net: Network) : ExecutionPlan =
        { Provider = backend.Name
          Layers =
            net.Plans |> Array.map (fun plan ->
                { Layer = plan.Geometry.Name
                  Example = KernelPath.under backend plan.ExamplePath
                  Evaluation = KernelPath.under backend net.BatchPath
                  BatchedTraining = KernelPath.under backend net.BatchPath }) }

/// Training's random shifts of the input digit: one unfold plan of the first layer for each shift
/// (dx, dy) in [-Max, Max]^2, which moves the digit inside the layer's padding (see Im2ColPlan).
type InputShifts =
    { Max: int
      /// Row-major over (dy, dx): plan (dy + Max) * (2 Max + 1) + (dx + Max).
      Plans: Im2ColPlan array }

module InputShifts =
    /// The plans for shifts of up to `max` pixels (none for 0).
    let create (net: Network) (max: int) =
        if max < 0 then invalidArg "max" $"a shift must not be negative, got {max}"
        if max = 0 then { Max = 0; Plans = Array.empty }
        elif net.Plans.[0].Unfold.IsNone then invalidArg "net" "shifting the input needs a locally-connected first layer"
        else
            let first = net.Plans.[0].Geometry
            { Max = max
              Plans = [| for dy in -max .. max do
                           for dx in -max .. max do
                               (Network.unfoldOf first dy dx).Value |] }

    /// The plan that moves the input dx pixels right and dy down.
    let plan (shifts: InputShifts) (dx: int) (dy: int) =
        if abs dx > shifts.Max || abs dy > shifts.Max then invalidArg "dx" $"shift ({dx}, {dy}) exceeds {shifts.Max}"
        shifts.Plans.[(dy + shifts.Max) * (2 * shifts.Max + 1) + dx + shifts.Max]
