/// The network as data: layer specs, their validation, and the LeCun 1989 network built from them.
namespace Lecun.Model

/// A layer of the network: one case per kind. Each kind's spec type answers the spec side
/// (ILayerSpecKind, in its own file under Kinds/); Engine/LayerKinds.fs picks its engine side.
type LayerSpec =
    | Local of LocalSpec
    | Dense of DenseSpec

    /// What the spec side asks of the layer's kind.
    member this.Kind: ILayerSpecKind =
        match this with
        | Local l -> l :> ILayerSpecKind
        | Dense d -> d :> ILayerSpecKind

    member this.Name = this.Kind.Name

    /// The kinds by their name in a network text, with the reader of each.
    static member Readers: (string * (System.Text.Json.JsonElement -> string -> LayerSpec)) list =
        [ LocalSpec.KindName, (fun e name -> Local(LocalSpec.Read e name))
          DenseSpec.KindName, (fun e name -> Dense(DenseSpec.Read e name)) ]

type NetSpec = { Input: PlaneShape; Layers: LayerSpec list }

module ConnectionTable =
    /// Every output plane reads every input plane.
    let full inputPlanes outputPlanes =
        List.replicate outputPlanes [ 0 .. inputPlanes - 1 ]

    /// The 8-of-12 block table of the best-known reproduction (the paper does not print its table):
    /// H2 planes 0-3 read H1 planes 0-7, planes 4-7 read 4-11, planes 8-11 read 0-3 and 8-11.
    let lecun1989H2 =
        [ yield! List.replicate 4 [ 0..7 ]
          yield! List.replicate 4 [ 4..11 ]
          yield! List.replicate 4 ([ 0..3 ] @ [ 8..11 ]) ]

module Spec =
    /// The 1989 network: 16x16 input, H1 12x8x8, H2 12x4x4, H3 30, output 10.
    let lecun1989 =
        { Input = { Planes = 1; Height = 16; Width = 16 }
          Layers =
            [ Local
                  { Name = "H1"; Planes = 12; Kernel = 5; Stride = 2; Padding = 2; PadValue = -1.0f
                    Table = ConnectionTable.full 1 12 }
              Local
                  { Name = "H2"; Planes = 12; Kernel = 5; Stride = 2; Padding = 2; PadValue = -1.0f
                    Table = ConnectionTable.lecun1989H2 }
              Dense { Name = "H3"; Units = 30 }
              Dense { Name = "out"; Units = 10 } ] }

    /// Output side length of a strided window over a padded input (floor, as PyTorch's conv2d).
    let outputSide inputSide kernel stride padding = LocalSpec.OutputSide inputSide kernel stride padding

    /// Checks that a spec describes a network that can be built; the error says what is wrong.
    let validate (spec: NetSpec) : Result<NetSpec, string> =
        let i = spec.Input
        let names = spec.Layers |> List.map (fun l -> l.Name)
        if i.Planes <= 0 || i.Height <= 0 || i.Width <= 0 then
            Error $"input: planes, height and width must be positive, got {i.Planes}x{i.Height}x{i.Width}"
        elif spec.Layers.IsEmpty then Error "the network has no layers"
        elif (names |> List.distinct).Length <> names.Length then Error "layer names must be distinct"
        elif names |> List.exists System.String.IsNullOrWhiteSpace then Error "every layer needs a name"
        else
            // Walk the layers carrying the current input: planes until the first dense layer, then a vector.
            let rec walk input (layers: LayerSpec list) =
                match layers with
                | [] -> Ok spec
                | layer :: rest -> layer.Kind.Check input |> Result.bind (fun next -> walk next rest)
            walk (PlaneInput i) spec.Layers
