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
open FsToolkit.ErrorHandling

module Checkpoint =
    let private metadataKey = "__metadata__"

    /// A model file's header holds eight tensor entries and a few metadata keys (under 2 KB as `train`
    /// writes it); a header longer than this is refused before it is read.
    let maxHeaderBytes = 64 * 1024

    /// Metadata entries at most (`train` writes 9; Python's writer adds one).
    let maxMetadataEntries = 64

    /// The longest file a model of this layout can be: the length prefix, the longest header, the data.
    let maxFileBytes (layout: NetLayout) = 8L + int64 maxHeaderBytes + 4L * int64 layout.ParamCount

    /// Refuses metadata that `load` would refuse, so that what is saved can be read back.
    let private checkMetadata (metadata: Map<string, string>) =
        if metadata.Count > maxMetadataEntries then
            invalidArg (nameof metadata) $"{metadata.Count} metadata entries; a model file holds at most {maxMetadataEntries}"

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
        checkMetadata metadata
        let json = header layout metadata
        if json.Length > maxHeaderBytes then
            invalidArg (nameof metadata) $"the header would be {json.Length} bytes; a model file's header is at most {maxHeaderBytes}"
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

    let private check condition message = if condition then Ok() else Error message

    /// The most dimensions any tensor of the layout has: a shape with more is refused before it is read.
    let private maxRank (layout: NetLayout) = layout.Views |> List.map (fun v -> v.Shape.Length) |> List.max

    /// A JSON array of at most `most` non-negative integers (`why` says where the bound comes from).
    let private nonNegativeInts (name: string) (field: string) (most: int) (why: string) (element: JsonElement) =
        result {
            do! check (element.ValueKind = JsonValueKind.Array) $"tensor {name}: {field} is not an array"
            let length = element.GetArrayLength()
            do! check (length <= most) $"tensor {name}: {field} has {length} numbers; {why}"
            return!
                element.EnumerateArray()
                |> List.ofSeq
                |> List.traverseResultM (fun e ->
                    match e.ValueKind, e.TryGetInt64() with
                    | JsonValueKind.Number, (true, v) when v >= 0L -> Ok v
                    | _ -> Error $"tensor {name}: {field} holds {e.GetRawText()}, not a non-negative integer")
        }

    let private parseEntry (rank: int) (name: string) (element: JsonElement) : Result<Entry, string> =
        let field (key: string) =
            match element.TryGetProperty key with
            | true, v -> Ok v
            | _ -> Error $"tensor {name} has no {key}"
        result {
            do! check (element.ValueKind = JsonValueKind.Object) $"tensor {name} is not a JSON object"
            let! d = field "dtype"
            do! check (d.ValueKind = JsonValueKind.String) $"tensor {name}: dtype is not a string"
            let! shape = field "shape" |> Result.bind (nonNegativeInts name "shape" rank $"no tensor of this network has more than {rank}")
            let! offsets = field "data_offsets" |> Result.bind (nonNegativeInts name "data_offsets" 2 "expected 2")
            match offsets with
            | [ b; e ] -> return { Name = name; DType = d.GetString(); Shape = shape; Begin = b; End = e }
            | other -> return! Error $"tensor {name}: data_offsets has {other.Length} numbers, expected 2"
        }

    let private parseMetadata (element: JsonElement) : Result<Map<string, string>, string> =
        result {
            do! check (element.ValueKind = JsonValueKind.Object) $"{metadataKey} is not a JSON object"
            let entries = element.EnumerateObject() |> Seq.truncate (maxMetadataEntries + 1) |> List.ofSeq
            do! check (entries.Length <= maxMetadataEntries) $"{metadataKey} has more than {maxMetadataEntries} entries"
            let! pairs =
                entries
                |> List.traverseResultM (fun p ->
                    if p.Value.ValueKind = JsonValueKind.String then Ok(p.Name, p.Value.GetString())
                    else Error $"{metadataKey} entry {p.Name} is not a string")
            return Map.ofList pairs
        }

    /// The first key given twice in one object anywhere in the header, and where ("header" at the
    /// top, else the tensor or __metadata__ it is in). JsonDocument keeps both, and the last-wins
    /// rule of other readers would hide the first, so the file would mean different things to
    /// different readers; the reference reader refuses such a header. A loop over an explicit
    /// stack: nesting is bounded by the parser's depth limit, and no recursion grows with it.
    let private duplicateKey (root: JsonElement) : (string * string) option =
        let pending = Collections.Generic.Stack<string * JsonElement>()
        pending.Push("header", root)
        let mutable found = None
        while found.IsNone && pending.Count > 0 do
            let where, element = pending.Pop()
            match element.ValueKind with
            | JsonValueKind.Object ->
                let seen = Collections.Generic.HashSet<string>(StringComparer.Ordinal)
                for p in element.EnumerateObject() do
                    if found.IsNone && not (seen.Add p.Name) then found <- Some(p.Name, where)
                    let inner = if where <> "header" then where elif p.Name = metadataKey then metadataKey else $"tensor {p.Name}"
                    pending.Push(inner, p.Value)
            | JsonValueKind.Array -> for item in element.EnumerateArray() do pending.Push(where, item)
            | _ -> ()
        found

    /// Splits the header into metadata and tensor entries, refusing far more entries than the layout
    /// has tensors (plus the metadata) and any key given twice at any level.
    let private parseHeader (layout: NetLayout) (json: string) : Result<Map<string, string> * Entry list, string> =
        result {
            use! doc = try Ok(JsonDocument.Parse json) with :? JsonException as e -> Error $"header is not valid JSON ({e.Message})"
            let root = doc.RootElement
            do! check (root.ValueKind = JsonValueKind.Object) "header is not a JSON object"
            // Twice what a model file holds, so that a file with a few stray tensors is told which.
            let most = 2 * (layout.Views.Length + 1)
            let props = root.EnumerateObject() |> Seq.truncate (most + 1) |> List.ofSeq
            do! check (props.Length <= most) $"header has more than {most} entries (a model file of this network has {layout.Views.Length} tensors and {metadataKey})"
            match duplicateKey root with
            | Some(name, "header") -> return! Error $"header names {name} twice"
            | Some(key, where) -> return! Error $"header gives {key} twice in {where} (a key may appear once)"
            | None ->
                let! metadata =
                    match props |> List.tryFind (fun p -> p.Name = metadataKey) with
                    | Some p -> parseMetadata p.Value
                    | None -> Ok Map.empty
                let rank = maxRank layout
                let! entries =
                    props
                    |> List.filter (fun p -> p.Name <> metadataKey)
                    |> List.traverseResultM (fun p -> parseEntry rank p.Name p.Value)
                return metadata, entries
        }

    /// Checks the tensor entries against the layout and the data section: same names, F32, same
    /// shapes, offsets inside the data, one tensor's worth of bytes each, no overlap, and nothing
    /// left over (so a file with stray bytes is not mistaken for a good one).
    let private checkEntries (layout: NetLayout) (dataLength: int64) (entries: Entry list) : Result<unit, string> =
        let expected = layout.Views |> List.map (fun v -> v.Name)
        let found = entries |> List.map (fun e -> e.Name)
        let missing = expected |> List.filter (fun n -> not (List.contains n found))
        let extra = found |> List.filter (fun n -> not (List.contains n expected))
        let each (e: Entry) =
            let view = layout.View e.Name
            let shape = view.Shape |> List.map int64
            result {
                do! check (e.DType = "F32") $"tensor {e.Name} has dtype {e.DType}; only F32 is supported"
                do! check (e.Shape = shape) $"tensor {e.Name} has shape {showShape e.Shape}, expected {showShape shape}"
                do! check (e.Begin <= e.End && e.End <= dataLength)
                        $"tensor {e.Name}: data_offsets [{e.Begin},{e.End}] are not a range within the {dataLength}-byte data section"
                do! check (e.End - e.Begin = int64 view.Length * 4L)
                        $"tensor {e.Name}: data_offsets [{e.Begin},{e.End}] span {e.End - e.Begin} bytes, expected {view.Length * 4}"
            }
        result {
            do! check missing.IsEmpty $"""missing tensor {String.Join(", ", missing)}"""
            do! check extra.IsEmpty $"""unexpected tensor {String.Join(", ", extra)} (expected {String.Join(", ", expected)})"""
            do! entries |> List.traverseResultM each |> Result.ignore
            match entries |> List.sortBy (fun e -> e.Begin) |> List.pairwise |> List.tryFind (fun (a, b) -> b.Begin < a.End) with
            | Some(a, b) -> return! Error $"tensors {a.Name} and {b.Name} overlap in the data section"
            | None ->
                let used = entries |> List.sumBy (fun e -> e.End - e.Begin)
                do! check (used = dataLength) $"data section is {dataLength} bytes but the tensors cover {used}"
        }

    /// Copies each tensor to its place in the flat buffer by name (Python writers sort tensors by
    /// name, so header order and data order need not match the layout) and refuses NaN and infinity.
    let private readParameters (layout: NetLayout) (data: ReadOnlyMemory<byte>) (entries: Entry list) =
        let parameters = Array.zeroCreate<float32> layout.ParamCount
        entries
        |> List.traverseResultM (fun e ->
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

    /// Reads from `stream` into buffer[0 ..] until `count` bytes are in or the stream ends; the bytes read.
    let private fill (stream: Stream) (buffer: byte array) (count: int) =
        let mutable filled = 0
        let mutable ended = false
        while not ended && filled < count do
            let n = stream.Read(buffer, filled, count - filled)
            if n = 0 then ended <- true else filled <- filled + n
        filled

    /// The header's length from the 8-byte little-endian prefix at the start of `bytes`, bounded by maxHeaderBytes.
    let private headerLength (bytes: byte array) : Result<int, string> =
        let n = BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan(bytes, 0, 8))
        if n <= uint64 maxHeaderBytes then Ok(int n)
        else Error $"header length {n} is implausible (over {maxHeaderBytes} bytes, more than a model file's header needs); not a safetensors file?"

    /// The header's text, bytes[offset .. offset + n - 1], as strict UTF-8.
    let private headerText (bytes: byte array) (offset: int) (n: int) : Result<string, string> =
        try Ok(UTF8Encoding(false, true).GetString(bytes, offset, n))
        with :? DecoderFallbackException -> Error "header is not valid UTF-8"

    /// The file's bytes, read without trusting its size: at most `limit` bytes are kept, and a file (or
    /// device, or pipe) that goes on past them is refused as soon as that is seen.
    let private readBounded (path: string) (limit: int64) : Result<byte array, string> =
        let tooLong = $"file is longer than any model file of this network ({limit} bytes at most)"
        try
            match RawFile.openRead 4096 path with
            | Error e -> Error e
            | Ok stream ->
                use stream = stream
                // A regular file's length is known: refuse a long one without reading it. Devices report 0.
                if stream.CanSeek && stream.Length > limit then Error $"file is {stream.Length} bytes, longer than any model file of this network ({limit} bytes at most)"
                else
                    let buffer = Array.zeroCreate<byte> (int limit + 1)
                    let filled = fill stream buffer buffer.Length
                    if filled > int limit then Error tooLong else Ok(Array.sub buffer 0 filled)
        with
        | :? IOException
        | :? UnauthorizedAccessException as e -> Error $"cannot read the file ({e.Message})"

    /// The metadata of a checkpoint of any layout, from its header alone (no more than the length
    /// prefix and maxHeaderBytes are read): what a reader needs to choose the layout `load` then checks
    /// the whole file against. Every refusal is one line naming the file.
    let metadata (path: string) : Result<Map<string, string>, string> =
        let read (stream: Stream) (count: int) =
            let buffer = Array.zeroCreate<byte> count
            try Ok(buffer, fill stream buffer count) with :? IOException as e -> Error $"cannot read the file ({e.Message})"
        result {
            let! stream = RawFile.openRead 4096 path
            use stream = stream
            let! prefix, filled = read stream 8
            do! check (filled = 8) $"file is {filled} bytes, too short for the 8-byte header length (truncated?)"
            let! n = headerLength prefix
            let! bytes, filled = read stream n
            do! check (filled = n) $"header length {n} goes beyond the end of the file (truncated?)"
            let! json = headerText bytes 0 n
            use! doc = try Ok(JsonDocument.Parse json) with :? JsonException as e -> Error $"header is not valid JSON ({e.Message})"
            let root = doc.RootElement
            do! check (root.ValueKind = JsonValueKind.Object) "header is not a JSON object"
            match root.TryGetProperty metadataKey with
            | true, element -> return! parseMetadata element
            | _ -> return Map.empty
        }
        |> Result.mapError (fun e -> $"checkpoint {path}: {e}")

    /// Reads a checkpoint made for this layout. Every refusal is one line naming the file; no more than
    /// the longest valid file is ever read, and the header is bounded before it is parsed.
    let load (path: string) (layout: NetLayout) : Result<float32 array * Map<string, string>, string> =
        result {
            let! bytes = readBounded path (maxFileBytes layout)
            let fileLength = int64 bytes.Length
            do! check (fileLength >= 8L) $"file is {fileLength} bytes, too short for the 8-byte header length (truncated?)"
            let! n = headerLength bytes
            do! check (8L + int64 n <= fileLength) $"header length {n} goes beyond the end of the {fileLength}-byte file (truncated?)"
            let! json = headerText bytes 8 n
            let! metadata, entries = parseHeader layout json
            let data = ReadOnlyMemory(bytes, 8 + n, bytes.Length - 8 - n)
            do! checkEntries layout (int64 data.Length) entries
            let! parameters = readParameters layout data entries
            return parameters, metadata
        }
        |> Result.mapError (fun e -> $"checkpoint {path}: {e}")
