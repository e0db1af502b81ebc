module Lecun.Tests.TrainTests

open System
open System.IO
open Expecto
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

let private quiet = fun (_: int) (_: int) -> ()

let private graph = ConnectionGraph.build Layout.lecun1989

[<Tests>]
let tests =
    testList "training" [
        TestKit.realData [
            test "a short run lowers loss and error below stated bounds" {
                let data = small ()
                let recipe = { Recipe.lecun1989 with Passes = 4 }
                let net = Recipe.network recipe
                let initial = Init.create recipe.WeightInit net.Layout recipe.Seed
                let before = Evaluate.split Backend.Managed net recipe.Loss initial (Workspace.create net 64) data.Train
                let result = Train.run Backend.Managed recipe data initial quiet ignore
                let last = List.last result.Passes
                Expect.isLessThan last.Train.Loss (before.Metrics.Loss / 5.0) "training loss falls at least fivefold"
                Expect.isLessThan last.Train.Error 5.0 "train error below 5% after 4 passes on 1000 digits"
                Expect.isLessThan last.Test.Error 15.0 "test error below 15%"
                Expect.isGreaterThan before.Metrics.Error 60.0 "the untrained network is near chance"
            }
        ]

        test "mkl and managed train to the same weights within float32 rounding" {
            let data = small ()
            let recipe = { Recipe.lecun1989 with Passes = 1 }
            let mkl = TestKit.mkl ()
            let initial = Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed
            let a = Train.run Backend.Managed recipe data initial quiet ignore
            let b = Train.run mkl recipe data initial quiet ignore
            TestKit.expectClose 1e-4 (Array.map float a.Parameters) (Array.map float b.Parameters) "weights after 1000 SGD steps"
        }

        test "a warm-up beside a run leaves the run's weights bit-identical, for every recipe" {
            let data = synthetic ()
            for recipe in Recipe.all do
                let recipe = { recipe with Passes = 1 }
                let initial = Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed
                let alone = Train.run Backend.Managed recipe data initial quiet ignore
                // Warm-ups one after another from before the run starts until it ends (at least one).
                let running = ref true
                let warmUps = ref 0
                let warm = Threading.Tasks.Task.Run(fun () ->
                    while running.Value || warmUps.Value = 0 do
                        Train.warmUp Backend.Managed recipe
                        warmUps.Value <- warmUps.Value + 1)
                let beside = Train.run Backend.Managed recipe data initial quiet ignore
                running.Value <- false
                warm.Wait()
                Expect.sequenceEqual beside.Parameters alone.Parameters $"{recipe.Name}: weights with a warm-up running beside"
        }

        test "minibatch SGD on the averaged gradient equals one step on the mean gradient" {
            let data = synthetic ()
            let net = Network.lecun1989
            let p0 = Init.create SqrtFanIn net.Layout 5
            let recipe = { Recipe.lecun1989 with BatchSize = 4; LearningRate = 0.1f }
            let four = { data.Train with Images = data.Train.Images.[0 .. 4 * 256 - 1]; Labels = data.Train.Labels.[0..3] }
            let p = Array.copy p0
            Train.trainOnePass Backend.Managed net recipe 1 p (Workspace.create net 1) (Train.createState net recipe) four ignore
            // By hand: the mean of four per-example gradients at p0.
            let mean = Array.zeroCreate<float> p0.Length
            for i in 0..3 do
                let g = TestKit.engineGradient Backend.Managed net Mse p0 (four.Image(i).ToArray()) four.Labels.[i]
                for j in 0 .. g.Length - 1 do mean.[j] <- mean.[j] + float g.[j] / 4.0
            let expected = Array.map2 (fun (w: float32) g -> float w - 0.1 * g) p0 mean
            TestKit.expectClose 1e-6 (Array.map float p) expected "weights after one minibatch step"
        }

        yield! TestKit.perProvider (fun backend ->
            [ test "two runs with the same seed give identical metrics and weights" {
                  let data = synthetic ()
                  let recipe = { Recipe.lecun1989 with Passes = 2 }
                  let once () = Train.run backend recipe data (Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed) quiet ignore
                  let a, b = once (), once ()
                  Expect.equal (a.Passes |> List.map (fun p -> p.Train, p.Test)) (b.Passes |> List.map (fun p -> p.Train, p.Test)) "metrics"
                  Expect.sequenceEqual a.Parameters b.Parameters "weights bit-identical"
              }

              test "per-example training allocates nothing" {
                  let data = synthetic ()
                  let recipe = Recipe.lecun1989
                  let net = Recipe.network recipe
                  let p = Init.create SqrtFanIn net.Layout 1
                  let ws = Workspace.create net 1
                  let state = Train.createState net recipe
                  let pass () = Train.trainOnePass backend net recipe 1 p ws state data.Train ignore
                  Expect.equal (steadyAllocation pass) 0L "bytes allocated in 1000 presentations"
              } ])

        testList "training-time randomness" [
            testList "dropout" [
                test "a mask of ones is the plain forward pass; evaluation never drops" {
                    let r = Recipe.modern
                    let net = Recipe.network r
                    let p = randomParameters 9
                    let x = (oneDigit 9).Images
                    let drop = (Train.dropLayer net r).Value
                    Expect.equal net.Plans.[drop + 1].Geometry.Name "H3" "dropout sits before H3"
                    let ws = Workspace.create net 1
                    Forward.run Backend.Managed net p ws x 0 1
                    let plain = Array.copy (Forward.outputs net ws)
                    Array.Fill(ws.DropMask.[drop], 1.0f)
                    Forward.runWith Backend.Managed net p ws x 0 1 drop
                    Expect.sequenceEqual (Forward.outputs net ws) plain "mask of ones"
                    // Drop half the units: the outputs change ...
                    ws.DropMask.[drop] |> Array.iteri (fun i _ -> ws.DropMask.[drop].[i] <- if i % 2 = 0 then 0.0f else 2.0f)
                    Forward.runWith Backend.Managed net p ws x 0 1 drop
                    Expect.notEqual (Forward.outputs net ws) plain "a real mask changes the outputs"
                    // ... but evaluation on the same workspace, mask still set, is the plain pass.
                    Forward.run Backend.Managed net p ws x 0 1
                    Expect.sequenceEqual (Forward.outputs net ws) plain "evaluation ignores the mask"
                }
                test "the gradient under dropout matches the reference network with the mask folded into H3's weights" {
                    // Dropping H2 unit u with scale s is the same as multiplying H3w's row u by s.
                    let r = Recipe.modern
                    let net = Recipe.network r
                    let p = randomParameters 4
                    let digit = oneDigit 4
                    let drop = (Train.dropLayer net r).Value
                    let ws = Workspace.create net 1
                    let mask = Array.init 192 (fun i -> if i % 3 = 0 then 0.0f else 1.5f)
                    Array.blit mask 0 ws.DropMask.[drop] 0 192
                    let grad = Array.zeroCreate p.Length
                    let dOut = Array.zeroCreate 10
                    Forward.runWith Backend.Managed net p ws digit.Images 0 1 drop
                    Loss.gradient r.Loss (Forward.outputs net ws) 0 10 digit.Labels.[0] dOut
                    Backward.runWith Backend.Managed net p ws digit.Images 0 dOut grad false drop
                    let h3w = net.Layout.View "H3w"
                    let folded = Array.map float p
                    for u in 0..191 do
                        for j in 0..29 do folded.[h3w.Offset + u * 30 + j] <- folded.[h3w.Offset + u * 30 + j] * float mask.[u]
                    let refGrad = Reference.gradient r.Loss net graph folded (Array.map float digit.Images) digit.Labels.[0]
                    // Chain rule through the fold: dL/dW = mask * dL/dW_folded for H3w; other tensors unchanged.
                    for u in 0..191 do
                        for j in 0..29 do refGrad.[h3w.Offset + u * 30 + j] <- refGrad.[h3w.Offset + u * 30 + j] * float mask.[u]
                    TestKit.expectClose 1e-5 (Array.map float grad) refGrad "all gradients"
                }
            ]

            testList "random shifts" [
                testProperty "on a digit with a blank border, equal a shifted copy of the image, bit for bit" <| fun (seed: uint16) (dxRaw: byte) (dyRaw: byte) ->
                    // Where the 1-pixel border is background, moving the digit inside the padding and moving
                    // it inside its own 16x16 frame (with background filling the uncovered edge) see the same pixels.
                    let dx, dy = int dxRaw % 3 - 1, int dyRaw % 3 - 1
                    let net = Recipe.network Recipe.modern
                    let p = randomParameters (int seed)
                    let image = TestKit.randomImage (Rng(uint64 seed)) |> Array.mapi (fun i v -> if i / 16 % 15 = 0 || i % 16 % 15 = 0 then -1.0f else v)
                    let moved = Array.init 256 (fun i ->
                        let y, x = i / 16 - dy, i % 16 - dx
                        if y >= 0 && y < 16 && x >= 0 && x < 16 then image.[y * 16 + x] else -1.0f)
                    let ws = Workspace.create net 1
                    Forward.runWith Backend.Managed net p ws moved 0 1 -1
                    let expected = Array.copy (Forward.outputs net ws)
                    Forward.runShifted Backend.Managed net p ws (InputShifts.plan (InputShifts.create net 1) dx dy) image 0 -1
                    Expect.sequenceEqual (Forward.outputs net ws) expected $"outputs for shift ({dx}, {dy})"

                test "of up to one pixel lose no pixel of the digit, and the uncovered edge reads the background" {
                    // Most USPS digits touch the top and bottom rows: a shift that cropped would cut them.
                    let net = Recipe.network Recipe.modern
                    let shifts = InputShifts.create net 1
                    Expect.equal shifts.Plans.Length 9 "one plan per shift"
                    let image = Array.init 256 (fun i -> float32 (i + 1))
                    let cols = Array.zeroCreate shifts.Plans.[0].TransposedSize
                    let colsT = Array.zeroCreate shifts.Plans.[0].TransposedSize
                    for dy in -1 .. 1 do
                        for dx in -1 .. 1 do
                            let plan = InputShifts.plan shifts dx dy
                            plan.ForwardBoth(ReadOnlySpan image, -1.0f, Span cols, Span colsT, Span(Array.zeroCreate plan.ScratchSize))
                            let seen = cols |> Seq.take (plan.Rows * plan.Positions) |> Set.ofSeq
                            for i in 0 .. 255 do
                                Expect.isTrue (seen.Contains(float32 (i + 1))) $"pixel {i} is read under shift ({dx}, {dy})"
                            // Output (0, 0)'s window starts 2 rows and 2 columns into the padding, so the image's
                            // first pixel, moved by (dx, dy), is its tap (2 + dy, 2 + dx).
                            let topLeft = cols.[((2 + dy) * 5 + 2 + dx) * plan.Positions]
                            Expect.equal topLeft 1.0f $"the image's first pixel sits at its shifted place ({dx}, {dy})"
                            if dy = 1 then
                                Expect.equal cols.[(2 * 5 + 2) * plan.Positions] -1.0f "the row uncovered at the top reads the background"
                }

                test "need a locally-connected first layer and a shift that is not negative" {
                    let net = Recipe.network Recipe.modern
                    Expect.throws (fun () -> InputShifts.create net -1 |> ignore) "negative shift"
                    Expect.throws (fun () -> InputShifts.plan (InputShifts.create net 1) 2 0 |> ignore) "a shift past the plans"
                    Expect.equal (InputShifts.create net 0).Plans.Length 0 "no plans without shifts"
                }
            ]
        ]
    ]
