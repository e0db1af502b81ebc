/// The network as data in a model file's header: the spec (every layer's kind and shape, the
/// connection tables) and the squashing functions, as one JSON text, written by `train` and read
/// back by ModelFile.load. Parsing refuses, with one line, anything that is not such a text.
module Lecun.Model.NetworkText

open System
open System.IO
open System.Text
open System.Text.Json

/// The network of a model file: its spec and the squashing of hidden and output units.
type NetworkValue = { Spec: NetSpec; Hidden: Activation; Output: Activation }

/// {"input":[planes,height,width],"layers":[{"kind":"local",...},{"kind":"dense",...}],"hidden":...,"output":...}
let write (network: NetworkValue) =
    use stream = new MemoryStream()
    (
        use w = new Utf8JsonWriter(stream)
        w.WriteStartObject()
        w.WriteStartArray "input"
        for v in [ network.Spec.Input.Planes; network.Spec.Input.Height; network.Spec.Input.Width ] do w.WriteNumberValue v
        w.WriteEndArray()
        w.WriteStartArray "layers"
        for layer in network.Spec.Layers do
            w.WriteStartObject()
            match layer with
            | Local l ->
                w.WriteString("kind", "local")
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
            | Dense d ->
                w.WriteString("kind", "dense")
                w.WriteString("name", d.Name)
                w.WriteNumber("units", d.Units)
            w.WriteEndObject()
        w.WriteEndArray()
        w.WriteString("hidden", Activation.name network.Hidden)
        w.WriteString("output", Activation.name network.Output)
        w.WriteEndObject()
    )
    Encoding.UTF8.GetString(stream.ToArray())

/// The network a text describes, checked as a spec (Spec.validate), or one line saying what is wrong.
let read (text: string) : Result<NetworkValue, string> =
    let fail (what: string) = raise (FormatException what)
    let field (e: JsonElement) (name: string) =
        match e.TryGetProperty name with
        | true, v -> v
        | _ -> fail $"no '{name}'"
    let integer (e: JsonElement) (what: string) =
        match e.ValueKind, (if e.ValueKind = JsonValueKind.Number then e.TryGetInt32() else (false, 0)) with
        | JsonValueKind.Number, (true, v) -> v
        | _ -> fail $"'{what}' is not an integer"
    let str (e: JsonElement) (what: string) = if e.ValueKind = JsonValueKind.String then e.GetString() else fail $"'{what}' is not a string"
    let array (e: JsonElement) (what: string) =
        if e.ValueKind = JsonValueKind.Array then [ for x in e.EnumerateArray() -> x ] else fail $"'{what}' is not an array"
    let activation (e: JsonElement) (key: string) =
        match Activation.parse (str (field e key) key) with
        | Ok a -> a
        | Error problem -> fail problem
    try
        use doc = JsonDocument.Parse(text, JsonDocumentOptions(MaxDepth = 8))
        let root = doc.RootElement
        if root.ValueKind <> JsonValueKind.Object then fail "not an object"
        let input =
            match array (field root "input") "input" |> List.map (fun v -> integer v "input") with
            | [ planes; height; width ] -> { Planes = planes; Height = height; Width = width }
            | _ -> fail "'input' is not [planes, height, width]"
        let layer (e: JsonElement) =
            if e.ValueKind <> JsonValueKind.Object then fail "a layer is not an object"
            let name = str (field e "name") "name"
            match str (field e "kind") "kind" with
            | "local" ->
                let pad = field e "pad_value"
                let padValue =
                    match pad.ValueKind, (if pad.ValueKind = JsonValueKind.Number then pad.TryGetSingle() else (false, 0.0f)) with
                    | JsonValueKind.Number, (true, v) when Single.IsFinite v -> v
                    | _ -> fail $"layer {name}: 'pad_value' is not a finite number"
                Local
                    { Name = name; Planes = integer (field e "planes") "planes"; Kernel = integer (field e "kernel") "kernel"
                      Stride = integer (field e "stride") "stride"; Padding = integer (field e "padding") "padding"; PadValue = padValue
                      Table = array (field e "table") "table" |> List.map (fun row -> array row "table" |> List.map (fun c -> integer c "table")) }
            | "dense" -> Dense { Name = name; Units = integer (field e "units") "units" }
            | other -> fail $"layer {name}: unknown kind '{other}'"
        let spec = { Input = input; Layers = array (field root "layers") "layers" |> List.map layer }
        match Spec.validate spec with
        | Ok spec -> Ok { Spec = spec; Hidden = activation root "hidden"; Output = activation root "output" }
        | Error problem -> Error problem
    with
    | :? FormatException as e -> Error e.Message
    | :? JsonException as e -> Error $"not JSON ({e.Message.Split('\n').[0]})"
