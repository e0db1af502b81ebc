/// The network written out unit by unit: every unit's inputs and the parameter each connection uses.
/// Slow and plain on purpose: counts are checked against it, and the float64 Reference evaluates it.
namespace Lecun.Model

type UnitConnections =
    { Layer: int
      /// Global index of this unit.
      Unit: int
      /// (source, index of the weight in the flat parameter buffer) for each connection.
      Inputs: (Source * int) array
      /// Index of this unit's bias in the flat parameter buffer.
      Bias: int }

module ConnectionGraph =
    /// Every non-input unit with its connections, in global unit order.
    let build (layout: NetLayout) : UnitConnections array =
        let result = ResizeArray()
        let mutable inBase = 0
        let mutable outBase = layout.InputSize
        layout.Layers
        |> List.iteri (fun li g ->
            for u, inputs, bias in g.Spec.Kind.Connections(g.InShape, g.OutShape, g.Weight.Offset, g.Bias.Offset, inBase) do
                result.Add { Layer = li; Unit = outBase + u; Inputs = inputs; Bias = bias }
            inBase <- outBase
            outBase <- outBase + g.Units)
        result.ToArray()
