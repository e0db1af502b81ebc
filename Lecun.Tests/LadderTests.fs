module Lecun.Tests.LadderTests

open System
open System.IO
open System.Text.Json
open Expecto
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

/// The names of the recipe fields in which two recipes differ.
let private differences (a: Recipe) (b: Recipe) =
    [ if a.Passes <> b.Passes then "Passes"
      if a.LearningRate <> b.LearningRate then "LearningRate"
      if a.BatchSize <> b.BatchSize then "BatchSize"
      if a.Hidden <> b.Hidden then "Hidden"
      if a.Output <> b.Output then "Output"
      if a.Loss <> b.Loss then "Loss"
      if a.Optimizer <> b.Optimizer then "Optimizer"
      if a.Dropout <> b.Dropout then "Dropout"
      if a.Shift <> b.Shift then "Shift"
      if a.Seed <> b.Seed then "Seed" ]
    |> Set.ofList

let private step (steps: LadderStep list) label = steps |> List.find (fun s -> s.Label = label)

/// A data folder for mnist-sim: the embedded t10k files, and (optionally) a small MNIST training file
/// made from t10k's first 7,500 digits (enough for mnist-sim's 7,291; step 5 then uses all 7,500).
let private mnistFolder (dir: string) (withTrain: bool) =
    let mnist = Path.Combine(dir, "mnist")
    let testImages = TestSetup.writeEmbedded dir EmbeddedData.mnistTestImages
    let testLabels = TestSetup.writeEmbedded dir EmbeddedData.mnistTestLabels
    if withTrain then
        let images, labels = Idx.loadPair testImages testLabels |> function Ok v -> v | Error e -> failwith e
        let n = 7500
        let be (v: int) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]
        let pixels = images.Rows * images.Cols
        File.WriteAllBytes(Path.Combine(mnist, "train-images-idx3-ubyte"),
            Array.concat [ be 0x803; be n; be images.Rows; be images.Cols; images.Pixels.[0 .. n * pixels - 1] ])
        File.WriteAllBytes(Path.Combine(mnist, "train-labels-idx1-ubyte"),
            Array.concat [ be 0x801; be n; labels.[0 .. n - 1] |> Array.map byte ])

[<Tests>]
let tests =
    testList "ladder" [
        test "each step is the step before plus exactly its documented change" {
            let steps = Ladder.steps DataSetName.MnistSim
            let expected =
                [ "1", "0", set [ "Output"; "Loss"; "LearningRate" ]
                  "2", "1", set [ "Optimizer"; "LearningRate" ]
                  "3", "2", set [ "Shift"; "Passes" ]
                  "4", "3", set [ "Dropout"; "Hidden"; "Passes" ]
                  "5", "4", set [ "Passes" ] ]
            for s, prev, changed in expected do
                Expect.equal (differences (step steps prev).Recipe (step steps s).Recipe) changed $"step {s} vs {prev}"
            Expect.equal (step steps "1").Recipe.Loss SoftmaxCrossEntropy "step 1 is cross-entropy"
            Expect.equal (step steps "3").Recipe.Shift 1 "step 3 shifts by one pixel"
            Expect.equal (step steps "5").DataSet DataSetName.MnistSim50k "step 5 adds MNIST training digits"
            Expect.equal (step steps "4").DataSet DataSetName.MnistSim "steps 0-4 stay on the ladder's data"
            Expect.equal { (step steps "4").Recipe with Name = "modern" } Recipe.modern "step 4 is the modern recipe"
            Expect.equal (step steps "0").Recipe Recipe.lecun1989 "step 0 is the paper's recipe"
            Expect.equal (step steps "0n").Recipe Recipe.newton1989 "the side row is the paper's optimizer"
            Expect.isFalse (Ladder.steps DataSetName.Usps |> List.exists (fun s -> s.Label = "5")) "no step 5 on usps"
        }

        test "each step's command is its base recipe and its overrides as train options, in order" {
            // TrainCommandTests checks that train reads these options back into the same overrides and recipe.
            for s in Ladder.steps DataSetName.MnistSim do
                let options = s.Overrides |> List.map (fun o -> let k, v = Recipe.flag o in $" {k} {v}") |> String.concat ""
                Expect.equal s.Command $"lecun train --data-set {DataSetName.name s.DataSet} --recipe {s.Base.Name}{options}" $"step {s.Label}"
                Expect.stringStarts s.Command $"lecun train --data-set {DataSetName.name s.DataSet} " "the command names the data set"
                Expect.equal (Recipe.apply s.Overrides s.Base) (Ok s.Recipe) "the recipe is the base with the overrides"
            Expect.equal (step (Ladder.steps DataSetName.Usps) "4").Command
                "lecun train --data-set usps --recipe lecun1989 --loss softmax-ce --lr 0.0003 --optimizer adamw --shift 1 --passes 80 --dropout 0.25 --activation relu"
                "step 4's command, as the ladder has always printed it"
        }

        test "steps parse from ranges and lists; unknown steps are errors" {
            Expect.equal (Ladder.parseSteps "0-4") (Ok [ "0"; "1"; "2"; "3"; "4" ]) "range"
            Expect.equal (Ladder.parseSteps "4,0,2") (Ok [ "0"; "2"; "4" ]) "list"
            // The refinements' steps 6.. follow the essay's.
            Expect.equal (Ladder.parseSteps "all") (Ok([ "0"; "1"; "2"; "3"; "4"; "5" ] @ Ladder.refinedLabels)) "all"
            Expect.equal (Ladder.parseSteps "6") (Ok [ "6" ]) "the refinements' first step"
            for bad in [ "42"; "2-1"; "x"; "0,99" ] do
                match Ladder.parseSteps bad with
                | Error e -> Expect.stringContains e "unknown step" bad
                | Ok _ -> failtestf "'%s' was accepted" bad
        }

        test "a step selects its side row; step 5 wanted on usps is reported, not dropped" {
            let labels (steps: LadderStep list) = steps |> List.map (fun s -> s.Label)
            Expect.equal (labels (Ladder.select DataSetName.Usps [ "0"; "2" ])) [ "0"; "0n"; "2" ] "0 brings 0n"
            Expect.equal (labels (Ladder.select DataSetName.Usps [ "5" ])) [] "no step 5 on usps"
            Expect.equal (labels (Ladder.select DataSetName.MnistSim [ "5" ])) [ "5" ] "step 5 on mnist-sim"
            match Ladder.unavailable DataSetName.Usps [ "4"; "5" ] with
            | [ five, why ] ->
                Expect.equal five.Label "5" "step 5"
                Expect.stringContains why "mnist-sim only" "the reason"
            | other -> failtest $"%A{other |> List.map (fun (s, w) -> s.Label, w)}"
            Expect.isEmpty (Ladder.unavailable DataSetName.MnistSim [ "5" ]) "mnist-sim runs it"
            Expect.isEmpty (Ladder.unavailable DataSetName.Usps [ "0"; "4" ]) "not wanted"
        }

        test "ladder bounds: runs, data sets, --limit, --jobs" {
            Expect.isOk (Ladder.checkRunCount (Runs.maxRuns / 4) 4) "at the bound"
            Expect.stringContains (Expect.wantError (Ladder.checkRunCount (Runs.maxRuns / 4 + 1) 4) "past it") "at most" "message"
            Expect.isOk (Ladder.checkRunCount Runs.maxRuns 0) "no step counts as one"
            Expect.equal (Ladder.parseDataSet "mnist-sim") (Ok DataSetName.MnistSim) "mnist-sim"
            Expect.isError (Ladder.parseDataSet "mnist-sim-50k") "step 5's own set is not a ladder's"
            Expect.isError (Ladder.checkLimit (Some(Ladder.minLimit - 1))) "below the limit"
            Expect.isOk (Ladder.checkLimit (Some Ladder.minLimit)) "at the limit"
            Expect.isError (Runs.checkJobs 0) "no job"
            Expect.isError (Runs.checkJobs (Runs.maxRuns + 1)) "too many jobs"
            Expect.isError (Runs.checkSeedCount (Runs.maxRuns + 1)) "too many seeds"
            let count = 30
            let train = { Name = "train"; Images = Array.init (count * 256) float32; Labels = Array.init count (fun i -> i % 10) }
            let data = { Train = train; Test = train; Source = "made up" }
            match Ladder.limit (Some 12) data with
            | Ok d -> Expect.equal (d.Train.Count, d.Test.Count) (12, 12) "the first 12 of each split"
            | Error e -> failtest e
        }

        test "--holdout keeps 1 to the training digits less one" {
            let count = 20
            let train = { Name = "train"; Images = Array.init (count * 256) float32; Labels = Array.init count (fun i -> i % 10) }
            let data = { Train = train; Test = { train with Name = "test" }; Source = "made up" }
            Expect.equal (Runs.holdOut None data |> Result.map (fun d -> d.Test.Name)) (Ok "test") "none: the test set"
            for n in [ 1; count - 1 ] do
                match Runs.holdOut (Some n) data with
                | Ok d -> Expect.equal (d.Train.Count, d.Test.Count, d.Test.Name) (count - n, n, "held-out") $"{n}"
                | Error e -> failtest e
            for n in [ 0; -1; count ] do
                Expect.stringContains (Expect.wantError (Runs.holdOut (Some n) data) $"{n}") $"between 1 and {count - 1}" $"{n}"
        }

        test "a seed gives the same results run in parallel or one after another; seeds differ" {
            let data = small ()
            let tiny = { data with Train = data.Train.Take 200; Test = data.Test.Take 100 }
            let jobs =
                [| for r in [ Recipe.lecun1989; Recipe.modern ] do
                       for seed in [ 1; 2 ] ->
                           { Recipe = { r with Passes = 2; Seed = seed }; Data = tiny; Initial = fun () -> Init.create r.WeightInit Layout.lecun1989 seed } |]
            let quiet = fun (_: int) (_: int) (_: int) -> ()
            let inParallel = Runs.run Backend.Managed 2 jobs quiet (fun _ _ -> ())
            let serial = Runs.run Backend.Managed 1 jobs quiet (fun _ _ -> ())
            for j in 0 .. jobs.Length - 1 do
                Expect.sequenceEqual inParallel.[j].Parameters serial.[j].Parameters $"job {j} weights"
                Expect.equal (inParallel.[j].Passes |> List.map (fun p -> p.Train, p.Test)) (serial.[j].Passes |> List.map (fun p -> p.Train, p.Test)) $"job {j} metrics"
            Expect.notEqual (jobs.[0].Initial ()) (jobs.[1].Initial ()) "different seeds start from different weights"
            Expect.notEqual inParallel.[0].Parameters inParallel.[1].Parameters "and end in different ones"
        }

        test "a tiny ladder runs end to end and writes its files" {
            withTempDir (fun out ->
                let code, stdout, err = runCli [ "ladder"; "--steps"; "0,1"; "--seeds"; "2"; "--limit"; "200"; "--out"; out ]
                Expect.equal code 0 $"exit code (stderr: {err})"
                for f in [ "ladder.json"; "ladder.csv"; "ladder.png" ] do
                    Expect.isTrue (File.Exists(Path.Combine(out, f))) $"{f} written"
                Expect.isEmpty (Directory.GetFiles(out, "*.tmp", SearchOption.AllDirectories)) "no temporary files left"
                use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "ladder.json")))
                let steps = doc.RootElement.GetProperty("steps").EnumerateArray() |> Seq.toList
                Expect.equal (steps |> List.map (fun s -> s.GetProperty("step").GetString())) [ "0"; "0n"; "1" ] "steps run"
                for s in steps do
                    Expect.equal (s.GetProperty("runs").GetArrayLength()) 2 "two seeds each"
                    Expect.isTrue (s.GetProperty("test").GetProperty("error_mean").GetDouble() >= 0.0) "test error"
                    Expect.stringStarts (s.GetProperty("command").GetString()) "lecun train" "the command of the step"
                Expect.stringContains stdout "lecun train --data-set usps --recipe lecun1989 --loss softmax-ce --lr 0.01" "the table names step 1's command"
                let csv = File.ReadAllLines(Path.Combine(out, "ladder.csv"))
                Expect.equal csv.Length 4 "header and three rows")
        }

        test "step 5 is skipped with a clear message when MNIST's training files are missing" {
            withTempDir (fun dir ->
                mnistFolder dir false
                let out = Path.Combine(dir, "out")
                let code, stdout, err = runCli [ "ladder"; "--data-set"; "mnist-sim"; "--data"; dir; "--steps"; "4,5"; "--seeds"; "1"; "--limit"; "100"; "--out"; out ]
                Expect.equal code 0 $"exit code (stderr: {err})"
                Expect.stringContains stdout "skipped" "the table lists step 5 as skipped"
                Expect.stringContains stdout "train-images-idx3-ubyte" "and says which files are missing"
                let json = File.ReadAllText(Path.Combine(out, "ladder.json"))
                Expect.stringContains json "\"skipped\"" "ladder.json records the skip")
        }

        test "step 5 runs on a small MNIST training file made in the test" {
            withTempDir (fun dir ->
                mnistFolder dir true
                let out = Path.Combine(dir, "out")
                let code, _, err = runCli [ "ladder"; "--data-set"; "mnist-sim"; "--data"; dir; "--steps"; "5"; "--seeds"; "1"; "--limit"; "100"; "--out"; out ]
                Expect.equal code 0 $"exit code (stderr: {err})"
                use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "ladder.json")))
                let steps = doc.RootElement.GetProperty("steps").EnumerateArray() |> Seq.toList
                Expect.equal (steps |> List.map (fun s -> s.GetProperty("step").GetString())) [ "5" ] "step 5 ran"
                Expect.equal (steps.Head.GetProperty("data_set").GetString()) "mnist-sim-50k" "on the large training set")
        }

        testSequenced <| testList "bad input" [
            for args, fragment in
                [ [ "ladder"; "--steps"; "99" ], "unknown step '99'"
                  [ "ladder"; "--seeds"; "0" ], "--seeds must be at least 1"
                  [ "ladder"; "--data-set"; "cifar" ], "unknown data set 'cifar'"
                  [ "ladder"; "--out"; "/proc/forbidden/ladder" ], "cannot write to output folder" ] ->
                test (String.Join(" ", args)) {
                    let code, _, err = runCli args
                    Expect.notEqual code 0 "non-zero exit"
                    Expect.stringContains err fragment "a clear one-line error"
                    Expect.isFalse (err.Contains "   at ") "no stack trace"
                }
        ]
    ]
