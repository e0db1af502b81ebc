/// ModelFile.fs: what a model file records besides its weights, and the network it loads into.
module Lecun.Tests.ModelFileTests

open System
open System.IO
open Expecto
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

let private layout = ModelFile.layout

let private loadOk path = match ModelFile.load path with Ok m -> m | Error e -> failtest e

let private activations (net: Network) = net.Plans |> Array.map (fun p -> p.Activation) |> Array.distinct |> List.ofArray

[<Tests>]
let tests =
    testList "model file" [
        test "records the recipe, seed, passes, data set, squashing, loss, spec and the recipe's description" {
            let metadata = ModelFile.metadata Recipe.lecun1989 DataSetName.Usps None
            Expect.equal (metadata |> Map.remove "network")
                (Map.ofList [ "recipe", "lecun1989"; "seed", "1337"; "passes", "23"; "data_set", "usps"; "hidden", "tanh"; "output", "tanh"
                              "loss", "mse"; "spec", "lecun1989"
                              "recipe_details", "tanh/tanh, init sqrt-fan-in, mse, sgd lr 0.03, batch 1, 23 passes" ])
                "lecun1989's metadata, as train has always written it"
            Expect.equal (NetworkText.read metadata.["network"]) (Ok { NetworkText.Spec = Spec.lecun1989; Hidden = Tanh; Output = Tanh })
                "and the network as data: the spec and the squashing"
        }

        test "names the data set and the digits held out in separate entries" {
            let metadata = ModelFile.metadata Recipe.modern DataSetName.MnistSim (Some 1000)
            Expect.equal metadata.["data_set"] "mnist-sim" "data set"
            Expect.equal metadata.["held_out"] "1000" "held out"
            Expect.isFalse ((ModelFile.metadata Recipe.modern DataSetName.Usps None).ContainsKey "held_out") "nothing held out, no entry"
        }

        testPropertyWithConfig { FsCheckConfig.defaultConfig with arbitrary = [ typeof<SpecTests.SpecGen> ] }
            "the network text reads back as the network it was written from, any spec and squashing" <| fun (spec: NetSpec) (h: byte) (o: byte) ->
            let pick (b: byte) = fst Activation.names.[int b % Activation.names.Length]
            let network : NetworkText.NetworkValue = { Spec = spec; Hidden = pick h; Output = pick o }
            Expect.equal (NetworkText.read (NetworkText.write network)) (Ok network) "round trip"

        test "a network text that is not one is refused with one line, never an exception" {
            let good = NetworkText.write { NetworkText.Spec = Spec.lecun1989; Hidden = Tanh; Output = Tanh }
            for text in
                [ ""; "{"; "[]"; "null"; "42"; "{}"; String.replicate 100 "["
                  good.Replace("\"input\":[1,16,16]", "\"input\":[1,16]")
                  good.Replace("\"input\":[1,16,16]", "\"input\":[1,16,99999999999]")
                  good.Replace("\"input\":[1,16,16]", "\"input\":[1,-16,16]")
                  good.Replace("\"kind\":\"local\"", "\"kind\":\"pool\"")
                  good.Replace("\"kernel\":5", "\"kernel\":0")
                  good.Replace("\"kernel\":5", "\"kernel\":\"5\"")
                  good.Replace("\"kernel\":5", "\"kernel\":5.5")
                  good.Replace("\"pad_value\":-1", "\"pad_value\":1e99")
                  good.Replace("\"units\":30", "\"units\":null")
                  good.Replace("[0,1,2,3,4,5,6,7]", "[0,1,2,3,4,5,6,\"x\"]")
                  good.Replace("[0,1,2,3,4,5,6,7]", "[0,1,2,3,4,5,6,70]")
                  good.Replace("\"hidden\":\"tanh\"", "\"hidden\":\"sigmoid\"")
                  good.Replace("\"output\":\"tanh\"", "\"output\":7") ] do
                if text = good then failtest $"the hostile text was not built: {text}"
                match NetworkText.read text with
                | Ok n -> failtest $"read {n} from {text}"
                | Error e -> Expect.isFalse (e.Contains '\n') $"one line: {e}"
        }

        test "a file whose network entry records another network, or other squashing than its older keys, is refused" {
            withTempDir (fun dir ->
                let other = { Spec.lecun1989 with Layers = Spec.lecun1989.Layers |> List.map (function Dense d when d.Name = "H3" -> Dense { d with Units = 31 } | l -> l) }
                let base' = ModelFile.metadata Recipe.lecun1989 DataSetName.Usps None
                let otherNetwork = NetworkText.write { NetworkText.Spec = other; Hidden = Tanh; Output = Tanh }
                let reluNetwork = NetworkText.write { NetworkText.Spec = Spec.lecun1989; Hidden = Relu; Output = Tanh }
                for name, metadata, fragment in
                    [ "other", base' |> Map.add "network" otherNetwork, "the network its metadata 'network' records"
                      "squashing", base' |> Map.add "network" reluNetwork, "disagrees with the squashing"
                      "garbled", base' |> Map.add "network" "{\"input\":", "metadata 'network': not JSON" ] do
                    let path = Path.Combine(dir, $"{name}.safetensors")
                    Checkpoint.save path layout (randomParameters 1) metadata
                    match ModelFile.load path with
                    | Ok _ -> failtest $"{name}: loaded"
                    | Error e ->
                        Expect.stringContains e fragment name
                        Expect.stringContains e path "names the file")
        }

        test "a file written before the network entry loads as before" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "old.safetensors")
                let parameters = randomParameters 2
                Checkpoint.save path layout parameters (ModelFile.metadata Recipe.modern DataSetName.Usps None |> Map.remove "network")
                let model = loadOk path
                Expect.equal (activations model.Network) [ Relu; Identity ] "squashing from the older keys"
                Expect.sequenceEqual model.Parameters parameters "weights")
        }

        test "loads into the network its metadata names" {
            withTempDir (fun dir ->
                for recipe in Recipe.all do
                    let path = Path.Combine(dir, $"{recipe.Name}.safetensors")
                    let parameters = randomParameters 3
                    ModelFile.save path recipe DataSetName.Usps None parameters
                    let model = loadOk path
                    Expect.sequenceEqual model.Parameters parameters $"{recipe.Name}: weights"
                    Expect.equal (activations model.Network) (List.distinct [ recipe.Hidden; recipe.Output ]) $"{recipe.Name}: squashing"
                    Expect.equal model.Loss recipe.Loss $"{recipe.Name}: loss"
                    Expect.equal model.Metadata.["recipe"] recipe.Name "metadata kept")
        }

        test "the metadata reads back as a typed record: data set and held-out count apart, older files' data_set suffix dropped" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "held.safetensors")
                let recipe = { Recipe.modern with Seed = 42 }
                ModelFile.save path recipe DataSetName.MnistSim (Some 500) (randomParameters 2)
                let info = ModelFile.info (loadOk path)
                Expect.equal (info.Recipe, info.Seed, info.Passes) (Some recipe.Name, Some 42, Some recipe.Passes) "recipe, seed, passes"
                Expect.equal (info.DataSet, info.HeldOut) ("mnist-sim", Some 500) "data set and held-out count, apart"
                Expect.equal info.Loss (Some(Loss.name recipe.Loss)) "loss"
                Expect.equal (ModelFile.infoEntries info |> List.map fst)
                    [ "recipe"; "seed"; "passes"; "data_set"; "held_out"; "hidden"; "output"; "loss"; "recipe_details" ] "every entry, in order"
                let older = Path.Combine(dir, "older.safetensors")
                Checkpoint.save older layout (randomParameters 1)
                    (ModelFile.metadata Recipe.lecun1989 DataSetName.Usps None |> Map.add "data_set" "usps, last 1000 training digits held out" |> Map.remove "seed")
                let info = ModelFile.info (loadOk older)
                Expect.equal (info.DataSet, info.Seed) ("usps", None) "the name before the comma; no seed"
                Expect.isFalse (ModelFile.infoEntries info |> List.exists (fun (k, _) -> k = "seed")) "an absent key is left out"
                let bare = Path.Combine(dir, "bare.safetensors")
                Checkpoint.save bare layout (randomParameters 1) Map.empty
                Expect.equal (ModelFile.infoEntries (ModelFile.info (loadOk bare))) [ "data_set", "usps" ] "a file that says nothing: usps")
        }

        test "a file without metadata (say, written in Python) is the paper's network: tanh everywhere, MSE" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "bare.safetensors")
                Checkpoint.save path layout (randomParameters 1) Map.empty
                let model = loadOk path
                Expect.equal (activations model.Network) [ Tanh ] "tanh"
                Expect.equal model.Loss Mse "mse")
        }

        test "a file that records another spec or an unknown squashing is refused, naming the entry" {
            withTempDir (fun dir ->
                for key, value, fragment in
                    [ "spec", "lenet5", "metadata 'spec' is 'lenet5', but this program builds the lecun1989 network"
                      "hidden", "sigmoid", "metadata 'hidden': unknown activation 'sigmoid'"
                      "loss", "hinge", "metadata 'loss': unknown loss 'hinge'" ] do
                    let path = Path.Combine(dir, $"{key}.safetensors")
                    Checkpoint.save path layout (randomParameters 1) (ModelFile.metadata Recipe.lecun1989 DataSetName.Usps None |> Map.add key value)
                    match ModelFile.load path with
                    | Ok _ -> failtest $"{key} {value}: loaded"
                    | Error e ->
                        Expect.stringContains e fragment key
                        Expect.stringContains e path "names the file")
        }

        test "weights that overflow float32 give an error, never a non-finite loss or score" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "huge.safetensors")
                // Finite, but every weighted sum overflows: ±infinity, and NaN where they meet.
                ModelFile.save path Recipe.modern DataSetName.Usps None (Array.init layout.ParamCount (fun i -> if i % 2 = 0 then 3e38f else -3e38f))
                let model = loadOk path
                let digits = oneDigit 5
                match ModelFile.evaluate Backend.Managed model digits with
                | Ok r -> failtest $"evaluated: loss {r.Metrics.Loss}"
                | Error e ->
                    Expect.stringContains e "not finite" "says so"
                    Expect.stringContains e path "names the file"
                match ModelFile.scores Backend.Managed model (Workspace.create model.Network 1) digits.Images "digit.txt" with
                | Ok y -> failtest $"scored: {y}"
                | Error e -> Expect.stringContains e "not finite on digit.txt" "names the digit")
        }

        test "ordinary weights evaluate and score as the engine does" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "model.safetensors")
                let parameters = randomParameters 8
                ModelFile.save path Recipe.lecun1989 DataSetName.Usps None parameters
                let model = loadOk path
                let digits = oneDigit 8
                let direct = Evaluate.split Backend.Managed model.Network model.Loss parameters (Workspace.create model.Network Evaluate.batch) digits
                match ModelFile.evaluate Backend.Managed model digits with
                | Ok r -> Expect.equal r.Metrics direct.Metrics "the same evaluation"
                | Error e -> failtest e
                match ModelFile.scores Backend.Managed model (Workspace.create model.Network 1) digits.Images "digit" with
                | Ok y -> Expect.equal y.Length 10 "ten scores"
                | Error e -> failtest e)
        }
    ]
