module Lecun.Tests.PlotsTests

open System
open System.IO
open Expecto
open SkiaSharp
open Lecun.Model
open Lecun.Cli
open Lecun.Tests.TestKit

let private pngSignature = [| 0x89uy; 0x50uy; 0x4Euy; 0x47uy; 0x0Duy; 0x0Auy; 0x1Auy; 0x0Auy |]

/// Checks the file is a PNG that decodes, that it is the only file in its folder (no temp files
/// left behind), and returns the decoded picture.
let private expectPng (dir: string) (path: string) =
    Expect.equal (Directory.GetFiles dir |> Array.map Path.GetFileName) [| Path.GetFileName path |] "only the picture, no temp files"
    let bytes = File.ReadAllBytes path
    Expect.isGreaterThan bytes.Length 100 "not empty"
    Expect.equal bytes[..7] pngSignature "PNG signature"
    let bitmap = SKBitmap.Decode bytes
    Expect.isNotNull bitmap "decodes"
    bitmap

let private passes n =
    [ for p in 1 .. n ->
        let t = float p
        { Pass = p
          Train = { Loss = 0.1 * exp (-t / 5.0); Error = 10.0 * exp (-t / 4.0); Misses = 0; Count = 7291 }
          Test = { Loss = 0.1 * exp (-t / 6.0) + 0.02; Error = 12.0 * exp (-t / 4.0) + 5.0; Misses = 0; Count = 2007 }
          Seconds = 1.0 } ]

/// A digit with ink (+1) in the top-left pixel only, on white (-1) paper.
let private dot = Array.init Dataset.Pixels (fun i -> if i = 0 then 1.0f else -1.0f)

[<Tests>]
let tests =
    testList "plots" [
        test "curves is a PNG with two panels under a title" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "curves.png")
                Plots.curves "test run" (passes 23) path
                use bitmap = expectPng dir path
                Expect.equal (bitmap.Width, bitmap.Height) (1400, 544) "size")
        }

        test "curves copes with no passes, a zero loss and a diverged run" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "curves.png")
                Plots.curves "empty" [] path
                (expectPng dir path).Dispose()
                let zero = passes 3 |> List.map (fun p -> { p with Train = { p.Train with Loss = 0.0; Error = 0.0 } })
                Plots.curves "zero" zero path
                (expectPng dir path).Dispose()
                let diverged = passes 5 |> List.map (fun p -> { p with Train = { p.Train with Loss = nan }; Test = { p.Test with Loss = infinity } })
                Plots.curves "diverged" diverged path
                (expectPng dir path).Dispose())
        }

        test "the gallery is a PNG, 12 digits a row, at most 120, ink black on white" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "errors.png")
                let n = 130
                Plots.errorGallery "errors" (Array.create n dot) (Array.init n (fun i -> i % 10)) (Array.init n (fun i -> (i + 1) % 10)) path
                use bitmap = expectPng dir path
                // 12 columns of 64 + 10 px, 10 rows (120 shown) of 64 + 20 + 10 px, under a 64 px header.
                Expect.equal (bitmap.Width, bitmap.Height) (10 + 12 * 74, 64 + 10 * 94 + 10) "size"
                // The first digit starts at (10, 64); each pixel is 4x4.
                let ink = bitmap.GetPixel(11, 65)
                let paper = bitmap.GetPixel(10 + 4 * 8 + 1, 65)
                Expect.equal (ink.Red, ink.Green, ink.Blue) (0uy, 0uy, 0uy) "+1 is black"
                Expect.equal (paper.Red, paper.Green, paper.Blue) (255uy, 255uy, 255uy) "-1 is white")
        }

        test "an empty gallery is still a picture" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "errors.png")
                Plots.errorGallery "none" [||] [||] [||] path
                (expectPng dir path).Dispose())
        }

        test "the gallery refuses mismatched inputs" {
            Expect.throws (fun () -> Plots.errorGallery "x" [| dot |] [| 1; 2 |] [| 3 |] "unused.png") "label count"
            Expect.throws (fun () -> Plots.errorGallery "x" [| Array.zeroCreate 10 |] [| 1 |] [| 3 |] "unused.png") "image size"
        }
    ]
