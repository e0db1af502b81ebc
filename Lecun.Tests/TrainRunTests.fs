/// TrainRun.train, as a library caller uses it: it trains, writes the run folder and returns what it
/// wrote; a bad request writes nothing.
module Lecun.Tests.TrainRunTests

open System
open System.IO
open System.Text.Json
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

let private recipe = { Recipe.lecun1989 with Passes = 2; Seed = 11 }

/// The weights Train.run gives the recipe with `seed` on the synthetic digits.
let private direct (seed: int) =
    let r = { recipe with Seed = seed }
    Train.run Backend.Managed r (synthetic ()) (Init.create r.WeightInit ModelFile.layout seed) (fun _ _ -> ()) ignore

let private request (out: string) =
    { TrainRun.request recipe DataSetName.Usps (synthetic ()) (Evaluator.Engine Backend.Managed) with Out = Some out; Jobs = 1 }

/// The entries under a folder, relative to it ('/'-separated), hidden ones included.
let private entries (dir: string) =
    if not (Directory.Exists dir) then []
    else
        Directory.EnumerateFileSystemEntries(dir, "*", EnumerationOptions(RecurseSubdirectories = true, AttributesToSkip = FileAttributes.None))
        |> Seq.map (fun p -> Path.GetRelativePath(dir, p).Replace(Path.DirectorySeparatorChar, '/'))
        |> Seq.sort |> List.ofSeq

let private expectError (phrase: string) (r: Result<RunResult, string>) =
    match r with
    | Ok written -> failtest $"expected an error saying '{phrase}', the run wrote {written.Folder}"
    | Error e -> Expect.stringContains e phrase "the error says what was wrong"

[<Tests>]
let tests =
    testList "TrainRun" [
        test "one seed: the folder holds the model file of Train.run's weights and its metrics; the result names them" {
            withTempDir (fun dir ->
                let out = Path.Combine(dir, "run")
                let heard = ResizeArray<int * PassMetrics>()
                let mutable started = None
                let watch (start: RunStart) (run: RunWatch -> unit) =
                    started <- Some start
                    run { Progress = (fun _ _ _ -> ()); Pass = fun j m -> heard.Add((j, m)) }
                let written = TrainRun.train { request out with Watch = watch } |> Result.defaultWith failtest
                let expected = direct recipe.Seed
                Expect.equal (Path.GetFullPath written.Folder) (Path.GetFullPath out) "the folder asked for"
                Expect.equal written.Files [ "model.safetensors"; "metrics.csv"; "metrics.json" ] "the files written"
                Expect.equal (entries out) [ ".lecun-run"; "metrics.csv"; "metrics.json"; "model.safetensors" ] "nothing else in the folder"
                Expect.isNone written.Summary "no seeds summary for one seed"
                let run = Expect.wantSome (Array.tryExactlyOne written.Runs) "one run"
                Expect.equal run.Seed recipe.Seed "its seed"
                Expect.equal (Path.GetFullPath run.ModelFile) (Path.Combine(Path.GetFullPath out, "model.safetensors")) "its model file's path"
                let model = ModelFile.load run.ModelFile |> Result.defaultWith failtest
                Expect.equal model.Parameters expected.Parameters "the weights Train.run gives, bit for bit"
                Expect.equal (ModelFile.info model).Seed (Some recipe.Seed) "the model file records the seed"
                let figures (ps: PassMetrics seq) = ps |> Seq.map (fun p -> p.Pass, p.Train, p.Test) |> List.ofSeq
                Expect.equal (figures run.Passes) (figures expected.Passes) "the per-pass figures"
                Expect.equal (heard |> Seq.map snd |> figures) (figures run.Passes) "the watch heard every pass"
                Expect.isTrue (heard |> Seq.forall (fun (j, _) -> j = 0)) "as run 0"
                Expect.equal (started |> Option.map (fun s -> s.Recipes |> Array.map (fun r -> r.Seed))) (Some [| recipe.Seed |]) "the start named the run"
                let csv = File.ReadAllLines(Path.Combine(out, "metrics.csv"))
                Expect.equal csv.Length (1 + recipe.Passes) "a header and a row per pass"
                Expect.equal (File.ReadAllText(Path.Combine(out, "metrics.csv"))) (TrainRun.metricsCsv run.Passes) "metrics.csv as metricsCsv writes it"
                use json = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "metrics.json")))
                Expect.equal (json.RootElement.GetProperty("seed").GetInt32()) recipe.Seed "metrics.json's seed"
                Expect.equal (json.RootElement.GetProperty("passes").GetArrayLength()) recipe.Passes "metrics.json's passes")
        }
        test "several seeds: seeds.json and a folder per seed, each with the weights of its seed; the caller's files listed" {
            withTempDir (fun dir ->
                let out = Path.Combine(dir, "seeds")
                let extra (folder: string) (context: RunContext) (_: TrainResult) =
                    File.WriteAllText(Path.Combine(folder, "note.txt"), string context.Recipe.Seed)
                    [ "note.txt" ]
                let written = TrainRun.train { request out with Seeds = 2; ExtraFiles = extra } |> Result.defaultWith failtest
                let seeds = [ recipe.Seed; recipe.Seed + 1 ]
                Expect.equal (written.Runs |> Array.map (fun r -> r.Seed) |> List.ofArray) seeds "one run per seed, in order"
                Expect.equal written.Files
                    [ for s in seeds do for f in [ "model.safetensors"; "metrics.csv"; "metrics.json"; "note.txt" ] -> $"seed-{s}/{f}"
                      yield "seeds.json" ] "every file written, the caller's included"
                Expect.equal (entries out |> List.filter (fun e -> e <> ".lecun-run" && not (e.StartsWith "seed-" && not (e.Contains '/'))))
                    (List.sort written.Files) "the folder holds exactly those files"
                for r in written.Runs do
                    Expect.equal (Path.GetFileName r.Folder) $"seed-{r.Seed}" "the run's folder"
                    Expect.equal (File.ReadAllText(Path.Combine(r.Folder, "note.txt"))) (string r.Seed) "the caller's file, in the run's folder"
                    let model = ModelFile.load r.ModelFile |> Result.defaultWith failtest
                    Expect.equal model.Parameters (direct r.Seed).Parameters $"seed {r.Seed}: Train.run's weights"
                let summary = Expect.wantSome written.Summary "a summary"
                Expect.equal summary (SeedsSummary.ofFinals (written.Runs |> Array.map (fun r -> r.Final))) "the summary of the final passes"
                use json = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "seeds.json")))
                Expect.equal (json.RootElement.GetProperty("runs").GetArrayLength()) 2 "seeds.json lists both runs"
                Expect.floatClose Accuracy.veryHigh (json.RootElement.GetProperty("test").GetProperty("error_mean").GetDouble()) summary.Test.Error.Mean "seeds.json's mean")
        }
        test "a hold-out: the runs train on all but the last N digits and report those N" {
            withTempDir (fun dir ->
                let written = TrainRun.train { request (Path.Combine(dir, "run")) with HeldOut = Some 100 } |> Result.defaultWith failtest
                Expect.equal written.TestName "held-out" "the second split's name"
                Expect.equal (written.Data.Train.Count, written.Data.Test.Count) (900, 100) "900 trained on, 100 held out"
                let model = ModelFile.load written.Runs.[0].ModelFile |> Result.defaultWith failtest
                Expect.equal (ModelFile.info model).HeldOut (Some 100) "the model file records the hold-out")
        }
        testProperty "a bad request (recipe, seeds, jobs, hold-out, starting weights, folder) is an error and writes nothing" <| fun (pick: int) (value: int) ->
            withTempDir (fun dir ->
                let out = Path.Combine(dir, "run")
                let bad, phrase =
                    match abs (pick % 6) with
                    | 0 -> { request out with Seeds = (if value >= 1 && value <= Runs.maxRuns then -value else value) }, "--seeds"
                    | 1 -> { request out with Jobs = (if value >= 1 && value <= Runs.maxRuns then -value else value) }, "--jobs"
                    | 2 -> { request out with HeldOut = Some(if value >= 1 && value < 1000 then 1000 + abs (value % 10) else value) }, "--holdout"
                    | 5 ->
                        let rate = if value = 0 then -1.0f else -(abs (float32 value))
                        { request out with Recipe = { recipe with LearningRate = rate } }, "the learning rate must be a positive"
                    | 3 ->
                        let n = abs (value % 20000)
                        { request out with Initial = Some(Array.zeroCreate (if n = ModelFile.layout.ParamCount then n + 1 else n)) }, "starting weights"
                    | _ ->
                        File.WriteAllText(out, "not a folder")
                        request out, "is a file"
                expectError phrase (TrainRun.train bad)
                Expect.equal (entries dir) (if abs (pick % 6) = 4 then [ "run" ] else []) "nothing written")
        test "a run that fails while training leaves nothing; a watch that never runs the training is refused" {
            withTempDir (fun dir ->
                let out = Path.Combine(dir, "run")
                let failing (_: RunStart) (run: RunWatch -> unit) =
                    run { Progress = (fun _ _ _ -> ()); Pass = fun _ m -> if m.Pass = 2 then failwith "stopped by the test" }
                Expect.throwsC (fun () -> TrainRun.train { request out with Watch = failing } |> ignore)
                    (fun e -> Expect.stringContains e.Message "stopped by the test" "the failure comes through")
                Expect.isEmpty (entries dir) "no folder, no staging folder"
                Expect.throwsC (fun () -> TrainRun.train { request out with Watch = fun _ _ -> () } |> ignore)
                    (fun e -> Expect.stringContains e.Message "did not call its run" "a watch must run the training")
                Expect.isEmpty (entries dir) "nothing written either")
        }
    ]
