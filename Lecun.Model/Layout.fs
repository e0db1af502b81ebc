/// Everything derived from a validated spec: shapes, counts, and where each tensor lives in the
/// one flat float32 parameter buffer.
namespace Lecun.Model

/// A named window of the flat parameter buffer, row-major with the given shape.
type TensorView =
    { Name: string
      Offset: int
      Shape: int list }

    member v.Length = List.fold (*) 1 v.Shape

/// One layer as the engine sees it: its spec plus the shapes and counts it implies.
type LayerGeometry =
    { Spec: LayerSpec
      /// [planes; height; width] for planes, [units] for a vector.
      InShape: int list
      OutShape: int list
      Units: int
      /// Inputs per unit, the bias not included (padding positions are inputs too, as in the paper).
      FanIn: int
      Connections: int
      Params: int
      /// Multiply-accumulates of one forward pass: connections minus biases.
      Macs: int
      Weight: TensorView
      Bias: TensorView }

    member g.Name = g.Spec.Name
    member g.InUnits = List.fold (*) 1 g.InShape

type NetLayout =
    { Spec: NetSpec
      Layers: LayerGeometry list
      /// Length of the flat parameter buffer.
      ParamCount: int }

    member n.Units = (List.fold (*) 1 [ n.Spec.Input.Planes; n.Spec.Input.Height; n.Spec.Input.Width ]) + (n.Layers |> List.sumBy (fun l -> l.Units))
    member n.Connections = n.Layers |> List.sumBy (fun l -> l.Connections)
    member n.Macs = n.Layers |> List.sumBy (fun l -> l.Macs)
    member n.Views = n.Layers |> List.collect (fun l -> [ l.Weight; l.Bias ])
    member n.InputSize = n.Spec.Input.Planes * n.Spec.Input.Height * n.Spec.Input.Width
    member n.OutputSize = (List.last n.Layers).Units
    member n.View(name: string) = n.Views |> List.find (fun v -> v.Name = name)

module Layout =
    let private size shape = List.fold (*) 1 shape

    /// Geometry of one layer given its input shape and the offset where its parameters start.
    /// Weights come first, then biases, and the layers follow one another: H1w H1b H2w H2b ...
    let private geometry (inShape: int list) (offset: int) (layer: LayerSpec) : LayerGeometry =
        match layer, inShape with
        | Local l, [ _; h; w ] ->
            let oh = Spec.outputSide h l.Kernel l.Stride l.Padding
            let ow = Spec.outputSide w l.Kernel l.Stride l.Padding
            let reads = List.head l.Table |> List.length
            let units = l.Planes * oh * ow
            let fanIn = reads * l.Kernel * l.Kernel
            let wShape = [ l.Planes; reads; l.Kernel; l.Kernel ]
            let bShape = [ l.Planes; oh; ow ]
            { Spec = layer; InShape = inShape; OutShape = bShape; Units = units; FanIn = fanIn
              Connections = units * (fanIn + 1); Params = size wShape + size bShape; Macs = units * fanIn
              Weight = { Name = l.Name + "w"; Offset = offset; Shape = wShape }
              Bias = { Name = l.Name + "b"; Offset = offset + size wShape; Shape = bShape } }
        | Dense d, _ ->
            let fanIn = size inShape
            // Input-major, y = x @ W + b, as the PyTorch reproduction stores it.
            let wShape = [ fanIn; d.Units ]
            { Spec = layer; InShape = inShape; OutShape = [ d.Units ]; Units = d.Units; FanIn = fanIn
              Connections = d.Units * (fanIn + 1); Params = fanIn * d.Units + d.Units; Macs = d.Units * fanIn
              Weight = { Name = d.Name + "w"; Offset = offset; Shape = wShape }
              Bias = { Name = d.Name + "b"; Offset = offset + size wShape; Shape = [ d.Units ] } }
        | Local l, _ -> invalidArg "layer" $"layer {l.Name} needs a planes input (validate the spec first)"

    /// Derives the layout of a spec, or says why the spec cannot be built.
    let tryCreate (spec: NetSpec) : Result<NetLayout, string> =
        Spec.validate spec
        |> Result.map (fun spec ->
            let input = [ spec.Input.Planes; spec.Input.Height; spec.Input.Width ]
            let layers, total =
                ((input, 0), spec.Layers)
                ||> List.mapFold (fun (shape, offset) layer ->
                    let g = geometry shape offset layer
                    g, (g.OutShape, offset + g.Params))
            { Spec = spec; Layers = layers; ParamCount = snd total })

    let create spec =
        match tryCreate spec with
        | Ok l -> l
        | Error e -> invalidArg "spec" e

    /// The layout of the 1989 network (valid by construction; checked by the tests).
    let lecun1989 = create Spec.lecun1989
