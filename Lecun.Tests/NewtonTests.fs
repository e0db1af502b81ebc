/// Newton.fs: the Gauss-Newton diagonal of newton1989's optimizer.
module Lecun.Tests.NewtonTests

open System
open Expecto
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Tests.TestSetup

let private graph = ConnectionGraph.build Layout.lecun1989

[<Tests>]
let tests =
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
