/// A locally-connected layer on the spec side: its checks, shapes, connections and text form.
namespace Lecun.Model

open System
open System.Text.Json
open Lecun.Native.Kernels

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

    /// Input planes each output plane reads.
    member l.Reads = List.head l.Table |> List.length

    /// Consecutive output planes with the same table row, each row split into maximal runs of
    /// consecutive input planes: [0..7] is one run, [0..3; 8..11] two.
    member l.Groups =
        let kk = l.Kernel * l.Kernel
        let runsOf (row: int list) =
            row
            |> List.indexed
            |> List.fold (fun runs (j, c) ->
                match runs with
                | (j0, c0, len) :: rest when c0 + len = c -> (j0, c0, len + 1) :: rest
                | _ -> (j, c, 1) :: runs) []
            |> List.rev
            |> List.map (fun (j, c, len) -> { ColRow = c * kk; WeightColumn = j * kk; Length = len * kk })
        l.Table
        |> List.indexed
        |> List.fold (fun groups (p, row) ->
            match groups with
            | (first, count, r) :: rest when r = row -> (first, count + 1, r) :: rest
            | _ -> (p, 1, row) :: groups) []
        |> List.rev
        |> List.map (fun (first, count, row) -> { FirstPlane = first; Planes = count; Runs = runsOf row })

    interface ILayerSpecKind with
        member l.Name = l.Name
        member l.ReadsVector = false

        member l.Check input =
            match input with
            | VectorInput _ -> Error $"layer {l.Name}: a locally-connected layer needs planes, but it follows a dense layer"
            | PlaneInput input ->
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
                    Ok(PlaneInput
                        { Planes = l.Planes
                          Height = LocalSpec.OutputSide input.Height l.Kernel l.Stride l.Padding
                          Width = LocalSpec.OutputSide input.Width l.Kernel l.Stride l.Padding })

        member l.Shape inShape =
            match inShape with
            | [ _; h; w ] ->
                let oh = LocalSpec.OutputSide h l.Kernel l.Stride l.Padding
                let ow = LocalSpec.OutputSide w l.Kernel l.Stride l.Padding
                let fanIn = l.Reads * l.Kernel * l.Kernel
                { OutShape = [ l.Planes; oh; ow ]; Units = l.Planes * oh * ow; FanIn = fanIn
                  WeightShape = [ l.Planes; l.Reads; l.Kernel; l.Kernel ]; BiasShape = [ l.Planes; oh; ow ] }
            | _ -> invalidArg "inShape" $"layer {l.Name} needs a planes input (validate the spec first)"

        member l.Connections(inShape, outShape, weightOffset, biasOffset, inBase) =
            match inShape, outShape with
            | [ _; ih; iw ], [ planes; oh; ow ] ->
                let reads = l.Reads
                seq {
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
                                                   let w = weightOffset + ((p * reads + j) * l.Kernel + ky) * l.Kernel + kx
                                                   source, w |]
                                let u = (p * oh + oy) * ow + ox
                                yield u, inputs, biasOffset + u }
            | _ -> invalidArg "inShape" $"layer {l.Name} has an unexpected shape"

        member l.Write w =
            w.WriteString("kind", LocalSpec.KindName)
            w.WriteString("name", l.Name)
            w.WriteNumber("planes", l.Planes)
            w.WriteNumber("kernel", l.Kernel)
            w.WriteNumber("stride", l.Stride)
            w.WriteNumber("padding", l.Padding)
            w.WriteNumber("pad_value", l.PadValue)
            w.WriteStartArray "table"
            for row in l.Table do
                w.WriteStartArray()
                for c in row do w.WriteNumberValue c
                w.WriteEndArray()
            w.WriteEndArray()

        member l.Unfold(inShape, shiftY, shiftX) =
            match inShape with
            | [ planes; h; w ] -> Some(Im2ColPlan(planes, h, w, l.Kernel, l.Stride, l.Padding, shiftY, shiftX))
            | _ -> None

        member l.Frame inShape =
            match inShape with
            | [ planes; h; w ] ->
                Some { Pad = l.Padding; PadValue = l.PadValue
                       FrameUnfold = Im2ColPlan(planes, h + 2 * l.Padding, w + 2 * l.Padding, l.Kernel, l.Stride, 0) }
            | _ -> None
        member l.Groups = l.Groups

        member l.Segments =
            let kk = l.Kernel * l.Kernel
            [| for grp in l.Groups do
                 for run in grp.Runs do
                     yield! [| grp.FirstPlane; grp.Planes; run.ColRow / kk; run.Length / kk; run.WeightColumn |] |]

        member l.LaneWindows(inShape, outShape, lanes) =
            match inShape, outShape with
            | [ inPlanes; h; w ], [ _; oh; ow ] ->
                let ph, pw = h + 2 * l.Padding, w + 2 * l.Padding
                let taps (row: int list) =
                    [| for c in row do
                         for ky in 0 .. l.Kernel - 1 do
                             for kx in 0 .. l.Kernel - 1 -> ((c * ph + ky) * pw + kx) * lanes |]
                { Padded = Array.create (inPlanes * ph * pw * lanes) l.PadValue
                  Origins = [| for oy in 0 .. oh - 1 do for ox in 0 .. ow - 1 -> (oy * l.Stride * pw + ox * l.Stride) * lanes |]
                  Taps = l.Groups |> List.map (fun grp -> struct (grp.FirstPlane, grp.Planes, taps l.Table.[grp.FirstPlane])) |> Array.ofList }
            | _ -> invalidArg "inShape" $"layer {l.Name} has an unexpected shape"

    /// The kind's name in a model file's network text.
    static member KindName = "local"

    /// Output side length of a strided window over a padded input (floor, as PyTorch's conv2d).
    static member OutputSide (inputSide: int) (kernel: int) (stride: int) (padding: int) =
        (inputSide + 2 * padding - kernel) / stride + 1

    /// The layer a network text's object describes (JsonFields' errors for a malformed one).
    static member Read (e: JsonElement) (name: string) =
        let pad = JsonFields.field e "pad_value"
        let padValue =
            match pad.ValueKind, (if pad.ValueKind = JsonValueKind.Number then pad.TryGetSingle() else (false, 0.0f)) with
            | JsonValueKind.Number, (true, v) when Single.IsFinite v -> v
            | _ -> JsonFields.fail $"layer {name}: 'pad_value' is not a finite number"
        let integer key = JsonFields.integer (JsonFields.field e key) key
        { Name = name; Planes = integer "planes"; Kernel = integer "kernel"
          Stride = integer "stride"; Padding = integer "padding"; PadValue = padValue
          Table =
            JsonFields.array (JsonFields.field e "table") "table"
            |> List.map (fun row -> JsonFields.array row "table" |> List.map (fun c -> JsonFields.integer c "table")) }
