module Lecun.Tests.TrainTests

open System
open System.IO
open Expecto
open Lecun.Native.Backends
open Lecun.Model

/// The paper's digits, found through the project's data search path (../shared/data in CI).
let usps = lazy (Data.load "usps" None |> function Ok d -> d | Error e -> failwith e)

let subset (d: Dataset) (count: int) = d.Take count

/// A small run: 1000 training and 500 test digits of USPS.
let small () =
    let d = usps.Force()
    { d with Train = subset d.Train 1000; Test = subset d.Test 500 }

let private quiet = fun (_: int) (_: int) -> ()

[<Tests>]
let tests =
    testList "training" [
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

        test "two runs with the same seed give identical metrics and weights" {
            let data = small ()
            let recipe = { Recipe.lecun1989 with Passes = 2 }
            for backend in EngineTests.backends () do
                let once () = Train.run backend recipe data (Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed) quiet ignore
                let a, b = once (), once ()
                Expect.equal (a.Passes |> List.map (fun p -> p.Train, p.Test)) (b.Passes |> List.map (fun p -> p.Train, p.Test)) $"{backend.Name} metrics"
                Expect.sequenceEqual a.Parameters b.Parameters $"{backend.Name} weights bit-identical"
        }

        test "mkl and managed train to the same weights within float32 rounding" {
            let data = small ()
            let recipe = { Recipe.lecun1989 with Passes = 1 }
            match EngineTests.backends () with
            | [ managed; mkl ] ->
                let initial = Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed
                let a = Train.run managed recipe data initial quiet ignore
                let b = Train.run mkl recipe data initial quiet ignore
                EngineTests.expectClose 1e-3 (Array.map float a.Parameters) (Array.map float b.Parameters) "weights after 1000 SGD steps"
            | _ -> skiptest "MKL not available (the 'MKL loads when required' test reports why)"
        }

        test "a warm-up beside a run leaves the run's weights bit-identical, for every recipe" {
            let data = small ()
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

        test "per-example training allocates nothing" {
            let data = small ()
            let recipe = Recipe.lecun1989
            for backend in EngineTests.backends () do
                let net = Recipe.network recipe
                let p = Init.create SqrtFanIn net.Layout 1
                let ws = Workspace.create net 1
                let state = Train.createState net recipe
                let pass () = Train.trainOnePass backend net recipe 1 p ws state data.Train ignore
                pass () // warm up: JIT and tiering
                let before = GC.GetAllocatedBytesForCurrentThread()
                pass ()
                let allocated = GC.GetAllocatedBytesForCurrentThread() - before
                Expect.equal allocated 0L $"{backend.Name}: bytes allocated in 1000 presentations"
        }

        test "minibatch SGD on the averaged gradient equals one step on the mean gradient" {
            let data = small ()
            let net = Network.lecun1989
            let p0 = Init.create SqrtFanIn net.Layout 5
            let recipe = { Recipe.lecun1989 with BatchSize = 4; LearningRate = 0.1f }
            let four = { data.Train with Images = data.Train.Images.[0 .. 4 * 256 - 1]; Labels = data.Train.Labels.[0..3] }
            let p = Array.copy p0
            Train.trainOnePass Backend.Managed net recipe 1 p (Workspace.create net 1) (Train.createState net recipe) four ignore
            // By hand: the mean of four per-example gradients at p0.
            let mean = Array.zeroCreate<float> p0.Length
            for i in 0..3 do
                let g = EngineTests.engineGradient Backend.Managed net Mse p0 (four.Image(i).ToArray()) four.Labels.[i]
                for j in 0 .. g.Length - 1 do mean.[j] <- mean.[j] + float g.[j] / 4.0
            let expected = Array.map2 (fun (w: float32) g -> float w - 0.1 * g) p0 mean
            EngineTests.expectClose 1e-6 (Array.map float p) expected "weights after one minibatch step"
        }
    ]

let private consoleGate = obj ()

/// Runs the command line in-process, capturing stdout and stderr. Console is process-wide, so one
/// command line runs at a time.
let runCli (args: string list) =
  lock consoleGate (fun () ->
    let out, err = new StringWriter(), new StringWriter()
    let oldOut, oldErr = Console.Out, Console.Error
    Console.SetOut out
    Console.SetError err
    try
        let code = Lecun.Cli.Program.run (Array.ofList args)
        code, out.ToString(), err.ToString()
    finally
        Console.SetOut oldOut
        Console.SetError oldErr)

[<Tests>]
let cliTests =
    testSequencedGroup "console" <| testList "command line" [
        // The program skips this check at start-up (it costs ~40 ms); here it runs on every template.
        test "the command-line templates pass Argu's structure check" {
            Argu.ArgumentParser.Create<Lecun.Cli.Program.CliArgs>(programName = "lecun", checkStructure = true) |> ignore
        }
        for args, fragment in
            [ [ "train"; "--passes"; "many" ], "--passes"
              [ "train"; "--passes"; "0" ], "--passes must be at least 1"
              [ "train"; "--lr"; "-1" ], "--lr must be a positive number"
              [ "train"; "--recipe"; "lecun2025" ], "unknown recipe 'lecun2025'"
              [ "train"; "--backend"; "gpu" ], "unknown backend 'gpu'"
              [ "train"; "--weight-init"; "xavier" ], "unknown weight initialization 'xavier'"
              [ "train"; "--holdout"; "7291"; "--passes"; "1"; "--out"; Path.Combine(Path.GetTempPath(), "lecun-bad-holdout") ], "--holdout must be between 1 and 7290"
              [ "train"; "--data-set"; "cifar"; "--passes"; "1"; "--out"; Path.Combine(Path.GetTempPath(), "lecun-bad-set") ], "cifar"
              [ "train"; "--init"; "/nonexistent/model.safetensors"; "--passes"; "1"; "--out"; Path.Combine(Path.GetTempPath(), "lecun-bad-init") ], "/nonexistent/model.safetensors"
              [ "eval" ], "--model"
              [ "frobnicate" ], "frobnicate" ] do
            test (String.Join(" ", args)) {
                let code, _, err = runCli args
                Expect.notEqual code 0 "non-zero exit"
                Expect.stringContains err fragment "the error names the problem"
                Expect.isFalse (err.Contains "   at ") "no stack trace"
            }
        test "--holdout reports the held-out training digits, not the test set, and says so" {
            let dir = Path.Combine(Path.GetTempPath(), $"lecun-holdout-{Guid.NewGuid():N}")
            try
                let code, out, err = runCli [ "train"; "--holdout"; "7000"; "--passes"; "1"; "--out"; dir ]
                Expect.equal code 0 $"exit code (stderr: {err})"
                Expect.stringContains out "(291 train, 7000 held-out digits)" "trains on the rest, evaluates on the held-out digits"
                Expect.stringContains out "| held-out loss" "the pass line names the split"
                Expect.isFalse (out.Contains "LeCun et al. 1989") "no comparison with the paper's test figures"
                Expect.isTrue (File.Exists(Path.Combine(dir, "model.safetensors"))) "the run's files are written"
            finally
                if Directory.Exists dir then Directory.Delete(dir, true)
        }
        test "--help prints usage and succeeds" {
            let code, out, _ = runCli [ "train"; "--help" ]
            Expect.equal code 0 "exit code"
            Expect.stringContains out "--batch-size" "usage lists the options"
        }
    ]
