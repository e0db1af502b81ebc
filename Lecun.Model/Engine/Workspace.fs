/// The engine's buffers: allocated once per network and batch capacity, so the passes allocate nothing.
namespace Lecun.Model

open Lecun.Native.Kernels

/// One layer of the 16-lane batch path (LaneBatch): activations unit-major, [units, 16 examples].
type LaneLayer =
    { /// A locally-connected layer's input planes with their padding, [inPlanes, ph, pw, 16]; the
      /// border holds the pad value from the start and is never written again. Empty for dense layers.
      Padded: float32 array
      /// Float offset in Padded of each output position's window (top-left, input plane 0).
      Origins: int array
      /// Per plane group: first plane, planes, and the float offset of each weight's input relative to
      /// a window's origin, in weight order (read plane, row, column).
      Taps: struct (int * int * int array) array
      /// The layer's outputs, [units, 16].
      Out: float32 array }

module LaneLayer =
    let create (plan: LayerPlan) =
        let g = plan.Geometry
        let windows = g.Spec.Kind.LaneWindows(g.InShape, g.OutShape, LaneBatch.Lanes)
        { Padded = windows.Padded; Origins = windows.Origins; Taps = windows.Taps; Out = Array.zeroCreate (g.Units * LaneBatch.Lanes) }

/// Buffers for a forward pass of up to `Capacity` examples and a backward pass of one example or of a
/// whole batch. Allocated once; the passes themselves allocate nothing.
type Workspace =
    { Capacity: int
      /// Each layer's outputs, [Capacity, units]. A batch on the 16-lane path fills only the last layer's.
      Outputs: float32 array array
      /// Each locally-connected layer's im2col matrix, [inPlanes * k * k, Capacity * outPositions].
      Cols: float32 array array
      /// The same for one example, transposed: [outPositions, inPlanes * k * k] (for the weight gradient),
      /// followed by the few floats of slack that im2col's vector stores may run into.
      ColsT: float32 array array
      /// GEMM results of a batched locally-connected layer, [planes, Capacity * positions], before
      /// they are transposed to example-major order; in a batched backward pass, the pre-activation
      /// gradients in the same plane-major order.
      Staging: float32 array array
      /// Gradient of the loss with respect to each layer's pre-activation, one example (in a batched
      /// backward pass: the bias gradient, summed over the batch).
      DeltaPre: float32 array array
      /// Gradient with respect to each layer's input, one example.
      DeltaIn: float32 array array
      /// Gradient with respect to each locally-connected layer's im2col matrix, one example,
      /// [inPlanes * k * k, outPositions], and the zero col2im reads after it; the scratch of
      /// Im2ColPlan.InputGradient where that runs instead.
      DeltaCols: float32 array array
      /// The same three for a batch (empty in one-example workspaces): [Capacity, units],
      /// [Capacity, input units] and [inPlanes * k * k, Capacity * positions].
      BatchDeltaPre: float32 array array
      BatchDeltaIn: float32 array array
      BatchDeltaCols: float32 array array
      /// Dropout mask of each layer's output, [Capacity, units]: 0 (dropped) or 1/(1-rate) (kept). The
      /// caller fills the masks of the examples of the layer it passes as `dropLayer`.
      DropMask: float32 array array
      /// A layer's outputs after their dropout masks, which the next layer reads, [Capacity, units].
      Dropped: float32 array array
      /// The first layer's im2col plan of each example of a batch whose inputs are shifted (one of
      /// InputShifts' plans each; the caller fills them), for a batched forward pass that shifts.
      FirstUnfolds: Im2ColPlan array
      /// Scratch of each locally-connected layer's im2col (its input plus a pad slot).
      UnfoldScratch: float32 array array
      /// A batch's input images, [input size, 16], for the 16-lane path.
      LaneInput: float32 array
      /// Each layer's 16-lane buffers; empty where that path does not run (one-example workspaces,
      /// CPUs without AVX-512).
      Lanes: LaneLayer array }

module Workspace =
    /// The most examples a training batch runs through the batched passes at once: a larger batch runs
    /// in chunks of this many, their gradients summed before the one step, so a training workspace (about
    /// 64 KB per example) stays the same size whatever the batch size.
    let batchChunk = 256

    /// The capacity of the workspace that trains with batches of `batchSize` examples.
    let trainingCapacity (batchSize: int) = min (max 1 batchSize) batchChunk

    let create (net: Network) (capacity: int) =
        if capacity < 1 then invalidArg "capacity" $"a workspace holds at least one example, got {capacity}"
        let plans = net.Plans
        let lanes = capacity > 1 && net.BatchPath = Lanes
        let batch = capacity > 1
        let colsSize (p: LayerPlan) count =
            match p.Unfold with
            | Some u -> u.Rows * u.Positions * count
            | None -> 0
        let perLayer (size: LayerPlan -> int) = plans |> Array.map (fun p -> Array.zeroCreate<float32> (size p))
        { Capacity = capacity
          Outputs = perLayer (fun p -> capacity * p.Geometry.Units)
          Cols = perLayer (fun p -> colsSize p capacity)
          ColsT = perLayer (fun p -> match p.Unfold with Some u -> u.TransposedSize | None -> 0)
          Staging = perLayer (fun p -> match p.Unfold with Some _ when batch -> capacity * p.Geometry.Units | _ -> 0)
          DeltaPre = perLayer (fun p -> p.Geometry.Units)
          DeltaIn = perLayer (fun p -> p.Geometry.InUnits)
          // One float more than the columns: col2im reads a zero there (see Im2ColPlan.Backward).
          DeltaCols =
            perLayer (fun p ->
                match p.Unfold, p.Geometry.OutShape with
                | Some u, planes :: _ -> max u.ColumnsWithZero (u.InputGradientScratch planes)
                | _ -> 0)
          BatchDeltaPre = perLayer (fun p -> if batch then capacity * p.Geometry.Units else 0)
          BatchDeltaIn = perLayer (fun p -> if batch then capacity * p.Geometry.InUnits else 0)
          BatchDeltaCols = perLayer (fun p -> if batch then colsSize p capacity else 0)
          DropMask = perLayer (fun p -> capacity * p.Geometry.Units)
          Dropped = perLayer (fun p -> capacity * p.Geometry.Units)
          FirstUnfolds = Array.create capacity (match plans.[0].Unfold with Some u -> u | None -> null)
          UnfoldScratch = perLayer (fun p -> match p.Unfold with Some u -> u.ScratchSize | None -> 0)
          LaneInput = if lanes then Array.zeroCreate (net.Layout.InputSize * LaneBatch.Lanes) else Array.empty
          Lanes = if lanes then plans |> Array.map LaneLayer.create else Array.empty }

/// Where a backward pass puts each parameter's gradient g: target <- alpha g + beta target.
/// Into a gradient buffer it is (grad, 1, 0), or (grad, 1, 1) to accumulate; a plain SGD step goes
/// straight into the parameters as (parameters, -lr, 1). The products and the bias update round
/// alpha g first and then the sum, exactly as writing g and then taking p - lr g would, so the fused
/// step changes no bit; it saves writing and re-reading a 9,760-float gradient per example.
[<Struct>]
type GradientSink =
    { Target: float32 array
      Alpha: float32
      Beta: float32 }

module GradientSink =
    let into (grad: float32 array) (accumulate: bool) = { Target = grad; Alpha = 1.0f; Beta = (if accumulate then 1.0f else 0.0f) }
    let sgd (parameters: float32 array) (learningRate: float32) = { Target = parameters; Alpha = -learningRate; Beta = 1.0f }
