module Lecun.Tests.CheckpointTests

open System
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Model
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

let private layout = Layout.lecun1989

let private bits (a: float32 array) = a |> Array.map BitConverter.SingleToInt32Bits

/// Deterministic, distinct, finite parameters (the flat index is recoverable from each value).
let private sampleParameters () = Array.init layout.ParamCount (fun i -> float32 i * 0.001f - 3.0f)

/// The bytes of a safetensors file with the given header text and data, padded like Python's writer.
let private rawFile (header: string) (data: byte array) =
    let json = Encoding.UTF8.GetBytes header
    let padded = Array.append json (Array.create ((json.Length + 7) / 8 * 8 - json.Length) (byte ' '))
    Array.concat [ BitConverter.GetBytes(uint64 padded.Length); padded; data ]

let private floatBytes (values: float32 seq) =
    values |> Seq.collect (fun (v: float32) -> BitConverter.GetBytes v) |> Array.ofSeq

/// The header our writer must produce for the 1989 network, written out by hand.
let private expectedHeader =
    """{"__metadata__":{"recipe":"lecun1989","seed":"1"},"""
    + """"H1w":{"dtype":"F32","shape":[12,1,5,5],"data_offsets":[0,1200]},"""
    + """"H1b":{"dtype":"F32","shape":[12,8,8],"data_offsets":[1200,4272]},"""
    + """"H2w":{"dtype":"F32","shape":[12,8,5,5],"data_offsets":[4272,13872]},"""
    + """"H2b":{"dtype":"F32","shape":[12,4,4],"data_offsets":[13872,14640]},"""
    + """"H3w":{"dtype":"F32","shape":[192,30],"data_offsets":[14640,37680]},"""
    + """"H3b":{"dtype":"F32","shape":[30],"data_offsets":[37680,37800]},"""
    + """"outw":{"dtype":"F32","shape":[30,10],"data_offsets":[37800,39000]},"""
    + """"outb":{"dtype":"F32","shape":[10],"data_offsets":[39000,39040]}}"""

let private goodFile () =
    rawFile expectedHeader (floatBytes (sampleParameters ()))

/// Writes the bytes and loads them; the error must name the file.
let private loadBytes (bytes: byte array) =
    withTempDir (fun dir ->
        let path = Path.Combine(dir, "model.safetensors")
        File.WriteAllBytes(path, bytes)
        let result = Checkpoint.load path layout
        match result with
        | Error e -> Expect.stringContains e path "the error names the file"
        | Ok _ -> ()
        result)

let private expectRefused (bytes: byte array) (what: string) (mentions: string) =
    match loadBytes bytes with
    | Ok _ -> failtest $"{what}: loaded"
    | Error e ->
        Expect.stringContains e mentions what
        Expect.isFalse (e.Contains '\n') "one line"

/// The good header with one substring replaced (the first occurrence only).
let private editHeader (find: string) (replace: string) =
    let i = expectedHeader.IndexOf find
    if i < 0 then failwith $"test bug: {find} not in the header"
    expectedHeader.Substring(0, i) + replace + expectedHeader.Substring(i + find.Length)

// Strings that exercise JSON escaping and UTF-8: quotes, backslashes, control characters,
// accents, CJK and a surrogate pair (lone surrogates cannot be UTF-8, so they are not generated).
// Bounded to what a model file holds (at most 64 metadata entries and a 64 KB header): up to 32
// entries of up to 40 pieces, 15 KB at the most escaped.
let private genText =
    Gen.elements [ "a"; "Z"; "0"; " "; "\""; "\\"; "/"; "\n"; "\t"; "\u0000"; "\u001f"; "é"; "日本"; "😀"; "+"; "<>&"; "'"; "{}" ]
    |> Gen.listOf
    |> Gen.resize 40
    |> Gen.map String.Concat

let private genMetadata =
    Gen.zip genText genText |> Gen.listOf |> Gen.resize 32 |> Gen.map Map.ofList

let private genFinite =
    ArbMap.defaults.ArbFor<float32>().Generator |> Gen.filter Single.IsFinite

let private genParameters = Gen.arrayOfLength layout.ParamCount genFinite

let private property name maxTest (gen: Gen<'a>) (body: 'a -> unit) =
    testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = maxTest } name (Prop.forAll (Arb.fromGen gen) body)

[<Tests>]
let tests =
    testList "checkpoint" [
        property "save then load is bit-identical" 60 (Gen.zip genParameters genMetadata) (fun (parameters, metadata) ->
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "model.safetensors")
                Checkpoint.save path layout parameters metadata
                match Checkpoint.load path layout with
                | Error e -> failtest e
                | Ok(loaded, meta) ->
                    Expect.equal (bits loaded) (bits parameters) "parameters"
                    Expect.equal meta metadata "metadata"))

        test "the header of the 1989 network is the hand-written one, space-padded to 8 bytes" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "model.safetensors")
                let parameters = sampleParameters ()
                Checkpoint.save path layout parameters (Map [ "seed", "1"; "recipe", "lecun1989" ])
                let bytes = File.ReadAllBytes path
                let n = int (BitConverter.ToUInt64(bytes, 0))
                Expect.equal ((8 + n) % 8) 0 "data starts 8-byte aligned"
                let header = Encoding.UTF8.GetString(bytes, 8, n)
                Expect.equal (header.TrimEnd ' ') expectedHeader "header"
                Expect.equal (bytes.Length - 8 - n) (9760 * 4) "the data section is the flat buffer"
                Expect.equal bytes[8 + n ..] (floatBytes parameters) "data in flat-buffer order")
        }

        test "tensors in any order are placed by name (Python writers sort by name)" {
            let parameters = sampleParameters ()
            let sorted = layout.Views |> List.sortBy (fun v -> v.Name)
            let entries, _ =
                (0, sorted)
                ||> List.mapFold (fun offset v ->
                    let shape = String.Join(",", v.Shape)
                    $"\"{v.Name}\":{{\"dtype\":\"F32\",\"shape\":[{shape}],\"data_offsets\":[{offset},{offset + v.Length * 4}]}}",
                    offset + v.Length * 4)
            let header = "{" + String.Join(",", entries) + ",\"__metadata__\":{\"format\":\"pt\"}}"
            let data = sorted |> Seq.collect (fun v -> parameters[v.Offset .. v.Offset + v.Length - 1]) |> floatBytes
            match loadBytes (rawFile header data) with
            | Error e -> failtest e
            | Ok(loaded, meta) ->
                Expect.equal (bits loaded) (bits parameters) "parameters"
                Expect.equal meta (Map [ "format", "pt" ]) "metadata"
        }

        test "the good file loads (the corruptions below start from it)" {
            Expect.isOk (loadBytes (goodFile ())) "good file"
        }

        property "a file truncated anywhere is refused" 200 (Gen.choose (0, (goodFile ()).Length - 1)) (fun cut ->
            let bytes = goodFile ()
            Expect.isError (loadBytes bytes[.. cut - 1]) $"cut at {cut}")

        property "any flipped header byte is refused" 200 (Gen.choose (0, 8 + Encoding.UTF8.GetByteCount expectedHeader - 1)) (fun i ->
            let bytes = goodFile ()
            bytes[i] <- bytes[i] ^^^ 0xFFuy
            Expect.isError (loadBytes bytes) $"flip at {i}")

        test "a missing file" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "nope.safetensors")
                match Checkpoint.load path layout with
                | Ok _ -> failtest "loaded"
                | Error e ->
                    Expect.stringContains e path "names the file"
                    Expect.stringContains e "not found" "says why")
        }

        test "each corruption is refused with a clear reason" {
            let good = floatBytes (sampleParameters ())
            let withHeader h = rawFile h good
            let cases =
                [ "too short", Array.zeroCreate 5, "too short"
                  "header length beyond the file",
                  Array.append (BitConverter.GetBytes 5000UL) (Encoding.ASCII.GetBytes "{}"), "beyond the end"
                  "implausible header length", Array.append (BitConverter.GetBytes UInt64.MaxValue) good, "implausible"
                  "bad JSON", withHeader (expectedHeader.TrimEnd '}'), "not valid JSON"
                  "not an object", withHeader "[1,2,3]", "not a JSON object"
                  "dtype F16", withHeader (editHeader "\"F32\"" "\"F16\""), "dtype F16"
                  "wrong shape", withHeader (editHeader "[12,8,8]" "[12,8,9]"), "shape [12,8,9]"
                  "missing tensor",
                  withHeader (editHeader ",\"outb\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[39000,39040]}" ""),
                  "missing tensor outb"
                  "extra tensor",
                  withHeader (editHeader "\"H1w\"" "\"bonus\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},\"H1w\""),
                  "unexpected tensor bonus"
                  "duplicate tensor",
                  withHeader (editHeader "\"H1b\"" "\"H1w\":{\"dtype\":\"F32\",\"shape\":[12,1,5,5],\"data_offsets\":[0,1200]},\"H1b\""),
                  "twice"
                  "offsets beyond the data", withHeader (editHeader "[39000,39040]" "[39040,39080]"), "within"
                  "offsets reversed", withHeader (editHeader "[39000,39040]" "[39040,39000]"), "within"
                  "offsets the wrong size", withHeader (editHeader "[39000,39040]" "[39000,39036]"), "expected 40"
                  "overlapping tensors", withHeader (editHeader "[39000,39040]" "[38960,39000]"), "overlap"
                  "negative offset", withHeader (editHeader "[0,1200]" "[-4,1196]"), "non-negative"
                  "stray bytes after the data", rawFile expectedHeader (Array.append good [| 0uy; 0uy; 0uy; 0uy |]), "cover"
                  "metadata value not a string", withHeader (editHeader "\"1\"" "1"), "not a string"
                  "NaN value", rawFile expectedHeader (floatBytes (Array.updateAt 5000 nanf (sampleParameters ()))), "non-finite"
                  "infinite value",
                  rawFile expectedHeader (floatBytes (Array.updateAt 9759 infinityf (sampleParameters ()))), "outb" ]
            for what, bytes, mentions in cases do
                expectRefused bytes what mentions
        }

        test "a failed save leaves no file behind" {
            withTempDir (fun dir ->
                // The target's folder is a file: the folder cannot be created.
                let blocker = Path.Combine(dir, "file")
                File.WriteAllText(blocker, "x")
                Expect.throws (fun () -> Checkpoint.save (Path.Combine(blocker, "m.safetensors")) layout (sampleParameters ()) Map.empty) "folder is a file"
                // The target is a folder: the temp file is written, then the rename fails.
                let target = Path.Combine(dir, "model.safetensors")
                Directory.CreateDirectory target |> ignore
                Expect.throws (fun () -> Checkpoint.save target layout (sampleParameters ()) Map.empty) "target is a folder"
                let left = Directory.GetFileSystemEntries dir |> Array.map Path.GetFileName |> Array.sort
                Expect.equal left [| "file"; "model.safetensors" |] "only what was there before"
                Expect.isEmpty (Directory.GetFileSystemEntries target) "nothing inside the folder either")
        }

        testList "hostile files are refused before they are read whole" [
            test "a header longer than a model file needs, whatever it holds" {
                // 40,000 shape entries, 100,000 metadata entries: both need far more than 64 KB of header.
                let shape = String.Join(",", Array.create 40_000 "1")
                expectRefused (rawFile (editHeader "[12,1,5,5]" $"[{shape}]") [||]) "40,000-entry shape (80 KB of header)" "implausible"
                let entries = String.Join(",", Array.init 100_000 (fun i -> $"\"k{i}\":\"v\""))
                expectRefused (rawFile (editHeader "\"seed\":\"1\"" entries) (floatBytes (sampleParameters ()))) "100,000 metadata entries (1.4 MB)" "longer than any model file"
            }

            test "more entries than the format needs, within the header bound" {
                let entries = String.Join(",", Array.init 65 (fun i -> $"\"k{i}\":\"v\""))
                expectRefused (rawFile (editHeader "\"seed\":\"1\"" entries) (floatBytes (sampleParameters ()))) "65 metadata entries" "more than 64 entries"
                let tensors = String.Join("", Array.init 10 (fun i -> $"\"x{i}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}},"))
                expectRefused (rawFile (editHeader "\"H1w\"" (tensors + "\"H1w\"")) (floatBytes (sampleParameters ()))) "19 entries" "more than 18 entries"
                expectRefused (rawFile (editHeader "[12,1,5,5]" "[12,1,5,5,1]") (floatBytes (sampleParameters ()))) "a 5-dimensional shape" "no tensor of this network has more than 4"
                expectRefused (rawFile (editHeader "[0,1200]" "[0,1200,0]") (floatBytes (sampleParameters ()))) "three offsets" "data_offsets has 3 numbers"
            }

            test "a file longer than any model file is refused from its size, without reading it" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "big.safetensors")
                    // A sparse gigabyte: its size is known without reading it.
                    using (new FileStream(path, FileMode.CreateNew)) (fun f -> f.SetLength(1L <<< 30))
                    let before = GC.GetAllocatedBytesForCurrentThread()
                    match Checkpoint.load path layout with
                    | Ok _ -> failtest "loaded"
                    | Error e -> Expect.stringContains e "1073741824 bytes, longer than any model file" "says why"
                    Expect.isLessThan (GC.GetAllocatedBytesForCurrentThread() - before) (1L <<< 20) "allocates under 1 MB")
            }

            test "a device that never ends is read no further than the longest model file" {
                if File.Exists "/dev/zero" then
                    let before = GC.GetAllocatedBytesForCurrentThread()
                    match Checkpoint.load "/dev/zero" layout with
                    | Ok _ -> failtest "loaded"
                    | Error e -> Expect.stringContains e "longer than any model file" "says why"
                    Expect.isLessThan (GC.GetAllocatedBytesForCurrentThread() - before) (2L * Checkpoint.maxFileBytes layout + (1L <<< 20)) "memory bounded by the longest model file"
            }

            test "save refuses metadata that load would refuse" {
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "model.safetensors")
                    let many = Map.ofList [ for i in 1 .. Checkpoint.maxMetadataEntries + 1 -> $"k{i}", "v" ]
                    Expect.throwsT<ArgumentException> (fun () -> Checkpoint.save path layout (sampleParameters ()) many) "too many entries"
                    let long = Map.ofList [ "k", String('x', Checkpoint.maxHeaderBytes) ]
                    Expect.throwsT<ArgumentException> (fun () -> Checkpoint.save path layout (sampleParameters ()) long) "too long a header"
                    Expect.isFalse (File.Exists path) "nothing written")
            }
        ]
    ]
