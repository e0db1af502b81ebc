/// The network written out unit by unit: every unit's inputs and the parameter each connection uses.
/// Slow and plain on purpose: counts are checked against it, and the float64 Reference evaluates it.
namespace Lecun.Model

/// Where a connection takes its value from.
type Source =
    /// A unit, by global index: input units first, then each layer's units in order.
    | FromUnit of int
    /// A padding position, which always holds the layer's pad value.
    | FromPad of float32

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
            match g.Spec, g.InShape, g.OutShape with
            | Local l, [ _; ih; iw ], [ planes; oh; ow ] ->
                let reads = List.head l.Table |> List.length
                for p in 0 .. planes - 1 do
                    let row = List.item p l.Table
                    for oy in 0 .. oh - 1 do
                        for ox in 0 .. ow - 1 do
                            let inputs =
                                [| for j, c in List.indexed row do
                                       for ky in 0 .. l.Kernel - 1 do
                                           for kx in 0 .. l.Kernel - 1 do
                                               let y = oy * l.Stride + ky - l.Padding
                                               let x = ox * l.Stride + kx - l.Padding
                                               let source =
                                                   if y >= 0 && y < ih && x >= 0 && x < iw then FromUnit(inBase + (c * ih + y) * iw + x)
                                                   else FromPad l.PadValue
                                               let w = g.Weight.Offset + ((p * reads + j) * l.Kernel + ky) * l.Kernel + kx
                                               source, w |]
                            let u = (p * oh + oy) * ow + ox
                            result.Add { Layer = li; Unit = outBase + u; Inputs = inputs; Bias = g.Bias.Offset + u }
            | Dense _, _, [ units ] ->
                let fanIn = g.InUnits
                for u in 0 .. units - 1 do
                    let inputs = [| for i in 0 .. fanIn - 1 -> FromUnit(inBase + i), g.Weight.Offset + i * units + u |]
                    result.Add { Layer = li; Unit = outBase + u; Inputs = inputs; Bias = g.Bias.Offset + u }
            | _ -> invalidArg "layout" $"layer {g.Name} has an unexpected shape"
            inBase <- outBase
            outBase <- outBase + g.Units)
        result.ToArray()
