/// Hostile and odd input, as an attacker would try it. Every hostile file is made here,
/// in the test: random truncations, byte flips, insertions and size-field edits of valid files
/// never crash, never hang and stay under a memory bound; valid files, odd formats included, load.
module Lecun.Tests.HostileTests

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.IO.Compression
open System.Text
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Model
open Lecun.Cli
open Lecun.Tests.TestKit

// ---- running a loader on hostile input ---------------------------------------------------------

/// Bytes a loader may allocate on one small hostile file: far above what a valid one needs
/// (a few hundred KB), far below the 300 MB the whole process is allowed.
let private memoryBound = 64L * 1024L * 1024L

/// Runs a loader with a time limit, measuring what it allocates. Any exception fails the test
/// (a loader answers every input with Ok or a one-line Error).
let private guarded (what: string) (load: unit -> Result<'a, string>) : Result<'a, string> =
    let task =
        Task.Run(fun () ->
            let before = GC.GetAllocatedBytesForCurrentThread()
            let result = load ()
            result, GC.GetAllocatedBytesForCurrentThread() - before)
    if not (task.Wait(TimeSpan.FromSeconds 10.0)) then failtest $"{what}: no answer within 10 s (a hang)"
    let result, allocated = task.Result
    Expect.isLessThan allocated memoryBound $"{what}: bytes allocated"
    match result with
    | Error e -> Expect.isFalse (e.Contains '\n') $"{what}: the error is one line: {e}"
    | Ok _ -> ()
    result

let private withFile (name: string) (bytes: byte array) (f: string -> 'a) =
    withTempDir (fun dir ->
        let path = Path.Combine(dir, name)
        File.WriteAllBytes(path, bytes)
        f path)

let private be32 (v: int) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

let private gzip (bytes: byte array) =
    use ms = new MemoryStream()
    (use gz = new GZipStream(ms, CompressionLevel.Fastest)
     gz.Write(bytes, 0, bytes.Length))
    ms.ToArray()

/// Two gzip members back to back (`cat a.gz b.gz`), split at `cut`: RFC 1952 allows it, zcat reads it.
let private gzipTwoMembers (cut: int) (bytes: byte array) =
    let cut = max 0 (min cut bytes.Length)
    Array.append (gzip bytes[.. cut - 1]) (gzip bytes[cut ..])

/// A hostile variant of a valid file: cut short, a byte flipped, bytes inserted, or a size field
/// (offset, big-endian?, width in bytes) overwritten with a telling value.
let private genHostile (valid: byte array) (sizeFields: (int * bool * int) list) : Gen<string * byte array> =
    let n = valid.Length
    let truncated = Gen.choose (0, n - 1) |> Gen.map (fun k -> $"cut to {k} bytes", valid[.. k - 1])
    let flipped =
        Gen.zip (Gen.choose (0, n - 1)) (Gen.choose (1, 255))
        |> Gen.map (fun (i, x) ->
            let b = Array.copy valid
            b[i] <- b[i] ^^^ byte x
            $"byte {i} xor {x}", b)
    let inserted =
        Gen.zip (Gen.choose (0, n)) (Gen.choose (1, 16) |> Gen.bind (fun k -> Gen.arrayOfLength k (Gen.choose (0, 255) |> Gen.map byte)))
        |> Gen.map (fun (i, extra) -> $"{extra.Length} bytes inserted at {i}", Array.concat [ valid[.. i - 1]; extra; valid[i ..] ])
    let telling = [ 0u; 1u; 2u; 27u; 29u; 255u; 256u; 65535u; 0x7FFFFFFFu; 0x80000000u; 0xFFFFFFFFu; 0xFFFFFFFEu; uint32 n; uint32 (2 * n) ]
    let sized =
        Gen.zip (Gen.elements sizeFields) (Gen.oneof [ Gen.elements telling; Gen.choose (0, Int32.MaxValue) |> Gen.map uint32 ])
        |> Gen.map (fun ((offset, bigEndian, width), v) ->
            let b = Array.copy valid
            for k in 0 .. width - 1 do
                let shift = if bigEndian then 8 * (width - 1 - k) else 8 * k
                if offset + k < b.Length then b[offset + k] <- if shift < 32 then byte (v >>> shift) else 0uy
            $"size field at {offset} set to {v}", b)
    Gen.oneof [ truncated; flipped; inserted; (if sizeFields.IsEmpty then flipped else sized) ]

let private property name maxTest (gen: Gen<'a>) (body: 'a -> unit) =
    testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = maxTest } name (Prop.forAll (Arb.fromGen gen) body)

// ---- valid files of each format, made here ---------------------------------------------------

let private inv (x: float32) = x.ToString("0.000", CultureInfo.InvariantCulture)

/// Digits of the text formats: label and 256 values in [-1, 1] with three decimals.
let private genDigits (count: int) =
    Gen.arrayOfLength count (Gen.zip (Gen.choose (0, 9)) (Gen.arrayOfLength 256 (Gen.choose (-1000, 1000) |> Gen.map (fun k -> float32 k / 1000f))))

let private uspsText (sep: string) (newline: string) (integerLabels: bool) (digits: (int * float32 array) array) =
    digits
    |> Array.map (fun (label, values) ->
        (if integerLabels then string label else $"{label}.0000") + sep + String.Join(sep, values |> Array.map inv))
    |> fun lines -> String.Join(newline, lines) + newline

let private loadUsps (bytes: byte array) =
    RawFile.decode Usps.maxFileBytes "usps file" "zip.x" bytes |> Result.bind (Usps.parse "zip.x")

let private idxImages (pixels: byte array) = Array.concat [ be32 0x803; be32 (pixels.Length / 784); be32 28; be32 28; pixels ]
let private idxLabels (labels: byte array) = Array.concat [ be32 0x801; be32 labels.Length; labels ]

let private pgmP5 = DigitFilesTests.pgmP5

let private pgmP2 (maxval: int) (pixels: int array) =
    let rows = pixels |> Array.chunkBySize 16 |> Array.map (fun r -> String.Join(" ", r))
    Encoding.ASCII.GetBytes($"P2\r\n# CRLF and a comment\r\n16\t16 {maxval}\r\n" + String.Join("\r\n", rows) + "\r\n")

let private pngChunk (kind: string) (data: byte array) =
    let typeAndData = Array.append (Encoding.ASCII.GetBytes kind) data
    Array.concat [ be32 data.Length; typeAndData; be32 (int (RawFile.crc32 (ReadOnlySpan typeAndData))) ]

/// A 16x16 grayscale PNG of the given bit depth (8 or 16), written by hand: the test controls
/// every byte (chunk lengths at 8 and 33, width and height at 16 and 20).
let private pngGray (bitDepth: int) (samples: int array) =
    let raw =
        [| for y in 0 .. 15 do
               yield 0uy // filter: none
               for x in 0 .. 15 do
                   let v = samples[y * 16 + x]
                   if bitDepth = 16 then
                       yield byte (v >>> 8)
                       yield byte v
                   else yield byte v |]
    let idat =
        use ms = new MemoryStream()
        (use z = new ZLibStream(ms, CompressionLevel.Optimal, true)
         z.Write(raw, 0, raw.Length))
        ms.ToArray()
    let ihdr = Array.concat [ be32 16; be32 16; [| byte bitDepth; 0uy; 0uy; 0uy; 0uy |] ]
    Array.concat [ [| 0x89uy; 'P'B; 'N'B; 'G'B; '\r'B; '\n'B; 0x1Auy; '\n'B |]; pngChunk "IHDR" ihdr; pngChunk "IDAT" idat; pngChunk "IEND" [||] ]

let private checkpointBytes (parameters: float32 array) =
    withTempDir (fun dir ->
        let path = Path.Combine(dir, "model.safetensors")
        Checkpoint.save path Layout.lecun1989 parameters (Map.ofList [ "recipe", "lecun1989" ])
        File.ReadAllBytes path)

let private sampleDigits =
    let rng = Random(17)
    Array.init 12 (fun i -> i % 10, Array.init 256 (fun _ -> float32 (rng.Next(-1000, 1001)) / 1000f))
let private validUsps = Encoding.ASCII.GetBytes(uspsText " " "\n" false sampleDigits)
let private validIdxImages = idxImages (Array.init (3 * 784) (fun i -> byte (i * 7)))
let private validIdxLabels = idxLabels [| 3uy; 0uy; 9uy |]
let private ramp = Array.init 256 id
let private validText = Encoding.ASCII.GetBytes(String.Join("\n", sampleDigits[..2] |> Array.map (fun (l, v) -> $"{l} " + String.Join(" ", v |> Array.map inv))) + "\n")
let private validCheckpoint = lazy (checkpointBytes (Array.init Layout.lecun1989.ParamCount (fun i -> float32 (i % 200) * 0.01f - 1f)))

let private okDigits (result: Result<DigitFiles.Digit list, string>) =
    match result with
    | Ok digits ->
        for values, label in digits do
            Expect.equal values.Length 256 "256 values"
            Expect.isTrue (values |> Array.forall (fun v -> v >= -1f && v <= 1f)) "values in [-1, 1]"
            Expect.isTrue (label |> Option.forall (fun l -> l >= 0 && l <= 9)) "label 0..9"
    | Error _ -> ()

[<Tests>]
let tests =
    testList "hostile input" [
        testList "loaders never crash, hang or balloon on damaged files" [
            property "usps text: damaged plain files" 150 (genHostile validUsps []) (fun (how, bytes) ->
                match guarded how (fun () -> loadUsps bytes) with
                | Ok d ->
                    Expect.isLessThanOrEqual d.Count (sampleDigits.Length + 1) how
                    Expect.isTrue (d.Images |> Array.forall (fun v -> v >= -1f && v <= 1f)) "values in [-1, 1]"
                | Error e -> Expect.stringStarts e "zip.x: " "names the file")
            property "usps text: damaged gzip files (ISIZE and CRC are size fields)" 150
                (let gz = gzip validUsps in genHostile gz [ gz.Length - 4, false, 4; gz.Length - 8, false, 4 ]) (fun (how, bytes) ->
                match guarded how (fun () -> loadUsps bytes) with
                | Ok d -> Expect.equal d.Count sampleDigits.Length $"{how}: a gzip file loads whole or not at all"
                | Error e -> Expect.stringStarts e "zip.x: " "names the file")
            property "IDX images and labels: damaged, with their dimensions edited" 150
                (Gen.oneof [ genHostile validIdxImages [ 4, true, 4; 8, true, 4; 12, true, 4 ] |> Gen.map (fun x -> true, x)
                             genHostile validIdxLabels [ 4, true, 4 ] |> Gen.map (fun x -> false, x) ]) (fun (images, (how, bytes)) ->
                let decoded () = RawFile.decode Idx.maxImageFileBytes "IDX file" "x.idx" bytes
                if images then
                    match guarded how (fun () -> decoded () |> Result.bind (Idx.parseImages "x.idx")) with
                    | Ok im -> Expect.equal (im.Rows, im.Cols, im.Pixels.Length) (28, 28, im.Count * 784) how
                    | Error e -> Expect.stringStarts e "x.idx: " "names the file"
                else
                    match guarded how (fun () -> decoded () |> Result.bind (Idx.parseLabels "x.idx")) with
                    | Ok labels -> Expect.isTrue (labels |> Array.forall (fun l -> l >= 0 && l <= 9)) how
                    | Error e -> Expect.stringStarts e "x.idx: " "names the file")
            property "PGM (P5 8/16-bit, P2 with CRLF and tabs): damaged" 100
                (Gen.elements [ pgmP5 255 ramp; pgmP5 65535 (ramp |> Array.map (fun p -> p * 257)); pgmP2 255 ramp ]
                 |> Gen.bind (fun valid -> genHostile valid [])) (fun (how, bytes) ->
                withFile "d.pgm" bytes (fun path -> guarded how (fun () -> DigitFiles.read path)) |> okDigits)
            property "PNG (8 and 16-bit): damaged, chunk lengths and dimensions edited" 150
                (Gen.elements [ pngGray 8 ramp; pngGray 16 (ramp |> Array.map (fun p -> p * 257)) ]
                 |> Gen.bind (fun valid -> genHostile valid [ 8, true, 4; 16, true, 4; 20, true, 4; 33, true, 4 ])) (fun (how, bytes) ->
                withFile "d.png" bytes (fun path -> guarded how (fun () -> DigitFiles.read path)) |> okDigits)
            property "text digits: damaged" 100 (genHostile validText []) (fun (how, bytes) ->
                withFile "d.txt" bytes (fun path -> guarded how (fun () -> DigitFiles.read path)) |> okDigits)
            property "checkpoint: damaged, its header length edited" 100
                (Gen.constant () |> Gen.bind (fun () -> genHostile validCheckpoint.Value [ 0, false, 4; 4, false, 4 ])) (fun (how, bytes) ->
                withFile "model.safetensors" bytes (fun path ->
                    match guarded how (fun () -> Checkpoint.load path Layout.lecun1989) with
                    | Ok (p, _) -> Expect.isTrue (p |> Array.forall Single.IsFinite) "finite weights only"
                    | Error e -> Expect.stringContains e path "names the file"))
        ]

        testList "valid files always load, odd but valid formats included" [
            property "usps text: tabs, CRLF, integer labels, a byte-order mark; plain, gzip, multi-member gzip" 40
                (Gen.zip (genDigits 5) (Gen.zip (Gen.zip (Gen.elements [ " "; "\t"; "  "; " \t" ]) (Gen.elements [ "\n"; "\r\n" ]))
                                                (Gen.zip (Gen.elements [ true; false ]) (Gen.zip (Gen.elements [ true; false ]) (Gen.choose (0, 3))))))
                (fun (digits, ((sep, newline), (integerLabels, (bom, packing)))) ->
                    let text = Encoding.ASCII.GetBytes(uspsText sep newline integerLabels digits)
                    let text = if bom then Array.append [| 0xEFuy; 0xBBuy; 0xBFuy |] text else text
                    let bytes =
                        match packing with
                        | 0 -> text
                        | 1 -> gzip text
                        | 2 -> gzipTwoMembers (text.Length / 3) text
                        | _ -> gzipTwoMembers 0 text
                    match guarded "valid" (fun () -> loadUsps bytes) with
                    | Error e -> failtest e
                    | Ok d ->
                        Expect.equal d.Labels (digits |> Array.map fst) "labels"
                        let expected = digits |> Array.collect (fun (_, v) -> v |> Array.map (fun x -> Single.Parse(inv x, CultureInfo.InvariantCulture)))
                        Expect.equal d.Images expected "values")
            property "IDX: any count, plain or multi-member gzip" 30
                (Gen.zip (Gen.choose (1, 4)) (Gen.choose (0, 2))) (fun (count, packing) ->
                    let pixels = Array.init (count * 784) (fun i -> byte (i * 13 + count))
                    let bytes = idxImages pixels
                    let bytes = match packing with 0 -> bytes | 1 -> gzip bytes | _ -> gzipTwoMembers 700 bytes
                    match RawFile.decode Idx.maxImageFileBytes "IDX file" "x.idx" bytes |> Result.bind (Idx.parseImages "x.idx") with
                    | Error e -> failtest e
                    | Ok im -> Expect.equal (im.Count, im.Pixels) (count, pixels) "images")
            property "PNG: 8 and 16-bit grayscale" 20 (Gen.arrayOfLength 256 (Gen.choose (0, 65535))) (fun samples ->
                for depth in [ 8; 16 ] do
                    let samples = if depth = 8 then samples |> Array.map (fun s -> s >>> 8) else samples
                    let top = if depth = 8 then 255.0f else 65535.0f
                    match withFile "d.png" (pngGray depth samples) DigitFiles.read with
                    | Ok [ values, None ] ->
                        for i in 0 .. 255 do
                            Expect.floatClose { absolute = 0.01; relative = 0.0 } (float values[i]) (float (1.0f - 2.0f * float32 samples[i] / top)) $"{depth}-bit pixel {i}"
                    | other -> failtest $"{depth}-bit PNG: {other}")
            property "checkpoint: any finite weights" 10
                (Gen.arrayOfLength Layout.lecun1989.ParamCount (Gen.choose (-100000, 100000) |> Gen.map (fun k -> float32 k / 1000f))) (fun p ->
                    match withFile "m.safetensors" (checkpointBytes p) (fun path -> Checkpoint.load path Layout.lecun1989) with
                    | Ok (back, _) -> Expect.equal back p "weights"
                    | Error e -> failtest e)
            test "PGM: a comment right after maxval, its newline the one whitespace before the raster" {
                let bytes = Array.append (Encoding.ASCII.GetBytes "P5 16 16 255# made by hand\n") (Array.init 256 byte)
                match withFile "d.pgm" bytes DigitFiles.read with
                | Ok [ values, None ] -> Expect.floatClose Accuracy.high (float values[255]) (float (1.0f - 2.0f * 255.0f / 255.0f)) "last pixel"
                | other -> failtest $"{other}"
            }
            test "text digits: CRLF, tabs, commas, a byte-order mark, integer labels" {
                let row (label: string) = label + "\t" + String.Join(", ", Array.create 256 "0.5")
                let text = "\uFEFF# hand-made\r\n" + row "7" + "\r\n" + row "3.0000" + "\r\n"
                match withFile "d.txt" (UTF8Encoding(false).GetBytes text) DigitFiles.read with
                | Ok [ (a, la); (b, lb) ] -> Expect.equal (la, lb, a[0], b[255]) (Some 7, Some 3, 0.5f, 0.5f) "both rows"
                | other -> failtest $"{other}"
            }
        ]

        testList "deep input" [
            test "traversing a million items keeps the stack flat" {
                match Results.traverse (fun i -> if i >= 0 then Ok i else Error "negative") [ 0 .. 999_999 ] with
                | Ok xs -> Expect.equal xs.Length 1_000_000 "all items"
                | Error e -> failtest e
                Expect.equal (Results.traverse (fun i -> if i < 5 then Ok i else Error i) [ 0 .. 999_999 ]) (Error 5) "stops at the first error"
            }
        ]

        testList "damaged files" [
            test "a PNG cut anywhere inside its image data is refused, never classified" {
                let png = pngGray 8 ramp
                let idatStart, idatLength = 33 + 8, BitConverter.ToInt32(Array.rev png[33 .. 36], 0)
                for cut in idatStart .. idatStart + idatLength + 11 do
                    match withFile "cut.png" png[.. cut - 1] DigitFiles.read with
                    | Ok _ -> failtest $"a PNG cut at byte {cut} of {png.Length} was read as a digit"
                    | Error e -> Expect.stringContains e "PNG" "says what is wrong"
            }
        ]

        testList "diverging runs" [
            test "a diverging run stops with an error naming the pass; JSON writes non-finite numbers" {
                let digits = 40
                let rng = Random(5)
                let data = { Name = "random"; Images = Array.init (digits * 256) (fun _ -> float32 (rng.NextDouble() * 2.0 - 1.0)); Labels = Array.init digits (fun i -> i % 10) }
                let recipe = { Recipe.lecun1989 with Passes = 5; LearningRate = 1e30f }
                let initial = Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed
                try
                    Train.run Lecun.Native.Backends.Backend.Managed recipe { Train = data; Test = data; Source = "random" } initial (fun _ _ -> ()) ignore |> ignore
                    failtest "a run at lr 1e30 finished as if nothing happened"
                with TrainingDiverged (seed, pass, what) as e ->
                    Expect.equal seed recipe.Seed "names the seed"
                    Expect.isGreaterThanOrEqual pass 1 "names a pass"
                    Expect.stringContains e.Message $"after pass {pass}" "the message names the pass"
                    Expect.isFalse (String.IsNullOrEmpty what) "says what stopped being finite"
                let json = Text.Json.Nodes.JsonObject(dict [ "loss", Text.Json.Nodes.JsonValue.Create nan :> Text.Json.Nodes.JsonNode; "error", Text.Json.Nodes.JsonValue.Create infinity ])
                Expect.stringContains (json.ToJsonString Output.jsonOptions) "\"NaN\"" "NaN is written, not thrown"
            }
        ]

        testList "run folders" [
            test "a folder holding files is refused unless forced; default names never collide; failures leave nothing" {
                withTempDir (fun dir ->
                    let target = Path.Combine(dir, "run")
                    let old = RunFolder.stage target false false |> Result.defaultWith failwith
                    File.WriteAllText(Path.Combine(old.Staging, "old.txt"), "old")
                    RunFolder.commit old |> Result.defaultWith failwith |> ignore
                    match RunFolder.stage target false false with
                    | Ok _ -> failtest "a folder holding files was accepted without --force"
                    | Error e -> Expect.stringContains e "--force" "says how to replace it"
                    let forced = RunFolder.stage target true false |> Result.defaultWith failwith
                    File.WriteAllText(Path.Combine(forced.Staging, "new.txt"), "new")
                    Expect.isTrue (File.Exists(Path.Combine(target, "old.txt"))) "the old run stays whole until the new one is complete"
                    RunFolder.commit forced |> Result.defaultWith failwith |> ignore
                    Expect.equal (Directory.GetFiles target |> Array.map Path.GetFileName |> Array.sort) [| RunFolder.markerName; "new.txt" |] "only the new run's files"
                    let name = Path.Combine(dir, "same-second")
                    let first = RunFolder.stage name false true |> Result.defaultWith failwith
                    let second = RunFolder.stage name false true |> Result.defaultWith failwith
                    let a = RunFolder.commit second |> Result.defaultWith failwith
                    let b = RunFolder.commit first |> Result.defaultWith failwith
                    Expect.notEqual a b "two runs of the same second get two folders"
                    let failed = RunFolder.stage (Path.Combine(dir, "failed")) false false |> Result.defaultWith failwith
                    File.WriteAllText(Path.Combine(failed.Staging, "half.txt"), "half")
                    RunFolder.discard failed
                    let entries = Directory.GetFileSystemEntries dir |> Array.map Path.GetFileName |> Array.sort
                    Expect.equal entries ([| "run"; "same-second"; "same-second-2" |] |> Array.sort) "no failed run folder, no hidden leftovers")
            }
            test "train refuses an --out that holds files, before any work, and leaves it untouched" {
                withTempDir (fun dir ->
                    File.WriteAllText(Path.Combine(dir, "keep.txt"), "mine")
                    let code, _, err = TestSetup.runCli [ "train"; "--passes"; "1"; "--out"; dir ]
                    Expect.equal code 1 "exit code"
                    Expect.stringContains err "--force" "says how to replace it"
                    Expect.equal (Directory.GetFileSystemEntries dir |> Array.map Path.GetFileName) [| "keep.txt" |] "untouched")
            }
        ]

        testList "bounded reads" [
            test "reads stop at the largest valid file: a gzip bomb, /dev/zero, too many digits, --seeds" {
                let bomb = gzip (Array.zeroCreate<byte> (16 * 1024 * 1024))
                match guarded "bomb" (fun () -> RawFile.decode (1024 * 1024) "test file" "bomb.gz" bomb) with
                | Ok _ -> failtest "a 16 MB bomb passed a 1 MB limit"
                | Error e -> Expect.stringContains e "more than 1048576 bytes" "says why"
                if File.Exists "/dev/zero" then
                    Expect.isError (guarded "/dev/zero raw" (fun () -> RawFile.read (1024 * 1024) "test file" "/dev/zero")) "/dev/zero"
                    Expect.isError (guarded "/dev/zero digits" (fun () -> DigitFiles.read "/dev/zero")) "/dev/zero as digits"
                let row = "1 " + String.Join(" ", Array.create 256 "0")
                let tooMany = Encoding.ASCII.GetBytes(String.replicate (Usps.maxDigits + 1) (row + "\n"))
                match guarded "too many digits" (fun () -> Usps.parse "many" tooMany) with
                | Ok _ -> failtest "more digits than any usps split were accepted"
                | Error e -> Expect.stringContains e "more than 7291 digits" "says why"
                for args in [ [ "train"; "--seeds"; "100000" ]; [ "train"; "--jobs"; "100000" ]; [ "ladder"; "--seeds"; "100000" ] ] do
                    let code, _, err = TestSetup.runCli args
                    Expect.equal code 1 $"{args}: exit code"
                    Expect.isTrue (err.Contains "between 1 and" || err.Contains "at most") $"{args}: says the bound: {err}"
            }
        ]

        testList "data files checked before use" [
            test "IDX images must be MNIST's 28x28; no dimension may be 0" {
                for dims in [ [ 3; 1; 1 ]; [ 3; 0; 28 ]; [ 0; 28; 28 ]; [ 3; 16; 16 ] ] do
                    let header = Array.concat [ yield be32 0x803; yield! dims |> List.map be32 ]
                    let bytes = Array.append header (Array.zeroCreate (List.fold (*) 1 dims))
                    match Idx.parseImages "x.idx" bytes with
                    | Ok _ -> failtest $"IDX images {dims} accepted"
                    | Error e -> Expect.isTrue (e.Contains "28x28" || e.Contains "no items") $"{dims}: {e}"
                Expect.isError (Idx.parseLabels "y.idx" (idxLabels [||])) "no labels"
            }
            test "a prepared mnist-sim whose MNIST files changed is rebuilt, not used" {
                withTempDir (fun dir ->
                    TestSetup.writeEmbedded dir EmbeddedData.mnistTestImages |> ignore
                    let labelsPath = TestSetup.writeEmbedded dir EmbeddedData.mnistTestLabels
                    let files = DataPath.mnistFilesIn dir |> Option.get
                    let set = Data.buildMnistSim files 3 |> Result.defaultWith failwith
                    MnistSim.save (Path.Combine(dir, "mnist-sim", MnistSim.fileName 3)) set
                    let places = [ { Origin = "--data"; Dir = Some dir } ]
                    let loaded = Data.loadFrom places DataSetName.MnistSim 3 |> Result.defaultWith failwith
                    Expect.stringContains loaded.Source "prepared in" "the prepared file is used while its sources are unchanged"
                    // Relabel every digit 7 as 1: a different but valid label file.
                    let labels = RawFile.read Idx.maxLabelFileBytes "labels" labelsPath |> Result.defaultWith failwith
                    let changed = labels |> Array.mapi (fun i b -> if i >= 8 && b = 7uy then 1uy else b)
                    File.WriteAllBytes(labelsPath, gzip changed)
                    let reloaded = Data.loadFrom places DataSetName.MnistSim 3 |> Result.defaultWith failwith
                    Expect.stringContains reloaded.Source "changed since it was prepared" "says why it was rebuilt"
                    Expect.isFalse (Array.contains 7 reloaded.Train.Labels) "the digits come from the changed files")
            }
        ]

        testList "signals" [
            test "SIGTERM and SIGINT remove the unfinished run folder and say so" {
                for signal in [ "TERM"; "INT" ] do
                    withTempDir (fun dir ->
                        let target = Path.Combine(dir, "run")
                        use p = startCli [ "train"; "--passes"; "200"; "--holdout"; "7000"; "--out"; target ]
                        let clock = Stopwatch.StartNew()
                        while Directory.GetFileSystemEntries(dir).Length = 0 && clock.Elapsed.TotalSeconds < 30.0 && not p.HasExited do
                            Threading.Thread.Sleep 20
                        Expect.isFalse p.HasExited $"SIG{signal}: the run was still going"
                        Threading.Thread.Sleep 300
                        sendSignal signal p
                        let err = p.StandardError.ReadToEndAsync()
                        Expect.isTrue (p.WaitForExit 90000) $"SIG{signal}: exits"
                        Expect.equal p.ExitCode 1 $"SIG{signal}: exit code"
                        Expect.stringContains err.Result $"interrupted by SIG{signal}" "says so on stderr"
                        Expect.isFalse (err.Result.Contains "   at ") "no stack trace"
                        Expect.equal (Directory.GetFileSystemEntries dir) [||] $"SIG{signal}: nothing left, hidden or not")
            }
        ]

        testList "usage errors" [
            test "a usage error is one line and a pointer to --help, not the whole usage" {
                for args, command in
                    [ [ "eval" ], "lecun eval"; [ "train"; "--passes"; "many" ], "lecun train"
                      [ "data"; "verify"; "--bogus" ], "lecun data verify"; [ "show"; "--digit"; "x" ], "lecun show"
                      [ "count-params"; "--bogus" ], "lecun count-params"; [ "frobnicate" ], "lecun" ] do
                    let code, _, err = TestSetup.runCli args
                    Expect.equal code 1 $"{args}: exit code"
                    let lines = err.Trim().Split('\n')
                    Expect.equal lines.Length 2 $"{args}: two lines: {err}"
                    Expect.stringStarts lines[1] $"run '{command} --help' for the" $"{args}: points to --help"
            }
        ]
    ]
