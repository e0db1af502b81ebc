/// Memory that does not grow with what the user asks for or hands in: the batch size, the runs at
/// once, the rows of a USPS file, the values of a PGM, the files given to `predict`. Every input is
/// built here, in the test; memory is bounded through the bytes a call allocates, never through time.
module Lecun.Tests.MemoryBoundsTests

open System
open System.IO
open System.IO.Compression
open System.Text
open Expecto
open FsCheck
open Lecun.Model
open Lecun.Native.Backends
open Lecun.Cli

/// Bytes `f` allocates on this thread, and its result.
let private allocated (f: unit -> 'a) =
    let before = GC.GetAllocatedBytesForCurrentThread()
    let result = f ()
    result, GC.GetAllocatedBytesForCurrentThread() - before

let private randomDigits (seed: int) (count: int) =
    let rng = Rng(uint64 seed)
    { Name = "random"; Images = Array.init (count * Dataset.Pixels) (fun _ -> rng.NextFloat32() * 2.0f - 1.0f)
      Labels = Array.init count (fun _ -> rng.NextInt 10) }

/// One pass of `recipe` from `initial` on a workspace of `capacity` examples.
let private onePass (recipe: Recipe) (initial: float32 array) (data: Dataset) (capacity: int) =
    let net = Recipe.network recipe
    let p = Array.copy initial
    Train.trainOnePass Backend.Managed net recipe 1 p (Workspace.create net capacity) (Train.createState net recipe) data ignore
    p

/// Floats a workspace holds, all its buffers together.
let private floats (ws: Workspace) =
    [ ws.Outputs; ws.Cols; ws.ColsT; ws.Staging; ws.DeltaPre; ws.DeltaIn; ws.DeltaCols; ws.BatchDeltaPre; ws.BatchDeltaIn
      ws.BatchDeltaCols; ws.DropMask; ws.Dropped; ws.UnfoldScratch ]
    |> List.sumBy (Array.sumBy (fun a -> int64 a.Length))
    |> (+) (int64 ws.LaneInput.Length + (ws.Lanes |> Array.sumBy (fun l -> int64 (l.Padded.Length + l.Out.Length))))

let private oneLine (what: string) (e: string) =
    Expect.isFalse (e.Contains '\n') $"{what}: one line: {e}"

/// A USPS row whose values are written with `width` characters each (zeros after the decimals), so
/// the text is many times the size of the digits it holds.
let private longUspsRow (rng: Rng) (width: int) =
    let value () =
        let v = (rng.NextFloat32() * 2.0f - 1.0f).ToString("0.0000", Globalization.CultureInfo.InvariantCulture)
        if v.StartsWith "-" then v.PadRight(width, '0') else v.PadRight(width - 1, '0')
    String.Join(" ", Array.append [| string (rng.NextInt 10) |] (Array.init Dataset.Pixels (fun _ -> value ())))

let private writeUsps (path: string) (rows: int) (gzip: bool) =
    let rng = Rng(uint64 rows)
    use file = File.Create path
    use output = if gzip then new GZipStream(file, CompressionLevel.Fastest) :> Stream else file :> Stream
    use writer = new StreamWriter(output, UTF8Encoding(false))
    for _ in 1 .. rows do writer.Write(longUspsRow rng 32 + "\n")

[<Tests>]
let tests =
    testList "memory bounds" [
        testList "batch size" [
            test "a training workspace is the same size for a full batch as for one chunk" {
                let net = Recipe.network Recipe.modern
                // Once first, so that neither measurement pays for a first use.
                Workspace.create net Workspace.batchChunk |> ignore
                Train.createState net Recipe.modern |> ignore
                let fullWs, full = allocated (fun () -> Workspace.create net (Workspace.trainingCapacity Usps.trainCount))
                let chunkWs, chunk = allocated (fun () -> Workspace.create net Workspace.batchChunk)
                Expect.equal (floats fullWs) (floats chunkWs) "floats of the workspace of a batch of 7291 and of one chunk"
                Expect.isLessThan (abs (full - chunk)) (64L * 1024L) $"bytes allocated for the workspace of a batch of 7291 ({full}) and of one chunk ({chunk})"
                let fullState, _ = allocated (fun () -> Train.createState net { Recipe.modern with BatchSize = Usps.trainCount })
                let chunkState, _ = allocated (fun () -> Train.createState net { Recipe.modern with BatchSize = Workspace.batchChunk })
                Expect.equal fullState.BatchDOut.Length chunkState.BatchDOut.Length "a batch's loss gradients: one chunk's"
            }
            test "a pass at a full batch allocates no more than at one chunk, far less than a batch-sized workspace" {
                let data = randomDigits 3 (Workspace.batchChunk + 150)
                let net = Recipe.network Recipe.modern
                let initial = Init.create Recipe.modern.WeightInit net.Layout 5
                let pass (batch: int) =
                    let recipe = { Recipe.modern with BatchSize = batch }
                    snd (allocated (fun () -> onePass recipe initial data (Workspace.trainingCapacity batch)))
                let full, chunk = pass data.Count, pass Workspace.batchChunk
                let _, batchSized = allocated (fun () -> Workspace.create net data.Count)
                Expect.isLessThan (abs (full - chunk)) (64L * 1024L) $"a pass at batch {data.Count} ({full} bytes) and at {Workspace.batchChunk} ({chunk} bytes)"
                Expect.isLessThan full (batchSized * 9L / 10L) "a pass allocates less than a workspace of the whole batch"
            }
            testProperty "a batch run in chunks equals the batch run whole, and one chunk changes no bit" <| fun (seed: uint16) (batchRaw: byte) (chunkRaw: byte) ->
                let batch = 2 + int batchRaw % 30
                let chunk = 2 + int chunkRaw % (batch - 1)
                let data = randomDigits (int seed) (batch + 7)
                // SGD (no normalized step to magnify rounding), with shifts and dropout, whose draws
                // must come in the same order however the batch is cut.
                let recipe = { Recipe.lecun1989 with BatchSize = batch; Shift = 1; Dropout = 0.25f }
                let net = Recipe.network recipe
                let initial = Init.create recipe.WeightInit net.Layout (int seed)
                let whole = onePass recipe initial data batch
                Expect.sequenceEqual (onePass recipe initial data (batch + 5)) whole "a workspace larger than the batch: the same bits"
                let change (p: float32 array) = Array.map2 (-) p initial
                let scale = change whole |> Array.map abs |> Array.max |> max 1e-30f
                // The same draws and the same sums in another order: only float32 rounding differs. Chunks
                // and last batches of one digit included (a batch of one reads its own shift too).
                for capacity, what in [ chunk, $"in chunks of {chunk}"; 1, "one digit at a time" ] do
                    let other = onePass recipe initial data capacity
                    let worst = Array.map2 (fun (a: float32) b -> abs (a - b)) (change other) (change whole) |> Array.max
                    Expect.isLessThanOrEqual (float (worst / scale)) 1e-3 $"batch {batch} {what}: worst difference {worst} of {scale}"
            test "batch sizes beyond any or this training set are refused in one line" {
                for n in [ 0; -3; Recipe.maxBatchSize + 1; Int32.MaxValue ] do
                    match Recipe.apply [ RecipeOverride.BatchSize n ] Recipe.modern with
                    | Ok r -> failtest $"--batch-size {n} accepted ({r.BatchSize})"
                    | Error e -> oneLine $"--batch-size {n}" e; Expect.stringContains e "--batch-size" "names the option"
                Expect.isError (Recipe.validate { Recipe.modern with BatchSize = 500_000 }) "a recipe record with a batch of 500,000"
                Expect.isOk (Recipe.apply [ RecipeOverride.BatchSize Usps.trainCount ] Recipe.modern) "the full usps batch"
                match Recipe.fitsTrainingSet 291 { Recipe.modern with BatchSize = 1000 } with
                | Ok _ -> failtest "a batch of 1000 over 291 training digits accepted"
                | Error e -> oneLine "fits" e; Expect.stringContains e "291" "names the training digits"
                Expect.isOk (Recipe.fitsTrainingSet 291 { Recipe.modern with BatchSize = 291 }) "the whole held-in set"
                let data = { Train = randomDigits 1 20; Test = randomDigits 2 5; Source = "random" }
                let recipe = { Recipe.modern with BatchSize = 21; Passes = 1 }
                Expect.throwsT<ArgumentException> (fun () -> Train.run Backend.Managed recipe data (Init.create recipe.WeightInit Layout.lecun1989 1) (fun _ _ -> ()) ignore |> ignore)
                    "Train.run refuses a batch larger than its training set"
            }
            test "the command line refuses an overflowing or too large batch size in one line" {
                TestKit.withTempDir (fun dir ->
                    for args in [ [ "--batch-size"; "99999999999" ]; [ "--batch-size"; "500000" ]; [ "--batch-size"; "1000"; "--holdout"; "7000" ] ] do
                        let out = Path.Combine(dir, "run")
                        let code, _, err = TestSetup.runCli ([ "train"; "--passes"; "1"; "--out"; out ] @ args)
                        let shown = String.Join(" ", args)
                        Expect.equal code 1 $"{shown}: exit code"
                        Expect.stringContains err "batch-size" $"{shown}: names the option"
                        Expect.isFalse (err.Contains "   at ") $"{shown}: no stack trace: {err}"
                        Expect.isFalse (Directory.Exists out) $"{shown}: no run folder")
            }
        ]
        testList "runs at once" [
            testProperty "workers never exceed the cores, the runs or the jobs asked for" <| fun (PositiveInt parallelism) (PositiveInt jobs) ->
                let workers = Runs.workerCount parallelism jobs
                workers >= 1 && workers <= Environment.ProcessorCount && workers <= parallelism && workers <= jobs
            test "--jobs 1000 runs no more at once than the cores" {
                let data = { Train = randomDigits 4 12; Test = randomDigits 5 4; Source = "random" }
                let recipe = { Recipe.lecun1989 with Passes = 1 }
                let jobs = Array.init 24 (fun s -> { Recipe = { recipe with Seed = s }; Data = data; Initial = fun () -> Init.create recipe.WeightInit Layout.lecun1989 s })
                let threads = Collections.Concurrent.ConcurrentDictionary<int, unit>()
                Runs.run Backend.Managed 1000 jobs
                    (fun _ _ _ -> ())
                    (fun _ _ -> threads.TryAdd(Threading.Thread.CurrentThread.ManagedThreadId, ()) |> ignore)
                |> ignore
                Expect.isLessThanOrEqual threads.Count Environment.ProcessorCount "threads that ran training"
            }
        ]
        testList "streamed input" [
            test "a USPS file is parsed as it is read: allocation is the digits, not the text" {
                TestKit.withTempDir (fun dir ->
                    for gzip in [ false; true ] do
                        let sizes =
                            [ for rows in [ 600; 3000 ] do
                                let path = Path.Combine(dir, $"rows{rows}" + (if gzip then ".gz" else ".txt"))
                                writeUsps path rows gzip
                                Usps.load path |> ignore
                                let result, bytes = allocated (fun () -> Usps.load path)
                                match result with
                                | Error e -> failtest e
                                | Ok d -> Expect.equal d.Count rows "every row read"
                                let text = int64 rows * int64 (1 + 257 * 33)
                                // The digits themselves are 1 KB a row; the text is 8.5 KB a row.
                                Expect.isLessThan bytes (text / 2L) $"{rows} rows (gzip {gzip}): {bytes} bytes allocated for {text} bytes of text"
                                yield bytes ]
                        let perRow = float (sizes.[1] - sizes.[0]) / 2400.0
                        Expect.isLessThan perRow 3000.0 $"bytes allocated per further row (gzip {gzip})")
            }
            test "a USPS file still ends in its gzip trailer, read as a stream" {
                TestKit.withTempDir (fun dir ->
                    let path = Path.Combine(dir, "rows.gz")
                    writeUsps path 40 true
                    let bytes = File.ReadAllBytes path
                    let cut = Path.Combine(dir, "cut.gz")
                    File.WriteAllBytes(cut, bytes[.. bytes.Length - 5])
                    match Usps.load cut with
                    | Ok d -> failtest $"a cut gzip file read ({d.Count} digits)"
                    | Error e -> oneLine "cut" e; Expect.stringContains e "gzip" "says the gzip file is damaged"
                    let twice = Path.Combine(dir, "twice.gz")
                    File.WriteAllBytes(twice, Array.append bytes bytes)
                    match Usps.load twice with
                    | Ok d -> Expect.equal d.Count 80 "two members, both read"
                    | Error e -> failtest e)
            }
            test "a plain PGM of 2 million values is refused at value 257, allocating about its file" {
                TestKit.withTempDir (fun dir ->
                    let path = Path.Combine(dir, "many.pgm")
                    let values = 2_000_000
                    File.WriteAllBytes(path, Array.append (Encoding.ASCII.GetBytes "P2\n16 16\n255\n") (Array.init (2 * values) (fun i -> if i % 2 = 0 then '7'B else ' 'B)))
                    let result, bytes = allocated (fun () -> DigitFiles.read path)
                    match result with
                    | Ok _ -> failtest "a PGM of 2 million values read"
                    | Error e -> oneLine "pgm" e; Expect.stringContains e "more than 256 values" "says it has too many values"
                    Expect.isLessThan bytes (4L * int64 (2 * values)) $"bytes allocated for a {2 * values}-byte file")
            }
            test "predict writes each file's predictions before it reads the next" {
                TestKit.withTempDir (fun dir ->
                    let model = Path.Combine(dir, "model.safetensors")
                    ModelFile.save model Recipe.lecun1989 DataSetName.Usps None (Init.create SqrtFanIn Layout.lecun1989 3)
                    let rng = Rng(7UL)
                    let row () = String.Join(" ", Array.init Dataset.Pixels (fun _ -> (rng.NextFloat32() * 2.0f - 1.0f).ToString("0.000", Globalization.CultureInfo.InvariantCulture)))
                    let good = Path.Combine(dir, "good.txt")
                    File.WriteAllText(good, String.Join("\n", Array.init 30 (fun _ -> row ())) + "\n")
                    let bad = Path.Combine(dir, "bad.txt")
                    File.WriteAllText(bad, row () + "\n" + "1 2 3\n")
                    for json in [ []; [ "--json" ] ] do
                        let code, out, err = TestSetup.runCli ([ "predict"; "--model"; model ] @ json @ [ good; bad; good ])
                        Expect.equal code 1 "a bad second file: exit code"
                        oneLine "predict" (err.Trim())
                        Expect.stringContains err "bad.txt" "names the bad file"
                        Expect.stringContains out $"{good}:30" "the first file's predictions were written before the second was read"
                        Expect.isFalse (out.Contains $"{bad}:1") "nothing of the refused file"
                    let code, out, _ = TestSetup.runCli [ "predict"; "--model"; model; "--json"; good; good ]
                    Expect.equal code 0 "two good files"
                    let items = Text.Json.Nodes.JsonNode.Parse(out).AsArray()
                    Expect.equal items.Count 60 "one JSON array of both files' digits")
            }
        ]
    ]
