module Lecun.Tests.DataTests

open System
open System.IO
open System.IO.Compression
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Model
open Lecun.Native.Text
open Lecun.Tests.TestKit

// ---- helpers -------------------------------------------------------------------------------

/// A data folder holding usps/ and mnist/ as distributed, written from the embedded copy.
let private dataFolder = Lecun.Tests.TestSetup.dataFolder

let private uspsFiles () = DataPath.uspsFilesIn dataFolder.Value |> Option.get

let private gzip (bytes: byte array) =
    use ms = new MemoryStream()
    (use gz = new GZipStream(ms, CompressionLevel.Fastest)
     gz.Write(bytes, 0, bytes.Length))
    ms.ToArray()

let private ok result =
    match result with
    | Ok v -> v
    | Error e -> failwithf "expected Ok, got Error: %s" e

let private errorOf result =
    match result with
    | Ok _ -> failwith "expected an Error, got Ok"
    | Error (e: string) -> e

/// Digit lines of the real test file, as text.
let private realLines =
    lazy
        (let _, test = uspsFiles ()
         let text = RawFile.read Usps.maxFileBytes "usps file" test |> ok |> Encoding.ASCII.GetString
         text.Split('\n', StringSplitOptions.RemoveEmptyEntries))

/// A label and 256 values, with the given separator and label text.
let private line (label: string) (sep: string) (values: string seq) = label + sep + String.Join(sep, values)

let private values256 = Array.init 256 (fun i -> (float32 (i % 21) / 10f - 1f).ToString("0.0000", Globalization.CultureInfo.InvariantCulture))

/// Writes `text` to a temp file, parses it with Usps.load, and returns the result and the path.
let private loadText (dir: TempDir) (text: string) =
    let path = dir.File "digits.txt"
    File.WriteAllText(path, text)
    Usps.load path, path

let private expectError (dir: TempDir) (text: string) (lineNo: int) (phrase: string) =
    let result, path = loadText dir text
    let e = errorOf result
    Expect.stringContains e path "the error names the file"
    if lineNo > 0 then Expect.stringContains e $"line {lineNo}:" "the error names the line"
    Expect.stringContains e phrase "the error says what was expected"
    Expect.isFalse (e.Contains "\n") "one line"

let private good = line "3" " " values256

// ---- a tiny HTTP server for fetch ------------------------------------------------------------

/// Serves fixed responses on 127.0.0.1 (any free port): path -> bytes; anything else is a 404.
let private fileServer (files: Map<string, byte array>) =
    new TestSetup.RawHttpServer(fun request stream token ->
        task {
            let path = match request.Split(' ') with parts when parts.Length > 1 -> parts[1] | _ -> ""
            let status, body =
                match files.TryFind path with
                | Some bytes -> "200 OK", bytes
                | None -> "404 Not Found", Encoding.ASCII.GetBytes "not found"
            let header = $"HTTP/1.1 {status}\r\nContent-Length: {body.Length}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            let h = Encoding.ASCII.GetBytes header
            do! stream.WriteAsync(h, 0, h.Length, token)
            do! stream.WriteAsync(body, 0, body.Length, token)
        })

let private filesUnder (dir: string) =
    if Directory.Exists dir then Directory.GetFiles(dir, "*", SearchOption.AllDirectories) |> Array.map Path.GetFileName |> Array.sort
    else [||]

// ---- IDX helpers ------------------------------------------------------------------------------

let private idxBytes (typeByte: byte) (dims: int list) (data: byte array) =
    let header =
        [| yield 0uy; yield 0uy; yield typeByte; yield byte dims.Length
           for d in dims do
               yield! [| byte (d >>> 24); byte (d >>> 16); byte (d >>> 8); byte d |] |]
    Array.append header data

let private config = { FsCheckConfig.defaultConfig with maxTest = 100 }

[<Tests>]
let tests =
    testList "data" [
        testList "usps text format" [
            test "label forms 6 and 6.0000, tabs, trailing whitespace and CRLF are accepted" {
                use dir = new TempDir()
                let text =
                    String.concat "\n" [
                        line "6" " " values256
                        line "6.0000" " " values256
                        line "6" "\t" values256
                        line "6.0000" " \t " values256 + "   \t "
                        line "  6." " " values256 + "\r"
                        line "+6.00" "  " values256 ] + "\n\n"
                let d, _ = loadText dir text
                let d = ok d
                Expect.equal d.Labels [| 6; 6; 6; 6; 6; 6 |] "labels"
                let expected = values256 |> Array.map (fun s -> Single.Parse(s, Globalization.CultureInfo.InvariantCulture))
                for i in 0..5 do
                    Expect.sequenceEqual (d.Image(i).ToArray()) expected $"values of digit {i}"
            }
            test "a line with 255 values" {
                use dir = new TempDir()
                expectError dir (good + "\n" + line "1" " " values256[1..]) 2 "expected 256 values after the label, found 255"
            }
            test "a line with 257 values" {
                use dir = new TempDir()
                expectError dir (good + "\n" + line "1" " " (Array.append values256 [| "0.5" |])) 2 "expected 256 values after the label, found 257"
            }
            test "a value outside [-1, 1]" {
                use dir = new TempDir()
                let bad = Array.copy values256
                bad[2] <- "1.5000"
                expectError dir (good + "\n" + good + "\n" + line "1" " " bad) 3 "value 3: 1.5000 is outside [-1, 1]"
            }
            test "NaN and infinities" {
                use dir = new TempDir()
                for word in [ "NaN"; "Infinity"; "-Infinity"; "1e40" ] do
                    let bad = Array.copy values256
                    bad[9] <- word
                    expectError dir (line "1" " " bad) 1 "value 10:"
                expectError dir (line "1" " " (Array.updateAt 0 "NaN" values256)) 1 "'NaN' is not a finite number"
            }
            test "text where a value should be" {
                use dir = new TempDir()
                expectError dir (good + "\n" + line "1" " " (Array.updateAt 255 "abc" values256)) 2 "value 256: 'abc' is not a number"
                expectError dir (line "1" " " (Array.updateAt 0 "0.5.5" values256)) 1 "'0.5.5' is not a number"
            }
            test "labels that are not a digit 0..9" {
                use dir = new TempDir()
                expectError dir (line "6.5" " " values256) 1 "label '6.5' is not a whole number"
                expectError dir (line "10" " " values256) 1 "label '10' is outside 0..9"
                expectError dir (line "-1" " " values256) 1 "outside 0..9"
                expectError dir (good + "\n" + line "six" " " values256) 2 "label 'six' is not a number"
            }
            test "empty files" {
                use dir = new TempDir()
                expectError dir "" 0 "empty file"
                expectError dir "  \n\t\n" 0 "empty file"
            }
            test "an empty line between digits" {
                use dir = new TempDir()
                expectError dir (good + "\n\n" + good + "\n") 2 "empty line between digits"
            }
            test "missing file" {
                let path = Path.Combine(Path.GetTempPath(), "no-such-" + Guid.NewGuid().ToString("N"), "zip.train.gz")
                let e = errorOf (Usps.load path)
                Expect.stringContains e path "names the file"
                Expect.stringContains e "not found" "says why"
            }
            test "truncated and corrupt gzip" {
                use dir = new TempDir()
                let _, test = uspsFiles ()
                let bytes = File.ReadAllBytes test
                let truncated = dir.File "truncated.gz"
                File.WriteAllBytes(truncated, bytes[.. bytes.Length / 2])
                let e = errorOf (Usps.load truncated)
                Expect.stringContains e truncated "names the file"
                Expect.stringContains e "truncated or corrupt gzip" "truncation detected (GZipStream alone would return a short stream)"
                let corrupt = dir.File "corrupt.gz"
                File.WriteAllBytes(corrupt, bytes |> Array.mapi (fun i b -> if i = bytes.Length / 2 then b ^^^ 0x5Auy else b))
                let e = errorOf (Usps.load corrupt)
                Expect.stringContains e corrupt "names the file"
                Expect.stringContains e "gzip" "says gzip"
                let tiny = dir.File "tiny.gz"
                File.WriteAllBytes(tiny, bytes[..9])
                Expect.stringContains (errorOf (Usps.load tiny)) "truncated gzip" "a header alone"
            }
            test "the real files: class counts match the README" {
                let train, test = uspsFiles ()
                let tr, te = Data.loadUspsFiles train test |> ok
                Expect.equal (Usps.classCounts tr) [| 1194; 1005; 731; 658; 652; 556; 664; 645; 542; 644 |] "train"
                Expect.equal (Usps.classCounts te) [| 359; 264; 198; 166; 200; 160; 170; 147; 166; 177 |] "test"
                Expect.equal (tr.Count, te.Count) (7291, 2007) "sizes"
            }
            test "the real files: every parsed value equals Single.Parse of its text, bit for bit" {
                let train, test = uspsFiles ()
                for path in [ train; test ] do
                    let d = Usps.load path |> ok
                    let text = RawFile.read Usps.maxFileBytes "usps file" path |> ok |> Encoding.ASCII.GetString
                    let lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                    Expect.equal lines.Length d.Count "one digit per line"
                    let mutable mismatches = 0
                    for i in 0 .. lines.Length - 1 do
                        let tokens = lines[i].Split([| ' '; '\t'; '\r' |], StringSplitOptions.RemoveEmptyEntries)
                        if int (Single.Parse(tokens[0], Globalization.CultureInfo.InvariantCulture)) <> d.Labels[i] then mismatches <- mismatches + 1
                        for k in 0..255 do
                            let expected = Single.Parse(tokens[k + 1], Globalization.CultureInfo.InvariantCulture)
                            if BitConverter.SingleToInt32Bits expected <> BitConverter.SingleToInt32Bits d.Images[i * 256 + k] then
                                mismatches <- mismatches + 1
                    Expect.equal mismatches 0 $"{path}: values that differ from Single.Parse"
            }
            test "loading the training file allocates no object per value" {
                let train, _ = uspsFiles ()
                Usps.load train |> ok |> ignore
                // Counted on this thread, where Usps.load runs (loadUspsFiles reads the test file on another).
                let before = GC.GetAllocatedBytesForCurrentThread()
                Usps.load train |> ok |> ignore
                let allocated = GC.GetAllocatedBytesForCurrentThread() - before
                // A speed bound here failed under load; allocation is what made loading slow: one string
                // per value would add ~75 MB for the 1.87 M values (the loader allocates ~23 MB, 2026-11-30).
                Expect.isLessThan allocated (64L * 1024L * 1024L) "usps loads without an allocation per value"
            }
            testPropertyWithConfig config "the number parser equals Single.Parse on any float in any format" <| fun (x: float32, fmt: int) ->
                let formats = [| "R"; "F4"; "F0"; "E3"; "G9"; "0.0000000000"; "0.############" |]
                let text = x.ToString(formats[abs fmt % formats.Length], Globalization.CultureInfo.InvariantCulture)
                let mutable v = 0f
                let parsed = DecimalText.TryParse(Encoding.ASCII.GetBytes text, &v)
                let expected = Single.Parse(text, Globalization.CultureInfo.InvariantCulture)
                parsed && (BitConverter.SingleToInt32Bits v = BitConverter.SingleToInt32Bits expected || (Single.IsNaN v && Single.IsNaN expected))
            testPropertyWithConfig config "byte substitutions never throw and never give a shorter set" <| fun (NonNegativeInt pos, b: byte) ->
                let text = Encoding.ASCII.GetBytes(String.concat "\n" realLines.Value[..19] + "\n")
                let corrupted = Array.copy text
                corrupted[pos % text.Length] <- b
                match Usps.parse "corrupted" corrupted with
                | Ok d -> d.Count = 20 && d.Images |> Array.forall (fun v -> v >= -1f && v <= 1f)
                | Error e -> e.StartsWith "corrupted: " && not (e.Contains "\n")
            testPropertyWithConfig config "a truncated gzip file is always an error" <| fun (NonNegativeInt cut) ->
                let text = Encoding.ASCII.GetBytes(String.concat "\n" realLines.Value[..19] + "\n")
                let gz = gzip text
                let cut = cut % gz.Length
                match RawFile.decode Usps.maxFileBytes "usps file" "cut.gz" gz[.. cut - 1] |> Result.bind (Usps.parse "cut.gz") with
                | Ok _ -> false
                | Error e -> e.StartsWith "cut.gz: "
            testPropertyWithConfig config "gzip byte flips never throw and never give a shorter set" <| fun (NonNegativeInt pos, NonZeroInt flip) ->
                let text = Encoding.ASCII.GetBytes(String.concat "\n" realLines.Value[..19] + "\n")
                let gz = gzip text
                gz[pos % gz.Length] <- gz[pos % gz.Length] ^^^ byte (flip &&& 0xFF ||| 1)
                match RawFile.decode Usps.maxFileBytes "usps file" "flip.gz" gz |> Result.bind (Usps.parse "flip.gz") with
                | Ok d -> d.Count = 20
                | Error e -> e.StartsWith "flip.gz: "
        ]

        testPropertyWithConfig config "--holdout splits the training digits in order: disjoint, complete, test set untouched" <| fun (count: PositiveInt, cut: PositiveInt) ->
            let count = count.Get % 40 + 2
            let n = cut.Get % (count - 1) + 1
            let train = { Name = "train"; Images = Array.init (count * 256) float32; Labels = Array.init count (fun i -> i % 10) }
            let test = { Name = "test"; Images = Array.create 256 -1.0f; Labels = [| 3 |] }
            let d = { Train = train; Test = test; Source = "made up" }.HoldOut n
            Expect.equal (d.Train.Count, d.Test.Count) (count - n, n) "sizes"
            Expect.sequenceEqual (Array.append d.Train.Images d.Test.Images) train.Images "images in order, each once"
            Expect.sequenceEqual (Array.append d.Train.Labels d.Test.Labels) train.Labels "labels in order, each once"
            Expect.equal d.Test.Name "held-out" "the held-out split names itself"
        testList "generated digits (the suite's fixture)" [
            test "ten classes in turn, 16x16 values in [-1, 1], the same for the same seed" {
                let d = TestSetup.syntheticDigits "fixture" 3 200
                Expect.equal (d.Count, d.Images.Length) (200, 200 * 256) "200 digits of 256 values"
                Expect.equal (d.Labels |> Array.countBy id |> Array.sort) (Array.init 10 (fun c -> c, 20)) "20 of each class"
                Expect.isTrue (d.Images |> Array.forall (fun v -> v >= -1.0f && v <= 1.0f)) "values in [-1, 1]"
                Expect.sequenceEqual (TestSetup.syntheticDigits "again" 3 200).Images d.Images "same seed, same digits"
                Expect.isFalse ((TestSetup.syntheticDigits "other" 4 200).Images = d.Images) "another seed, other digits"
            }
            test "a short run learns them: test error well below chance" {
                let data = TestSetup.synthetic ()
                let recipe = { Recipe.lecun1989 with Passes = 2 }
                let initial = Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed
                let result = Train.run Lecun.Native.Backends.Backend.Managed recipe data initial (fun _ _ -> ()) ignore
                Expect.isLessThan (List.last result.Passes).Test.Error 30.0 "test error below 30% (chance is 90%)"
            }
        ]

        testList "idx" [
            test "images and labels parse; counts, magic and sizes are checked" {
                use dir = new TempDir()
                let pixels = Array.init (3 * 28 * 28) byte
                let images = dir.File "img"
                let labels = dir.File "lbl"
                File.WriteAllBytes(images, gzip (idxBytes 8uy [ 3; 28; 28 ] pixels))
                File.WriteAllBytes(labels, idxBytes 8uy [ 3 ] [| 7uy; 0uy; 9uy |])
                let img, lbl = Idx.loadPair images labels |> ok
                Expect.equal (img.Count, img.Rows, img.Cols) (3, 28, 28) "dimensions"
                Expect.equal img.Pixels pixels "pixels"
                Expect.equal lbl [| 7; 0; 9 |] "labels"
                let fewer = dir.File "lbl2"
                File.WriteAllBytes(fewer, idxBytes 8uy [ 2 ] [| 7uy; 0uy |])
                Expect.stringContains (errorOf (Idx.loadPair images fewer)) "holds 3 images but" "count mismatch"
                let e = errorOf (Idx.parseImages "x.idx" (idxBytes 8uy [ 3; 28; 28 ] pixels[..10]))
                Expect.stringContains e "truncated IDX data" "truncated data"
                Expect.stringContains (errorOf (Idx.parseImages "x.idx" (idxBytes 8uy [ 3; 28 ] pixels))) "expected 3" "dimension count"
                Expect.stringContains (errorOf (Idx.parseLabels "x.idx" (idxBytes 8uy [ 3; 28; 28 ] pixels))) "expected 1" "labels need one dimension"
                Expect.stringContains (errorOf (Idx.parseImages "x.idx" (Array.append [| 1uy; 2uy |] (idxBytes 8uy [ 3; 28; 28 ] pixels)))) "not an IDX file" "magic"
                Expect.stringContains (errorOf (Idx.parseImages "x.idx" (idxBytes 0x0Duy [ 3; 28; 28 ] pixels))) "element type 0x0d" "type"
                Expect.stringContains (errorOf (Idx.parseLabels "x.idx" (idxBytes 8uy [ 2 ] [| 1uy; 10uy |]))) "label 10 of item 1" "label range"
                Expect.stringContains (errorOf (Idx.parseImages "x.idx" (idxBytes 8uy [ 3; 28; 28 ] (Array.append pixels [| 0uy |])))) "unexpected bytes" "extra data"
                Expect.stringContains (errorOf (Idx.parseImages "x.idx" (idxBytes 8uy [ 100000; 28; 28 ] pixels))) "at most 70000" "absurd counts"
                Expect.stringContains (errorOf (Idx.parseImages "x.idx" (idxBytes 8uy [ 3; 100000; 100000 ] pixels))) "28x28" "absurd sizes"
            }
        ]

        testList "bilinear resampling (PyTorch align_corners=False)" [
            test "4x4 -> 2x2 averages each 2x2 block" {
                let src = Array.init 16 float32
                let dst = Array.zeroCreate 4
                Resample.bilinear (4, 4) (2, 2) src 0 dst 0
                // src = (d + 0.5) * 2 - 0.5 = 0.5 and 2.5: halfway between rows/columns 0,1 and 2,3.
                Expect.equal dst [| 2.5f; 4.5f; 10.5f; 12.5f |] "block means"
            }
            test "2x1 -> 4x1 clamps at the edges" {
                let dst = Array.zeroCreate 4
                Resample.bilinear (2, 1) (4, 1) [| 0f; 4f |] 0 dst 0
                // src = (d + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (edge repeated).
                Expect.equal dst [| 0f; 1f; 3f; 4f |] "edge handling"
            }
            test "28 -> 16 of a column ramp gives 1.75 x + 0.375; of a constant, the constant" {
                let ramp = Array.init (28 * 28) (fun i -> float32 (i % 28))
                let dst = Array.zeroCreate 256
                Resample.bilinear (28, 28) (16, 16) ramp 0 dst 0
                let expected = Array.init 256 (fun i -> 1.75f * float32 (i % 16) + 0.375f)
                Expect.equal dst expected "ramp"
                let rows = Array.init (28 * 28) (fun i -> float32 (i / 28))
                Resample.bilinear (28, 28) (16, 16) rows 0 dst 0
                Expect.equal dst (Array.init 256 (fun i -> 1.75f * float32 (i / 16) + 0.375f)) "row ramp"
                Resample.bilinear (28, 28) (16, 16) (Array.create 784 77f) 0 dst 0
                Expect.equal dst (Array.create 256 77f) "constant"
            }
            test "the 28 -> 16 source positions are PyTorch's" {
                let axis = Resample.axis 28 16
                let struct (i0, i1, l0, l1) = axis[0]
                Expect.equal (i0, i1, l0, l1) (0, 1, 0.625f, 0.375f) "first"
                let struct (i0, i1, l0, l1) = axis[15]
                Expect.equal (i0, i1, l0, l1) (26, 27, 0.375f, 0.625f) "last"
            }
            test "digits scale to [-1, 1]: 0 -> -1, 255 -> 1" {
                let images = { Count = 2; Rows = 28; Cols = 28; Pixels = Array.append (Array.create 784 0uy) (Array.create 784 255uy) }
                let d = MnistSim.digits "t" images [| 3; 5 |] [| 0; 1 |]
                Expect.equal (d.Image(0).ToArray()) (Array.create 256 -1f) "black"
                Expect.equal (d.Image(1).ToArray()) (Array.create 256 1f) "white"
                Expect.equal d.Labels [| 3; 5 |] "labels"
            }
        ]

        testList "mnist-sim" [
            test "a draw is without replacement" {
                let idx = MnistSim.draw (Rng.Derive(7UL, 0UL)) 10000 9298
                Expect.equal (Array.distinct idx).Length 9298 "distinct"
                Expect.isTrue (idx |> Array.forall (fun i -> i >= 0 && i < 10000)) "in range"
            }
            test "built from t10k: sizes, disjoint splits, deterministic for a seed, different for another" {
                let files = DataPath.mnistFilesIn dataFolder.Value |> Option.get
                let a = Data.buildMnistSim files 1337 |> ok
                let b = Data.buildMnistSim files 1337 |> ok
                let c = Data.buildMnistSim files 1338 |> ok
                let digest (s: MnistSimSet) = Data.digest { Train = s.Train; Test = s.Test; Source = "" }
                Expect.equal (a.Train.Count, a.Test.Count) (7291, 2007) "sizes"
                Expect.equal (digest a) (digest b) "same seed, same set"
                Expect.notEqual (digest a) (digest c) "another seed, another set"
                Expect.isFalse a.TrainFromMnistTrain "no MNIST training files here"
                // Disjoint: the split is one permutation cut in two (checked on indices), and no
                // test image is bit-identical to a training image.
                let idx = MnistSim.draw (Rng.Derive(1337UL, 0UL)) 10000 9298
                Expect.isEmpty (Set.intersect (set idx[..7290]) (set idx[7291..])) "indices disjoint"
                let key (d: Dataset) i = d.Image(i).ToArray() |> Array.map BitConverter.SingleToInt32Bits |> Array.toList
                let trainSet = set [ for i in 0 .. a.Train.Count - 1 -> key a.Train i ]
                let shared = [ for i in 0 .. a.Test.Count - 1 do if trainSet.Contains(key a.Test i) then yield i ]
                Expect.isEmpty shared "no test digit repeats a training digit"
                Expect.isTrue (a.Train.Images |> Array.forall (fun v -> v >= -1f && v <= 1f)) "range"
            }
            test "with MNIST training files, training digits come from them" {
                use dir = new TempDir()
                let mnist = Path.Combine(dir.Path, "mnist")
                Directory.CreateDirectory mnist |> ignore
                let n = 8000
                let trainPixels = Array.init (n * 784) (fun i -> byte ((i / 784) % 200))
                File.WriteAllBytes(Path.Combine(mnist, "train-images-idx3-ubyte"), idxBytes 8uy [ n; 28; 28 ] trainPixels)
                File.WriteAllBytes(Path.Combine(mnist, "train-labels-idx1-ubyte"), idxBytes 8uy [ n ] (Array.init n (fun i -> byte (i % 10))))
                for name in [ EmbeddedData.mnistTestImages; EmbeddedData.mnistTestLabels ] do
                    Lecun.Tests.TestSetup.writeEmbedded dir.Path name |> ignore
                let set = Data.buildMnistSim (DataPath.mnistFilesIn dir.Path |> Option.get) 5 |> ok
                Expect.isTrue set.TrainFromMnistTrain "from training files"
                Expect.equal (set.Train.Count, set.Test.Count) (7291, 2007) "sizes"
                // Every synthetic training image is constant, so its digits are too.
                Expect.isTrue ([ 0 .. 50 ] |> List.forall (fun i -> let im = set.Train.Image(i).ToArray() in im |> Array.forall ((=) im[0]))) "train digits from the training file"
                let loaded = Data.loadFrom [ { Origin = "--data"; Dir = Some dir.Path } ] DataSetName.MnistSim 5 |> ok
                Expect.stringContains loaded.Source "train from MNIST training digits" "source says so"
            }
            test "prepared file round trip, preferred by the loader, checksum enforced" {
                use dir = new TempDir()
                let files = DataPath.mnistFilesIn dataFolder.Value |> Option.get
                let built = Data.buildMnistSim files 21 |> ok
                let path = Path.Combine(dir.Path, "mnist-sim", MnistSim.fileName 21)
                MnistSim.save path built
                let back = MnistSim.load path |> ok
                let digest (s: MnistSimSet) = Data.digest { Train = s.Train; Test = s.Test; Source = "" }
                Expect.equal (digest back) (digest built) "round trip is exact"
                Expect.equal (back.Seed, back.TrainFromMnistTrain) (21, false) "header"
                let places = [ { Origin = "--data"; Dir = Some dir.Path } ]
                let loaded = Data.loadFrom places DataSetName.MnistSim 21 |> ok
                Expect.stringContains loaded.Source "prepared in" "prepared file used"
                Expect.equal (Data.digest loaded) (digest built) "same digits"
                let bytes = File.ReadAllBytes path
                bytes[1000] <- bytes[1000] ^^^ 1uy
                File.WriteAllBytes(path, bytes)
                Expect.stringContains (errorOf (MnistSim.load path)) "checksum mismatch" "damage detected"
                File.WriteAllBytes(path, bytes[.. bytes.Length - 100])
                Expect.stringContains (errorOf (MnistSim.load path)) "truncated" "truncation detected"
            }
        ]

        testList "search path" [
            test "--data is exclusive; otherwise $LECUN_DATA, ./data, then the embedded copy" {
                let explicitOnly = DataPath.placesFrom (Some "/x/data") (Some "/env") "/cwd"
                Expect.equal explicitOnly [ { Origin = "--data"; Dir = Some "/x/data" } ] "--data alone"
                Expect.isFalse (DataPath.usesEmbedded explicitOnly) "--data leaves the embedded copy out"
                let places = DataPath.placesFrom None (Some "/env") "/cwd"
                Expect.equal places
                    [ { Origin = "$LECUN_DATA"; Dir = Some "/env" }
                      { Origin = "./data"; Dir = Some "/cwd/data" }
                      { Origin = "embedded"; Dir = None } ] "order"
            }
            realData [
                test "the embedded files are byte for byte the distributed ones (their SHA-256 in Data/README.md)" {
                    let distributed =
                        [ EmbeddedData.uspsTrain, "dddeb8fa3254ec97358d05cffcc8e2b0fb11a39bd26a92a8774ebac8159dc59c"
                          EmbeddedData.uspsTest, "d576db589eb694fe5116da9e5dff2d8cc5100181413c51998e5f6d39fcbe734b"
                          EmbeddedData.mnistTestImages, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
                          EmbeddedData.mnistTestLabels, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6" ]
                    Expect.equal (distributed |> List.map fst) EmbeddedData.names "every embedded file is listed"
                    for name, sha in distributed do
                        let bytes = EmbeddedData.bytes name |> Option.get
                        Expect.equal (Convert.ToHexStringLower(Security.Cryptography.SHA256.HashData bytes)) sha name
                    Expect.isNone (EmbeddedData.bytes "usps/zip.nothing.gz") "an unknown name is not found"
                }
            ]
            test "with no data folder the embedded copy is found, and gives the digits the files on disk give" {
                use env = new TempDir()
                use cwd = new TempDir()
                let nowhere = DataPath.placesFrom None (Some env.Path) cwd.Path
                let onDisk = DataPath.placesFrom (Some dataFolder.Value) None cwd.Path
                let embedded = Data.loadFrom nowhere DataSetName.Usps 1 |> ok
                Expect.equal embedded.Source "usps from the embedded copy" "says which copy"
                let fromDisk = Data.loadFrom onDisk DataSetName.Usps 1 |> ok
                Expect.stringContains fromDisk.Source dataFolder.Value "a folder on the path wins and is named"
                Expect.equal (Data.digest embedded) (Data.digest fromDisk) "same usps digits"
                let sim = Data.loadFrom nowhere DataSetName.MnistSim 9 |> ok
                Expect.stringContains sim.Source "built from the embedded copy" "mnist-sim from the embedded t10k"
                Expect.equal (Data.digest sim) (Data.digest (Data.loadFrom onDisk DataSetName.MnistSim 9 |> ok)) "same mnist-sim draw"
                // A damaged copy in ./data is an error, not a silent fall back to the embedded copy.
                Directory.CreateDirectory(Path.Combine(cwd.Path, "data", "usps")) |> ignore
                File.WriteAllBytes(Path.Combine(cwd.Path, "data", "usps", "zip.train.gz"), [| 0x1Fuy; 0x8Buy; 8uy |])
                File.WriteAllBytes(Path.Combine(cwd.Path, "data", "usps", "zip.test.gz"), [| 0x1Fuy; 0x8Buy; 8uy |])
                Expect.stringContains (errorOf (Data.loadFrom nowhere DataSetName.Usps 1)) "truncated gzip" "the folder's damaged file is reported"
            }
            test "nothing found: one error naming every place and how to get the data" {
                use env = new TempDir()
                use cwd = new TempDir()
                let folders = DataPath.placesFrom None (Some env.Path) cwd.Path |> List.filter (fun p -> p.Dir.IsSome)
                for places, names in [ folders, [ $"$LECUN_DATA = {env.Path}"; Path.Combine(cwd.Path, "data") ]
                                       DataPath.placesFrom (Some env.Path) None cwd.Path, [ $"--data = {env.Path}" ] ] do
                    for name in [ DataSetName.Usps; DataSetName.MnistSim ] do
                        let e = errorOf (Data.loadFrom places name 1)
                        for place in names do Expect.stringContains e place "names the place"
                        Expect.isFalse (e.Contains "\n") "one line"
                    let e = errorOf (Data.loadFrom places DataSetName.Usps 1)
                    Expect.stringContains e "lecun data fetch" "how to get it"
                    Expect.stringContains e "ElemStatLearn/datasets" "public location"
                    Expect.stringContains (errorOf (Data.loadFrom places DataSetName.MnistSim 1)) "mnist" "MNIST mirrors"
                let e = errorOf (DataSetName.parse "cifar")
                Expect.equal e "unknown data set 'cifar' (known: usps, mnist-sim, mnist-sim-50k)" "unknown name"
            }
            test "data set names: each reads back as itself, whatever its case and surrounding spaces" {
                Expect.equal (DataSetName.names |> List.map snd) [ "usps"; "mnist-sim"; "mnist-sim-50k" ] "the spellings files and commands use"
                for d, text in DataSetName.names do
                    Expect.equal (DataSetName.parse text) (Ok d) text
                    Expect.equal (DataSetName.parse $" {text.ToUpperInvariant()} ") (Ok d) $"{text} in capitals"
                Expect.equal (DataSetName.describe DataSetName.Usps None) "usps" "no holdout"
                Expect.equal (DataSetName.describe DataSetName.MnistSim (Some 1000)) "mnist-sim, last 1000 training digits held out" "holdout"
            }
            test "a truncated copy on the path is an error, not a smaller data set" {
                use dir = new TempDir()
                let usps = Path.Combine(dir.Path, "usps")
                Directory.CreateDirectory usps |> ignore
                let _, test = uspsFiles ()
                File.WriteAllLines(Path.Combine(usps, "zip.train"), realLines.Value)
                File.WriteAllLines(Path.Combine(usps, "zip.test"), realLines.Value[..2005])
                let e = errorOf (Data.loadFrom [ { Origin = "--data"; Dir = Some dir.Path } ] DataSetName.Usps 1)
                Expect.stringContains e "7291" "train is the wrong file"
                File.Copy(test, Path.Combine(usps, "zip.test.gz"))
                File.Copy(fst (uspsFiles ()), Path.Combine(usps, "zip.train.gz"))
                let ok = Data.loadFrom [ { Origin = "--data"; Dir = Some dir.Path } ] DataSetName.Usps 1 |> ok
                Expect.equal (ok.Train.Count, ok.Test.Count) (7291, 2007) "the .gz files are preferred"
            }
        ]

        testList "fetch" [
            test "downloads, verifies and saves; refuses corrupt files and 404s leaving nothing behind" {
                let train, test = uspsFiles ()
                let trainBytes, testBytes = File.ReadAllBytes train, File.ReadAllBytes test
                let files =
                    Map [ "/good/zip.train.gz", trainBytes
                          "/good/zip.test.gz", testBytes
                          "/corrupt/zip.train.gz", trainBytes
                          "/corrupt/zip.test.gz", testBytes[.. testBytes.Length - 5000]
                          "/wrong/zip.train.gz", testBytes
                          "/wrong/zip.test.gz", testBytes
                          "/half/zip.train.gz", trainBytes ]
                use server = fileServer files
                let timeout = TimeSpan.FromSeconds 20.0
                use target = new TempDir()
                let fetched = Fetch.usps (server.Url "/good/") target.Path timeout |> ok
                Expect.equal (fetched |> List.map (fun f -> f.Split, f.Digits)) [ "train", 7291; "test", 2007 ] "both splits"
                Expect.equal (File.ReadAllBytes(Path.Combine(target.Path, "usps", "zip.train.gz"))) trainBytes "train saved as served"
                Expect.equal (filesUnder target.Path) [| "zip.test.gz"; "zip.train.gz" |] "exactly the two files"
                let loaded = Data.loadFrom [ { Origin = "--data"; Dir = Some target.Path } ] DataSetName.Usps 1 |> ok
                Expect.equal loaded.Train.Count 7291 "loadable"
                for bad, phrase in [ "/corrupt/", "gzip"; "/wrong/", "7291"; "/half/", "404"; "/nothing/", "404" ] do
                    use empty = new TempDir()
                    let e = errorOf (Fetch.usps (server.Url bad) empty.Path timeout)
                    Expect.stringContains e phrase $"{bad} refused"
                    Expect.isEmpty (filesUnder empty.Path) $"{bad}: nothing written"
            }
            test "progress: each download reports from 0 up to its announced length, in order" {
                let train, test = uspsFiles ()
                let trainBytes, testBytes = File.ReadAllBytes train, File.ReadAllBytes test
                use server = fileServer (Map [ "/good/zip.train.gz", trainBytes; "/good/zip.test.gz", testBytes ])
                use target = new TempDir()
                let heard = ResizeArray<FetchProgress>()
                Fetch.uspsWithProgress (server.Url "/good/") target.Path (TimeSpan.FromSeconds 20.0) heard.Add |> ok |> ignore
                for split, bytes in [ "train", trainBytes; "test", testBytes ] do
                    let mine = heard |> Seq.filter (fun p -> p.Split = split) |> Seq.toList
                    Expect.equal (List.head mine).Bytes 0L $"{split}: starts at 0"
                    Expect.equal (List.last mine).Bytes bytes.LongLength $"{split}: ends at the file's length"
                    Expect.isTrue (mine |> List.pairwise |> List.forall (fun (a, b) -> a.Bytes <= b.Bytes)) $"{split}: never goes back"
                    Expect.isTrue (mine |> List.forall (fun p -> p.Total = Some bytes.LongLength)) $"{split}: the announced length"
                    Expect.stringEnds (List.head mine).From $"/good/zip.{split}.gz" $"{split}: names the URL"
                Expect.equal (heard |> Seq.map (fun p -> p.Split) |> Seq.distinct |> Seq.toList) [ "train"; "test" ] "train, then test"
                use copy = new TempDir()
                heard.Clear()
                Fetch.uspsWithProgress (Path.GetDirectoryName train) copy.Path Fetch.defaultTimeout heard.Add |> ok |> ignore
                Expect.equal (heard |> Seq.map (fun p -> p.Split, p.Bytes) |> Seq.toList) [ "train", trainBytes.LongLength; "test", testBytes.LongLength ] "a folder copy: one report per file"
            }
            test "copies from a folder, and refuses a folder without the files" {
                use target = new TempDir()
                let fetched = Fetch.usps (Path.GetDirectoryName(fst (uspsFiles ()))) target.Path Fetch.defaultTimeout |> ok
                Expect.equal fetched.Length 2 "two files"
                use empty = new TempDir()
                use target2 = new TempDir()
                Expect.stringContains (errorOf (Fetch.usps empty.Path target2.Path Fetch.defaultTimeout)) "no zip.train.gz" "missing files"
                Expect.isEmpty (filesUnder target2.Path) "nothing written"
            }
            test "a server that does not answer times out" {
                use listener = new TcpListener(IPAddress.Loopback, 0)
                listener.Start()
                let port = (listener.LocalEndpoint :?> IPEndPoint).Port
                use target = new TempDir()
                let e = errorOf (Fetch.usps $"http://127.0.0.1:{port}/" target.Path (TimeSpan.FromSeconds 1.0))
                Expect.stringContains e "no complete answer within 1 s" "timeout"
                Expect.isEmpty (filesUnder target.Path) "nothing written"
            }
        ]
    ]
