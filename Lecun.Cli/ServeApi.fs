/// The JSON API of `serve`, as functions from a request's content to a reply (status and body), so
/// that it is tested without a server and the server only moves bytes.
module Lecun.Cli.ServeApi

open System
open System.Buffers
open System.Collections.Concurrent
open System.IO
open System.Text.Json
open Lecun.Model
open Lecun.Cli.ModelView

/// Request bodies above this many bytes are refused with 413 (256 numbers need a few KB).
let maxBodyBytes = 64 * 1024

type Reply =
    { Status: int
      ContentType: string
      Body: byte array }

let private jsonType = "application/json; charset=utf-8"

let private writeJson (write: Utf8JsonWriter -> unit) =
    use buffer = new MemoryStream()
    (
        // Relaxed escaping keeps quotes in messages readable; the output is still valid JSON.
        use w = new Utf8JsonWriter(buffer, JsonWriterOptions(Encoder = Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping))
        write w
    )
    buffer.ToArray()

let private ok (write: Utf8JsonWriter -> unit) = { Status = 200; ContentType = jsonType; Body = writeJson write }

/// A refusal: `{"error": "..."}` with the given status.
let error (status: int) (message: string) =
    { Status = status; ContentType = jsonType; Body = writeJson (fun w -> w.WriteStartObject(); w.WriteString("error", message); w.WriteEndObject()) }

let tooLarge () = error 413 $"the request body is over {maxBodyBytes} bytes"

let private kind (e: JsonElement) =
    match e.ValueKind with
    | JsonValueKind.String -> "a string"
    | JsonValueKind.Array -> "an array"
    | JsonValueKind.Object -> "an object"
    | JsonValueKind.True | JsonValueKind.False -> "a boolean"
    | JsonValueKind.Null -> "null"
    | _ -> "not a number"

/// The 256 pixels of a predict request, `{"pixels": [256 numbers in [-1, 1]]}`, each checked.
let parsePixels (body: ReadOnlyMemory<byte>) : Result<float32 array, string> =
    let expected = Dataset.Pixels
    let usage = $"expected {{\"pixels\": [{expected} numbers in [-1, 1], row-major]}}"
    let parsed =
        try Ok(JsonDocument.Parse body)
        with :? JsonException as e -> Error $"malformed JSON ({e.Message.Split('\n').[0]}); {usage}"
    parsed
    |> Result.bind (fun doc ->
        use doc = doc
        let root = doc.RootElement
        if root.ValueKind <> JsonValueKind.Object then Error $"the body is {kind root}; {usage}"
        else
            match root.EnumerateObject() |> Seq.filter (fun p -> p.NameEquals "pixels") |> List.ofSeq with
            | [] -> Error $"no \"pixels\"; {usage}"
            | _ :: _ :: _ -> Error "\"pixels\" is given more than once"
            | [ p ] when p.Value.ValueKind <> JsonValueKind.Array -> Error $"\"pixels\" is {kind p.Value}; {usage}"
            | [ p ] when p.Value.GetArrayLength() <> expected ->
                Error $"\"pixels\" has {p.Value.GetArrayLength()} values, expected {expected} (16x16, row-major)"
            | [ p ] ->
                let pixels = Array.zeroCreate<float32> expected
                let mutable problem = None
                let mutable i = 0
                for e in p.Value.EnumerateArray() do
                    if problem.IsNone then
                        if e.ValueKind <> JsonValueKind.Number then problem <- Some $"pixels[{i}] is {kind e}, not a number"
                        else
                            match e.TryGetDouble() with
                            | true, v when Double.IsFinite v ->
                                if v < -1.0 || v > 1.0 then problem <- Some $"pixels[{i}] = {e.GetRawText()} is outside [-1, 1]"
                                else pixels.[i] <- float32 v
                            | _ -> problem <- Some $"pixels[{i}] = {e.GetRawText()} is not a finite number"
                    i <- i + 1
                match problem with
                | Some message -> Error message
                | None -> Ok pixels)

/// Each layer's values for one digit and the class they give.
type Reading =
    { Class: int
      /// Each layer's outputs in docs/design.md's layout: H1 768, H2 192, H3 30, out 10.
      Layers: float32 array array }

/// Workspaces for concurrent requests: the network and its parameters are read-only; each request
/// borrows a workspace and returns it, so at most one workspace per concurrent request is ever made.
type Workspaces(net: Network) =
    let free = ConcurrentBag<Workspace>()
    member _.Rent() = match free.TryTake() with | true, ws -> ws | _ -> Workspace.create net 1
    member _.Return(ws: Workspace) = free.Add ws

let read (view: ModelView) (pool: Workspaces) (image: float32 array) : Reading =
    let ws = pool.Rent()
    try
        let layers = Evaluator.layers view.Evaluator view.Net view.Parameters ws image
        { Class = classOf (Array.last layers); Layers = layers }
    finally
        pool.Return ws

let private writeFloats (w: Utf8JsonWriter) (name: string) (values: float32 array) =
    w.WriteStartArray name
    for v in values do
        w.WriteNumberValue v
    w.WriteEndArray()

/// The JSON names of the layers: "h1", "h2", "h3", "out".
let layerNames (view: ModelView) = view.Net.Layout.Layers |> List.map (fun l -> l.Name.ToLowerInvariant()) |> Array.ofList

let readingJson (view: ModelView) (reading: Reading) =
    ok (fun w ->
        w.WriteStartObject()
        w.WriteNumber("class", reading.Class)
        writeFloats w "scores" (Array.last reading.Layers)
        w.WriteStartObject "layers"
        Array.iter2 (writeFloats w) (layerNames view) reading.Layers
        w.WriteEndObject()
        w.WriteEndObject())

/// POST /api/predict.
let predict (view: ModelView) (pool: Workspaces) (body: ReadOnlyMemory<byte>) : Reply =
    if body.Length > maxBodyBytes then tooLarge ()
    else
        match parsePixels body with
        | Error message -> error 400 message
        | Ok pixels ->
            let reading = read view pool pixels
            // Finite weights can still overflow float32 on some inputs; JSON has no NaN to answer with.
            if reading.Layers |> Array.forall (Array.forall Single.IsFinite) then readingJson view reading
            else error 500 $"{view.File}: the network's values are not finite for this input: the weights are too large for float32 arithmetic"

/// GET /api/model.
let model (view: ModelView) : Reply =
    ok (fun w ->
        w.WriteStartObject()
        w.WriteString("file", view.File)
        for key, value in ModelFile.infoEntries view.Info do
            w.WriteString(key, value)
        w.WriteNumber("parameters", view.Net.Layout.ParamCount)
        w.WriteStartArray "layers"
        for l in view.Net.Layout.Layers do
            w.WriteStartObject()
            w.WriteString("name", l.Name.ToLowerInvariant())
            w.WriteStartArray "shape"
            for d in l.OutShape do
                w.WriteNumberValue d
            w.WriteEndArray()
            w.WriteEndObject()
        w.WriteEndArray()
        match view.Test, view.Data with
        | Some m, Ok d ->
            w.WriteStartObject "test"
            w.WriteNumber("count", d.Test.Count)
            w.WriteNumber("error", m.Error)
            w.WriteNumber("misses", m.Misses)
            w.WriteEndObject()
        | _, Error e -> w.WriteString("data_problem", e)
        | _ -> ()
        w.WriteStartArray "misses"
        for m in view.Misses do
            w.WriteStartObject()
            w.WriteNumber("index", m.Index)
            w.WriteNumber("label", m.Label)
            w.WriteNumber("predicted", m.Predicted)
            w.WriteEndObject()
        w.WriteEndArray()
        w.WriteEndObject())

/// GET /api/digits/{split}/{index}.
let digit (view: ModelView) (splitName: string) (indexText: string) : Reply =
    match Int32.TryParse(indexText, Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture) with
    | false, _ -> error 400 $"digit index '{indexText}' is not a non-negative integer"
    | true, index ->
        match ModelView.digit view splitName index with
        | Error message -> error 404 message
        | Ok(pixels, label) ->
            ok (fun w ->
                w.WriteStartObject()
                w.WriteString("split", splitName)
                w.WriteNumber("index", index)
                w.WriteNumber("label", label)
                writeFloats w "pixels" pixels
                w.WriteEndObject())
