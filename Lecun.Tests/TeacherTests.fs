/// Networks other than the 1989 one (Recipe's network, NetworkText's files, ModelFile.loadAny) and
/// distillation from saved teachers of any network (Distill.createSaved, Train.runWithTeachers).
module Lecun.Tests.TeacherTests

open System
open System.IO
open Expecto
open Lecun.Native.Backends
open Lecun.Native.Kernels
open Lecun.Model
open Lecun.Tests.TestKit

let private local name planes (table: int list list) =
    Local { Name = name; Planes = planes; Kernel = 5; Stride = 2; Padding = 2; PadValue = -1.0f; Table = table }

/// A small network of the 1989 family, not the 1989 one: H1 4 planes, H2 6 planes reading all 4, H3 8.
let private smallSpec (outputs: int) =
    { Input = { Planes = 1; Height = 16; Width = 16 }
      Layers = [ local "H1" 4 (ConnectionTable.full 1 4); local "H2" 6 (ConnectionTable.full 4 6); Dense { Name = "H3"; Units = 8 }; Dense { Name = "out"; Units = outputs } ] }

let private smallRecipe = { Recipe.modern with Network = smallSpec 10; Passes = 1; Dropout = 0.0f }

/// Weights of a network with every bias random too, so every parameter matters.
let private weights (layout: NetLayout) (seed: int) =
    let rng = Rng(uint64 seed)
    Init.create SqrtFanIn layout seed |> Array.map (fun v -> if v = 0.0f then (rng.NextFloat32() - 0.5f) * 0.2f else v)

let private teacherOf (spec: NetSpec) (output: Activation) (seed: int) : SavedTeacher =
    let layout = Layout.create spec
    { Name = "the test teacher"; Network = Network.create layout Relu output; Parameters = weights layout seed }

let private distilling (weight: float32) (temperature: float32) (recipe: Recipe) =
    { recipe with Refine = { recipe.Refine with Distill = Some { Teachers = 1; Temperature = temperature; Weight = weight; Saved = true } } }

let private expectOneLine (result: Result<'a, string>) (mustContain: string) =
    match result with
    | Ok _ -> failtest $"accepted; expected a refusal naming '{mustContain}'"
    | Error e ->
        Expect.stringContains e mustContain "the message says what is wrong"
        Expect.isFalse (e.Contains '\n') $"one line: {e}"

/// softmax(y / t) in float64.
let private softmax (t: float) (y: float array) =
    let m = Array.max y
    let e = y |> Array.map (fun v -> exp ((v - m) / t))
    let z = Array.sum e
    e |> Array.map (fun v -> v / z)

[<Tests>]
let tests =
    testList "teachers and other networks" [
        test "a model file of another network round-trips: its weights and its network; load (1989 only) refuses it in one line" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "small.safetensors")
                let layout = Recipe.layout smallRecipe
                let p = weights layout 3
                ModelFile.save path smallRecipe DataSetName.Usps (Some 1000) p
                match ModelFile.loadAny path with
                | Error e -> failtest e
                | Ok model ->
                    Expect.sequenceEqual model.Parameters p "the weights"
                    Expect.equal model.Network.Layout.Spec (smallSpec 10) "the network"
                    Expect.equal (model.Network.Plans |> Array.map (fun plan -> plan.Activation)) [| Relu; Relu; Relu; Identity |] "the squashing"
                    Expect.isFalse (model.Metadata.ContainsKey "spec") "no 1989 spec name"
                    Expect.equal (ModelFile.info model).HeldOut (Some 1000) "the hold-out"
                expectOneLine (ModelFile.load path) "only train --teacher")
        }

        test "a 1989 model file, and one from before the network was recorded, still load as the 1989 network" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "m.safetensors")
                let p = weights Layout.lecun1989 4
                ModelFile.save path Recipe.modern DataSetName.Usps None p
                for load in [ ModelFile.load; ModelFile.loadAny ] do
                    match load path with
                    | Error e -> failtest e
                    | Ok model ->
                        Expect.equal model.Network.Layout.Spec Spec.lecun1989 "the 1989 network"
                        Expect.sequenceEqual model.Parameters p "the weights"
                        Expect.equal model.Metadata.["spec"] "lecun1989" "the spec name as before"
                let old = Path.Combine(dir, "old.safetensors")
                Checkpoint.save old Layout.lecun1989 p (Map.ofList [ "recipe", "lecun1989"; "spec", "lecun1989" ])
                match ModelFile.loadAny old with
                | Error e -> failtest e
                | Ok model -> Expect.equal model.Network.Layout.Spec Spec.lecun1989 "no 'network': the 1989 network")
        }

        test "a header whose network is not a network text, or whose weights are not its network's, is one error" {
            withTempDir (fun dir ->
                let bad = Path.Combine(dir, "bad.safetensors")
                Checkpoint.save bad Layout.lecun1989 (weights Layout.lecun1989 5) (Map.ofList [ "network", "{\"input\": [1, 16" ])
                expectOneLine (ModelFile.loadAny bad) "metadata 'network'"
                let invalid = Path.Combine(dir, "invalid.safetensors")
                let text = NetworkText.write { NetworkText.NetworkValue.Spec = { smallSpec 10 with Layers = [] }; Hidden = Relu; Output = Identity }
                Checkpoint.save invalid Layout.lecun1989 (weights Layout.lecun1989 5) (Map.ofList [ "network", text ])
                expectOneLine (ModelFile.loadAny invalid) "no layers"
                // The 1989 network's weights under a header that records the small network.
                let mismatched = Path.Combine(dir, "mismatched.safetensors")
                let small = NetworkText.write { NetworkText.NetworkValue.Spec = smallSpec 10; Hidden = Relu; Output = Identity }
                Checkpoint.save mismatched Layout.lecun1989 (weights Layout.lecun1989 6) (Map.ofList [ "network", small ])
                expectOneLine (ModelFile.loadAny mismatched) "checkpoint"
                // The 1989 spec name beside another network.
                let both = Path.Combine(dir, "both.safetensors")
                Checkpoint.save both (Layout.create (smallSpec 10)) (weights (Layout.create (smallSpec 10)) 6) (Map.ofList [ "network", small; "spec", "lecun1989" ])
                expectOneLine (ModelFile.loadAny both) "'network' records another")
        }

        test "a saved teacher's probabilities are the softmax of its own network's outputs at the temperature, and the student's gradient is the soft-target formula's" {
            let w, t = 0.6f, 2.5f
            let recipe = distilling w t { Recipe.modern with Dropout = 0.0f; Shift = 0; Passes = 1 }
            let student = Recipe.network recipe
            let teacher = teacherOf (smallSpec 10) Identity 7
            let digit = TestSetup.oneDigit 3
            let initial = weights student.Layout 8
            let settings = recipe.Refine.Distill.Value
            let teachers = Distill.createSaved student settings [| teacher |]
            // The teacher in float64 (the reference evaluator), through its own graph.
            let x = digit.Images |> Array.map float
            let teacherY = Reference.outputs teacher.Network (Reference.forward teacher.Network (Evaluator.graphOf teacher.Network) (Array.map float teacher.Parameters) x)
            let expectedP = softmax (float t) teacherY
            Distill.teach Backend.Managed student teachers ValueNone digit.Images 0
            expectClose 1e-5 (Array.map float teachers.Probabilities) expectedP "the teacher's probabilities"
            // One presentation: state.Grad is its gradient at `initial` (AdamW steps after it).
            let state = { Train.createState student recipe with Teachers = Some teachers }
            Train.trainOnePass Backend.Managed student recipe 1 (Array.copy initial) (Workspace.create student 1) state digit ignore
            // The formula in float64: dOut = (1 - w)(softmax y - onehot) + w T (softmax(y / T) - p), and the
            // parameters' gradient J^T dOut = -sum_k dOut_k g_k, with g_k the reference's softmax-ce gradient
            // for label k (J^T (softmax y - e_k)), since the dOut_k sum to 0.
            let graph = Evaluator.graphOf student
            let p64 = Array.map float initial
            let y = Reference.outputs student (Reference.forward student graph p64 x)
            let label = digit.Labels.[0]
            let s1, sT = softmax 1.0 y, softmax (float t) y
            let dOut = Array.init 10 (fun k -> (1.0 - float w) * (s1.[k] - (if k = label then 1.0 else 0.0)) + float w * float t * (sT.[k] - expectedP.[k]))
            let expected = Array.zeroCreate<float> initial.Length
            for k in 0 .. 9 do
                let g = Reference.gradient SoftmaxCrossEntropy student graph p64 x k
                for i in 0 .. expected.Length - 1 do
                    expected.[i] <- expected.[i] - dOut.[k] * g.[i]
            let scale = expected |> Array.map abs |> Array.max
            let worst = Array.map2 (fun (a: float32) e -> abs (float a - e)) state.Grad expected |> Array.max
            Expect.isGreaterThan scale 1e-6 "the gradient is not zero"
            Expect.isLessThanOrEqual (worst / scale) 1e-4 $"the gradient: worst difference {worst:E2} of {scale:E2}"
        }

        test "with a saved teacher, a batch on the lanes changes the weights as the accumulated per-example pass does" {
            if not LaneBatch.IsSupported then ExpectedSkip.skip NoLanes "no AVX-512 or AVX2 with FMA"
            let recipe = distilling 0.5f 4.0f { Recipe.refined with BatchSize = 20; Passes = 1 }
            let student = Recipe.network recipe
            Expect.isTrue (Train.runsOnLanes Backend.Managed student 20) "the batches run on the lanes"
            let teacher = teacherOf (smallSpec 10) Identity 9
            let data = (TestSetup.synthetic ()).Train.Take 67
            let initial = Init.create recipe.WeightInit student.Layout 6
            let pass (capacity: int) =
                let p = Array.copy initial
                let state = { Train.createState student recipe with Teachers = Some(Distill.createSaved student recipe.Refine.Distill.Value [| teacher |]) }
                Train.trainOnePass Backend.Managed student recipe 1 p (Workspace.create student capacity) state data ignore
                Array.map2 (-) p initial
            let lanes, accumulated = pass 20, pass 1
            let withoutTeacher =
                let r = { recipe with Refine = { recipe.Refine with Distill = None } }
                let p = Array.copy initial
                Train.trainOnePass Backend.Managed student r 1 p (Workspace.create student 20) (Train.createState student r) data ignore
                Array.map2 (-) p initial
            let gap (a: float32 array) (b: float32 array) = Array.map2 (fun (u: float32) v -> abs (float u - float v)) a b |> Array.max
            let scale = accumulated |> Array.map (fun v -> abs (float v)) |> Array.max
            Expect.isLessThanOrEqual (gap lanes accumulated / scale) 2e-3 "lanes and per example agree"
            Expect.isGreaterThan (gap withoutTeacher accumulated / scale) 1e-2 "and the teacher changes the step"
        }

        test "a network text too large to train or load is refused in one line, before anything is sized by it" {
            let text (spec: NetSpec) = NetworkText.write { NetworkText.NetworkValue.Spec = spec; Hidden = Relu; Output = Identity }
            let withLayer (i: int) (layer: LayerSpec) = { smallSpec 10 with Layers = (smallSpec 10).Layers |> List.mapi (fun j l -> if j = i then layer else l) }
            let hostile =
                [ "huge H3", withLayer 2 (Dense { Name = "H3"; Units = 2_000_000_000 }), "units"
                  "parameters", withLayer 2 (Dense { Name = "H3"; Units = 1_000_000 }), "parameters"
                  "padding", withLayer 0 (local "H1" 4 (ConnectionTable.full 1 4) |> function Local l -> Local { l with Padding = 100_000; Stride = 100_000 } | l -> l), "padded input"
                  // 6.3 million parameters (H2 500 planes reading 500), but 100 million connections.
                  "connections", { smallSpec 10 with Layers = [ local "H1" 500 (ConnectionTable.full 1 500); local "H2" 500 (ConnectionTable.full 500 500)
                                                                Dense { Name = "H3"; Units = 8 }; Dense { Name = "out"; Units = 10 } ] }, "connections"
                  "input", { smallSpec 10 with Input = { Planes = 1; Height = 100_000; Width = 100_000 } }, "input" ]
            for name, spec, fragment in hostile do
                Expect.isOk (Spec.validate spec) $"{name}: a valid spec, only too large"
                expectOneLine (NetworkText.read (text spec)) fragment
            // A model file whose header records such a network is refused before its weights are read.
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "huge.safetensors")
                let spec = withLayer 2 (Dense { Name = "H3"; Units = 2_000_000_000 })
                Checkpoint.save path Layout.lecun1989 (weights Layout.lecun1989 1) (Map.ofList [ "network", text spec ])
                expectOneLine (ModelFile.loadAny path) "units")
        }

        test "a saved teacher that does not fit the student is refused in one line" {
            let student = Network.create Layout.lecun1989 Relu Identity
            expectOneLine (Distill.checkTeacher student (teacherOf (smallSpec 12) Identity 1)) "12 outputs"
            expectOneLine (Distill.checkTeacher student (teacherOf (smallSpec 10) Tanh 1)) "linear"
            let kernel3 = { smallSpec 10 with Layers = Local { Name = "H1"; Planes = 4; Kernel = 3; Stride = 2; Padding = 1; PadValue = -1.0f; Table = ConnectionTable.full 1 4 } :: (smallSpec 10).Layers.Tail }
            expectOneLine (Distill.checkTeacher student (teacherOf kernel3 Identity 1)) "first layer"
            let short = { teacherOf (smallSpec 10) Identity 1 with Parameters = Array.zeroCreate 5 }
            expectOneLine (Distill.checkTeacher student short) "weights hold 5"
            let recipe = distilling 0.5f 2.0f Recipe.modern
            expectOneLine (Train.checkSavedTeachers recipe [||]) "1 saved teachers, but 0"
            expectOneLine (Train.checkSavedTeachers Recipe.modern [| teacherOf (smallSpec 10) Identity 1 |]) "0 saved teachers, but 1"
            Expect.isOk (Train.checkSavedTeachers recipe [| teacherOf (smallSpec 10) Identity 1 |]) "a teacher that fits"
        }

        test "the recipe's options: --teacher with --distill, a temperature without teachers, and networks a run cannot train are refused" {
            expectOneLine (Recipe.apply [ RecipeOverride.Distill 2; RecipeOverride.SavedTeachers 1 ] Recipe.refined) "do not combine"
            expectOneLine (Recipe.apply [ RecipeOverride.Temperature 4.0 ] Recipe.refined) "--teacher"
            expectOneLine (Recipe.apply [ RecipeOverride.SavedTeachers 1 ] Recipe.lecun1989) "--teacher need softmax cross-entropy"
            match Recipe.apply [ RecipeOverride.SavedTeachers 2; RecipeOverride.Temperature 4.0; RecipeOverride.DistillWeight 0.5 ] Recipe.refined with
            | Ok r -> Expect.equal r.Refine.Distill (Some { Teachers = 2; Temperature = 4.0f; Weight = 0.5f; Saved = true }) "two saved teachers at T 4, half soft"
            | Error e -> failtest e
            expectOneLine (Recipe.validate { Recipe.modern with Network = smallSpec 12 }) "10 outputs"
            expectOneLine (Recipe.validate { Recipe.modern with Network = { smallSpec 10 with Input = { Planes = 1; Height = 28; Width = 28 } } }) "16x16"
            let denseFirst = { smallSpec 10 with Layers = [ Dense { Name = "H3"; Units = 8 }; Dense { Name = "out"; Units = 10 } ] }
            expectOneLine (Recipe.validate { Recipe.modern with Network = denseFirst }) "pads its input"
            Expect.isOk (Recipe.validate { Recipe.modern with Network = denseFirst; Shift = 0 }) "a dense network without shifts trains"
            let network: NetworkText.NetworkValue = { Spec = smallSpec 10; Hidden = Tanh; Output = Tanh }
            expectOneLine (NetworkText.trainedBy network Recipe.refined) "squashing"
            Expect.equal (NetworkText.trainedBy { network with Hidden = Relu; Output = Identity } Recipe.refined |> Result.map (fun r -> r.Network)) (Ok(smallSpec 10)) "the recipe trains the file's network"
        }

        test "a teacher trained on another data set, or on the digits a run holds out, is refused" {
            withTempDir (fun dir ->
                let path heldOut dataSet =
                    let file = Path.Combine(dir, $"t-{heldOut}-{DataSetName.name dataSet}.safetensors")
                    ModelFile.save file smallRecipe dataSet heldOut (weights (Recipe.layout smallRecipe) 2)
                    match ModelFile.loadAny file with Ok m -> m | Error e -> failtest e
                expectOneLine (ModelFile.teacherFor DataSetName.Usps (Some 1000) (path None DataSetName.Usps)) "--holdout 1000"
                expectOneLine (ModelFile.teacherFor DataSetName.Usps (Some 1000) (path (Some 500) DataSetName.Usps)) "--holdout 1000"
                expectOneLine (ModelFile.teacherFor DataSetName.Usps None (path None DataSetName.MnistSim)) "mnist-sim"
                Expect.isOk (ModelFile.teacherFor DataSetName.Usps (Some 1000) (path (Some 1000) DataSetName.Usps)) "held out the same digits"
                Expect.isOk (ModelFile.teacherFor DataSetName.Usps None (path (Some 1000) DataSetName.Usps)) "held out digits the run trains on: it saw fewer")
        }

        test "train --network trains and records the network; train --teacher distils from that model file; bad files are one line" {
            withTempDir (fun dir ->
                let network = Path.Combine(dir, "small.json")
                File.WriteAllText(network, NetworkText.write { NetworkText.NetworkValue.Spec = smallSpec 10; Hidden = Relu; Output = Identity })
                let data = TestSetup.synthetic ()
                let run (recipe: Recipe) (teachers: SavedTeacher array) (out: string) =
                    TrainRun.train { TrainRun.request recipe DataSetName.Usps data (Evaluator.Engine Backend.Managed) with
                                        Teachers = teachers; Out = Some(Path.Combine(dir, out)); Jobs = 1 }
                let recipe = NetworkText.readFile network |> Result.bind (fun n -> NetworkText.trainedBy n { Recipe.modern with Passes = 1 })
                match recipe |> Result.bind (fun r -> run r [||] "teacher") with
                | Error e -> failtest e
                | Ok written ->
                    let model = match ModelFile.loadAny written.Runs.[0].ModelFile with Ok m -> m | Error e -> failtest e
                    Expect.equal model.Network.Layout.Spec (smallSpec 10) "the model file records the network"
                    let teacher = ModelFile.teacherFor DataSetName.Usps None model |> Result.defaultWith failtest
                    let student = distilling 0.5f 4.0f { Recipe.modern with Passes = 1 }
                    match run student [| teacher |] "student" with
                    | Error e -> failtest e
                    | Ok s ->
                        Expect.isSome s.Runs.[0].Ensemble "the teacher's own figure is reported"
                        match ModelFile.load s.Runs.[0].ModelFile with
                        | Ok m -> Expect.stringContains m.Metadata.["recipe_details"] "distilled from 1 saved teachers" "the student says so"
                        | Error e -> failtest e
                    expectOneLine (run student [||] "none") "1 saved teachers, but 0"
                let notJson = Path.Combine(dir, "bad.json")
                File.WriteAllText(notJson, "{ \"input\": ")
                let code, _, err = TestSetup.runCli [ "train"; "--network"; notJson ]
                Expect.equal code 1 "exit 1"
                Expect.stringContains err "bad.json" "names the file"
                Expect.equal (err.Trim().Split('\n').Length) 1 $"one line: {err}"
                let code, _, err = TestSetup.runCli [ "train"; "--teacher"; Path.Combine(dir, "missing.safetensors"); "--recipe"; "refined" ]
                Expect.equal code 1 "exit 1"
                Expect.equal (err.Trim().Split('\n').Length) 1 $"one line: {err}")
        }
    ]
