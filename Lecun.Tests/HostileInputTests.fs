/// Hostile downloads, invalid files and misleading messages: a download that stalls or trickles,
/// files that are invalid but were read, and messages that must name the real problem. Every hostile
/// file, server and file name is made here, in the test.
module Lecun.Tests.HostileInputTests

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Text
open System.Threading.Tasks
open Expecto
open Lecun.Model
open Lecun.Cli

let private withTempDir = TestKit.withTempDir

let private errorOf (result: Result<'a, string>) =
    match result with
    | Ok _ -> failtest "accepted, expected a refusal"
    | Error e ->
        Expect.isFalse (e.Contains '\n') $"one line: {e}"
        e

/// Runs the command line; expects exit 1 and one line on stderr, and returns that line.
let private refusedBy (args: string list) =
    let code, _, err = TestSetup.runCli args
    let lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.filter (fun l -> not (l.StartsWith "warning:"))
    Expect.equal code 1 $"""exit code of {String.Join(" ", args)} ({err})"""
    Expect.equal lines.Length 1 $"one line on stderr: {err}"
    lines[0]

let private be32 (v: int) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

// ---- a local HTTP server that misbehaves -------------------------------------------------------

let private headers (lines: string list) = Encoding.ASCII.GetBytes(String.Join("\r\n", lines) + "\r\n\r\n")

/// Headers promising a 2 MB gzip file, then the body at `bytesPerTick` bytes every `tick` (0 bytes:
/// nothing after the headers), never finishing.
let private slowBody (bytesPerTick: int) (tick: TimeSpan) =
    new TestSetup.RawHttpServer(fun _ stream token ->
        task {
            let h = headers [ "HTTP/1.1 200 OK"; "Content-Type: application/gzip"; "Content-Length: 2000000" ]
            do! stream.WriteAsync(h.AsMemory(), token)
            do! stream.FlushAsync token
            while not token.IsCancellationRequested do
                do! Task.Delay(tick, token)
                if bytesPerTick > 0 then
                    do! stream.WriteAsync((Array.create bytesPerTick 0x1Fuy).AsMemory(), token)
                    do! stream.FlushAsync token
        })

let private timed (f: unit -> 'a) =
    let clock = Stopwatch.StartNew()
    let result = f ()
    result, clock.Elapsed.TotalSeconds

/// Slack over a timeout for starting the command and a loaded machine (2 cores, several jobs).
let private slack = 4.0

// ---- PNG written by hand ------------------------------------------------------------------------

let private pngChunk (kind: string) (data: byte array) =
    let typeAndData = Array.append (Encoding.ASCII.GetBytes kind) data
    Array.concat [ be32 data.Length; typeAndData; be32 (int (RawFile.crc32 (ReadOnlySpan typeAndData))) ]

let private pngSignature = [| 0x89uy; 'P'B; 'N'B; 'G'B; '\r'B; '\n'B; 0x1Auy; '\n'B |]

let private zlib (raw: byte array) =
    use ms = new MemoryStream()
    (use z = new ZLibStream(ms, CompressionLevel.Optimal, true)
     z.Write(raw, 0, raw.Length))
    ms.ToArray()

/// Filters one scanline with filter `kind` (PNG specification, section 9), given the previous
/// unfiltered line (None for a pass's first) and the bytes per pixel (at least 1).
let private filterLine (kind: int) (bpp: int) (prior: byte array option) (line: byte array) =
    let up i = match prior with Some p -> int p[i] | None -> 0
    let left i = if i < bpp then 0 else int line[i - bpp]
    let upLeft i = if i < bpp then 0 else match prior with Some p -> int p[i - bpp] | None -> 0
    let predict i =
        match kind with
        | 1 -> left i
        | 2 -> up i
        | 3 -> (left i + up i) / 2
        | 4 ->
            let a, b, c = left i, up i, upLeft i
            let p = a + b - c
            let pa, pb, pc = abs (p - a), abs (p - b), abs (p - c)
            if pa <= pb && pa <= pc then a elif pb <= pc then b else c
        | _ -> 0
    Array.append [| byte kind |] (line |> Array.mapi (fun i v -> byte ((int v - predict i) &&& 0xFF)))

let private adam7 = [ 0, 0, 8, 8; 4, 0, 8, 8; 0, 4, 4, 8; 2, 0, 4, 4; 0, 2, 2, 4; 1, 0, 2, 2; 0, 1, 1, 2 ]

/// The IDAT data of a 16x16 image of the given colour type and bit depth, interlaced or not:
/// `sample pixel channel` gives each sample. Row r of each pass uses filter r mod 5, so every
/// filter type is used.
let private scanlines (colourType: int) (depth: int) (interlaced: bool) (sample: int -> int -> int) =
    let channels = match colourType with 2 -> 3 | 4 -> 2 | 6 -> 4 | _ -> 1
    let bpp = max 1 (channels * depth / 8)
    let passes = if interlaced then adam7 else [ 0, 0, 1, 1 ]
    [| for x0, y0, dx, dy in passes do
           let w, h = (16 - x0 + dx - 1) / dx, (16 - y0 + dy - 1) / dy
           let mutable prior = None
           for r in 0 .. h - 1 do
               let line = Array.zeroCreate<byte> ((w * channels * depth + 7) / 8)
               for c in 0 .. w - 1 do
                   let pixel = (y0 + r * dy) * 16 + x0 + c * dx
                   for ch in 0 .. channels - 1 do
                       let v = sample pixel ch
                       let bit = (c * channels + ch) * depth
                       if depth = 16 then
                           line[bit / 8] <- byte (v >>> 8)
                           line[bit / 8 + 1] <- byte v
                       else line[bit / 8] <- line[bit / 8] ||| byte (v <<< (8 - depth - bit % 8))
               yield! filterLine (r % 5) bpp prior line
               prior <- Some line |]

/// A 16x16 PNG from its IHDR fields, with the chunks given before and after its one IDAT.
let private png (colourType: int) (depth: int) (interlaced: bool) (before: byte array list) (after: byte array list) (sample: int -> int -> int) =
    let ihdr = Array.concat [ be32 16; be32 16; [| byte depth; byte colourType; 0uy; 0uy; (if interlaced then 1uy else 0uy) |] ]
    Array.concat
        [ yield pngSignature; yield pngChunk "IHDR" ihdr; yield! before
          yield pngChunk "IDAT" (zlib (scanlines colourType depth interlaced sample)); yield! after; yield pngChunk "IEND" [||] ]

/// A 16x16 palette PNG of the given bit depth (1, 2, 4 or 8) with `entries` gray palette
/// entries (entry k is gray 255 k / (entries - 1)) and the given index per pixel.
let private palettePng (depth: int) (interlaced: bool) (entries: int) (indices: int array) =
    let palette = Array.init entries (fun k -> let g = byte (if entries = 1 then 0 else 255 * k / (entries - 1)) in [| g; g; g |]) |> Array.concat
    png 3 depth interlaced [ pngChunk "PLTE" palette ] [] (fun pixel _ -> indices[pixel])

/// A 16x16 8-bit gray PNG whose IDAT holds exactly the given zlib stream.
let private grayPngWithIdat (idat: byte array) =
    let ihdr = Array.concat [ be32 16; be32 16; [| 8uy; 0uy; 0uy; 0uy; 0uy |] ]
    Array.concat [ pngSignature; pngChunk "IHDR" ihdr; pngChunk "IDAT" idat; pngChunk "IEND" [||] ]

let private grayScanlines (rows: int) = Array.init (rows * 17) (fun i -> if i % 17 = 0 then 0uy else byte (i * 7))

let private readDigits (name: string) (bytes: byte array) =
    withTempDir (fun dir ->
        let path = Path.Combine(dir, name)
        File.WriteAllBytes(path, bytes)
        DigitFiles.read path)

// ---- checkpoints with a rewritten header --------------------------------------------------------

let private validCheckpoint =
    lazy
        (withTempDir (fun dir ->
            let path = Path.Combine(dir, "model.safetensors")
            Checkpoint.save path Layout.lecun1989 (TestSetup.randomParameters 3) (Map.ofList [ "recipe", "lecun1989"; "seed", "3" ])
            File.ReadAllBytes path))

/// The checkpoint with its JSON header edited by `edit` (the length prefix follows it).
let private withHeader (edit: string -> string) =
    let bytes = validCheckpoint.Value
    let n = int (BitConverter.ToUInt64(bytes, 0))
    let json = Encoding.UTF8.GetString(bytes, 8, n)
    let edited = Encoding.UTF8.GetBytes(edit json)
    Expect.notEqual (edit json) json "the edit changed the header"
    Array.concat [ BitConverter.GetBytes(uint64 edited.Length); edited; bytes[8 + n ..] ]

let private replaceFirst (what: string) (by: string) (text: string) =
    let i = text.IndexOf what
    if i < 0 then failtest $"'{what}' not in the header" else text.Substring(0, i) + by + text.Substring(i + what.Length)

let private loadCheckpoint (bytes: byte array) =
    withTempDir (fun dir ->
        let path = Path.Combine(dir, "model.safetensors")
        File.WriteAllBytes(path, bytes)
        Checkpoint.load path Layout.lecun1989)

/// A model file (random weights) for commands that need one.
let private withModel (f: string -> 'a) =
    withTempDir (fun dir ->
        let path = Path.Combine(dir, "model.safetensors")
        ModelFile.save path Recipe.lecun1989 DataSetName.Usps None (TestSetup.randomParameters 5)
        f path)

/// A prepared mnist-sim of the given labels per split (blank-free digits, checksum right).
let private preparedSim (trainLabels: int array) (testLabels: int array) =
    let split name (labels: int array) =
        { Name = name; Labels = labels; Images = Array.init (labels.Length * Dataset.Pixels) (fun i -> if i % 3 = 0 then 1f else -1f) }
    MnistSim.toBytes
        { Seed = MnistSim.defaultSeed; TrainFromMnistTrain = false; SourceDigest = None
          Train = split "mnist-sim train" trainLabels; Test = split "mnist-sim test" testLabels }

/// Bytes that start as data of another compressor would: real streams where .NET writes them
/// (zlib, zip), the format's magic bytes and header otherwise.
let private otherCompressed =
    let payload = Encoding.ASCII.GetBytes(String.replicate 200 "6.0000 -1.0000 ")
    let zip =
        use ms = new MemoryStream()
        (use archive = new ZipArchive(ms, ZipArchiveMode.Create, true)
         use entry = archive.CreateEntry("zip.train").Open()
         entry.Write(payload, 0, payload.Length))
        ms.ToArray()
    [ "bzip2", Array.append "BZh91AY&SY"B (Array.init 64 byte)
      "xz", Array.append [| 0xFDuy; '7'B; 'z'B; 'X'B; 'Z'B; 0uy; 0uy; 4uy |] (Array.init 64 byte)
      "zstd", Array.append [| 0x28uy; 0xB5uy; 0x2Fuy; 0xFDuy |] (Array.init 64 byte)
      "zlib", zlib payload
      "zip", zip ]

[<Tests>]
let tests =
    testSequenced <| testList "hostile downloads, invalid files and messages" [
        testList "data fetch timeouts" [
            test "a server that stalls after its headers, or trickles the body, fails at --timeout, in one line" {
                // A byte every 100 ms never leaves the connection idle for long: only the bound on
                // the whole transfer stops the trickle.
                for what, bytesPerTick, tick in [ "stalls", 0, TimeSpan.FromSeconds 1.0; "trickles", 1, TimeSpan.FromMilliseconds 100.0 ] do
                    use server = slowBody bytesPerTick tick
                    let url = server.Url "/"
                    withTempDir (fun dir ->
                        let line, seconds = timed (fun () -> refusedBy [ "data"; "fetch"; "--from"; url; "--to"; dir; "--timeout"; "2" ])
                        Expect.stringContains line $"{url}zip.train.gz: no complete answer within 2 s" $"{what}: the URL and the timeout are named"
                        Expect.isLessThan seconds (2.0 + slack) $"{what}: ends soon after the timeout"
                        Expect.isEmpty (Directory.GetFileSystemEntries dir) $"{what}: nothing written")
            }
            test "a body that stalls fails after the read timeout; a trickle never idle that long, at the total" {
                // Read timeout 1 s; `stops` is the one of the two bounds that ends the download.
                for what, bytesPerTick, tick, total, stops, phrase in
                    [ "stalls", 0, TimeSpan.FromSeconds 1.0, 60.0, 1.0, "the server sent nothing for 1 s (stalled)"
                      "trickles", 1, TimeSpan.FromMilliseconds 100.0, 2.0, 2.0, "no complete answer within 2 s" ] do
                    use server = slowBody bytesPerTick tick
                    withTempDir (fun dir ->
                        let result, seconds = timed (fun () -> Fetch.uspsWithin (server.Url "/") dir (TimeSpan.FromSeconds total) (TimeSpan.FromSeconds 1.0) ignore)
                        Expect.stringContains (errorOf result) phrase what
                        Expect.isLessThan seconds (stops + slack) $"{what}: ends soon after the bound that stops it"
                        Expect.isEmpty (Directory.GetFileSystemEntries dir) $"{what}: nothing written")
            }
            test "a redirect to a file:// or other non-http URL is refused naming the URL" {
                for target in [ "file:///etc/passwd"; "ftp://127.0.0.1/zip.train.gz"; "gopher://x/" ] do
                    use server =
                        new TestSetup.RawHttpServer(fun _ stream token ->
                            task {
                                let h = headers [ "HTTP/1.1 302 Found"; $"Location: {target}"; "Content-Length: 0"; "Connection: close" ]
                                do! stream.WriteAsync(h.AsMemory(), token)
                            })
                    withTempDir (fun dir ->
                        let line = refusedBy [ "data"; "fetch"; "--from"; server.Url "/"; "--to"; dir; "--timeout"; "10" ]
                        Expect.stringContains line target "the redirect's target is named"
                        Expect.stringContains line "not an http(s) URL" "why it is refused")
            }
        ]

        testList "invalid files are refused" [
            test "a palette PNG whose indices go past its palette is refused; within it, read exactly" {
                for depth in [ 1; 2; 4; 8 ] do
                    // One entry leaves index 1 of a 1-bit image past the palette; three, 3 of 2 bits.
                    let entries = if depth = 1 then 1 else 3
                    for interlaced in [ false; true ] do
                        let what = $"depth {depth}, interlaced {interlaced}"
                        let indices = Array.init 256 (fun i -> (i * 7 + i / 16) % entries)
                        match readDigits "d.png" (palettePng depth interlaced entries indices) with
                        | Ok [ values, None ] ->
                            // Entry k is gray g = 255 k / (entries - 1) (0: black ink, +1), read as 1 - 2 g / 255.
                            for i in 0 .. 255 do
                                let gray = if entries = 1 then 0 else 255 * indices[i] / (entries - 1)
                                Expect.floatClose Accuracy.medium (float values[i]) (1.0 - 2.0 * float gray / 255.0) $"{what}: pixel {i} from its entry"
                        | other -> failtest $"{what}: the valid image was not read as one digit: {other}"
                        for pixel in [ 0; 17; 255 ] do
                            let past = Array.copy indices
                            past[pixel] <- (1 <<< depth) - 1
                            let e = errorOf (readDigits "d.png" (palettePng depth interlaced entries past))
                            Expect.stringContains e $"palette index {(1 <<< depth) - 1}, past the palette's {entries} entries" $"{what}, pixel {pixel}"
            }
            test "every valid PNG is still read: each colour type and bit depth, interlaced, ancillary chunks, APNG" {
                let depths = [ 0, [ 1; 2; 4; 8; 16 ]; 2, [ 8; 16 ]; 3, [ 1; 2; 4; 8 ]; 4, [ 8; 16 ]; 6, [ 8; 16 ] ]
                let rng = Random(29)
                for colourType, allowed in depths do
                    for depth in allowed do
                        for interlaced in [ false; true ] do
                            let what = $"colour type {colourType}, depth {depth}, interlaced {interlaced}"
                            let top = if colourType = 3 then 3 else (1 <<< depth) - 1
                            let samples = Array.init (256 * 4) (fun _ -> rng.Next(top + 1))
                            let before =
                                [ pngChunk "gAMA" (be32 45455)
                                  pngChunk "tEXt" (Encoding.ASCII.GetBytes "Comment\000odd but valid")
                                  if colourType = 3 then pngChunk "PLTE" (Array.init 12 (fun i -> byte (i * 20))) ]
                            let bytes = png colourType depth interlaced before [ pngChunk "zTXt" [| 'x'B; 0uy; 0uy; 0x78uy; 0x9Cuy |] ] (fun p ch -> samples[p * 4 + ch])
                            match readDigits "d.png" bytes with
                            | Ok [ values, None ] -> Expect.equal values.Length 256 what
                            | other -> failtest $"{what}: not read as one digit: {other}"
                // APNG: the default image (IDAT) is the first frame; the animation's own chunks around it.
                let fcTL (sequence: int) = pngChunk "fcTL" (Array.concat [ be32 sequence; be32 16; be32 16; be32 0; be32 0; [| 0uy; 1uy; 0uy; 1uy; 0uy; 0uy |] ])
                let frame2 = Array.append (be32 2) (zlib (scanlines 0 8 false (fun p _ -> p)))
                let apng = png 0 8 false [ pngChunk "acTL" (Array.append (be32 2) (be32 0)); fcTL 0 ] [ fcTL 1; pngChunk "fdAT" frame2 ] (fun _ _ -> 0)
                match readDigits "d.png" apng with
                | Ok [ values, None ] -> Expect.isTrue (values |> Array.forall ((=) 1f)) "the first frame (black), not the second"
                | other -> failtest $"APNG not read as its first frame: {other}"
            }
            test "a safetensors header with a key given twice, at any level, is refused" {
                let cases =
                    [ "dtype twice", replaceFirst "\"dtype\":\"F32\"" "\"dtype\":\"F16\",\"dtype\":\"F32\""
                      "shape twice", replaceFirst "\"shape\":" "\"shape\":[1],\"shape\":"
                      "data_offsets twice", replaceFirst "\"data_offsets\":" "\"data_offsets\":[0,4],\"data_offsets\":"
                      "dtype twice, once escaped", replaceFirst "\"dtype\":\"F32\"" "\"dtype\":\"F32\",\"d\\u0074ype\":\"F32\""
                      "a metadata key twice", replaceFirst "\"recipe\":" "\"recipe\":\"other\",\"recipe\":"
                      "__metadata__ twice", replaceFirst "{" "{\"__metadata__\":{},"
                      "a tensor twice", (fun json ->
                          let i = json.IndexOf "\"H1w\""
                          Expect.isGreaterThanOrEqual i 0 "the header names H1w"
                          let entry = json.Substring(i, json.IndexOf('}', i) - i + 1)
                          replaceFirst entry (entry + "," + entry) json) ]
                for what, edit in cases do
                    let e = errorOf (loadCheckpoint (withHeader edit))
                    Expect.stringContains e "twice" what
                Expect.isOk (loadCheckpoint validCheckpoint.Value) "the file before the edits loads"
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "model.safetensors")
                    File.WriteAllBytes(path, withHeader (replaceFirst "\"dtype\":\"F32\"" "\"dtype\":\"F16\",\"dtype\":\"F32\""))
                    let line = refusedBy [ "predict"; "--model"; path; path ]
                    Expect.stringContains line "dtype twice" "predict refuses it")
            }
            test "a prepared mnist-sim of the wrong size or classes is refused by train, as verify refuses it" {
                let cases =
                    [ "10 + 10 digits", preparedSim (Array.init 10 id) (Array.init 10 id), "7291"
                      "no digit of class 9", preparedSim (Array.init MnistSim.trainCount (fun i -> i % 9)) (Array.init MnistSim.testCount (fun i -> i % 10)), "class 9"
                      "test split one short", preparedSim (Array.init MnistSim.trainCount (fun i -> i % 10)) (Array.init (MnistSim.testCount - 1) (fun i -> i % 10)), "2007" ]
                for what, bytes, phrase in cases do
                    withTempDir (fun dir ->
                        let path = Path.Combine(dir, "mnist-sim", MnistSim.fileName MnistSim.defaultSeed)
                        Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
                        File.WriteAllBytes(path, bytes)
                        Expect.stringContains (errorOf (MnistSim.load path)) phrase $"{what}: load"
                        let out = Path.Combine(dir, "run")
                        let line = refusedBy [ "train"; "--data"; dir; "--data-set"; "mnist-sim"; "--passes"; "1"; "--out"; out ]
                        Expect.stringContains line phrase $"{what}: train"
                        Expect.isFalse (Directory.Exists out) $"{what}: no run written"
                        let line = refusedBy [ "data"; "verify"; "--data"; dir; "--data-set"; "mnist-sim" ]
                        Expect.stringContains line phrase $"{what}: verify")
                let good = preparedSim (Array.init MnistSim.trainCount (fun i -> i % 10)) (Array.init MnistSim.testCount (fun i -> i % 10))
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, MnistSim.fileName MnistSim.defaultSeed)
                    File.WriteAllBytes(path, good)
                    Expect.isOk (MnistSim.load path) "the standard sizes with every class load")
            }
        ]

        testList "messages name the real problem" [
            test "a folder given where a file is read is called a folder, whatever reads it" {
                withTempDir (fun dir ->
                    let folder = Path.Combine(dir, "zip.train.gz")
                    Directory.CreateDirectory folder |> ignore
                    for what, result in
                        [ "RawFile.read", RawFile.read 1000 "usps file" folder |> Result.map ignore
                          "Usps.load", Usps.load folder |> Result.map ignore
                          "Idx.loadImages", Idx.loadImages folder |> Result.map ignore
                          "MnistSim.load", MnistSim.load folder |> Result.map ignore
                          "Checkpoint.load", Checkpoint.load folder Layout.lecun1989 |> Result.map ignore
                          "ModelFile.load", ModelFile.load folder |> Result.map ignore
                          "DigitFiles.read", DigitFiles.read folder |> Result.map ignore ] do
                        let e = errorOf result
                        Expect.stringContains e "is a folder, not a file" what
                        Expect.stringContains e folder $"{what} names it"
                    withModel (fun model ->
                        for args in
                            [ [ "predict"; "--model"; folder; model ]
                              [ "predict"; "--model"; model; folder ]
                              [ "train"; "--init"; folder; "--passes"; "1"; "--out"; Path.Combine(dir, "run") ] ] do
                            Expect.stringContains (refusedBy args) "is a folder, not a file" (String.Join(" ", args)))
                    // A data file found by its name is a folder: said so, not passed over as missing.
                    let usps = Path.Combine(dir, "data", "usps")
                    Directory.CreateDirectory(Path.Combine(usps, "zip.train.gz")) |> ignore
                    File.WriteAllBytes(Path.Combine(usps, "zip.test.gz"), [||])
                    let line = refusedBy [ "data"; "verify"; "--data"; Path.Combine(dir, "data"); "--data-set"; "usps" ]
                    Expect.stringContains line "zip.train.gz: is a folder, not a file" "data verify"
                    // And the other way round: a file given as the data folder.
                    let line = refusedBy [ "data"; "verify"; "--data"; Path.Combine(usps, "zip.test.gz"); "--data-set"; "usps" ]
                    Expect.stringContains line "zip.test.gz (a file, not a folder)" "--data naming a file")
            }
            test "data compressed by something else than gzip is called what it looks like, not parsed as text" {
                for kind, bytes in otherCompressed do
                    withTempDir (fun dir ->
                        let path = Path.Combine(dir, "zip.train.gz")
                        File.WriteAllBytes(path, bytes)
                        let e = errorOf (Usps.load path)
                        Expect.stringContains e "not gzip although named .gz" kind
                        Expect.stringContains e $"looks like {kind} data" kind
                        let plain = Path.Combine(dir, "t10k-images-idx3-ubyte")
                        File.WriteAllBytes(plain, bytes)
                        Expect.stringContains (errorOf (Idx.loadImages plain)) $"looks like {kind} data, not" $"{kind}, not named .gz")
                // The real thing is still read: gzip, and plain text.
                let text = Encoding.ASCII.GetBytes("3 " + String.Join(" ", Array.create 256 "-1") + "\n")
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "zip.train")
                    File.WriteAllBytes(path, text)
                    Expect.isOk (Usps.load path) "plain text")
            }
            test "a colour or bitmap Netpbm image is called that; PGM is still read" {
                let raster = Array.create 768 0uy
                for header, phrase in
                    [ "P6\n16 16\n255\n", "colour PPM"; "P3\n16 16\n255\n", "colour PPM"
                      "P4\n16 16\n", "PBM bitmap"; "P1\n16 16\n", "PBM bitmap" ] do
                    for name in [ "d.ppm"; "d.pgm"; "d.txt" ] do
                        let e = errorOf (readDigits name (Array.append (Encoding.ASCII.GetBytes header) raster))
                        Expect.stringContains e phrase $"{header.Trim()} as {name}"
                        Expect.stringContains e "only grayscale PGM (P2 or P5)" "what is supported"
                Expect.isOk (readDigits "d.pgm" (DigitFilesTests.pgmP5 255 (Array.init 256 id))) "P5 still read"
            }
            test "a PNG's bad zlib checksum is called that, not truncated; short or corrupt data is told apart" {
                let stream = zlib (grayScanlines 16)
                let badAdler = Array.copy stream
                badAdler[badAdler.Length - 1] <- badAdler[badAdler.Length - 1] ^^^ 0x55uy
                let e = errorOf (readDigits "d.png" (grayPngWithIdat badAdler))
                Expect.stringContains e "zlib checksum (Adler-32)" "bad Adler-32"
                Expect.isFalse (e.Contains "truncated") "not called truncated"
                Expect.stringContains (errorOf (readDigits "d.png" (grayPngWithIdat (zlib (grayScanlines 15))))) "truncated" "one row short"
                let badDeflate = Array.concat [ stream[.. 1]; [| 0xFFuy; 0xFFuy; 0xFFuy |]; stream[2 ..] ]
                Expect.stringContains (errorOf (readDigits "d.png" (grayPngWithIdat badDeflate))) "not valid deflate" "corrupt deflate"
                Expect.isOk (readDigits "d.png" (grayPngWithIdat stream)) "the same image with its checksum right"
                // The Adler-32 of a known string (RFC 1950's algorithm; "Wikipedia" is 0x11E60398).
                Expect.equal (PngData.adler32 (ReadOnlySpan "Wikipedia"B)) 0x11E60398u "Adler-32"
            }
            test "serve --host with an address this machine does not have names the address" {
                // Documentation addresses (RFC 5737), the first this machine does not have (a
                // sandbox may use a documentation range for its own network).
                let own =
                    Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                    |> Seq.collect (fun i -> i.GetIPProperties().UnicastAddresses |> Seq.map (fun a -> string a.Address))
                    |> Set.ofSeq
                let address = [ "198.51.100.77"; "203.0.113.77"; "192.0.2.177" ] |> List.find (fun a -> not (own.Contains a))
                withModel (fun model ->
                    let line = refusedBy [ "serve"; "--model"; model; "--host"; address; "--port"; "0" ]
                    Expect.stringContains line $"cannot listen on {address}: this machine has no such address" "the address and the problem are named")
            }
            test "a file name that is not valid UTF-8 is called that, not 'file not found'" {
                // .NET cannot delete the file it cannot open either: the shell removes the folder.
                let removeWithShell (dir: string) =
                    use rm = Process.Start("rm", [ "-rf"; dir ])
                    rm.WaitForExit()
                withTempDir (fun dir ->
                  try
                    // The name's one byte 0xff is no UTF-8; bash writes it as it is.
                    use touch = Process.Start("bash", [ "-c"; "cd \"$1\" && touch $'\\xff.txt'"; "bash"; dir ])
                    touch.WaitForExit()
                    Expect.equal touch.ExitCode 0 "bash made the file"
                    // .NET lists (and takes command-line arguments of) such a name with U+FFFD.
                    let listed = Directory.GetFiles dir |> Array.exactlyOne
                    Expect.equal (Path.GetFileName listed) "\uFFFD.txt" "how .NET sees the name"
                    for what, result in
                        [ "DigitFiles.read", DigitFiles.read listed |> Result.map ignore
                          "RawFile.read", RawFile.read 1000 "usps file" listed |> Result.map ignore
                          "Checkpoint.load", Checkpoint.load listed Layout.lecun1989 |> Result.map ignore ] do
                        let e = errorOf result
                        Expect.stringContains e "not valid UTF-8" what
                        Expect.isFalse (e.Contains "file not found") $"{what}: not called missing"
                    withModel (fun model ->
                        Expect.stringContains (refusedBy [ "predict"; "--model"; model; listed ]) "not valid UTF-8" "predict")
                    // A missing file is still called missing.
                    Expect.stringContains (errorOf (DigitFiles.read (Path.Combine(dir, "absent.txt")))) "file not found" "missing"
                  finally removeWithShell dir)
            }
        ]
    ]
