/// Everything derived from a validated spec: shapes, counts, and where each tensor lives in the
/// one flat float32 parameter buffer.
namespace Lecun.Model

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
        let shape = layer.Kind.Shape inShape
        let weights = size shape.WeightShape
        { Spec = layer; InShape = inShape; OutShape = shape.OutShape; Units = shape.Units; FanIn = shape.FanIn
          Connections = shape.Units * (shape.FanIn + 1); Params = weights + size shape.BiasShape
          Macs = shape.Units * shape.FanIn
          Weight = { Name = layer.Name + "w"; Offset = offset; Shape = shape.WeightShape }
          Bias = { Name = layer.Name + "b"; Offset = offset + weights; Shape = shape.BiasShape } }

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
