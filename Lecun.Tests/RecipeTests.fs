/// Recipe.fs: the named recipes, the overrides that change them and the rules a recipe obeys.
module Lecun.Tests.RecipeTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Tests.TestSetup

let private refusedWith (fragment: string) (result: Result<'a, string>) (what: string) =
    match result with
    | Ok _ -> failtest $"{what}: accepted"
    | Error e ->
        Expect.stringContains e fragment what
        Expect.isFalse (e.Contains '\n') $"{what}: one line"

/// Overrides of every kind with valid values, for the order property.
let private genOverrides =
    Gen.elements
        [ RecipeOverride.Passes 3; RecipeOverride.LearningRate 0.02; RecipeOverride.BatchSize 4; RecipeOverride.Seed 7
          RecipeOverride.Loss SoftmaxCrossEntropy; RecipeOverride.Loss MseHalf; RecipeOverride.Activation Relu
          RecipeOverride.Activation ScaledTanh; RecipeOverride.WeightInit FanIn; RecipeOverride.Optimizer Recipe.newton1989.Optimizer
          RecipeOverride.Mu 0.05; RecipeOverride.Shift 2; RecipeOverride.Dropout 0.1; RecipeOverride.Sam 0.05
          RecipeOverride.Rotation 10.0; RecipeOverride.TangentProp 0.1 ]
    |> Gen.listOf
    // One of each kind, as the command line gives them.
    |> Gen.map (List.distinctBy (Recipe.flag >> fst))

[<Tests>]
let tests =
    testList "recipes" [
        testList "each recipe lowers the loss on a tiny problem" [
            for recipe in Recipe.all ->
                test recipe.Name {
                    let data = small ()
                    let tiny = { data with Train = subset data.Train 300; Test = subset data.Test 100 }
                    let r = { recipe with Passes = 3 }
                    let net = Recipe.network r
                    let initial = Init.create r.WeightInit net.Layout r.Seed
                    let before = (Evaluate.split Backend.Managed net r.Loss initial (Workspace.create net 32) tiny.Train).Metrics.Loss
                    let result = Train.run Backend.Managed r tiny initial (fun _ _ -> ()) ignore
                    let after = (List.last result.Passes).Train.Loss
                    Expect.isLessThan after (0.7 * before) $"training loss {before:F4} -> {after:F4}"
                }
        ]
        testList "overrides" [
            test "the options of train map to the recipe fields they name" {
                let r =
                    Recipe.apply
                        [ RecipeOverride.Passes 5; RecipeOverride.LearningRate 0.1; RecipeOverride.BatchSize 8; RecipeOverride.Seed 42
                          RecipeOverride.WeightInit FanIn; RecipeOverride.Shift 2; RecipeOverride.Dropout 0.5 ]
                        Recipe.lecun1989
                match r with
                | Error e -> failtest e
                | Ok r ->
                    Expect.equal (r.Passes, r.LearningRate, r.BatchSize, r.Seed) (5, 0.1f, 8, 42) "numbers"
                    Expect.equal (r.WeightInit, r.Shift, r.Dropout) (FanIn, 2, 0.5f) "the rest"
                    Expect.equal r.Name "lecun1989" "the name stays the base recipe's"
            }

            test "softmax cross-entropy makes the outputs linear; another loss squashes them again; activations keep linear outputs" {
                let apply o r = Recipe.apply o r |> function Ok r -> r | Error e -> failtest e
                let ce = apply [ RecipeOverride.Loss SoftmaxCrossEntropy ] Recipe.lecun1989
                Expect.equal (ce.Loss, ce.Output) (SoftmaxCrossEntropy, Identity) "softmax-ce: linear outputs"
                let relu = apply [ RecipeOverride.Loss SoftmaxCrossEntropy; RecipeOverride.Activation Relu ] Recipe.lecun1989
                Expect.equal (relu.Hidden, relu.Output) (Relu, Identity) "the activation keeps linear outputs linear"
                let mse = apply [ RecipeOverride.Loss Mse ] Recipe.modern
                Expect.equal (mse.Loss, mse.Output) (Mse, Relu) "mse on modern: the outputs take the hidden squashing"
                let tanhAll = apply [ RecipeOverride.Activation ScaledTanh ] Recipe.lecun1989
                Expect.equal (tanhAll.Hidden, tanhAll.Output) (ScaledTanh, ScaledTanh) "squashed outputs follow the activation"
            }

            test "an optimizer brings the learning rate of the recipe that introduced it unless one is given" {
                let apply o r = Recipe.apply o r |> function Ok r -> r | Error e -> failtest e
                let adam = apply [ RecipeOverride.Optimizer Recipe.modern.Optimizer ] Recipe.lecun1989
                Expect.equal (adam.Optimizer, adam.LearningRate) (Recipe.modern.Optimizer, Recipe.modern.LearningRate) "adamw's own rate"
                let given = apply [ RecipeOverride.LearningRate 0.001; RecipeOverride.Optimizer Recipe.modern.Optimizer ] Recipe.lecun1989
                Expect.equal given.LearningRate 0.001f "a given rate wins, whatever its position"
                let sgd = apply [ RecipeOverride.Optimizer Sgd ] Recipe.newton1989
                Expect.equal sgd.LearningRate Recipe.lecun1989.LearningRate "sgd's rate is lecun1989's"
                for o, name in Recipe.optimizers do
                    Expect.equal (Recipe.parseOptimizer name) (Ok o) $"{name} parses"
                    Expect.equal (Recipe.optimizerName o) name "and is named back"
                let newton = match Recipe.newton1989.Optimizer with Newton n -> Newton { n with Mu = 0.5f; Patterns = 7 } | o -> o
                Expect.equal (Recipe.optimizerName newton) "newton" "an optimizer is named whatever its settings"
                Expect.equal (apply [ RecipeOverride.Optimizer newton ] Recipe.lecun1989).LearningRate Recipe.newton1989.LearningRate "and brings its recipe's rate whatever its settings"
                refusedWith "unknown optimizer 'rmsprop' (known: sgd, newton, adamw)" (Recipe.parseOptimizer "rmsprop") "unknown optimizer"
            }

            testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 200 } "give the same recipe in any order"
            <| Prop.forAll (Arb.fromGen (Gen.zip genOverrides (Gen.choose (0, 1000)))) (fun (overrides, seed) ->
                let shuffled = overrides |> List.sortBy (fun o -> hash (seed, Recipe.flag o))
                for baseRecipe in Recipe.all do
                    Expect.equal (Recipe.apply shuffled baseRecipe) (Recipe.apply overrides baseRecipe) $"{baseRecipe.Name}: {overrides} vs {shuffled}")

            test "values that are wrong as given are refused with the option and the value" {
                for overrides, fragment in
                    [ [ RecipeOverride.Passes 0 ], "--passes must be at least 1, got 0"
                      [ RecipeOverride.Passes (Recipe.maxPasses + 1) ], $"--passes must be at most {Recipe.maxPasses}"
                      [ RecipeOverride.LearningRate -1.0 ], "--lr must be a positive number, got -1"
                      [ RecipeOverride.LearningRate nan ], "--lr must be a positive number"
                      [ RecipeOverride.BatchSize 0 ], "--batch-size must be at least 1, got 0"
                      [ RecipeOverride.Activation Identity ], "--activation identity would make the network linear"
                      [ RecipeOverride.Mu 0.01 ], "--mu applies to the newton optimizer only"
                      [ RecipeOverride.Optimizer Recipe.newton1989.Optimizer; RecipeOverride.Mu -1.0 ], "--mu must be positive, got -1"
                      [ RecipeOverride.Shift 9 ], "--shift must be between 0 and 8 pixels, got 9"
                      [ RecipeOverride.Dropout 1.0 ], "--dropout must be in [0, 1), got 1" ] do
                    refusedWith fragment (Recipe.apply overrides Recipe.lecun1989) fragment
            }

            test "values that round away in float32 are refused, naming what they become" {
                // Each is a valid float64 that training's float32 turns into 0, infinity or 1.
                for overrides, fragment in
                    [ [ RecipeOverride.LearningRate 1e-50 ], "--lr must be a positive number, got 1E-50, which is 0 in float32"
                      [ RecipeOverride.LearningRate 1e300 ], "which is infinity in float32"
                      [ RecipeOverride.LearningRate 1e-40 ], "--lr must be a positive number, got 1E-40"
                      [ RecipeOverride.Mu 1e300 ], "--mu must be positive, got 1E+300, which is infinity in float32"
                      [ RecipeOverride.Mu 1e-50 ], "which is 0 in float32"
                      [ RecipeOverride.Dropout 0.99999999999 ], "--dropout must be in [0, 1), got 0.99999999999, which is 1 in float32"
                      [ RecipeOverride.Dropout 1e-50 ], "--dropout must be 0 or large enough to drop a unit"
                      [ RecipeOverride.Dropout 1e-9 ], "1 - rate rounds to 1" ] do
                    refusedWith fragment (Recipe.apply overrides Recipe.newton1989) fragment
            }

            testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 500 } "a float option is refused or survives float32 as a usable value"
            <| fun (x: float) (scale: int) ->
                // Spread the draws over the whole float64 range, where float32 rounds to 0, denormals and infinity.
                let x = x * Math.Pow(10.0, float (scale % 330))
                match Recipe.apply [ RecipeOverride.LearningRate x ] Recipe.lecun1989 with
                | Ok r -> Expect.isTrue (Single.IsNormal r.LearningRate && r.LearningRate > 0.0f) $"--lr {x} -> {r.LearningRate}"
                | Error e -> Expect.stringContains e "--lr" "names the option"
                match Recipe.apply [ RecipeOverride.Mu x ] Recipe.newton1989 with
                | Ok { Optimizer = Newton n } -> Expect.isTrue (Single.IsNormal n.Mu && n.Mu > 0.0f) $"--mu {x} -> {n.Mu}"
                | Ok _ -> failtest "newton lost"
                | Error e -> Expect.stringContains e "--mu" "names the option"
                match Recipe.apply [ RecipeOverride.Dropout (abs x % 1.0) ] Recipe.lecun1989 with
                | Ok r -> Expect.isTrue (r.Dropout = 0.0f || (r.Dropout > 0.0f && r.Dropout < 1.0f && 1.0f - r.Dropout < 1.0f)) $"--dropout {abs x % 1.0} -> {r.Dropout}"
                | Error e -> Expect.stringContains e "--dropout" "names the option"

            test "Train.run checks a recipe it is handed by the same rules" {
                let data = synthetic ()
                for bad in [ { Recipe.lecun1989 with LearningRate = 0.0f }; { Recipe.lecun1989 with Passes = 0 }
                             { Recipe.modern with Dropout = 1.0f }; { Recipe.newton1989 with Optimizer = Newton { Mu = infinityf; Patterns = 1; Schedule = [] } } ] do
                    match Recipe.validate bad with
                    | Ok _ -> failtest $"{bad} was accepted"
                    | Error problem ->
                        try
                            Train.run Backend.Managed bad data (Init.create bad.WeightInit Layout.lecun1989 1) (fun _ _ -> ()) ignore |> ignore
                            failtest $"Train.run ran {bad}"
                        with :? ArgumentException as e -> Expect.stringContains e.Message problem "the same refusal"
                for r in Recipe.all do
                    Expect.equal (Recipe.validate r) (Ok r) $"{r.Name} is valid"
            }
        ]

        testList "seeds" [
            test "a seed range that would wrap past the largest int is refused" {
                refusedWith "goes past the largest seed" (Recipe.seeds Int32.MaxValue 2) "--seed 2147483647 --seeds 2"
                refusedWith "--seeds must be at least 1, got 0" (Recipe.seeds 1 0) "no seeds"
                Expect.equal (Recipe.seeds Int32.MaxValue 1) (Ok [ Int32.MaxValue ]) "the largest seed alone"
                Expect.equal (Recipe.seeds -3 3) (Ok [ -3; -2; -1 ]) "negative seeds are seeds"
            }
            testProperty "an accepted range counts up from the first seed without wrapping" <| fun (first: int) (count: uint16) ->
                let count = int count % 2000
                match Recipe.seeds first count with
                | Ok seeds ->
                    Expect.equal seeds.Length count "as many seeds as asked"
                    Expect.isTrue (seeds |> List.forall (fun s -> s >= first)) "none wrapped"
                | Error e -> Expect.isTrue (count < 1 || int64 first + int64 count - 1L > int64 Int32.MaxValue) e
        ]

        test "AdamW's learning rate falls linearly from 3e-4 to 1e-4 over the passes" {
            let r = Recipe.modern
            Expect.floatClose Accuracy.high (float (Recipe.rateAt r 1)) 3e-4 "first pass"
            Expect.floatClose Accuracy.high (float (Recipe.rateAt r r.Passes)) 1e-4 "last pass"
            Expect.isLessThan (Recipe.rateAt r 40) (Recipe.rateAt r 39) "decreasing"
        }
    ]
