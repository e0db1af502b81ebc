/// `train`, `eval` and `predict` on the command line: options to overrides, one-line refusals.
module Lecun.Tests.TrainCommandTests

open System
open System.IO
open Expecto
open Argu
open Lecun.Model
open Lecun.Cli
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

[<Tests>]
let tests =
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

        test "the ladder's commands give exactly its steps' overrides and recipes through train" {
            let parser = ArgumentParser.Create<TrainCommand.TrainArgs>()
            for s in Ladder.steps DataSetName.MnistSim do
                let args = parser.ParseCommandLine(s.Flags |> List.collect (fun (k, v) -> [ k; v ]) |> Array.ofList)
                // The order of options does not matter (RecipeTests: overrides give the same recipe in any order).
                let inOrder = List.sortBy (Recipe.flag >> fst)
                Expect.equal (inOrder (TrainCommand.overridesFrom args)) (inOrder s.Overrides) $"step {s.Label}: {s.Command}"
                Expect.equal (TrainCommand.recipeFrom args) s.Recipe $"step {s.Label}: the same recipe"
        }

        testList "options that overflow or round away in float32" [
            for args, fragment in
                [ [ "train"; "--lr"; "1e-50" ], "--lr must be a positive number, got 1E-50, which is 0 in float32"
                  [ "train"; "--recipe"; "newton1989"; "--mu"; "1e300" ], "--mu must be positive, got 1E+300, which is infinity in float32"
                  [ "train"; "--dropout"; "0.99999999999" ], "--dropout must be in [0, 1), got 0.99999999999, which is 1 in float32"
                  [ "train"; "--passes"; "2147483647" ], "--passes must be at most"
                  [ "train"; "--seed"; "2147483647"; "--seeds"; "2" ], "goes past the largest seed"
                  [ "ladder"; "--seed"; "2147483600"; "--seeds"; "100" ], "goes past the largest seed" ] do
                test (String.Join(" ", args)) {
                    let code, out, err = runCli args
                    Expect.equal code 1 "exit code 1"
                    Expect.stringContains err fragment "the error names the option and what float32 makes of it"
                    Expect.equal (err.TrimEnd().Split('\n').Length) 1 "one line"
                    Expect.equal out "" "nothing trained or printed"
                }
        ]

        test "eval and predict refuse to report the outputs of weights that overflow float32" {
            withTempDir (fun dir ->
                // Finite weights of alternating sign near float32's largest: every sum overflows to ±infinity or NaN.
                let layout = Layout.lecun1989
                let huge = Array.init layout.ParamCount (fun i -> if i % 2 = 0 then 3e38f else -3e38f)
                let model = Path.Combine(dir, "huge.safetensors")
                ModelFile.save model Recipe.modern DataSetName.Usps None huge
                let digit = Path.Combine(dir, "digit.txt")
                File.WriteAllText(digit, String.Join(" ", Array.init 256 (fun i -> if i % 3 = 0 then "1" else "-0.5")) + "\n")
                for args in [ [ "eval"; "--model"; model; "--backend"; "managed" ]; [ "predict"; "--model"; model; "--backend"; "managed"; digit ] ] do
                    let code, out, err = runCli args
                    Expect.equal code 1 $"{args.Head}: exit code"
                    Expect.stringContains err "not finite" $"{args.Head}: says the outputs are not finite"
                    Expect.stringContains err model $"{args.Head}: names the model file"
                    Expect.isFalse (out.Contains "NaN" || out.Contains "∞") $"{args.Head}: prints no non-finite figure"
                    Expect.isFalse (err.Contains "   at ") "no stack trace")
        }

        test "eval --model /dev/zero is refused at once, without reading the device" {
            if File.Exists "/dev/zero" then
                let clock = Diagnostics.Stopwatch.StartNew()
                let code, _, err = runCli [ "eval"; "--model"; "/dev/zero" ]
                Expect.equal code 1 "exit code"
                Expect.stringContains err "longer than any model file" "says why"
                Expect.isLessThan clock.Elapsed.TotalSeconds 5.0 "quickly"
        }
    ]
