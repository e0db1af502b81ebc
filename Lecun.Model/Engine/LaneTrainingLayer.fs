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
      /// Weight and bias gradients summed per lane over positions and groups, [weights, 16] and
      /// [units, 16]; summed over the lanes once per batch (LaneGradients.SumLanes).
      WeightLanes: float32 array
      BiasLanes: float32 array }

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
          WeightLanes = Array.zeroCreate (g.Weight.Length * lanes)
          BiasLanes = Array.zeroCreate (g.Units * lanes) }
