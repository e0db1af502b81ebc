/// Library.fs: the façade C# and F# callers use gives what the modules underneath give, and refuses
/// bad input with exceptions that say what was wrong.
module Lecun.Tests.LibraryTests

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

/// Two passes of lecun1989 on the small run, through the façade, with what its callbacks heard.
let private trained =
    lazy
        (let heard = ResizeArray<TrainProgress>()
         let passes = ResizeArray<PassMetrics>()
         let options =
             TrainOptions(Passes = 2, Seed = 7, Backend = "managed",
                          Progress = { new IProgress<TrainProgress> with member _.Report p = heard.Add p },
                          PassCompleted = Action<PassMetrics>(passes.Add))
         let run = Trainer.Train(small (), options)
         run, List.ofSeq heard, List.ofSeq passes)

let private throws<'e when 'e :> exn> (phrase: string) (f: unit -> unit) =
    try
        f ()
        failtest $"expected {typeof<'e>.Name} saying '{phrase}', nothing was thrown"
    with
    | :? 'e as e -> Expect.stringContains e.Message phrase $"{typeof<'e>.Name} says what was wrong"

let private pixelsGen =
    Gen.choose (-1000, 1000) |> Gen.map (fun v -> float32 v / 1000f) |> Gen.arrayOfLength Dataset.Pixels

[<Tests>]
let tests =
    testList "library" [
        test "Trainer.Train gives the weights Train.run gives, and its callbacks hear every pass in order" {
            let run, heard, passes = trained.Force()
            let recipe = { Recipe.lecun1989 with Passes = 2; Seed = 7 }
            let data = small ()
            let direct = Train.run Backend.Managed recipe data (Init.create recipe.WeightInit ModelFile.layout 7) (fun _ _ -> ()) ignore
            let figures (ps: PassMetrics seq) = ps |> Seq.map (fun p -> p.Pass, p.Train, p.Test) |> List.ofSeq
            Expect.equal run.Model.Parameters direct.Parameters "bit-identical weights"
            Expect.equal (figures run.Passes) (figures direct.Passes) "the same per-pass figures"
            Expect.equal passes (List.ofArray run.Passes) "PassCompleted heard each pass"
            Expect.equal run.Final (Array.last run.Passes) "Final is the last pass"
            Expect.isNonEmpty heard "progress was reported"
            Expect.isTrue (heard |> List.forall (fun p -> p.Passes = 2 && p.PerPass = data.Train.Count && p.Presented <= p.PerPass)) "each report's totals"
            Expect.isTrue (heard |> List.pairwise |> List.forall (fun (a, b) -> a.Fraction <= b.Fraction)) "progress never goes back"
            Expect.isTrue (heard |> List.forall (fun p -> p.Fraction >= 0.0 && p.Fraction <= 1.0)) "fractions in [0, 1]"
            Expect.equal (heard |> List.map (fun p -> p.Pass) |> List.distinct) [ 1; 2 ] "both passes reported"
        }
        test "TrainToFolder writes the run folder with Train's weights and names its files; an occupied folder is refused" {
            let run, _, _ = trained.Force()
            withTempDir (fun dir ->
                let folder = Path.Combine(dir, "run")
                let heard = ResizeArray<PassMetrics>()
                let options = TrainOptions(Passes = 2, Seed = 7, Backend = "managed", PassCompleted = Action<PassMetrics>(heard.Add))
                let written = Trainer.TrainToFolder(Recipes.Get "lecun1989", small (), folder, options)
                Expect.equal (Path.GetFullPath written.Folder) (Path.GetFullPath folder) "the folder asked for"
                Expect.equal written.Files [ "model.safetensors"; "metrics.csv"; "metrics.json" ] "the model's files"
                Expect.isTrue (written.Files |> List.forall (fun f -> File.Exists(Path.Combine(folder, f)))) "each one written"
                Expect.equal (TrainedModel.Load(written.ModelFile, "managed").Parameters) run.Model.Parameters "Train's weights, bit for bit"
                Expect.equal (List.ofSeq heard) written.Passes "PassCompleted heard each pass"
                throws<IOException> "already holds" (fun () -> Trainer.TrainToFolder(Recipes.Get "lecun1989", small (), folder, options) |> ignore)
                Expect.equal (TrainedModel.Load(written.ModelFile, "managed").Parameters) run.Model.Parameters "the first run's file is kept")
        }
        test "Save writes the file ModelFile.save writes; Load reads back the same weights and metadata" {
            let run, _, _ = trained.Force()
            withTempDir (fun dir ->
                let viaFacade = Path.Combine(dir, "facade.safetensors")
                let viaModule = Path.Combine(dir, "module.safetensors")
                run.Model.Save viaFacade
                ModelFile.save viaModule { Recipe.lecun1989 with Passes = 2; Seed = 7 } DataSetName.Usps None run.Model.Parameters
                Expect.equal (File.ReadAllBytes viaFacade) (File.ReadAllBytes viaModule) "byte for byte"
                let back = TrainedModel.Load(viaFacade, "managed")
                Expect.equal back.Parameters run.Model.Parameters "weights"
                Expect.equal back.Metadata["seed"] "7" "metadata"
                Expect.equal back.Metadata["passes"] "2" "metadata")
        }
        test "Load with the reference backend evaluates, predicts and inspects as Evaluator.Reference does" {
            let run, _, _ = trained.Force()
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "model.safetensors")
                run.Model.Save path
                let exact = TrainedModel.Load(path, "reference")
                let model = ModelFile.load path |> Result.defaultWith failtest
                let test = (small ()).Test.Take 50
                let expected = Evaluator.evaluate Evaluator.Reference model test |> Result.defaultWith failtest
                let got = exact.Evaluate test
                Expect.equal got.Metrics expected.Metrics "the reference's figures"
                Expect.equal got.Predictions expected.Predictions "the reference's classes"
                let pixels = test.Image(0).ToArray()
                let layers = Evaluator.layers Evaluator.Reference model.Network model.Parameters (Workspace.create model.Network 1) pixels
                Expect.equal (exact.Inspect pixels |> Array.map (fun l -> l.Values)) layers "every layer's exact values"
                Expect.equal (exact.Predict pixels).Scores (Array.last layers) "the scores are the output layer's")
        }
        test "Predict and Inspect agree with Evaluate on real digits" {
            let run, _, _ = trained.Force()
            let test = (small ()).Test
            let evaluation = run.Model.Evaluate test
            Expect.equal evaluation.Metrics run.Final.Test "Evaluate gives the last pass's test figures"
            for i in 0 .. 24 do
                let pixels = test.Image(i).ToArray()
                let prediction = run.Model.Predict pixels
                Expect.equal prediction.Digit evaluation.Predictions[i] $"digit {i}"
                let layers = run.Model.Inspect pixels
                Expect.equal (layers |> Array.map (fun l -> l.Name, l.Shape)) [| "H1", [| 12; 8; 8 |]; "H2", [| 12; 4; 4 |]; "H3", [| 30 |]; "out", [| 10 |] |] "layers"
                Expect.equal (Array.last layers).Values prediction.Scores $"digit {i}: the output layer is the scores"
        }
        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 50 } "on any pixels in [-1, 1], the prediction is the highest output score"
            (Prop.forAll (Arb.fromGen pixelsGen) (fun pixels ->
                let run, _, _ = trained.Force()
                let p = run.Model.Predict pixels
                p.Scores.Length = 10 && p.Scores[p.Digit] = Array.max p.Scores && (run.Model.Inspect pixels |> Array.last).Values = p.Scores))
        test "bad input: an exception that says what was wrong" {
            let run, _, _ = trained.Force()
            throws<ArgumentException> "255 values, expected 256" (fun () -> run.Model.Predict(Array.zeroCreate 255) |> ignore)
            throws<ArgumentException> "pixels[3] = NaN" (fun () -> run.Model.Predict(Array.init 256 (fun i -> if i = 3 then Single.NaN else 0f)) |> ignore)
            throws<ArgumentException> "pixels[0] = 1.5" (fun () -> run.Model.Inspect(Array.init 256 (fun i -> if i = 0 then 1.5f else 0f)) |> ignore)
            throws<ArgumentException> "unknown recipe 'nope'" (fun () -> Recipes.Get "nope" |> ignore)
            throws<ArgumentException> "unknown data set 'cifar'" (fun () -> DigitData.Load "cifar" |> ignore)
            throws<ArgumentException> "passes" (fun () -> Recipes.With(Recipes.Lecun1989, RecipeOverride.Passes 0) |> ignore)
            throws<ArgumentException> "unknown backend" (fun () -> TrainedModel.Load("x.safetensors", "gpu") |> ignore)
            withTempDir (fun dir ->
                let missing = Path.Combine(dir, "missing.safetensors")
                throws<InvalidDataException> missing (fun () -> TrainedModel.Load missing |> ignore)
                let junk = Path.Combine(dir, "junk.safetensors")
                File.WriteAllBytes(junk, Array.create 100 7uy)
                throws<InvalidDataException> junk (fun () -> TrainedModel.Load junk |> ignore)
                throws<InvalidDataException> dir (fun () -> DigitData.Load("usps", dir) |> ignore)
                throws<InvalidDataException> "file not found" (fun () -> DigitData.FromUspsFiles(missing, missing) |> ignore))
        }
        test "recipes and data: the names the command line knows, the embedded digits, and files on disk" {
            Expect.equal Recipes.Names [| "lecun1989"; "newton1989"; "modern"; "refined" |] "names"
            Expect.equal (Recipes.Get "modern") Recipe.modern "by name"
            Expect.equal (Recipes.With(Recipes.Lecun1989, RecipeOverride.Passes 5, RecipeOverride.Seed 3)) { Recipe.lecun1989 with Passes = 5; Seed = 3 } "changed"
            let embedded = DigitData.EmbeddedUsps()
            Expect.equal embedded.Source "usps from the embedded copy" "embedded"
            withTempDir (fun dir ->
                let train = writeEmbedded dir EmbeddedData.uspsTrain
                let test = writeEmbedded dir EmbeddedData.uspsTest
                let fromFiles = DigitData.FromUspsFiles(train, test)
                Expect.equal (Data.digest fromFiles) (Data.digest embedded) "the same digits from files"
                Expect.equal (Data.digest (DigitData.Load("usps", dir))) (Data.digest embedded) "and through --data")
            Expect.equal (Paper1989.TestError, Paper1989.TestMisses) (Paper.testError, Paper.testMisses) "the paper's figures"
        }
    ]
