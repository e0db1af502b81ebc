/// Evaluator: the float64 reference, run as `--backend reference`, agrees with every provider on a
/// trained model within float32's error bound; the command line takes it where a model is read only.
module Lecun.Tests.EvaluatorTests

open System
open System.IO
open Expecto
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Cli
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

/// lecun1989 trained 2 passes on the generated digits, as a model file would load it, and 200 test digits.
let private trained =
    lazy
        (let data = synthetic ()
         let recipe = { Recipe.lecun1989 with Passes = 2; Seed = 5 }
         let result = Train.run Backend.Managed recipe data (Init.create recipe.WeightInit ModelFile.layout recipe.Seed) (fun _ _ -> ()) ignore
         let model =
             { Path = "the trained test model"; Parameters = result.Parameters; Network = Recipe.network recipe; Loss = recipe.Loss
               Metadata = ModelFile.metadata recipe DataSetName.Usps None }
         model, data.Test.Take 200)

/// The reference's outputs of digit i and their float32 error bound (Reference.errorBounds).
let private exact (model: ModelFile) (digits: Dataset) (i: int) =
    let graph = ConnectionGraph.build model.Network.Layout
    let p, x = Array.map float model.Parameters, Array.map float (digits.Image(i).ToArray())
    let y = Reference.outputs model.Network (Reference.forward model.Network graph p x)
    let bound, _ = Reference.errorBounds model.Loss model.Network graph p x digits.Labels.[i]
    y, bound

[<Tests>]
let tests =
    testList "evaluator" [
        testList "the reference agrees with the provider on a trained model" (perProvider (fun backend ->
            [ test "outputs within float32's error bound; the same class except near-ties; the loss within the bound the outputs give" {
                let model, digits = trained.Force()
                let engine = Evaluator.evaluate (Evaluator.Engine backend) model digits |> Result.defaultWith failtest
                let reference = Evaluator.evaluate Evaluator.Reference model digits |> Result.defaultWith failtest
                let ws = Workspace.create model.Network 1
                let mutable lossBound = 0.0
                let mutable nearTies = 0
                for i in 0 .. digits.Count - 1 do
                    let y, bound = exact model digits i
                    let scores = Evaluator.scores (Evaluator.Engine backend) model ws (digits.Image(i).ToArray()) $"digit {i}" |> Result.defaultWith failtest
                    let referenceScores = Evaluator.scores Evaluator.Reference model ws (digits.Image(i).ToArray()) $"digit {i}" |> Result.defaultWith failtest
                    for k in 0 .. y.Length - 1 do
                        let off = abs (float scores.[k] - y.[k])
                        if off > bound.[k] then failtestf "digit %d output %d: %.9g, exactly %.9g, off by %.3g, bound %.3g" i k scores.[k] y.[k] off bound.[k]
                        Expect.equal referenceScores.[k] (float32 y.[k]) "the reference's score is the exact output rounded to float32"
                    // A class may differ only where the top two exact outputs are closer than their error bounds.
                    let sorted = Array.sortDescending y
                    let tie = sorted.[0] - sorted.[1] <= 2.0 * Array.max bound
                    if tie then nearTies <- nearTies + 1
                    elif engine.Predictions.[i] <> reference.Predictions.[i] then
                        failtestf "digit %d: class %d under %s, %d exactly, a gap of %.3g" i engine.Predictions.[i] backend.Name reference.Predictions.[i] (sorted.[0] - sorted.[1])
                    // MSE over the outputs: each output off by at most e changes (y - t)^2 by at most 2|y - t| e + e^2.
                    let target k = if k = digits.Labels.[i] then 1.0 else -1.0
                    lossBound <- lossBound + (Array.mapi (fun k v -> 2.0 * abs (v - target k) * bound.[k] + bound.[k] * bound.[k]) y |> Array.sum) / float y.Length
                let lossBound = lossBound / float digits.Count
                Expect.isLessThanOrEqual (abs (engine.Metrics.Loss - reference.Metrics.Loss)) lossBound
                    $"the mean loss within {lossBound:G3} of the exact one"
                Expect.isLessThanOrEqual (abs (engine.Metrics.Misses - reference.Metrics.Misses)) nearTies "misses differ by near-ties at most"
                Expect.equal reference.Metrics.Count digits.Count "every digit counted"
              } ]))
        test "the reference's layers are the exact values of every unit, rounded to float32, in the engine's layout" {
            let model, digits = trained.Force()
            let graph = ConnectionGraph.build model.Network.Layout
            let image = digits.Image(3).ToArray()
            let values = (Reference.forward model.Network graph (Array.map float model.Parameters) (Array.map float image)).Values
            let layers = Evaluator.layers Evaluator.Reference model.Network model.Parameters (Workspace.create model.Network 1) image
            Expect.equal (layers |> Array.map Array.length) (model.Network.Plans |> Array.map (fun p -> p.Geometry.Units)) "each layer's units"
            Expect.equal (Array.concat layers) (values.[model.Network.Layout.InputSize ..] |> Array.map float32) "every unit after the input, in order"
            Expect.throwsT<ArgumentException> (fun () -> Evaluator.layers Evaluator.Reference model.Network model.Parameters (Workspace.create model.Network 1) (Array.zeroCreate 255) |> ignore)
                "a wrong size is refused"
        }
        test "the reference refuses outputs too large for float32, as the engine does" {
            let model, digits = trained.Force()
            // As ModelFileTests: finite weights whose weighted sums grow without bound in a ReLU network;
            // float64 holds them, float32 cannot.
            let net = Network.create Layout.lecun1989 Relu Identity
            let huge = { model with Network = net; Parameters = Array.init net.Layout.ParamCount (fun i -> if i % 2 = 0 then 3e38f else -3e38f) }
            match Evaluator.scores Evaluator.Reference huge (Workspace.create net 1) (digits.Image(0).ToArray()) "digit 0" with
            | Ok y -> failtest $"scores {y} reported"
            | Error e -> Expect.stringContains e "too large for float32" "says why"
            match Evaluator.evaluate Evaluator.Reference huge digits with
            | Ok r -> failtest $"evaluated: loss {r.Metrics.Loss}"
            | Error e -> Expect.stringContains e "too large for float32" "says why"
        }
        testList "training on the reference" [
            test "one digit, one pass: the weights are the initial ones less the rate times the exact gradient" {
                let data = synthetic ()
                let one = { data with Train = data.Train.Take 1 }
                let recipe = { Recipe.lecun1989 with Passes = 1; Seed = 9 }
                let initial = Init.create recipe.WeightInit ModelFile.layout recipe.Seed
                let result = ReferenceTraining.run recipe one initial (fun _ _ -> ()) ignore
                let net = Recipe.network recipe
                let p0 = Array.map float initial
                let g = Reference.gradient recipe.Loss net (ConnectionGraph.build net.Layout) p0 (Array.map float (one.Train.Image(0).ToArray())) one.Train.Labels.[0]
                Expect.equal result.Parameters (Array.map2 (fun p d -> float32 (p - float recipe.LearningRate * d)) p0 g) "one exact SGD step, rounded once"
            }
            test "a pass of per-example SGD: the engine's weights and figures within float32's drift of the reference's" {
                let data = synthetic ()
                let data = { data with Train = data.Train.Take 300; Test = data.Test.Take 100 }
                let recipe = { Recipe.lecun1989 with Passes = 1; Seed = 4 }
                let initial = Init.create recipe.WeightInit ModelFile.layout recipe.Seed
                let heard = ResizeArray<PassMetrics>()
                let exact = ReferenceTraining.run recipe data initial (fun _ _ -> ()) heard.Add
                let engine = Train.run Backend.Managed recipe data initial (fun _ _ -> ()) ignore
                let change (p: float32 array) = Array.map2 (fun a b -> float a - float b) p initial
                let scale = change exact.Parameters |> Array.map abs |> Array.max
                let worst = Array.map2 (fun a b -> abs (a - b)) (change engine.Parameters) (change exact.Parameters) |> Array.max
                // 300 float32 steps drift from the exact ones by rounding only: far below the steps themselves.
                Expect.isLessThan (worst / scale) 1e-3 $"worst weight difference {worst:G3} of the largest change {scale:G3}"
                Expect.equal (List.ofSeq heard) exact.Passes "onPass heard the pass"
                let e, r = List.head engine.Passes, List.head exact.Passes
                Expect.isLessThanOrEqual (abs (e.Test.Misses - r.Test.Misses)) 1 "the same test misses but for a near-tie"
                Expect.floatClose { absolute = 1e-5; relative = 1e-3 } e.Test.Loss r.Test.Loss "the test loss"
            }
            test "TrainRun with the reference writes its run as the engine's, naming the reference" {
                withTempDir (fun dir ->
                    let data = synthetic ()
                    let data = { data with Train = data.Train.Take 100; Test = data.Test.Take 50 }
                    let recipe = { Recipe.lecun1989 with Passes = 1 }
                    let written =
                        TrainRun.train { TrainRun.request recipe DataSetName.Usps data Evaluator.Reference with Out = Some(Path.Combine(dir, "run")) }
                        |> Result.defaultWith failtest
                    let model = ModelFile.load written.Runs.[0].ModelFile |> Result.defaultWith failtest
                    let expected = ReferenceTraining.run recipe data (Init.create recipe.WeightInit ModelFile.layout recipe.Seed) (fun _ _ -> ()) ignore
                    Expect.equal model.Parameters expected.Parameters "the reference's weights"
                    use json = Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(written.Folder, "metrics.json")))
                    Expect.equal (json.RootElement.GetProperty("backend").GetString()) "reference" "metrics.json names the reference"
                    match TrainRun.train { TrainRun.request Recipe.modern DataSetName.Usps data Evaluator.Reference with Out = Some(Path.Combine(dir, "modern")) } with
                    | Ok _ -> failtest "modern trained on the reference"
                    | Error e -> Expect.stringContains e "per-example SGD only" "refused before anything is written"
                    Expect.isFalse (Directory.Exists(Path.Combine(dir, "modern"))) "nothing written")
            }
        ]
        testSequencedGroup "console" <| testList "command line" [
            for args, fragment in
                [ [ "train"; "--backend"; "reference"; "--recipe"; "modern" ], "--backend reference trains per-example SGD only, and modern as given uses adamw"
                  [ "train"; "--backend"; "reference"; "--batch-size"; "8" ], "uses --batch-size 8"
                  [ "ladder"; "--backend"; "reference" ], "--backend reference runs in eval, predict, show, serve and train only"
                  [ "bench"; "--backend"; "reference" ], "--backend reference runs in eval, predict, show, serve and train only" ] do
                test (String.Join(" ", args)) {
                    let code, _, err = runCli args
                    Expect.equal code 1 "exit code 1"
                    Expect.stringContains err fragment "one line saying why"
                    Expect.equal (err.Trim().Split('\n').Length) 1 "one line"
                }
            test "eval --backend reference reports the figures managed does on the same model and digits" {
                withTempDir (fun dir ->
                    let model, _ = trained.Force()
                    let file = Path.Combine(dir, "model.safetensors")
                    Checkpoint.save file ModelFile.layout model.Parameters model.Metadata
                    let report backend =
                        let code, out, err = runCli [ "eval"; "--model"; file; "--backend"; backend; "--json" ]
                        Expect.equal code 0 $"eval --backend {backend} (stderr: {err})"
                        use doc = Text.Json.JsonDocument.Parse out
                        doc.RootElement.GetProperty("misses").GetInt32(), doc.RootElement.GetProperty("loss").GetDouble()
                    let managedMisses, managedLoss = report "managed"
                    let referenceMisses, referenceLoss = report "reference"
                    Expect.isLessThanOrEqual (abs (managedMisses - referenceMisses)) 1 "the same misses but for a near-tie"
                    Expect.floatClose { absolute = 1e-6; relative = 1e-4 } referenceLoss managedLoss "the same loss to float32's accuracy")
            }
            test "eval --backend gpu names the backends, the reference among them" {
                let code, _, err = runCli [ "eval"; "--model"; ServeFixture.modelFile (); "--backend"; "gpu" ]
                Expect.equal code 1 "exit code 1"
                Expect.stringContains err "unknown backend 'gpu' (known: auto, mkl, managed, reference)" "the known names"
            }
        ]
    ]
