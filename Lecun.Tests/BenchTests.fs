module Lecun.Tests.BenchTests

open System.Text.Json.Nodes
open Expecto

/// `bench` measures; these tests check only that it runs and reports every figure (no timing thresholds:
/// the speed goals live in the benchmark and the README).
[<Tests>]
let tests =
    testSequencedGroup "console" <| testList "bench" [
        test "bench --json --quick reports positive rates and the 1989 ratios" {
            let code, stdout, err = TestSetup.runCli [ "bench"; "--json"; "--quick" ]
            Expect.equal code 0 $"exit code (stderr: {err})"
            let json = JsonNode.Parse(stdout).AsObject()
            let number (node: JsonNode) (name: string) =
                Expect.isNotNull node.[name] $"{name} present"
                node.[name].GetValue<float>()
            Expect.isGreaterThan (number json "train_presentations_per_s") 0.0 "training presentations/s"
            Expect.isGreaterThan (number json "infer_digits_per_s") 0.0 "recognition digits/s"
            let ratios = json.["ratios_1989"]
            for name in [ "train_presentations"; "infer_digits"; "infer_digits_full_recognition"; "peak_macs" ] do
                Expect.isGreaterThan (number ratios name) 0.0 $"ratio {name}"
            Expect.equal (json.["counts"].["macs_forward"].GetValue<int>()) 63_660 "MACs of one forward pass"
            Expect.equal (json.["counts"].["macs_training_presentation"].GetValue<int>()) (3 * 63_660 - 19_200) "MACs of one presentation"
            let backends = json.["backends"].AsArray()
            Expect.isGreaterThanOrEqual backends.Count 1 "at least the managed backend"
            for b in backends do
                let name = b.["backend"].GetValue<string>()
                for field in [ "train_presentations_per_s"; "infer_one_at_a_time_digits_per_s"; "infer_batched_one_core_digits_per_s"; "infer_batched_all_cores_digits_per_s"; "train_macs_per_s" ] do
                    Expect.isGreaterThan (number b field) 0.0 $"{name}: {field}"
                Expect.isNotNull b.["ratios_1989"].["train_presentations"] $"{name}: ratio"
            Expect.isNotNull json.["machine"].["processor"] "machine info"
        }

        test "bench rejects a bad --repeat" {
            let code, _, err = TestSetup.runCli [ "bench"; "--repeat"; "0" ]
            Expect.notEqual code 0 "non-zero exit"
            Expect.stringContains err "--repeat" "the error names the option"
        }
    ]
