/// Initial parameters of the paper's recipe.
module Lecun.Model.Init

/// Weights U[-2.4/sqrt(F), 2.4/sqrt(F)] with F the unit's fan-in; hidden biases 0, output biases -1
/// (the convention of the common PyTorch reproduction). Draws follow the flat buffer's order.
let lecun1989 (layout: NetLayout) (seed: int) : float32 array =
    let rng = Rng(uint64 seed)
    let p = Array.zeroCreate<float32> layout.ParamCount
    let last = List.length layout.Layers - 1
    layout.Layers
    |> List.iteri (fun i g ->
        let bound = 2.4f / sqrt (float32 g.FanIn)
        for j in g.Weight.Offset .. g.Weight.Offset + g.Weight.Length - 1 do
            p.[j] <- (rng.NextFloat32() * 2.0f - 1.0f) * bound
        let bias = if i = last then -1.0f else 0.0f
        System.Array.Fill(p, bias, g.Bias.Offset, g.Bias.Length))
    p
