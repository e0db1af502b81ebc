module Lecun.Tests.ShowTests

open System
open System.IO
open Expecto
open SkiaSharp
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Cli
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup
open Lecun.Tests.ServeFixture



let private testDigits () = (modelView ()).Data |> function Ok d -> d.Test | Error e -> failwith e

[<Tests>]
let tests =
    testList "show" [
        test "the picture draws the input and each layer's values on the one grey scale" {
            let view = modelView ()
            let image = (testDigits ()).Image(11).ToArray()
            let layers = Inspect.layers Backend.Managed view.Net view.Parameters (Workspace.create view.Net 1) image
            let h1w = view.Net.Layout.View "H1w"
            let png = ShowCommand.png { Title = "test"; Input = image; Layers = layers; Kernels = view.Parameters.[h1w.Offset .. h1w.Offset + h1w.Length - 1] }
            use bitmap = SKBitmap.Decode png
            Expect.equal (bitmap.Width, bitmap.Height) (1220, 420) "size"
            let greyAt x y = bitmap.GetPixel(x, y).Red
            // Input: 8 pixels per value from (24, 100); H1's first map: 7 pixels per value from (192, 100).
            for r in 0 .. 15 do
                for c in 0 .. 15 do
                    Expect.equal (greyAt (24 + 8 * c + 4) (100 + 8 * r + 4)) (Plots.gray image.[r * 16 + c]) $"input ({r},{c})"
            for r in 0 .. 7 do
                for c in 0 .. 7 do
                    Expect.equal (greyAt (192 + 7 * c + 3) (100 + 7 * r + 3)) (Plots.gray layers.[0].[r * 8 + c]) $"H1 map 0 ({r},{c})"
        }
        test "Inspect.layers gives each layer's outputs as the forward pass leaves them" {
            let view = modelView ()
            let image = (testDigits ()).Image(3).ToArray()
            let layers = Inspect.layers Backend.Managed view.Net view.Parameters (Workspace.create view.Net 1) image
            Expect.equal (layers |> Array.map Array.length) [| 768; 192; 30; 10 |] "layer sizes"
            Expect.equal layers (expectedLayers view image) "same values"
            Expect.throwsT<ArgumentException> (fun () -> Inspect.layers Backend.Managed view.Net view.Parameters (Workspace.create view.Net 1) (Array.zeroCreate 255) |> ignore) "a wrong size is refused"
        }
        testSequencedGroup "console" <| testList "command line" [
            test "show --digit writes the PNG and names the class" {
                withTempDir (fun dir ->
                    let out = Path.Combine(dir, "show.png")
                    let code, stdout, err = TestSetup.runCli [ "show"; "--model"; modelFile (); "--digit"; "5"; "--backend"; "managed"; "--out"; out ]
                    Expect.equal code 0 $"exit code (stderr: {err})"
                    let data = testDigits ()
                    let layers = expectedLayers (modelView ()) (data.Image(5).ToArray())
                    Expect.stringContains stdout $"usps test digit 5 (label {data.Labels.[5]}): class {Loss.argmax layers.[3] 0 10}" "the line names digit, label and class"
                    use bitmap = SKBitmap.Decode(File.ReadAllBytes out)
                    Expect.isNotNull bitmap "a PNG")
            }
            test "show reads a digit file" {
                withTempDir (fun dir ->
                    let input = Path.Combine(dir, "digit.txt")
                    File.WriteAllText(input, String.Join(" ", (testDigits ()).Image(9).ToArray() |> Array.map (fun v -> v.ToString("R", Globalization.CultureInfo.InvariantCulture))))
                    let out = Path.Combine(dir, "nine.png")
                    let code, _, err = TestSetup.runCli [ "show"; "--model"; modelFile (); "--backend"; "managed"; "--out"; out; input ]
                    Expect.equal code 0 $"exit code (stderr: {err})"
                    Expect.isTrue (File.Exists out) "written")
            }
            for args, fragment in
                [ [ "--digit"; "2007" ], "test digit 2007 does not exist (0..2006)"
                  [ "--digit"; "1"; "/tmp/x.txt" ], "either --digit or an INPUT"
                  [], "--digit N or an INPUT"
                  [ "--digit"; "1"; "--split"; "valid" ], "--split must be train or test" ] do
                test $"""show {String.Join(" ", args)} is refused""" {
                    let code, _, err = TestSetup.runCli ([ "show"; "--model"; modelFile (); "--backend"; "managed"; "--out"; "/tmp/never.png" ] @ args)
                    Expect.notEqual code 0 "non-zero exit"
                    Expect.stringContains err fragment "the error names the problem"
                    Expect.isFalse (err.Contains "   at ") "no stack trace"
                }
            test "eval --misses lists the misclassified digits' indices" {
                let code, out, err = TestSetup.runCli [ "eval"; "--model"; modelFile (); "--backend"; "managed"; "--misses" ]
                Expect.equal code 0 $"exit code (stderr: {err})"
                let listed =
                    Text.RegularExpressions.Regex.Matches(out, @"(\d+): (\d) -> (\d)")
                    |> Seq.map (fun m -> { ModelView.Miss.Index = int m.Groups.[1].Value; ModelView.Miss.Label = int m.Groups.[2].Value; ModelView.Miss.Predicted = int m.Groups.[3].Value })
                    |> Array.ofSeq
                Expect.equal listed (modelView ()).Misses "the same misses as the model's evaluation"
                Expect.isGreaterThan listed.Length 0 "some misses"
            }
        ]
    ]
