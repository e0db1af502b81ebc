/// Optimizer.fs: the parameter updates.
module Lecun.Tests.OptimizerTests

open Expecto
open Lecun.Model

[<Tests>]
let tests =
    testList "optimizers" [
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
    ]
