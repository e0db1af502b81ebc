module Lecun.Tests.RecipeTests

open System
open Expecto
open Lecun.Native.Backends
open Lecun.Model

let private graph = ConnectionGraph.build Layout.lecun1989

let private randomParameters seed =
    let p = Init.create SqrtFanIn Layout.lecun1989 seed
    let rng = Rng(uint64 seed + 5UL)
    p |> Array.map (fun v -> if v = 0.0f then (rng.NextFloat32() - 0.5f) * 0.2f else v)

let private oneDigit (seed: int) =
    let rng = Rng(uint64 seed)
    { Name = "one"; Images = EngineTests.randomImage rng; Labels = [| seed % 10 |] }

[<Tests>]
let tests =
    testList "recipes" [
        testList "newton1989's Gauss-Newton diagonal" [
            testProperty "equals the exact second derivative for a linear output layer under MSE" <| fun (seed: uint16) ->
                // With linear outputs, MSE is exactly quadratic in the output weights and biases, so the
                // Gauss-Newton term is the whole second derivative there.
                let net = Network.create Layout.lecun1989 Tanh Identity
                let p = randomParameters (int seed)
                let digit = oneDigit (int seed)
                let h = Newton.estimateDiagonal Backend.Managed net Mse p digit 1
                let pd = Array.map float p
                let x = Array.map float digit.Images
                let lossAt (q: float array) = Reference.lossExact Mse (Reference.outputs net (Reference.forward net graph q x)) digit.Labels.[0]
                let rng = Rng(uint64 seed)
                for name in [ "outw"; "outb" ] do
                    let v = net.Layout.View name
                    for _ in 1..8 do
                        let i = v.Offset + rng.NextInt v.Length
                        let step = 1e-3
                        let q = Array.copy pd
                        q.[i] <- pd.[i] + step
                        let up = lossAt q
                        q.[i] <- pd.[i] - step
                        let down = lossAt q
                        let exact = (up - 2.0 * lossAt pd + down) / (step * step)
                        Expect.floatClose { absolute = 1e-6; relative = 1e-4 } (float h.[i]) exact $"{name}[{i - v.Offset}]"

            testProperty "is non-negative for every parameter, activation and loss" <| fun (seed: uint16) ->
                for hidden, output, loss in [ Tanh, Tanh, Mse; ScaledTanh, ScaledTanh, MseHalf; Relu, Identity, SoftmaxCrossEntropy ] do
                    let net = Network.create Layout.lecun1989 hidden output
                    let h = Newton.estimateDiagonal Backend.Managed net loss (randomParameters (int seed)) (oneDigit (int seed)) 1
                    Expect.all h (fun v -> v >= 0.0f && Single.IsFinite v) $"{hidden}/{loss}: non-negative and finite"
                    Expect.exists h (fun v -> v > 0.0f) "not all zero"

            test "weights shared by many connections get the sum of their connections' curvatures" {
                // H1's 25 weights per plane are each used by 64 units; its biases by one unit each.
                let net = Network.lecun1989
                let h = Newton.estimateDiagonal Backend.Managed net Mse (randomParameters 3) (oneDigit 3) 1
                let mean (name: string) = let v = net.Layout.View name in h.[v.Offset .. v.Offset + v.Length - 1] |> Array.average
                Expect.isGreaterThan (mean "H1w") (10.0f * mean "H1b") "shared weights collect curvature from 64 positions"
            }
        ]

        testList "each recipe lowers the loss on a tiny problem" [
            for recipe in Recipe.all ->
                test recipe.Name {
                    let data = TrainTests.small ()
                    let tiny = { data with Train = TrainTests.subset data.Train 300; Test = TrainTests.subset data.Test 100 }
                    let r = { recipe with Passes = 3 }
                    let net = Recipe.network r
                    let initial = Init.create r.WeightInit net.Layout r.Seed
                    let before = (Evaluate.split Backend.Managed net r.Loss initial (Workspace.create net 32) tiny.Train).Metrics.Loss
                    let result = Train.run Backend.Managed r tiny initial (fun _ _ -> ()) ignore
                    let after = (List.last result.Passes).Train.Loss
                    Expect.isLessThan after (0.7 * before) $"training loss {before:F4} -> {after:F4}"
                }
        ]

        testList "dropout" [
            test "a mask of ones is the plain forward pass; evaluation never drops" {
                let r = Recipe.modern
                let net = Recipe.network r
                let p = randomParameters 9
                let x = (oneDigit 9).Images
                let drop = Train.dropLayer net r
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
                let drop = Train.dropLayer net r
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
                EngineTests.expectClose 1e-5 (Array.map float grad) refGrad "all gradients"
            }
        ]

        testList "random shifts" [
            testProperty "on a digit with a blank border, equal a shifted copy of the image, bit for bit" <| fun (seed: uint16) (dxRaw: byte) (dyRaw: byte) ->
                // Where the 1-pixel border is background, moving the digit inside the padding and moving
                // it inside its own 16x16 frame (with background filling the uncovered edge) see the same pixels.
                let dx, dy = int dxRaw % 3 - 1, int dyRaw % 3 - 1
                let net = Recipe.network Recipe.modern
                let p = randomParameters (int seed)
                let image = EngineTests.randomImage (Rng(uint64 seed)) |> Array.mapi (fun i v -> if i / 16 % 15 = 0 || i % 16 % 15 = 0 then -1.0f else v)
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

        test "AdamW matches hand-computed steps" {
            // PyTorch's AdamW, by hand: p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
            // p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
            let lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-8
            let p = [| 0.5f; -1.0f; 2.0f |]
            let grads = [ [| 0.1f; -0.2f; 0.0f |]; [| -0.3f; 0.05f; 1.0f |] ]
            let state = Optimizer.AdamState.create 3
            let mutable expected = Array.map float p
            let m, v = Array.zeroCreate 3, Array.zeroCreate 3
            grads |> List.iteri (fun step g ->
                Optimizer.adamWStep (float32 lr) (float32 wd) (float32 b1) (float32 b2) (float32 eps) state p g
                let t = float (step + 1)
                expected <- expected |> Array.mapi (fun i w ->
                    let gi = float g.[i]
                    m.[i] <- b1 * m.[i] + (1.0 - b1) * gi
                    v.[i] <- b2 * v.[i] + (1.0 - b2) * gi * gi
                    w * (1.0 - lr * wd) - lr * (m.[i] / (1.0 - b1 ** t)) / (sqrt (v.[i] / (1.0 - b2 ** t)) + eps))
                for i in 0..2 do
                    Expect.floatClose { absolute = 1e-6; relative = 1e-5 } (float p.[i]) expected.[i] $"step {step + 1}, parameter {i}")
        }

        test "AdamW's learning rate falls linearly from 3e-4 to 1e-4 over the passes" {
            let r = Recipe.modern
            Expect.floatClose Accuracy.high (float (Recipe.rateAt r 1)) 3e-4 "first pass"
            Expect.floatClose Accuracy.high (float (Recipe.rateAt r r.Passes)) 1e-4 "last pass"
            Expect.isLessThan (Recipe.rateAt r 40) (Recipe.rateAt r 39) "decreasing"
        }
    ]
