/// The network as data in a model file's header: the spec (every layer's kind and shape, the
/// connection tables) and the squashing functions, as one JSON text, written by `train` and read
/// back by ModelFile.load. Parsing refuses, with one line, anything that is not such a text.
module Lecun.Model.NetworkText

open System
open System.IO
open System.Text
open System.Text.Json
open Lecun.Model.JsonFields

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
            layer.Kind.Write w
            w.WriteEndObject()
        w.WriteEndArray()
        w.WriteString("hidden", Activation.name network.Hidden)
        w.WriteString("output", Activation.name network.Output)
        w.WriteEndObject()
    )
    Encoding.UTF8.GetString(stream.ToArray())

/// The largest network a text may describe, far above any of the family this program trains (the 1989
/// network has 9,760 parameters, 64,660 connections, 1,256 units): its parameters, its connections
/// (which the im2col buffers follow) and each layer's units and padded input (which the workspaces
/// and the lanes' frames follow), so that no text makes the layout's int counts overflow or a
/// workspace unbounded.
let maxParameters, maxConnections, maxLayerUnits = 16_000_000.0, 64_000_000.0, 4_000_000.0

/// The spec's sizes against those bounds, counted in float64 layer by layer (a hostile text cannot
/// overflow them); the spec has passed Spec.validate.
let private withinBounds (spec: NetSpec) : Result<NetSpec, string> =
    let i = spec.Input
    let rec walk (planes: float, h: float, w: float) (vector: float option) (layers: LayerSpec list) (parameters: float) (connections: float) =
        if parameters > maxParameters then Error $"the network has more than {maxParameters:N0} parameters"
        elif connections > maxConnections then Error $"the network has more than {maxConnections:N0} connections"
        else
            match layers with
            | [] -> Ok spec
            | Local l :: rest ->
                let padded s = s + 2.0 * float l.Padding
                let side s = floor ((padded s - float l.Kernel) / float l.Stride) + 1.0
                let oh, ow = side h, side w
                let units = float l.Planes * oh * ow
                let fanIn = float l.Reads * float l.Kernel * float l.Kernel
                if planes * padded h * padded w > maxLayerUnits || units > maxLayerUnits then
                    Error $"layer {l.Name}: its padded input or its units exceed {maxLayerUnits:N0}"
                else walk (float l.Planes, oh, ow) None rest (parameters + float l.Planes * fanIn + units) (connections + units * (fanIn + 1.0))
            | Dense d :: rest ->
                let inputs = vector |> Option.defaultValue (planes * h * w)
                let units = float d.Units
                if units > maxLayerUnits then Error $"layer {d.Name}: more than {maxLayerUnits:N0} units"
                else walk (planes, h, w) (Some units) rest (parameters + units * (inputs + 1.0)) (connections + units * (inputs + 1.0))
    if float i.Planes * float i.Height * float i.Width > maxLayerUnits then Error $"the input has more than {maxLayerUnits:N0} values"
    else walk (float i.Planes, float i.Height, float i.Width) None spec.Layers 0.0 0.0

/// The network a text describes, checked as a spec (Spec.validate) and against the size bounds, or
/// one line saying what is wrong.
let read (text: string) : Result<NetworkValue, string> =
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
            let kind = str (field e "kind") "kind"
            match LayerSpec.Readers |> List.tryFind (fun (k, _) -> k = kind) with
            | Some(_, read) -> read e name
            | None -> fail $"layer {name}: unknown kind '{kind}'"
        let spec = { Input = input; Layers = array (field root "layers") "layers" |> List.map layer }
        match Spec.validate spec |> Result.bind withinBounds with
        | Ok spec -> Ok { Spec = spec; Hidden = activation root "hidden"; Output = activation root "output" }
        | Error problem -> Error problem
    with
    | :? FormatException as e -> Error e.Message
    | :? JsonException as e -> Error $"not JSON ({e.Message.Split('\n').[0]})"

/// A network file (`train --network`) is at most this long: a network text of a few layers is a few KB.
let maxFileBytes = 1 <<< 20

/// The network a file holds as a network text (one line naming the file when it does not).
let readFile (path: string) : Result<NetworkValue, string> =
    RawFile.readRaw maxFileBytes "network file" path
    |> Result.bind (fun bytes ->
        let text = try Ok(UTF8Encoding(false, true).GetString bytes) with :? DecoderFallbackException -> Error $"{path}: not UTF-8 text"
        text |> Result.bind (fun t -> read t |> Result.mapError (fun e -> $"{path}: {e}")))

/// The recipe with the network a text describes, whose squashing must be the recipe's (after its
/// options): a network file never trains with other squashing than it states. Validated (Recipe.validate).
let trainedBy (network: NetworkValue) (recipe: Recipe) : Result<Recipe, string> =
    if network.Hidden <> recipe.Hidden || network.Output <> recipe.Output then
        Error $"the network file's squashing is {Activation.name network.Hidden}/{Activation.name network.Output}, the recipe trains {Activation.name recipe.Hidden}/{Activation.name recipe.Output} (hidden/output): change the file or the recipe's options"
    else Recipe.validate { recipe with Network = network.Spec }
