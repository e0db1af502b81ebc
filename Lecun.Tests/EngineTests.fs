module Lecun.Tests.EngineTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Native.Backends
open Lecun.Native.Kernels
open Lecun.Model
open Lecun.Tests.TestKit

let private toDouble (a: float32 array) = Array.map float a

let private layerValues (net: Network) (ws: Workspace) (i: int) =
    ws.Outputs.[i].[0 .. net.Plans.[i].Geometry.Units - 1] |> toDouble

let private referenceLayer (net: Network) (e: Reference.Evaluation) (i: int) =
    let start = net.Layout.InputSize + (net.Plans.[0 .. i - 1] |> Array.sumBy (fun p -> p.Geometry.Units))
    e.Values.[start .. start + net.Plans.[i].Geometry.Units - 1]

let private variants =
    [ "tanh / mse (the paper)", Network.lecun1989, Mse
      "scaled tanh / mse-half", Network.create Layout.lecun1989 ScaledTanh ScaledTanh, MseHalf
      "relu / linear softmax cross-entropy", Network.create Layout.lecun1989 Relu Identity, SoftmaxCrossEntropy ]

let private graph = ConnectionGraph.build Layout.lecun1989

/// Parameters with small random biases too, so every bias gradient path is exercised.
let private randomParameters seed =
    let p = Init.create SqrtFanIn Layout.lecun1989 seed
    let rng = Rng(uint64 seed + 99UL)
    p |> Array.map (fun v -> if v = 0.0f then (rng.NextFloat32() - 0.5f) * 0.2f else v)

/// The engine's tests under one provider (generated once per provider by TestKit.perProvider).
let private providerTests (backend: IBackend) =
    [ testList "agrees with the float64 reference" [
          for name, net, loss in variants do
              testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 6 } name <| fun (seed: uint16) (label: byte) ->
                  let label = int label % 10
                  let p = randomParameters (int seed)
                  let x = randomImage (Rng(uint64 seed))
                  let reference = Reference.forward net graph (toDouble p) (toDouble x)
                  let refGrad = Reference.gradient loss net graph (toDouble p) (toDouble x) label
                  let ws = Workspace.create net 1
                  Forward.run backend net p ws x 0 1
                  for i in 0 .. net.Plans.Length - 1 do
                      expectClose 1e-5 (layerValues net ws i) (referenceLayer net reference i) $"{net.Plans.[i].Geometry.Name} outputs"
                  let grad = engineGradient backend net loss p x label
                  for v in net.Layout.Views do
                      let slice (a: 'a array) = a.[v.Offset .. v.Offset + v.Length - 1]
                      expectClose 1e-5 (slice grad |> toDouble) (slice refGrad) $"d{v.Name}"
      ]

      testCase "a batched forward pass through im2col GEMMs equals per-example passes, layer by layer" <| fun () ->
          let net = Network.lecun1989
          let p = randomParameters 3
          let rng = Rng 5UL
          let count = 37
          let xs = Array.init count (fun _ -> randomImage rng) |> Array.concat
          let batch = Workspace.create net count
          Forward.runWith backend net p batch xs 0 count -1
          let one = Workspace.create net 1
          for b in 0 .. count - 1 do
              Forward.run backend net p one xs (b * 256) 1
              for i in 0 .. net.Plans.Length - 1 do
                  let units = net.Plans.[i].Geometry.Units
                  let batched = batch.Outputs.[i].[b * units .. (b + 1) * units - 1] |> toDouble
                  expectClose 1e-6 batched (layerValues net one i) $"example {b} layer {i}"

      testProperty "an SGD step fused into the backward pass equals the gradient followed by the step, bit for bit" <| fun (seed: byte) (variant: byte) (lr: byte) ->
          let _, net, loss = variants.[int variant % variants.Length]
          let p = randomParameters (int seed)
          let rate = 0.001f + float32 lr * 0.0005f
          let x = randomImage (Rng(uint64 seed + 7UL))
          let label = int seed % 10
          let ws = Workspace.create net 1
          let dOut = Array.zeroCreate<float32> net.Layout.OutputSize
          Forward.run backend net p ws x 0 1
          Loss.gradient loss (Forward.outputs net ws) 0 net.Layout.OutputSize label dOut
          let grad = Array.zeroCreate<float32> p.Length
          Backward.run backend net p ws x 0 dOut grad false
          let stepped = Array.copy p
          Optimizer.sgdStep rate stepped grad
          let fused = Array.copy p
          Backward.runInto backend net fused ws x 0 dOut (GradientSink.sgd fused rate) -1
          if KernelPath.servedBy backend PhasePermute then
              Expect.sequenceEqual fused stepped "fused step = gradient, then step"
          else
              // MKL's sgemm sums A B in its own order and rounds alpha * (A B) + beta * C its own way:
              // equal within the rounding of a step (relative to the largest step), not bit for bit.
              let largestStep = grad |> Array.fold (fun m g -> max m (abs (float rate * float g))) 0.0
              Array.iteri2 (fun i (a: float32) (b: float32) ->
                  Expect.floatClose { absolute = 1e-7 + 1e-5 * largestStep; relative = 1e-6 } (float a) (float b) $"fused step [{i}]") fused stepped

      testCase "changing an H1 plane that an H2 plane does not read leaves that H2 plane unchanged" <| fun () ->
          let net = Network.lecun1989
          let layout = net.Layout
          let p = randomParameters 11
          let x = randomImage (Rng 12UL)
          let ws = Workspace.create net 1
          let h2Of (q: float32 array) =
              Forward.run backend net q ws x 0 1
              Array.copy ws.Outputs.[1]
          let before = h2Of p
          // H1 plane 9 feeds H2 planes 4-11 only (the block table).
          let q = Array.copy p
          let h1w, h1b = layout.View "H1w", layout.View "H1b"
          for i in 0 .. 24 do q.[h1w.Offset + 9 * 25 + i] <- q.[h1w.Offset + 9 * 25 + i] + 0.5f
          for i in 0 .. 63 do q.[h1b.Offset + 9 * 64 + i] <- 0.3f
          let after = h2Of q
          for plane in 0 .. 3 do
              Expect.sequenceEqual after.[plane * 16 .. plane * 16 + 15] before.[plane * 16 .. plane * 16 + 15] $"H2 plane {plane}"
          for plane in 4 .. 11 do
              Expect.notEqual after.[plane * 16 .. plane * 16 + 15] before.[plane * 16 .. plane * 16 + 15] $"H2 plane {plane} reads H1 plane 9"

      testCase "the pad value reaches the border units" <| fun () ->
          for padValue in [ -1.0f; 0.5f ] do
              let spec =
                  { Spec.lecun1989 with
                      Layers = Spec.lecun1989.Layers |> List.map (function Local l -> Local { l with PadValue = padValue } | d -> d) }
              let net = Network.create (Layout.create spec) Tanh Tanh
              let p = Array.zeroCreate<float32> net.Layout.ParamCount
              // One tap at the top-left of plane 0's kernel: unit (0,0) sees padding there, unit (1,1) sees pixel (0,0).
              p.[(net.Layout.View "H1w").Offset] <- 1.0f
              let x = randomImage (Rng 1UL)
              let ws = Workspace.create net 1
              Forward.run backend net p ws x 0 1
              let h1 = ws.Outputs.[0]
              Expect.floatClose { absolute = 1e-6; relative = 1e-6 } (float h1.[0]) (tanh (float padValue)) $"border unit, pad {padValue}"
              Expect.floatClose { absolute = 1e-6; relative = 1e-6 } (float h1.[9]) (tanh (float x.[0])) "inner unit reads pixel (0,0)" ]

[<Tests>]
let tests =
    testList "engine" [
        test "MKL loads when required" {
            match Backend.MklUnavailableReason with
            | null -> Expect.isNotNull Backend.Mkl "MKL backend"
            | reason when mklRequired -> failtestf "LECUN_REQUIRE_MKL=1 but %s" reason
            | reason -> ExpectedSkip.skip NoMkl $"MKL not available ({reason}); set LECUN_REQUIRE_MKL=1 to make this a failure"
        }

        // The engine (under managed; the providers agree with the reference, below) and the reference
        // itself, each against finite differences of the reference's float64 loss.
        testList "gradients equal central finite differences in float64" [
          for target, gradientOf in
                [ "managed", (fun net loss p x label -> engineGradient Backend.Managed net loss p x label |> toDouble)
                  "reference", (fun net loss p x label -> Reference.gradient loss net graph (toDouble p) (toDouble x) label) ] do
            testList target [
              for name, net, loss in variants do
                testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 3 } name <| fun (seed: uint16) ->
                    let label = int seed % 10
                    let p = randomParameters (int seed)
                    let x = randomImage (Rng(uint64 seed + 7UL))
                    let grad : float array = gradientOf net loss p x label
                    let pd = toDouble p
                    let lossAt (q: float array) = Reference.lossExact loss (Reference.outputs net (Reference.forward net graph q (toDouble x))) label
                    let rng = Rng(uint64 seed)
                    for v in net.Layout.Views do
                        // 12 parameters of every tensor, drawn at random.
                        let picks = Array.init 12 (fun _ -> v.Offset + rng.NextInt v.Length)
                        let h = 1e-6
                        let fd =
                            picks |> Array.map (fun i ->
                                let q = Array.copy pd
                                q.[i] <- pd.[i] + h
                                let up = lossAt q
                                q.[i] <- pd.[i] - h
                                (up - lossAt q) / (2.0 * h))
                        let ours = picks |> Array.map (fun i -> grad.[i])
                        // The reference gradient sets the scale, so a tensor whose sampled entries all
                        // vanish is not judged on rounding noise alone.
                        let scale = v.Offset + v.Length - 1 |> fun e -> grad.[v.Offset .. e] |> Array.map abs |> Array.max
                        let worst = Array.map2 (fun a b -> abs (a - b) / max (abs b) (max scale 1e-9)) ours fd |> Array.max
                        Expect.isLessThanOrEqual worst 1e-4 $"{v.Name}: worst relative error {worst:E2}"
            ]
        ]

        yield! perProvider providerTests

        if LaneBatch.IsSupported then
            testProperty "the 16-lane batched forward pass equals per-example passes, any count and activation" <| fun (seed: byte) (countRaw: byte) (variant: byte) ->
                let _, net, _ = variants.[int variant % variants.Length]
                let count = 1 + int countRaw % 40
                let p = randomParameters (int seed)
                let rng = Rng(uint64 seed + 1000UL)
                let xs = Array.init count (fun _ -> randomImage rng) |> Array.concat
                let batch = Workspace.create net 40
                Expect.isNonEmpty batch.Lanes "a batch workspace has lane buffers"
                Forward.runLanes net p batch xs 0 count
                let one = Workspace.create net 1
                let last = net.Plans.Length - 1
                let outputs = net.Layout.OutputSize
                for b in 0 .. count - 1 do
                    Forward.run Backend.Managed net p one xs (b * 256) 1
                    expectClose 1e-5 (batch.Outputs.[last].[b * outputs .. (b + 1) * outputs - 1] |> toDouble) (layerValues net one last)
                        $"example {b} of {count}"
        else
            testCase "the 16-lane batched forward pass equals per-example passes, any count and activation" <| fun () ->
                Expect.isEmpty (Workspace.create Network.lecun1989 40).Lanes "no lane buffers without AVX-512 or AVX2"
                ExpectedSkip.skip NoLanes "this CPU has neither AVX-512 nor AVX2 with FMA: batches take the im2col path (tested above)"

        testProperty "im2col and col2im are adjoint" <| fun (seed: uint16) ->
            let rng = Rng(uint64 seed)
            let planes, h, w = 1 + rng.NextInt 3, 1 + rng.NextInt 9, 1 + rng.NextInt 9
            let pad = rng.NextInt 3
            let k = 1 + rng.NextInt(min 5 (min h w + 2 * pad))
            let stride = 1 + rng.NextInt 3
            let unfold = Im2ColPlan(planes, h, w, k, stride, pad)
            let n = unfold.Positions
            let scratch = Array.zeroCreate unfold.ScratchSize
            let x = Array.init (planes * h * w) (fun _ -> rng.NextFloat32() - 0.5f)
            let c = Array.init (planes * k * k * n) (fun _ -> rng.NextFloat32() - 0.5f)
            let cols = Array.zeroCreate (planes * k * k * n)
            // Pad value 0 makes im2col linear, so <im2col x, c> = <x, col2im c>.
            unfold.Forward(ReadOnlySpan x, 0.0f, Span cols, 0, n, Span scratch)
            let back = Array.zeroCreate (planes * h * w)
            unfold.Backward(ReadOnlySpan(Array.append c [| 0.0f |]), Span back)
            let lhs = Array.map2 (fun a b -> float a * float b) cols c |> Array.sum
            let rhs = Array.map2 (fun a b -> float a * float b) x back |> Array.sum
            Expect.floatClose Accuracy.medium lhs rhs "adjoint"

        testList "initialization" [
            test "the same seed gives bit-identical parameters, another seed different ones" {
                let a, b, c = Init.create SqrtFanIn Layout.lecun1989 42, Init.create SqrtFanIn Layout.lecun1989 42, Init.create SqrtFanIn Layout.lecun1989 43
                Expect.sequenceEqual a b "same seed"
                Expect.notEqual a c "different seed"
            }
            for scheme, bound in [ SqrtFanIn, (fun (f: int) -> 2.4f / sqrt (float32 f)); FanIn, (fun f -> 2.4f / float32 f) ] do
                test $"{WeightInit.name scheme}: weights fill [-b, b] of their layer's fan-in; hidden biases 0, output biases -1" {
                    let layout = Layout.lecun1989
                    let p = Init.create scheme layout 1
                    for g in layout.Layers do
                        let bound = bound g.FanIn
                        let w = p.[g.Weight.Offset .. g.Weight.Offset + g.Weight.Length - 1]
                        Expect.all w (fun v -> abs v <= bound) $"{g.Name} within bound"
                        Expect.isGreaterThan (Array.max w) (0.9f * bound) $"{g.Name} fills its range"
                        Expect.isLessThan (Array.min w) (-0.9f * bound) $"{g.Name} fills its range"
                        let b = p.[g.Bias.Offset .. g.Bias.Offset + g.Bias.Length - 1]
                        Expect.allEqual b (if g.Name = "out" then -1.0f else 0.0f) $"{g.Name} biases"
                }
            test "the schemes draw the same numbers: fan-in weights are the sqrt-fan-in ones divided by sqrt F" {
                let layout = Layout.lecun1989
                let a, b = Init.create SqrtFanIn layout 7, Init.create FanIn layout 7
                for g in layout.Layers do
                    for j in g.Weight.Offset .. g.Weight.Offset + g.Weight.Length - 1 do
                        Expect.floatClose Accuracy.medium (float b.[j]) (float a.[j] / sqrt (float g.FanIn)) $"{g.Name} weight {j}"
            }
        ]
    ]

[<Tests>]
let skipTests =
    testList "expected skips" [
        test "a skip counts as expected only when it names a reason this run accepts" {
            let messageOf (f: unit -> unit) =
                try f (); failtest "did not skip" with :? IgnoreException as e -> e.Message
            for reason in [ NoAvx512; NoLanes ] do
                Expect.isTrue (ExpectedSkip.isAccepted (messageOf (fun () -> ExpectedSkip.skip reason "detail"))) $"{reason} is accepted on any run"
            Expect.equal (ExpectedSkip.isAccepted (messageOf (fun () -> ExpectedSkip.skip NoMkl "detail"))) (not mklRequired) "NoMkl only where MKL is not required"
            Expect.equal (ExpectedSkip.isAccepted (messageOf (fun () -> ExpectedSkip.skip NoBrowser "detail"))) (not browserRequired) "NoBrowser only where the browser is not required"
            for message in [ ""; "MKL not available"; "this CPU has no AVX-512"; "detail [expected skip: no AVX-512] " ] do
                Expect.isFalse (ExpectedSkip.isAccepted message) $"a skip that names no reason: '{message}'"
        }
    ]

[<Tests>]
let rngTests =
    testList "rng" [
        test "SplitMix64 gives the published reference stream" {
            // Vigna's splitmix64.c with state 0: the first output is 0xE220A8397B1DCDAF.
            Expect.equal (Rng(0UL).NextUInt64()) 0xE220A8397B1DCDAFUL "first output from seed 0"
        }
        testProperty "NextInt stays in range and reaches every value" <| fun (seed: uint64) ->
            let rng = Rng seed
            let draws = Array.init 2000 (fun _ -> rng.NextInt 7)
            Expect.all draws (fun v -> v >= 0 && v < 7) "in [0, 7)"
            Expect.equal (Array.distinct draws |> Array.sort) [| 0..6 |] "all values drawn"
    ]
