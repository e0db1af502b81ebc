/// Parameters on disk as safetensors, so a checkpoint opens in Python with
/// `safetensors.torch.load_file` (or in three lines of `struct` + `json` + numpy).
///
/// File layout: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON, then the raw
/// little-endian tensor data. The header maps each tensor name to
/// `{"dtype":"F32","shape":[..],"data_offsets":[begin,end]}` (byte offsets into the data section)
/// and `__metadata__` to a string->string map.
namespace Lecun.Model

open System
open System.Buffers.Binary
open System.IO
open System.Text
open System.Text.Json

module Checkpoint =
    let private metadataKey = "__metadata__"

    /// The Rust/Python readers refuse headers above 100 MB; so do we, before allocating anything.
    let private maxHeaderBytes = 100L * 1024L * 1024L

    /// The JSON header for the layout: metadata first, then the tensors in the layout's order with
    /// contiguous offsets, so the data section is exactly the flat parameter buffer.
    /// Padded with spaces to a multiple of 8 bytes (with the 8-byte length prefix) as the Python
    /// library does, so the float data is aligned for readers that map the file.
    let header (layout: NetLayout) (metadata: Map<string, string>) : byte array =
        use buffer = new MemoryStream()
        // Relaxed escaping keeps recipe text such as "a+b" readable; the output is still valid JSON.
        let options = JsonWriterOptions(Encoder = Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping)
        (
            use w = new Utf8JsonWriter(buffer, options)
            w.WriteStartObject()
            // Python omits __metadata__ when there is none; an empty map is written the same way.
            if not metadata.IsEmpty then
                w.WriteStartObject metadataKey
                for KeyValue(k, v) in metadata do
                    w.WriteString(k, v)
                w.WriteEndObject()
            for view in layout.Views do
                w.WriteStartObject view.Name
                w.WriteString("dtype", "F32")
                w.WriteStartArray "shape"
                for d in view.Shape do
                    w.WriteNumberValue d
                w.WriteEndArray()
                w.WriteStartArray "data_offsets"
                w.WriteNumberValue(int64 view.Offset * 4L)
                w.WriteNumberValue(int64 (view.Offset + view.Length) * 4L)
                w.WriteEndArray()
                w.WriteEndObject()
            w.WriteEndObject()
        )
        let json = buffer.ToArray()
        let padded = (json.Length + 7) / 8 * 8
        Array.append json (Array.create (padded - json.Length) (byte ' '))

    /// Writes the parameters atomically: the file appears whole or not at all.
    /// Non-finite values are written as they are (a diverged run's state is still worth keeping);
    /// `load` is where they are refused.
    let save (path: string) (layout: NetLayout) (parameters: float32 array) (metadata: Map<string, string>) : unit =
        if parameters.Length <> layout.ParamCount then
            invalidArg (nameof parameters) $"expected {layout.ParamCount} parameters, got {parameters.Length}"
        let json = header layout metadata
        AtomicFile.write path (fun stream ->
            let prefix = Array.zeroCreate<byte> 8
            BinaryPrimitives.WriteUInt64LittleEndian(prefix.AsSpan(), uint64 json.Length)
            stream.Write(prefix, 0, 8)
            stream.Write(json, 0, json.Length)
            let data = Array.zeroCreate<byte> (parameters.Length * 4)
            for i in 0 .. parameters.Length - 1 do
                BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), parameters[i])
            stream.Write(data, 0, data.Length))

    /// One tensor entry of the header, as read (not yet checked against the layout).
    type private Entry = { Name: string; DType: string; Shape: int64 list; Begin: int64; End: int64 }

    let private showShape (shape: int64 list) = "[" + String.Join(",", shape) + "]"

    // Small Result helpers so the checks below read as a sequence of refusals.
    let private check condition message = if condition then Ok() else Error message


    let private nonNegativeInts (name: string) (field: string) (element: JsonElement) =
        if element.ValueKind <> JsonValueKind.Array then
            Error $"tensor {name}: {field} is not an array"
        else
            element.EnumerateArray()
            |> List.ofSeq
            |> Results.traverse (fun e ->
                match e.ValueKind, e.TryGetInt64() with
                | JsonValueKind.Number, (true, v) when v >= 0L -> Ok v
                | _ -> Error $"tensor {name}: {field} holds {e.GetRawText()}, not a non-negative integer")

    let private parseEntry (name: string) (element: JsonElement) : Result<Entry, string> =
        let field (key: string) =
            match element.TryGetProperty key with
            | true, v -> Ok v
            | _ -> Error $"tensor {name} has no {key}"
        if element.ValueKind <> JsonValueKind.Object then
            Error $"tensor {name} is not a JSON object"
        else
            field "dtype"
            |> Result.bind (fun d ->
                if d.ValueKind = JsonValueKind.String then Ok(d.GetString()) else Error $"tensor {name}: dtype is not a string")
            |> Result.bind (fun dtype ->
                field "shape"
                |> Result.bind (nonNegativeInts name "shape")
                |> Result.bind (fun shape ->
                    field "data_offsets"
                    |> Result.bind (nonNegativeInts name "data_offsets")
                    |> Result.bind (function
                        | [ b; e ] -> Ok { Name = name; DType = dtype; Shape = shape; Begin = b; End = e }
                        | other -> Error $"tensor {name}: data_offsets has {other.Length} numbers, expected 2")))

    let private parseMetadata (element: JsonElement) : Result<Map<string, string>, string> =
        if element.ValueKind <> JsonValueKind.Object then
            Error $"{metadataKey} is not a JSON object"
        else
            element.EnumerateObject()
            |> List.ofSeq
            |> Results.traverse (fun p ->
                if p.Value.ValueKind = JsonValueKind.String then Ok(p.Name, p.Value.GetString())
                else Error $"{metadataKey} entry {p.Name} is not a string")
            |> Result.map Map.ofList

    /// Splits the header into metadata and tensor entries, refusing duplicate names
    /// (JsonDocument keeps duplicates, and the last-wins rule of other readers would hide them).
    let private parseHeader (json: string) : Result<Map<string, string> * Entry list, string> =
        let parsed =
            try Ok(JsonDocument.Parse json) with :? JsonException as e -> Error $"header is not valid JSON ({e.Message})"
        parsed
        |> Result.bind (fun doc ->
            use doc = doc
            let root = doc.RootElement
            if root.ValueKind <> JsonValueKind.Object then
                Error "header is not a JSON object"
            else
                let props = root.EnumerateObject() |> List.ofSeq
                let duplicate = props |> List.countBy (fun p -> p.Name) |> List.tryFind (fun (_, n) -> n > 1)
                match duplicate with
                | Some(name, _) -> Error $"header names {name} twice"
                | None ->
                    let metadata =
                        match props |> List.tryFind (fun p -> p.Name = metadataKey) with
                        | Some p -> parseMetadata p.Value
                        | None -> Ok Map.empty
                    metadata
                    |> Result.bind (fun metadata ->
                        props
                        |> List.filter (fun p -> p.Name <> metadataKey)
                        |> Results.traverse (fun p -> parseEntry p.Name p.Value)
                        |> Result.map (fun entries -> metadata, entries)))

    /// Checks the tensor entries against the layout and the data section: same names, F32, same
    /// shapes, offsets inside the data, one tensor's worth of bytes each, no overlap, and nothing
    /// left over (so a file with stray bytes is not mistaken for a good one).
    let private checkEntries (layout: NetLayout) (dataLength: int64) (entries: Entry list) : Result<unit, string> =
        let expected = layout.Views |> List.map (fun v -> v.Name)
        let found = entries |> List.map (fun e -> e.Name)
        let missing = expected |> List.filter (fun n -> not (List.contains n found))
        let extra = found |> List.filter (fun n -> not (List.contains n expected))
        let names =
            check missing.IsEmpty $"""missing tensor {String.Join(", ", missing)}"""
            |> Result.bind (fun () ->
                check extra.IsEmpty $"""unexpected tensor {String.Join(", ", extra)} (expected {String.Join(", ", expected)})""")
        let each (e: Entry) =
            let view = layout.View e.Name
            let shape = view.Shape |> List.map int64
            check (e.DType = "F32") $"tensor {e.Name} has dtype {e.DType}; only F32 is supported"
            |> Result.bind (fun () ->
                check (e.Shape = shape) $"tensor {e.Name} has shape {showShape e.Shape}, expected {showShape shape}")
            |> Result.bind (fun () ->
                check (e.Begin <= e.End && e.End <= dataLength)
                    $"tensor {e.Name}: data_offsets [{e.Begin},{e.End}] are not a range within the {dataLength}-byte data section")
            |> Result.bind (fun () ->
                check (e.End - e.Begin = int64 view.Length * 4L)
                    $"tensor {e.Name}: data_offsets [{e.Begin},{e.End}] span {e.End - e.Begin} bytes, expected {view.Length * 4}")
        let overlaps () =
            entries
            |> List.sortBy (fun e -> e.Begin)
            |> List.pairwise
            |> List.tryFind (fun (a, b) -> b.Begin < a.End)
            |> function
                | Some(a, b) -> Error $"tensors {a.Name} and {b.Name} overlap in the data section"
                | None -> Ok()
        let coverage () =
            let used = entries |> List.sumBy (fun e -> e.End - e.Begin)
            check (used = dataLength) $"data section is {dataLength} bytes but the tensors cover {used}"
        names
        |> Result.bind (fun () -> Results.traverse each entries |> Result.map ignore)
        |> Result.bind overlaps
        |> Result.bind coverage

    /// Copies each tensor to its place in the flat buffer by name (Python writers sort tensors by
    /// name, so header order and data order need not match the layout) and refuses NaN and infinity.
    let private readParameters (layout: NetLayout) (data: ReadOnlyMemory<byte>) (entries: Entry list) =
        let parameters = Array.zeroCreate<float32> layout.ParamCount
        entries
        |> Results.traverse (fun e ->
            let view = layout.View e.Name
            let bytes = data.Span.Slice(int e.Begin, view.Length * 4)
            let mutable bad = -1
            for i in 0 .. view.Length - 1 do
                let v = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i * 4, 4))
                if bad < 0 && not (Single.IsFinite v) then bad <- i
                parameters[view.Offset + i] <- v
            if bad >= 0 then
                let v = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(bad * 4, 4))
                Error $"tensor {e.Name} holds a non-finite value ({v}) at flat index {bad}"
            else
                Ok())
        |> Result.map (fun _ -> parameters)

    /// Reads a checkpoint made for this layout. Every refusal is one line naming the file.
    let load (path: string) (layout: NetLayout) : Result<float32 array * Map<string, string>, string> =
        let inFile (r: Result<'a, string>) = r |> Result.mapError (fun e -> $"checkpoint {path}: {e}")
        let bytes =
            try
                if not (File.Exists path) then Error "file not found" else Ok(File.ReadAllBytes path)
            with
            | :? IOException
            | :? UnauthorizedAccessException as e -> Error $"cannot read the file ({e.Message})"
        bytes
        |> Result.bind (fun bytes ->
            let fileLength = int64 bytes.Length
            check (fileLength >= 8L) $"file is {fileLength} bytes, too short for the 8-byte header length (truncated?)"
            |> Result.bind (fun () ->
                let n = BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan(bytes, 0, 8))
                if n > uint64 maxHeaderBytes then
                    Error $"header length {n} is implausible (over {maxHeaderBytes} bytes); not a safetensors file?"
                elif 8L + int64 n > fileLength then
                    Error $"header length {n} goes beyond the end of the {fileLength}-byte file (truncated?)"
                else
                    Ok(int n))
            |> Result.bind (fun n ->
                let json =
                    try Ok(UTF8Encoding(false, true).GetString(bytes, 8, n))
                    with :? DecoderFallbackException -> Error "header is not valid UTF-8"
                json
                |> Result.bind parseHeader
                |> Result.bind (fun (metadata, entries) ->
                    let data = ReadOnlyMemory(bytes, 8 + n, bytes.Length - 8 - n)
                    checkEntries layout (int64 data.Length) entries
                    |> Result.bind (fun () -> readParameters layout data entries)
                    |> Result.map (fun parameters -> parameters, metadata))))
        |> inFile
