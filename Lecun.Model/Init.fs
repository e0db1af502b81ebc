/// Initial parameters: weights uniform within a bound set by each unit's fan-in F, hidden biases 0,
/// output biases -1 (the convention of the common PyTorch reproduction). Draws follow the flat buffer's order.
namespace Lecun.Model

/// The bound b of the initial weights U[-b, b], from the fan-in F of the unit a weight feeds.
type WeightInit =
    /// b = 2.4 / sqrt F: the common PyTorch reproduction's reading of the paper.
    | SqrtFanIn
    /// b = 2.4 / F: the rule as LeCun et al. state it (1998, Appendix A); total inputs start small,
    /// inside the quasi-linear range of the squashing function.
    | FanIn

module WeightInit =
    let names = [ SqrtFanIn, "sqrt-fan-in"; FanIn, "fan-in" ]
    let name (w: WeightInit) = NameTable.name names w
    let parse (text: string) = NameTable.parse "weight initialization" names text
    let bound (w: WeightInit) (fanIn: int) =
        match w with
        | SqrtFanIn -> 2.4f / sqrt (float32 fanIn)
        | FanIn -> 2.4f / float32 fanIn

module Init =
    /// Fresh parameters for `layout` under `scheme`, drawn from `seed`.
    let create (scheme: WeightInit) (layout: NetLayout) (seed: int) : float32 array =
        let rng = Rng(uint64 seed)
        let p = Array.zeroCreate<float32> layout.ParamCount
        let last = List.length layout.Layers - 1
        layout.Layers
        |> List.iteri (fun i g ->
            let bound = WeightInit.bound scheme g.FanIn
            for j in g.Weight.Offset .. g.Weight.Offset + g.Weight.Length - 1 do
                p.[j] <- (rng.NextFloat32() * 2.0f - 1.0f) * bound
            let bias = if i = last then -1.0f else 0.0f
            System.Array.Fill(p, bias, g.Bias.Offset, g.Bias.Length))
        p
