/// Minibatch training on the 16-lane path: its batch gradient against the batched im2col passes (and so
/// the float64 reference they are held to), every optimizer and refinement against the accumulated
/// per-example pass, and the same bits at either vector width and on one or two threads.
module Lecun.Tests.LaneTrainingTests

open System
open System.Diagnostics
open System.IO
open Expecto
open FsCheck
open Lecun.Native.Backends
open Lecun.Native.Kernels
open Lecun.Model

let private random (rng: Rng) n = Array.init n (fun _ -> rng.NextFloat32() * 2.0f - 1.0f)

let private bitsOf (a: float32 array) = a |> Array.map BitConverter.SingleToInt32Bits

/// The lane kernels, or an expected skip on a CPU without them.
let private needLanes () =
    if not LaneBatch.IsSupported then TestKit.ExpectedSkip.skip TestKit.NoLanes "no AVX-512 or AVX2 with FMA"

/// |a - b| <= tol * max|b| over one tensor.
let private expectNear (tol: float) (actual: float32 array) (expected: float32 array) (what: string) =
    let scale = expected |> Array.map (fun v -> abs (float v)) |> Array.fold max 1e-30
    let worst = Array.map2 (fun (a: float32) (b: float32) -> abs (float a - float b)) actual expected |> Array.fold max 0.0
    Expect.isLessThanOrEqual (worst / scale) tol $"{what}: worst difference {worst:E2} of {scale:E2}"

/// A batch's gradient on the lanes: each example laid in shifted by shifts.[b], dropout masks `masks`
/// ([count, units of dropLayer]), the loss's gradient per example, on `threads` threads.
let rec private laneGradient (net: Network) (loss: Loss) (p: float32 array) (images: float32 array) (labels: int array)
                         (shifts: struct (int * int) array) (masks: float32 array) (dropLayer: int) (threads: int) =
    laneGradientOn (LaneTraining.create net labels.Length) net loss p images labels shifts masks dropLayer threads

/// laneGradient on a given trainer (which may hold a previous batch's lanes).
and private laneGradientOn (trainer: LaneTrainer) (net: Network) (loss: Loss) (p: float32 array) (images: float32 array) (labels: int array)
                           (shifts: struct (int * int) array) (masks: float32 array) (dropLayer: int) (threads: int) =
    let count = labels.Length
    let inputSize = net.Layout.InputSize
    let outputs = net.Layout.OutputSize
    for b in 0 .. count - 1 do
        let struct (dx, dy) = shifts.[b]
        LaneTraining.layFrame net trainer images (b * inputSize) dx dy b
    let grad = Array.zeroCreate<float32> p.Length
    LaneTraining.beginBatch trainer
    LaneTraining.runChunk net p trainer masks dropLayer count threads
        (LaneLossGradient(fun b y offset _ dOut -> Loss.gradient loss y offset outputs labels.[b] dOut)) ValueNone
    LaneTraining.endBatch net trainer grad
    grad

/// The same batch's gradient through the batched im2col passes (managed: no MKL, no lanes).
let private batchedGradient (net: Network) (loss: Loss) (p: float32 array) (images: float32 array) (labels: int array)
                            (shifts: struct (int * int) array) (masks: float32 array) (dropLayer: int) =
    let backend = Backend.Managed
    let count = labels.Length
    let outputs = net.Layout.OutputSize
    let ws = Workspace.create net count
    let shifted = shifts |> Array.exists (fun (struct (dx, dy)) -> dx <> 0 || dy <> 0)
    if shifted then
        let plans = InputShifts.create net 1
        for b in 0 .. count - 1 do
            let struct (dx, dy) = shifts.[b]
            ws.FirstUnfolds.[b] <- InputShifts.plan plans dx dy
    if dropLayer >= 0 then Array.blit masks 0 ws.DropMask.[dropLayer] 0 masks.Length
    if shifted then Forward.runBatchShifted backend net p ws images 0 count dropLayer
    else Forward.runWith backend net p ws images 0 count dropLayer
    let dOut = Array.zeroCreate<float32> outputs
    let dOuts = Array.zeroCreate<float32> (count * outputs)
    for b in 0 .. count - 1 do
        Loss.gradient loss (Forward.outputs net ws) (b * outputs) outputs labels.[b] dOut
        Array.blit dOut 0 dOuts (b * outputs) outputs
    let grad = Array.zeroCreate<float32> p.Length
    Backward.runBatchInto backend net p ws images 0 count dOuts (GradientSink.into grad false) dropLayer
    grad

/// The sum over the batch of each example's gradient taken entry by entry in absolute value (one example
/// at a time, managed): the scale of a sum whose terms may cancel, against which its rounding is held.
let private absoluteGradientSum (net: Network) (loss: Loss) (p: float32 array) (images: float32 array) (labels: int array)
                                (shifts: struct (int * int) array) (masks: float32 array) (dropLayer: int) =
    let backend = Backend.Managed
    let outputs = net.Layout.OutputSize
    let inputSize = net.Layout.InputSize
    let one = Workspace.create net 1
    let plans = match net.Plans.[0].Geometry.Spec with Local _ -> Some(InputShifts.create net 1) | Dense _ -> None
    let dOut = Array.zeroCreate<float32> outputs
    let g = Array.zeroCreate<float32> p.Length
    let total = Array.zeroCreate<float> p.Length
    for b in 0 .. labels.Length - 1 do
        if dropLayer >= 0 then
            let units = net.Plans.[dropLayer].Geometry.Units
            Array.blit masks (b * units) one.DropMask.[dropLayer] 0 units
        let struct (dx, dy) = shifts.[b]
        match plans with
        | Some shifts -> Forward.runShifted backend net p one (InputShifts.plan shifts dx dy) images (b * inputSize) dropLayer
        | None -> Forward.runWith backend net p one images (b * inputSize) 1 dropLayer
        Loss.gradient loss (Forward.outputs net one) 0 outputs labels.[b] dOut
        Backward.runWith backend net p one images (b * inputSize) dOut g false dropLayer
        for i in 0 .. g.Length - 1 do
            total.[i] <- total.[i] + abs (float g.[i])
    total

let private randomDigits (seed: int) (count: int) =
    let rng = Rng(uint64 seed)
    { Name = "random"; Images = random rng (count * Dataset.Pixels); Labels = Array.init count (fun _ -> rng.NextInt 10) }

/// One pass of `recipe` from `initial` on a workspace of `capacity` (1: one example at a time,
/// accumulated over each batch), with `teachers` for a distilling recipe and the lanes on `threads`.
let private onePass (backend: IBackend) (recipe: Recipe) (initial: float32 array) (data: Dataset) (capacity: int)
                    (teachers: TeacherSet option) (threads: int) =
    let net = Recipe.network recipe
    let p = Array.copy initial
    let state = { Train.createState net recipe with Teachers = teachers; LaneThreads = threads }
    Train.trainOnePass backend net recipe 1 p (Workspace.create net capacity) state data ignore
    p

/// Recipes with every optimizer and every training-time transform, at a batch size that is not a
/// multiple of 16.
let private recipesAt (batch: int) =
    let newton = match Recipe.newton1989.Optimizer with Newton n -> Newton { n with Patterns = 5 } | o -> o
    [ { Recipe.lecun1989 with BatchSize = batch }
      { Recipe.newton1989 with BatchSize = batch; Optimizer = newton }
      { Recipe.modern with BatchSize = batch }
      { Recipe.refined with BatchSize = batch; Refine = { Recipe.refined.Refine with Distill = None } } ]

/// |actual - (start + sum of terms)| within float32's running bound for that many terms (as KernelTests' sums).
let private expectSum (terms: float list) (start: float) (actual: float32) (what: string) =
    let expected = start + List.sum terms
    let bound = 4.0 * float (terms.Length + 2) * 6e-8 * (List.sumBy abs terms + abs start) + 1e-12
    Expect.isLessThanOrEqual (abs (float actual - expected)) bound what

/// Runs `kernel` at every width this CPU has and checks that they wrote the same bits.
let private sameAtEachWidth (kernel: unit -> float32 array) =
    let results = KernelTests.widths |> List.map (fun wide -> KernelTests.atWidth wide kernel)
    for r in results.Tail do
        Expect.sequenceEqual (bitsOf r) (bitsOf results.Head) "AVX2 and AVX-512 write the same bits"
    results.Head

[<Tests>]
let tests =
    testList "lane training" [
        testList "the lane gradient kernels equal the float64 sums of their definitions, at every block edge, the same bits at each width" [
            testProperty "LocalInputGradient and LocalWeightGradient" <| fun (seed: uint64) (shape: byte) ->
                needLanes ()
                let rng = Rng seed
                let lanes = LaneBatch.Lanes
                let planes, positions, fanIn = 1 + int shape % 9, 1 + int (seed % 9UL), 1 + int (seed / 9UL % 30UL)
                let length = 420 + lanes
                let input = Array.init length (fun _ -> rng.NextFloat32() - 0.5f)
                let start = Array.init length (fun _ -> rng.NextFloat32() - 0.5f)
                // Windows that overlap and taps that may repeat, on whole units as the engine's tables are:
                // the sums must still take every term once.
                let origins = Array.init positions (fun _ -> lanes * rng.NextInt 13)
                let taps = Array.init fanIn (fun _ -> lanes * rng.NextInt 13)
                let w = Array.init (planes * fanIn) (fun _ -> rng.NextFloat32() - 0.5f)
                let dPre = Array.init (planes * positions * lanes) (fun _ -> rng.NextFloat32() - 0.5f)
                let gradient =
                    sameAtEachWidth (fun () ->
                        let g = Array.copy start
                        LaneGradients.LocalInputGradient(ReadOnlySpan dPre, ReadOnlySpan origins, ReadOnlySpan taps, ReadOnlySpan w, planes, Span g)
                        g)
                let terms = Array.init length (fun _ -> ResizeArray<float>())
                for p in 0 .. planes - 1 do
                    for s in 0 .. positions - 1 do
                        for t in 0 .. fanIn - 1 do
                            for e in 0 .. lanes - 1 do
                                terms.[origins.[s] + taps.[t] + e].Add(float w.[p * fanIn + t] * float dPre.[(p * positions + s) * lanes + e])
                for i in 0 .. length - 1 do
                    expectSum (List.ofSeq terms.[i]) (float start.[i]) gradient.[i] $"input gradient [{i}] of {planes}x{positions}, fan-in {fanIn}"
                let before = Array.init (planes * fanIn * lanes) (fun _ -> rng.NextFloat32() - 0.5f)
                let sums =
                    sameAtEachWidth (fun () ->
                        let wl = Array.append (Array.copy before) [| nanf |]
                        LaneGradients.LocalWeightGradient(ReadOnlySpan input, ReadOnlySpan origins, ReadOnlySpan taps, ReadOnlySpan dPre, planes, Span(wl, 0, before.Length))
                        wl)
                for p in 0 .. planes - 1 do
                    for t in 0 .. fanIn - 1 do
                        for e in 0 .. lanes - 1 do
                            let k = (p * fanIn + t) * lanes + e
                            expectSum [ for s in 0 .. positions - 1 -> float dPre.[(p * positions + s) * lanes + e] * float input.[origins.[s] + taps.[t] + e] ]
                                (float before.[k]) sums.[k] $"weight {p},{t} lane {e} of {planes}x{positions}, fan-in {fanIn}"
                Expect.isTrue (Single.IsNaN sums.[before.Length]) "nothing written past the sums"
                let unaligned = Array.copy origins
                unaligned.[0] <- unaligned.[0] + 1
                Expect.throws (fun () ->
                    LaneGradients.LocalInputGradient(ReadOnlySpan dPre, ReadOnlySpan unaligned, ReadOnlySpan taps, ReadOnlySpan w, planes, Span(Array.zeroCreate<float32> length)))
                    "an origin off a whole unit is refused"

            testProperty "DenseInputGradient, DenseWeightGradient and SumLanes" <| fun (seed: uint64) (shape: byte) ->
                needLanes ()
                let rng = Rng seed
                let lanes = LaneBatch.Lanes
                let fanIn, units = 1 + int shape % 21, 1 + int (seed % 37UL)
                let columns = LaneGradients.PaddedUnits units
                let w = Array.init (fanIn * units) (fun _ -> rng.NextFloat32() - 0.5f)
                let dPre = Array.init (units * lanes) (fun _ -> rng.NextFloat32() - 0.5f)
                let x = Array.init (fanIn * lanes) (fun _ -> rng.NextFloat32() - 0.5f)
                let dIn =
                    sameAtEachWidth (fun () ->
                        let g = Array.create (fanIn * lanes) nanf
                        LaneGradients.DenseInputGradient(ReadOnlySpan dPre, units, ReadOnlySpan w, fanIn, Span g)
                        g)
                for i in 0 .. fanIn - 1 do
                    for e in 0 .. lanes - 1 do
                        expectSum [ for u in 0 .. units - 1 -> float w.[i * units + u] * float dPre.[u * lanes + e] ] 0.0 dIn.[i * lanes + e] $"input {i} lane {e}"
                let xT = Array.init (lanes * fanIn) (fun k -> x.[(k % fanIn) * lanes + k / fanIn])
                let dT = Array.init (lanes * columns) (fun k -> let u = k % columns in if u < units then dPre.[u * lanes + k / columns] else 0.0f)
                let before = Array.init (fanIn * columns) (fun _ -> rng.NextFloat32() - 0.5f)
                let sums =
                    sameAtEachWidth (fun () ->
                        let y = Array.copy before
                        LaneGradients.DenseWeightGradient(ReadOnlySpan xT, fanIn, ReadOnlySpan dT, units, Span y)
                        y)
                for i in 0 .. fanIn - 1 do
                    for u in 0 .. units - 1 do
                        expectSum [ for l in 0 .. lanes - 1 -> float xT.[l * fanIn + i] * float dT.[l * columns + u] ] (float before.[i * columns + u])
                            sums.[i * columns + u] $"weight {i},{u}"
                let second = Array.init (units * lanes) (fun _ -> rng.NextFloat32() - 0.5f)
                for withSecond in [ false; true ] do
                    let total = Array.zeroCreate<float32> units
                    LaneGradients.SumLanes(ReadOnlySpan dPre, (if withSecond then ReadOnlySpan second else ReadOnlySpan.Empty), Span total)
                    for u in 0 .. units - 1 do
                        expectSum [ for e in 0 .. lanes - 1 -> float dPre.[u * lanes + e] + (if withSecond then float second.[u * lanes + e] else 0.0) ] 0.0 total.[u] $"lanes of unit {u}"
        ]

        testPropertyWithConfig { FsCheckConfig.defaultConfig with arbitrary = [ typeof<SpecTests.SpecGen> ]; maxTest = 60 }
            "the lane batch gradient equals the batched im2col gradient to 5e-5 of each tensor's largest summed absolute gradient, on random specs, batch sizes, shifts and dropout" <|
            fun (spec: NetSpec) (seed: uint16) (countRaw: byte) (shift: bool) (dropout: bool) ->
                needLanes ()
                let layout = Layout.create spec
                let net = Network.create layout Tanh (if seed % 2us = 0us then Tanh else Identity)
                let loss = if seed % 2us = 0us then Mse else SoftmaxCrossEntropy
                let count = 2 + int countRaw % 39
                let rng = Rng(uint64 seed + 7UL)
                let p = random rng layout.ParamCount |> Array.map (fun v -> 0.5f * v)
                let images = random rng (count * layout.InputSize)
                let labels = Array.init count (fun _ -> rng.NextInt layout.OutputSize)
                let canShift = shift && (match net.Plans.[0].Geometry.Spec with Local _ -> true | Dense _ -> false)
                let shifts = Array.init count (fun _ -> if canShift then struct (rng.NextInt 3 - 1, rng.NextInt 3 - 1) else struct (0, 0))
                let dropLayer =
                    if not dropout then -1
                    else match net.Plans |> Array.tryFindIndex (fun q -> q.Geometry.Spec.Kind.ReadsVector) with Some i when i > 0 -> i - 1 | _ -> -1
                let units = if dropLayer >= 0 then net.Plans.[dropLayer].Geometry.Units else 0
                let masks = Array.init (count * units) (fun _ -> if rng.NextFloat32() < 0.75f then 1.0f / 0.75f else 0.0f)
                let expected = batchedGradient net loss p images labels shifts masks dropLayer
                let lanes = laneGradient net loss p images labels shifts masks dropLayer 1
                // The bound: 5e-5 of the tensor's largest sum of the examples' gradients in absolute value
                // (the sums over the batch may cancel; the two paths add the same terms in other orders).
                let scale = absoluteGradientSum net loss p images labels shifts masks dropLayer
                for v in layout.Views do
                    let largest = Array.fold max 1e-30 scale.[v.Offset .. v.Offset + v.Length - 1]
                    let worst = Seq.max (seq { for i in v.Offset .. v.Offset + v.Length - 1 -> abs (float lanes.[i] - float expected.[i]) })
                    Expect.isLessThanOrEqual (worst / largest) 5e-5 $"{v.Name}: worst difference {worst:E2} of {largest:E2}"
                let twoThreads = laneGradient net loss p images labels shifts masks dropLayer 2
                Expect.sequenceEqual (bitsOf twoThreads) (bitsOf lanes) "two threads give one thread's bits"

        testProperty "lanes that hold no example add nothing: a short batch after a full one on the same buffers gives a fresh run's bits" <|
            fun (seed: uint16) (countRaw: byte) ->
                needLanes ()
                let net = Network.lecun1989
                let count = 1 + int countRaw % 15
                let rng = Rng(uint64 seed)
                let p = Init.create SqrtFanIn net.Layout (int seed)
                let full = 32
                let images = random rng (full * Dataset.Pixels)
                let labels = Array.init full (fun _ -> rng.NextInt 10)
                let drop = 2
                let units = net.Plans.[drop].Geometry.Units
                let masks = Array.init (full * units) (fun _ -> if rng.NextFloat32() < 0.5f then 2.0f else 0.0f)
                let none = Array.create full (struct (1, -1))
                let trainer = LaneTraining.create net full
                laneGradientOn trainer net Mse p images labels none masks drop 2 |> ignore
                let short = laneGradientOn trainer net Mse p images labels.[.. count - 1] none.[.. count - 1] masks drop 2
                let fresh = laneGradient net Mse p images labels.[.. count - 1] none.[.. count - 1] masks drop 1
                Expect.sequenceEqual (bitsOf short) (bitsOf fresh) "the same bits"
                Expect.isTrue (fresh |> Array.exists (fun g -> g <> 0.0f)) "the gradient is not all zero"

        testList "every optimizer and transform on the lanes equals the accumulated per-example pass" [
            for batch in [ 20; 40 ] do
                for recipe in recipesAt batch do
                    test $"{recipe.Name} at batch {batch} (a short last batch included)" {
                        needLanes ()
                        let data = randomDigits 21 (3 * batch + 7)
                        let net = Recipe.network recipe
                        Expect.isTrue (Train.runsOnLanes Backend.Managed net batch) "the batches run on the lanes"
                        let initial = Init.create recipe.WeightInit net.Layout 5
                        let accumulated = onePass Backend.Managed recipe initial data 1 None 1
                        let lanes = onePass Backend.Managed recipe initial data batch None 1
                        let change (p: float32 array) = Array.map2 (-) p initial
                        expectNear 2e-3 (change lanes) (change accumulated) $"{recipe.Name}: parameter change"
                        Expect.sequenceEqual (bitsOf (onePass Backend.Managed recipe initial data batch None 2)) (bitsOf lanes) "two threads: the same bits"
                    }
            test "refined with distillation's teachers at batch 20" {
                needLanes ()
                let recipe = { Recipe.refined with BatchSize = 20 }
                let settings = recipe.Refine.Distill |> Option.defaultValue { Teachers = 2; Temperature = 2.0f; Weight = 0.5f; Saved = false }
                let recipe = { recipe with Refine = { recipe.Refine with Distill = Some settings; LabelSmoothing = 0.1f } }
                let net = Recipe.network recipe
                let teachers () = Some(Distill.create net settings (Array.init settings.Teachers (fun k -> Init.create recipe.WeightInit net.Layout (40 + k))))
                let data = randomDigits 22 67
                let initial = Init.create recipe.WeightInit net.Layout 6
                let accumulated = onePass Backend.Managed recipe initial data 1 (teachers ()) 1
                let lanes = onePass Backend.Managed recipe initial data 20 (teachers ()) 1
                let change (p: float32 array) = Array.map2 (-) p initial
                expectNear 2e-3 (change lanes) (change accumulated) "parameter change"
            }
        ]

        test "under mkl a batch still runs as im2col + GEMM: every product a CBLAS call" {
            needLanes ()
            let backend = TestKit.mkl ()
            Expect.isFalse (Train.runsOnLanes backend Network.lecun1989 64) "mkl runs no lanes"
            Expect.isTrue (Train.runsOnLanes (TestKit.auto ()) Network.lecun1989 64) "auto runs the lanes"
            Expect.isFalse (Train.runsOnLanes Backend.Managed Network.lecun1989 1) "one example at a time is the per-example path"
        }

        test "the routing table says batched training runs on the lanes under managed and auto, and through MKL under mkl" {
            needLanes ()
            let net = Network.lecun1989
            let batched = Routing.table net 64 16 |> List.filter (fun p -> p.Path.StartsWith "batched training")
            Expect.isNonEmpty batched "the table lists batched training"
            for p in batched do
                Expect.equal (Routing.routeOf Backend.Managed p) "managed (lanes, fused)" $"{p.Layer} {p.Role} under managed"
                Expect.equal (Routing.routeOf (TestKit.auto ()) p) "managed (lanes, fused)" $"{p.Layer} {p.Role} under auto"
                Expect.equal (Routing.routeOf (TestKit.mkl ()) p) "mkl" $"{p.Layer} {p.Role} under mkl"
            let perExample = Routing.table net 64 16 |> List.filter (fun p -> p.Path = "per-example training")
            Expect.isFalse (perExample |> List.exists (fun p -> Routing.routeOf Backend.Managed p = "managed (lanes, fused)")) "per-example training runs no lanes"
        }

        test "the AVX2 kernels give the AVX-512 kernels' bits: one pass of modern at batch 37 in both" {
            needLanes ()
            if not KernelWidth.HasAvx512 then TestKit.ExpectedSkip.skip TestKit.NoAvx512 "this CPU has no AVX-512"
            let recipe = { Recipe.modern with BatchSize = 37 }
            let data = randomDigits 23 150
            let net = Recipe.network recipe
            let initial = Init.create recipe.WeightInit net.Layout 7
            let wide = KernelTests.atWidth true (fun () -> onePass Backend.Managed recipe initial data 37 None 2)
            let narrow = KernelTests.atWidth false (fun () -> onePass Backend.Managed recipe initial data 37 None 2)
            Expect.sequenceEqual (bitsOf narrow) (bitsOf wide) "the same bits"
        }

        test "a process with DOTNET_EnableAVX512=0 writes the same model bytes as one with AVX-512: train --recipe modern --batch-size 64" {
            needLanes ()
            if not KernelWidth.HasAvx512 then TestKit.ExpectedSkip.skip TestKit.NoAvx512 "this CPU has no AVX-512"
            TestKit.withTempDir (fun dir ->
                let train (name: string) (avx512: bool) =
                    let out = Path.Combine(dir, name)
                    let info = ProcessStartInfo("dotnet", RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = Environment.CurrentDirectory)
                    info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "lecun.dll"))
                    for a in [ "train"; "--recipe"; "modern"; "--batch-size"; "64"; "--passes"; "2"; "--backend"; "managed"; "--out"; out ] do
                        info.ArgumentList.Add a
                    if not avx512 then info.Environment.["DOTNET_EnableAVX512"] <- "0"
                    // The test build keeps SkiaSharp's native library (the run's plots) under runtimes/<rid>/native,
                    // where `dotnet lecun.dll` started from this folder does not look for it.
                    let native = Path.Combine(AppContext.BaseDirectory, "runtimes", Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier, "native")
                    info.Environment.["LD_LIBRARY_PATH"] <- native
                    use p = Process.Start info
                    let stdout, stderr = p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync()
                    if not (p.WaitForExit 300000) then
                        p.Kill true
                        failtest "train: no exit within 300 s"
                    Expect.equal p.ExitCode 0 $"train exits 0: {stderr.Result} {stdout.Result}"
                    File.ReadAllBytes(Path.Combine(out, "model.safetensors"))
                let wide = train "avx512" true
                let narrow = train "avx2" false
                Expect.isTrue (wide.AsSpan().SequenceEqual(ReadOnlySpan narrow)) "the same model bytes")
        }
    ]
