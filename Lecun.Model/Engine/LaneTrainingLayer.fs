/// The buffers of one layer of the 16-lane training path (LaneTraining): the forward pass's lane layer,
/// the gradients of one 16-example group, and the per-lane gradient sums of a batch. Their own record,
/// beside the Workspace's one-example and batched buffers.
namespace Lecun.Model

open Lecun.Native.Kernels

type LaneTrainingLayer =
    { /// The forward pass's buffers (padded input planes, window tables, outputs after the activation).
      Lane: LaneLayer
      /// The dropout mask of the layer's outputs, [units, 16] (used where the layer is dropped out).
      Mask: float32 array
      /// The outputs times the mask, which the next layer reads, [units, 16] (likewise).
      Dropped: float32 array
      /// Gradient of the pre-activations, [units, 16].
      DeltaPre: float32 array
      /// Gradient of the layer's input, [input units, 16] (unpadded, as the layer below's outputs).
      DeltaIn: float32 array
      /// A locally-connected layer's input gradient with its padding, as Lane.Padded is laid out (empty for dense).
      PaddedDelta: float32 array
      /// The weight gradients summed over the groups of a batch, as the layer's kind lays them out
      /// (ILayerKind.LaneGradientSum reads them): a locally-connected layer per lane, [weights, 16]; a
      /// dense layer over the lanes already, [fanIn, LaneGradients.PaddedUnits units].
      WeightLanes: float32 array
      /// The bias gradients summed per lane over positions and groups, [units, 16].
      BiasLanes: float32 array
      /// A dense layer's input and pre-activation gradient example-major ([16, fanIn] and
      /// [16, PaddedUnits units], its padding zero), for its weight gradient (empty for other kinds).
      Transposed: float32 array }

module LaneTrainingLayer =
    let create (plan: LayerPlan) =
        let g = plan.Geometry
        let lanes = LaneBatch.Lanes
        let lane = LaneLayer.create plan
        { Lane = lane
          Mask = Array.zeroCreate (g.Units * lanes)
          Dropped = Array.zeroCreate (g.Units * lanes)
          DeltaPre = Array.zeroCreate (g.Units * lanes)
          DeltaIn = Array.zeroCreate (g.InUnits * lanes)
          PaddedDelta = (if lane.Padded.Length > 0 then Array.zeroCreate lane.Padded.Length else Array.empty)
          WeightLanes =
            Array.zeroCreate (if g.Spec.Kind.ReadsVector then g.FanIn * LaneGradients.PaddedUnits g.Units else g.Weight.Length * lanes)
          BiasLanes = Array.zeroCreate (g.Units * lanes)
          Transposed =
            if g.Spec.Kind.ReadsVector then Array.zeroCreate (lanes * (g.FanIn + LaneGradients.PaddedUnits g.Units))
            else Array.empty }
