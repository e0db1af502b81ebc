/// The one place a layer's kind is picked from its spec: every other part of the engine asks the
/// kind (ILayerKind). A kind added to LayerSpec and not here is an incomplete match the compiler
/// reports, never another kind's kernel run in its place.
namespace Lecun.Model

module LayerKinds =
    let ofSpec (spec: LayerSpec) : ILayerKind =
        match spec with
        | Local _ -> LocalLayer.kind
        | Dense _ -> DenseLayer.kind

    let ofPlan (plan: LayerPlan) = ofSpec plan.Geometry.Spec
