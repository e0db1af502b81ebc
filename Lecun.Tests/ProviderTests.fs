/// The providers are what their names say (mkl: every product a CBLAS call; managed: no MKL; auto:
/// routed, per-example bit for bit managed's), every provider agrees with the float64 reference, and
/// minibatch training as batched GEMMs equals the accumulated per-example path.
module Lecun.Tests.ProviderTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Native.Backends
open Lecun.Native.Mkl
open Lecun.Model

let private mkl, auto = TestKit.mkl, TestKit.auto

/// The providers that send products to MKL, each fetched (or skipped, NoMkl) inside its own test.
let private mklProviders = [ "mkl", mkl; "auto", auto ]

let private counted (f: unit -> unit) =
    let before = MklCalls.OnThisThread
    f ()
    MklCalls.OnThisThread - before

let private randomDigits (seed: int) (count: int) =
    let rng = Rng(uint64 seed)
    { Name = "random"; Images = Array.init (count * Dataset.Pixels) (fun _ -> rng.NextFloat32() * 2.0f - 1.0f)
      Labels = Array.init count (fun _ -> rng.NextInt 10) }

let private random (rng: Rng) n = Array.init n (fun _ -> rng.NextFloat32() * 2.0f - 1.0f)

/// |a - b| <= tol * max|b| over the arrays.
let private expectNear (tol: float) (actual: float32 array) (expected: float32 array) (what: string) =
    let scale = expected |> Array.map (fun v -> abs (float v)) |> Array.max |> max 1e-30
    let worst = Array.map2 (fun (a: float32) (b: float32) -> abs (float a - float b)) actual expected |> Array.max
    Expect.isLessThanOrEqual (worst / scale) tol $"{what}: worst difference {worst:E2} of {scale:E2}"

/// Recipes with every optimizer, shifts and dropout where the recipe has them, at batch size 8.
let private optimizerRecipes =
    [ { Recipe.lecun1989 with BatchSize = 8 }
      { Recipe.newton1989 with BatchSize = 8; Optimizer = (match Recipe.newton1989.Optimizer with Newton n -> Newton { n with Patterns = 5 } | o -> o) }
      { Recipe.modern with BatchSize = 8 } ]

/// One pass of `recipe` over `data` from `initial`, on a workspace of the given capacity.
let private onePass (backend: IBackend) (recipe: Recipe) (initial: float32 array) (data: Dataset) (capacity: int) =
    let net = Recipe.network recipe
    let p = Array.copy initial
    Train.trainOnePass backend net recipe 1 p (Workspace.create net capacity) (Train.createState net recipe) data ignore
    p

[<Tests>]
let tests =
    testList "providers" [
        // Held to a running error bound (Reference.errorBounds), not to one tolerance: fresh draws include
        // specs whose float32 gradient is ill-conditioned (saturated tanh units, outputs at their targets,
        // gradients down to 1e-11), where any fixed relative tolerance either fails at random or is too
        // loose to catch a wrong connection elsewhere. Over 25 runs of this property (15,000 fresh checks
        // of outputs and gradients) the worst error was 0.57 of its bound.
        yield! TestKit.perProvider (fun backend ->
          [ testPropertyWithConfig { FsCheckConfig.defaultConfig with arbitrary = [ typeof<SpecTests.SpecGen> ]; maxTest = 100 }
                "the forward pass and gradient lie within float32's error bound of the float64 reference, on random specs" <| fun (spec: NetSpec) (seed: uint16) ->
            let layout = Layout.create spec
            let graph = ConnectionGraph.build layout
            for hidden, output, loss in [ Tanh, Tanh, Mse; Relu, Identity, SoftmaxCrossEntropy ] do
                let net = Network.create layout hidden output
                let rng = Rng(uint64 seed)
                let p = random rng layout.ParamCount |> Array.map (fun v -> 0.5f * v)
                let x = random rng layout.InputSize
                let label = int seed % layout.OutputSize
                let p64, x64 = Array.map float p, Array.map float x
                let refOut = Reference.outputs net (Reference.forward net graph p64 x64)
                let refGrad = Reference.gradient loss net graph p64 x64 label
                let outBound, gradBound = Reference.errorBounds loss net graph p64 x64 label
                let within (actual: float32 array) (expected: float array) (bound: float array) (what: string) =
                    for i in 0 .. expected.Length - 1 do
                        let error = abs (float actual.[i] - expected.[i])
                        if error > bound.[i] then
                            failtestf "%s [%d]: %.9g where %.9g expected, off by %.3g, bound %.3g" what i actual.[i] expected.[i] error bound.[i]
                let ws = Workspace.create net 1
                Forward.run backend net p ws x 0 1
                within (Forward.outputs net ws).[0 .. layout.OutputSize - 1] refOut outBound $"{hidden} outputs"
                within (TestKit.engineGradient backend net loss p x label) refGrad gradBound $"{hidden} gradient" ])

        testList "a product goes where its provider says, above the old 2^18 limit too" [
            for transA, transB in [ false, false; true, false; false, true; true, true ] do
              for providerName, provider in mklProviders @ [ "managed", (fun () -> Backend.Managed) ] do
                test $"{providerName}: cblas_sgemm, transA {transA}, transB {transB}" {
                    let provider = provider ()
                    let m, n, k = 70, 90, 50 // 315,000 multiply-adds
                    let rng = Rng(uint64 (m + (if transA then 1 else 0) + (if transB then 2 else 0)))
                    let a, b = random rng (m * k), random rng (k * n)
                    let aAt i p = float (if transA then a.[p * m + i] else a.[i * k + p])
                    let bAt p j = float (if transB then b.[j * k + p] else b.[p * n + j])
                    let c = Array.zeroCreate<float32> (m * n)
                    let count = counted (fun () ->
                        provider.Gemm(transA, transB, m, n, k, 1.0f, ReadOnlySpan a, (if transA then m else k), ReadOnlySpan b,
                                      (if transB then k else n), 0.0f, Span c, n))
                    // Each provider sends it where it says it does (auto by its rule: this shape, A B^T with
                    // k = 50 < ShortDot, goes to MKL; mkl always; managed never).
                    let route = provider.RouteGemm(transA, transB, m, n, k)
                    Expect.equal route (match providerName with "mkl" -> Route.Mkl | "managed" -> Route.Managed | _ -> AutoBackend.GemmRoute(transA, transB, m, n, k)) "the provider's answer"
                    let expected = if route = Route.Mkl then MklCount(1L, int64 (m * n * k)) else MklCount(0L, 0L)
                    Expect.equal count expected "MKL calls and multiply-adds, as the provider answered"
                    for i in 0 .. m - 1 do
                        for j in 0 .. n - 1 do
                            let expected = List.sum [ for p in 0 .. k - 1 -> aAt i p * bAt p j ]
                            Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float c.[i * n + j]) expected $"C[{i},{j}]"
                }
            test "auto sends a product to MKL exactly when its rule says, on both sides of each part of the rule" {
                let backend = auto ()
                // (transA, transB, m, n, k): the batched products of the 1989 network at batches 16, 64 and 256, and edges of the rule.
                let shapes =
                    [ false, false, 12, 4096, 25; false, false, 12, 1024, 25; false, false, 4, 4096, 200; false, false, 8, 2048, 3; false, false, 7, 2048, 3
                      false, true, 64, 192, 30; false, true, 64, 30, 10; false, true, 4, 200, 1024; false, true, 17, 32, 64; false, true, 17, 32, 63
                      true, false, 200, 1024, 4; true, false, 192, 30, 64 ]
                for transA, transB, m, n, k in shapes do
                    let rng = Rng(uint64 (m * n + k))
                    let a, b, c = random rng (m * k), random rng (k * n), Array.zeroCreate<float32> (m * n)
                    let count = counted (fun () ->
                        backend.Gemm(transA, transB, m, n, k, 1.0f, ReadOnlySpan a, (if transA then m else k), ReadOnlySpan b,
                                     (if transB then k else n), 0.0f, Span c, n))
                    let mkl = AutoBackend.GemmRoute(transA, transB, m, n, k) = Route.Mkl
                    Expect.equal count (if mkl then MklCount(1L, int64 m * int64 n * int64 k) else MklCount(0L, 0L)) $"{transA} {transB} {m}x{n}x{k}"
                let routes = shapes |> List.map (fun (ta, tb, m, n, k) -> AutoBackend.GemmRoute(ta, tb, m, n, k))
                Expect.equal routes [ Route.Mkl; Route.Managed; Route.Managed; Route.Mkl; Route.Managed
                                      Route.Mkl; Route.Managed; Route.Managed; Route.Managed; Route.Mkl
                                      Route.Managed; Route.Managed ] "the rule: long-row A B on MKL, short-dot A B^T of 2^15 MACs or more on MKL, the rest managed"
            }
            for trans in [ false; true ] do
              for providerName, provider in mklProviders do
                test $"{providerName}: cblas_sgemv, trans {trans}" {
                    let provider = provider ()
                    let m, n = 600, 500 // 300,000 multiply-adds
                    let rng = Rng(uint64 (m + if trans then 1 else 0))
                    let a = random rng (m * n)
                    let x = random rng (if trans then m else n)
                    let y = Array.zeroCreate<float32> (if trans then n else m)
                    let count = counted (fun () -> provider.Gemv(trans, m, n, 1.0f, ReadOnlySpan a, n, ReadOnlySpan x, 0.0f, Span y))
                    Expect.equal count (MklCount(1L, int64 (m * n))) "one MKL call"
                    for i in 0 .. y.Length - 1 do
                        let expected = if trans then List.sum [ for r in 0 .. m - 1 -> float a.[r * n + i] * float x.[r] ] else List.sum [ for c in 0 .. n - 1 -> float a.[i * n + c] * float x.[c] ]
                        Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float y.[i]) expected $"y[{i}]"
                }
        ]

        testList "the execution plan" (TestKit.perProvider (fun backend ->
          [ test "each layer's planned path where the provider serves it, else im2col+gemm; under mkl every product a CBLAS call; --verbose prints it" {
                let net = Network.lecun1989
                let plan = ExecutionPlan.create backend net
                let plainOnly = backend.Name = "mkl"
                Expect.isTrue (KernelPath.servedBy backend Im2colGemm) "every provider serves the plain path"
                for path in [ PhasePermute; Lanes ] do
                    Expect.equal (KernelPath.servedBy backend path) (not plainOnly) $"{KernelPath.name path}: served by every provider but mkl"
                    Expect.equal (KernelPath.under backend path) (if plainOnly then Im2colGemm else path) $"{KernelPath.name path} under {backend.Name}"
                Expect.equal plan.Provider backend.Name "the plan names its provider"
                Expect.equal (plan.Layers |> Array.map (fun l -> l.Layer)) (net.Plans |> Array.map (fun p -> p.Geometry.Name)) "one entry per layer"
                for l, p in Array.zip plan.Layers net.Plans do
                    Expect.equal l.Example (if plainOnly then Im2colGemm else p.ExamplePath) $"{l.Layer}: one example"
                    Expect.equal l.Evaluation (if plainOnly then Im2colGemm else net.BatchPath) $"{l.Layer}: a batch's evaluation"
                    Expect.equal l.BatchedTraining (if plainOnly then Im2colGemm else net.BatchPath) $"{l.Layer}: batched training"
                    Expect.equal (l.BatchedTraining = Lanes) (Train.runsOnLanes backend net 64) $"{l.Layer}: the plan says what batched training runs"
                if plainOnly then
                    for p in Routing.table net 64 16 do
                        Expect.equal (Routing.routeOf backend p) "mkl" $"{p.Path} {p.Layer} {p.Role}: a CBLAS call"
                else
                    Expect.contains (plan.Layers |> Array.map (fun l -> l.Example)) PhasePermute "H2's one-example path is fused where the provider serves it"
                let printed = Lecun.Cli.Providers.routing backend net 64 16
                Expect.stringContains printed $"execution plan under {backend.Name}" "--verbose prints the plan"
                for l in plan.Layers do
                    Expect.stringContains printed $"  {l.Layer,-5} {KernelPath.name l.Example,-14} {KernelPath.name l.Evaluation,-14} {KernelPath.name l.BatchedTraining}" $"{l.Layer}'s line"
            } ]))

        testList "the MKL call counter" [
            for count in [ 1; 7; 64; 100 ] do
                test $"the routing table lists every product of a training step over {count} digits: under mkl, its calls and multiply-adds are the counter's" {
                    let backend = mkl ()
                    let net = Network.lecun1989
                    let p = Init.create SqrtFanIn net.Layout 3
                    let data = randomDigits 5 count
                    let ws = Workspace.create net count
                    let grad = Array.zeroCreate<float32> p.Length
                    let dOut = Array.init (count * net.Layout.OutputSize) (fun i -> float32 (i % 7) * 0.1f - 0.3f)
                    let served = counted (fun () ->
                        Forward.runWith backend net p ws data.Images 0 count -1
                        if count = 1 then Backward.runWith backend net p ws data.Images 0 dOut grad false -1
                        else Backward.runBatchInto backend net p ws data.Images 0 count dOut (GradientSink.into grad false) -1)
                    let table = Routing.products net "training" count true
                    let calls = table |> List.sumBy (fun q -> int64 q.Calls)
                    let macs = table |> List.sumBy (fun q -> int64 q.Calls * ProductShape.macs q.Shape)
                    Expect.equal served (MklCount(calls, macs)) "calls and multiply-adds: served by MKL = listed by the routing table"
                    Expect.equal macs (int64 count * Macs.trainingPresentation net.Layout) "the table's multiply-adds are the network's count per presentation"
                }
            for recipe, batch in [ Recipe.lecun1989, 1; Recipe.modern, 1; Recipe.modern, 64 ] do
                test $"under mkl every multiply-add of a {recipe.Name} training pass at batch {batch} and of its evaluation goes through MKL" {
                    let backend = mkl ()
                    let recipe = { recipe with BatchSize = batch }
                    let data = randomDigits 7 150
                    let net = Recipe.network recipe
                    let p = Init.create recipe.WeightInit net.Layout 1
                    let training = counted (fun () -> onePass backend recipe p data batch |> ignore)
                    Expect.equal training.Macs (int64 data.Count * Macs.trainingPresentation net.Layout) "training: every MAC through MKL"
                    let evaluation = counted (fun () -> Evaluate.split backend net recipe.Loss p (Workspace.create net Evaluate.batch) data |> ignore)
                    Expect.equal evaluation.Macs (int64 data.Count * Macs.forward net.Layout) "evaluation: every MAC through MKL"
                }
            test "managed sends nothing to MKL, and auto's per-example training sends nothing and equals managed's bit for bit" {
                let data = randomDigits 8 40
                for recipe in [ Recipe.lecun1989; Recipe.newton1989; Recipe.modern ] do
                    let net = Recipe.network recipe
                    let p = Init.create recipe.WeightInit net.Layout 2
                    let mutable managed = [||]
                    let count = counted (fun () -> managed <- onePass Backend.Managed recipe p data 1)
                    Expect.equal count (MklCount(0L, 0L)) $"{recipe.Name}: managed"
                    let mutable routed = [||]
                    let count = counted (fun () -> routed <- onePass (auto ()) recipe p data 1)
                    Expect.equal count (MklCount(0L, 0L)) $"{recipe.Name}: auto, one digit at a time"
                    Expect.sequenceEqual routed managed $"{recipe.Name}: auto = managed"
            }
        ]

        testList "minibatch training as batched GEMMs" [
          yield! TestKit.perProvider (fun backend ->
            [ for recipe in optimizerRecipes do
                test $"{recipe.Name} at batch 8 (a short last batch included) equals the accumulated per-example pass" {
                    let data = randomDigits 11 45
                    let net = Recipe.network recipe
                    let initial = Init.create recipe.WeightInit net.Layout 3
                    let accumulated = onePass backend recipe initial data 1
                    let batched = onePass backend recipe initial data 8
                    let change (p: float32 array) = Array.map2 (-) p initial
                    expectNear 2e-3 (change batched) (change accumulated) $"{recipe.Name}: parameter change"
                }
              testProperty "a batched backward pass equals the summed per-example gradients, with shifts and dropout" <| fun (seed: uint16) (countRaw: byte) ->
                let recipe = Recipe.modern
                let count = 2 + int countRaw % 15
                let net = Recipe.network recipe
                let data = randomDigits (int seed) count
                let p = Init.create recipe.WeightInit net.Layout (int seed)
                let shifts = InputShifts.create net 1
                let drop = Train.dropLayer net recipe |> ValueOption.get
                let units = net.Plans.[drop].Geometry.Units
                let rng = Rng(uint64 seed + 1UL)
                let plans = Array.init count (fun _ -> InputShifts.plan shifts (rng.NextInt 3 - 1) (rng.NextInt 3 - 1))
                let masks = Array.init (count * units) (fun _ -> if rng.NextFloat32() < 0.75f then 1.0f / 0.75f else 0.0f)
                let outputs = net.Layout.OutputSize
                let one = Workspace.create net 1
                let expected = Array.zeroCreate<float32> p.Length
                let dOut = Array.zeroCreate<float32> outputs
                for b in 0 .. count - 1 do
                    Array.blit masks (b * units) one.DropMask.[drop] 0 units
                    Forward.runShifted backend net p one plans.[b] data.Images (b * Dataset.Pixels) drop
                    Loss.gradient recipe.Loss (Forward.outputs net one) 0 outputs data.Labels.[b] dOut
                    Backward.runWith backend net p one data.Images (b * Dataset.Pixels) dOut expected (b > 0) drop
                let ws = Workspace.create net count
                Array.blit plans 0 ws.FirstUnfolds 0 count
                Array.blit masks 0 ws.DropMask.[drop] 0 (count * units)
                Forward.runBatchShifted backend net p ws data.Images 0 count drop
                let dOuts = Array.zeroCreate<float32> (count * outputs)
                for b in 0 .. count - 1 do
                    Loss.gradient recipe.Loss (Forward.outputs net ws) (b * outputs) outputs data.Labels.[b] dOut
                    Array.blit dOut 0 dOuts (b * outputs) outputs
                let actual = Array.zeroCreate<float32> p.Length
                Backward.runBatchInto backend net p ws data.Images 0 count dOuts (GradientSink.into actual false) drop
                for v in net.Layout.Views do
                    expectNear 1e-5 actual.[v.Offset .. v.Offset + v.Length - 1] expected.[v.Offset .. v.Offset + v.Length - 1] v.Name
              test "batched training is deterministic: the same seed gives the same bits" {
                let recipe = { Recipe.modern with BatchSize = 16 }
                let data = randomDigits 12 70
                let net = Recipe.network recipe
                let p = Init.create recipe.WeightInit net.Layout 4
                Expect.sequenceEqual (onePass backend recipe p data 16) (onePass backend recipe p data 16) backend.Name
              } ])
        ]
    ]
