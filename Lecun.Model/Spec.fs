/// The network as data: layer specs, their validation, and the LeCun 1989 network built from them.
namespace Lecun.Model

/// A stack of equally sized 2-D feature planes (the input, or a locally-connected layer's output).
type PlaneShape = { Planes: int; Height: int; Width: int }

/// A locally-connected layer: each output plane has one shared kernel per input plane it reads,
/// and every unit has its own bias ("units do not share biases").
type LocalSpec =
    { Name: string
      Planes: int
      Kernel: int
      Stride: int
      /// Added on every side of each input plane, filled with PadValue (the paper's background, -1).
      Padding: int
      PadValue: float32
      /// For each output plane, the input planes it reads, in ascending order. Every row has the
      /// same length, so the weights form one [planes, reads, kernel, kernel] tensor.
      Table: int list list }

type DenseSpec = { Name: string; Units: int }

type LayerSpec =
    | Local of LocalSpec
    | Dense of DenseSpec

    member this.Name =
        match this with
        | Local l -> l.Name
        | Dense d -> d.Name

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
    let outputSide inputSide kernel stride padding = (inputSide + 2 * padding - kernel) / stride + 1

    let private checkLocal (input: PlaneShape) (l: LocalSpec) : Result<PlaneShape, string> =
        let paddedH, paddedW = input.Height + 2 * l.Padding, input.Width + 2 * l.Padding
        let reads = l.Table |> List.map List.length |> List.distinct
        let badPlanes = l.Table |> List.concat |> List.filter (fun p -> p < 0 || p >= input.Planes) |> List.distinct
        if l.Planes <= 0 then Error $"layer {l.Name}: needs at least one plane, got {l.Planes}"
        elif l.Kernel <= 0 then Error $"layer {l.Name}: kernel size must be positive, got {l.Kernel}"
        elif l.Stride <= 0 then Error $"layer {l.Name}: stride must be positive, got {l.Stride}"
        elif l.Padding < 0 then Error $"layer {l.Name}: padding must not be negative, got {l.Padding}"
        elif l.Kernel > paddedH || l.Kernel > paddedW then
            Error $"layer {l.Name}: a {l.Kernel}x{l.Kernel} kernel does not fit the padded {paddedH}x{paddedW} input"
        elif l.Table.Length <> l.Planes then
            Error $"layer {l.Name}: the connection table has {l.Table.Length} rows for {l.Planes} planes"
        elif l.Table |> List.exists List.isEmpty then
            Error $"layer {l.Name}: every plane must read at least one input plane (the table has an empty row)"
        elif not badPlanes.IsEmpty then
            let names = badPlanes |> List.map string |> String.concat ", "
            Error $"layer {l.Name}: the connection table names input plane(s) {names}, but the input has planes 0..{input.Planes - 1}"
        elif reads.Length <> 1 then
            Error $"layer {l.Name}: every plane must read the same number of input planes (rows have lengths %A{reads})"
        elif l.Table |> List.exists (fun row -> row <> List.sort (List.distinct row)) then
            Error $"layer {l.Name}: each table row must list distinct input planes in ascending order"
        else
            Ok { Planes = l.Planes
                 Height = outputSide input.Height l.Kernel l.Stride l.Padding
                 Width = outputSide input.Width l.Kernel l.Stride l.Padding }

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
            // Walk the layers carrying the current shape: planes until the first dense layer, then a vector.
            let rec walk (shape: Choice<PlaneShape, int>) layers =
                match layers, shape with
                | [], _ -> Ok spec
                | Local l :: rest, Choice1Of2 planes ->
                    checkLocal planes l |> Result.bind (fun next -> walk (Choice1Of2 next) rest)
                | Local l :: _, Choice2Of2 _ ->
                    Error $"layer {l.Name}: a locally-connected layer needs planes, but it follows a dense layer"
                | Dense d :: _, _ when d.Units <= 0 -> Error $"layer {d.Name}: needs at least one unit, got {d.Units}"
                | Dense d :: rest, _ -> walk (Choice2Of2 d.Units) rest
            walk (Choice1Of2 i) spec.Layers
