/// What the engine asks of a kind of layer. Each kind (Engine/Local.fs, Engine/Dense.fs) answers all
/// of it in its own module; the passes, Newton's curvature, the routing table and the 16-lane path
/// iterate over layers and call their kind, and LayerKinds.ofPlan is the one place that picks the kind
/// from a layer's spec (a new kind that is not listed there is a compile-time incomplete match).
namespace Lecun.Model

open Lecun.Native.Backends
open Lecun.Native.Kernels

type ILayerKind =
    /// Pre-activations of `count` examples, input [count, in] from input.[inputOffset..], into
    /// ws.Outputs.[layer] as [count, units]. One example also keeps what its backward pass reads. A
    /// training pass's first layer reads its input through `firstUnfold` (one example) or, when
    /// `shifted`, through ws.FirstUnfolds (a batch): InputShifts' plans.
    abstract Forward:
        backend: IBackend * plan: LayerPlan * ws: Workspace * layer: int * firstUnfold: Im2ColPlan voption * shifted: bool
        * parameters: float32 array * input: float32 array * inputOffset: int * count: int -> unit

    /// One example's backward from dPre (the gradient of the pre-activations): the input gradient into
    /// ws.DeltaIn.[layer] when `needInput` (first, from the weights as they were), then the weight and
    /// bias gradients into the sink (which may be the parameters themselves, see GradientSink).
    abstract Backward:
        backend: IBackend * plan: LayerPlan * ws: Workspace * layer: int * parameters: float32 array
        * input: float32 array * inputOffset: int * dPre: float32 array * sink: GradientSink * needInput: bool -> unit

    /// The same for the `count` examples of the last batched forward pass, dPre [count, units]: the
    /// input gradients into ws.BatchDeltaIn.[layer], the gradients summed over the batch into the sink.
    abstract BatchBackward:
        backend: IBackend * plan: LayerPlan * ws: Workspace * layer: int * parameters: float32 array
        * input: float32 array * inputOffset: int * dPre: float32 array * count: int * sink: GradientSink * needInput: bool -> unit

    /// Newton's diagonal curvature of one example (the last forward pass, count 1): hPre propagated
    /// through the squared weights over the squared inputs (`squaredInput`, the layer's input squared;
    /// `squaredColumns`, scratch the size of ws.ColsT.[layer]), into ws.DeltaIn.[layer] and the sink.
    abstract Curvature:
        backend: IBackend * plan: LayerPlan * ws: Workspace * layer: int * squaredWeights: float32 array
        * squaredInput: float32 array * squaredColumns: float32 array * hPre: float32 array * sink: GradientSink * needInput: bool -> unit

    /// The products the layer issues in one pass over `count` examples (forward; and when `training`,
    /// the weight gradient and, past the first layer, the input gradient), as Forward, Backward and
    /// BatchBackward make them.
    abstract Products: plan: LayerPlan * layer: int * path: string * count: int * training: bool -> Product list

    /// The 16-lane path's pre-activations of one lane batch: input [in, 16] -> lane.Out [units, 16].
    abstract LaneForward: plan: LayerPlan * lane: LaneLayer * parameters: float32 array * input: float32 array -> unit

    /// Lane training: the forward of one lane batch whose padded input planes the caller has laid into
    /// lane.Padded (the first layer's shifted or distorted frames, see LaneTraining); a kind that reads
    /// no padded planes raises.
    abstract LaneForwardLaidIn: plan: LayerPlan * lane: LaneLayer * parameters: float32 array -> unit

    /// Lane training: one lane batch's backward from layer.DeltaPre [units, 16]: the input gradient into
    /// layer.DeltaIn [in, 16] when `needInput` (first, from the weights as they were), then the weight and
    /// bias gradients added into layer.WeightLanes and layer.BiasLanes (laid out as the kind says there).
    /// `input` is what the forward pass read, [in, 16] (a locally-connected layer reads its padded copy,
    /// layer.Lane.Padded).
    abstract LaneBackward:
        plan: LayerPlan * layer: LaneTrainingLayer * parameters: float32 array * input: float32 array * needInput: bool -> unit

    /// Lane training, the end of a batch: the gradient sums of the first stream's layer, plus the
    /// second's when it ran (added first, float by float), summed over the lanes into the layer's
    /// slices of grad, in one fixed order.
    abstract LaneGradientSum:
        plan: LayerPlan * first: LaneTrainingLayer * second: LaneTrainingLayer voption * grad: float32 array -> unit
