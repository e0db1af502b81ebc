module Lecun.Tests.DigitFilesTests

open System
open System.Globalization
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open SkiaSharp
open Lecun.Model
open Lecun.Tests.TestKit

/// Writes the bytes under the given file name and reads them back.
let private readAs (name: string) (bytes: byte array) =
    withTempDir (fun dir ->
        let path = Path.Combine(dir, name)
        File.WriteAllBytes(path, bytes)
        DigitFiles.read path)

/// The documented convention: pixel p of maximum m is 1 - 2p/m (white -1, black ink +1).
let private expected (maxval: int) (pixels: int array) = pixels |> Array.map (fun p -> 1.0f - 2.0f * float32 p / float32 maxval)

let private expectDigit (result: Result<(float32 array * int option) list, string>) (values: float32 array) (label: int option) =
    match result with
    | Error e -> failtest e
    | Ok [ v, l ] ->
        Expect.equal l label "label"
        Expect.equal v.Length 256 "256 values"
        for i in 0 .. 255 do
            Expect.floatClose { absolute = 1e-5; relative = 1e-5 } (float v[i]) (float values[i]) $"value {i}"
    | Ok other -> failtest $"expected one digit, got {other.Length}"

/// A 16x16 P5 PGM with a comment (HostileTests damages it).
let pgmP5 (maxval: int) (pixels: int array) =
    let header = Encoding.ASCII.GetBytes $"P5\n# a comment\n16 16\n{maxval}\n"
    let raster =
        if maxval < 256 then pixels |> Array.map byte
        else pixels |> Array.collect (fun p -> [| byte (p >>> 8); byte (p &&& 0xFF) |])
    Array.append header raster

let private pgmP2 (maxval: int) (pixels: int array) =
    let rows = pixels |> Array.chunkBySize 16 |> Array.map (fun r -> String.Join(" ", r))
    Encoding.ASCII.GetBytes($"P2\n# made by a test\n16 16 {maxval}\n" + String.Join("\n", rows) + "\n")

let private png (width: int) (height: int) (color: int -> SKColor) =
    use bitmap = new SKBitmap(SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul))
    for i in 0 .. width * height - 1 do
        bitmap.SetPixel(i % width, i / width, color i)
    use data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
    data.ToArray()

let private textRow (label: string option) (values: float32 array) =
    let numbers = values |> Array.map (fun v -> v.ToString("R", CultureInfo.InvariantCulture))
    String.Join(" ", Array.append (label |> Option.toArray) numbers)

let private genPixels maxval = Gen.arrayOfLength 256 (Gen.choose (0, maxval))

let private genDigit = Gen.arrayOfLength 256 (Gen.choose (-1000, 1000) |> Gen.map (fun i -> float32 i / 1000.0f))

let private property name (gen: Gen<'a>) (body: 'a -> unit) =
    testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 50 } name (Prop.forAll (Arb.fromGen gen) body)

let private ramp = Array.init 256 id

[<Tests>]
let tests =
    testList "digit files" [
        testList "round trips" [
            property "P5 PGM, any maxval" (Gen.choose (1, 65535) |> Gen.bind (fun m -> genPixels m |> Gen.map (fun p -> m, p))) (fun (maxval, pixels) ->
                expectDigit (readAs "d.pgm" (pgmP5 maxval pixels)) (expected maxval pixels) None)
            property "P2 PGM, any maxval" (Gen.choose (1, 65535) |> Gen.bind (fun m -> genPixels m |> Gen.map (fun p -> m, p))) (fun (maxval, pixels) ->
                expectDigit (readAs "d.pgm" (pgmP2 maxval pixels)) (expected maxval pixels) None)
            test "P5 PGM: black is +1, white is -1" {
                let pixels = Array.init 256 (fun i -> if i < 128 then 0 else 255)
                expectDigit (readAs "d.pgm" (pgmP5 255 pixels)) (Array.init 256 (fun i -> if i < 128 then 1.0f else -1.0f)) None
            }
            test "gray PNG" {
                let bytes = png 16 16 (fun i -> SKColor(byte i, byte i, byte i))
                expectDigit (readAs "d.png" bytes) (expected 255 ramp) None
            }
            test "colour PNG uses luminance; transparent is paper" {
                let bytes = png 16 16 (fun i -> if i = 0 then SKColor(255uy, 0uy, 0uy) elif i = 1 then SKColor(0uy, 0uy, 0uy, 0uy) else SKColors.White)
                let l = 0.299f * 255.0f
                let want = Array.init 256 (fun i -> if i = 0 then 1.0f - 2.0f * l / 255.0f else -1.0f)
                expectDigit (readAs "d.png" bytes) want None
            }
            property "text row of 256 values is exact" genDigit (fun digit ->
                match readAs "d.txt" (Encoding.UTF8.GetBytes(textRow None digit)) with
                | Ok [ v, None ] -> Expect.equal v digit "bit-identical"
                | other -> failtest $"%A{other}")
            property "predict's text rows and the USPS loader read one grammar: the same rows, the same digits"
                (Gen.zip (Gen.arrayOfLength 3 (Gen.zip (Gen.choose (0, 9)) genDigit)) (Gen.elements [ " "; "\t"; ", "; ";"; " ,\t" ]))
                (fun (digits, separator) ->
                    let text =
                        digits
                        |> Array.map (fun (label, values) ->
                            String.Join(separator, Array.append [| $"{label}.0000" |] (values |> Array.map (fun v -> v.ToString("R", CultureInfo.InvariantCulture)))))
                        |> fun rows -> String.Join("\n", rows) + "\n"
                    let bytes = Encoding.ASCII.GetBytes text
                    match readAs "rows.txt" bytes, Usps.parse "rows" bytes with
                    | Ok predicted, Ok usps ->
                        Expect.equal (predicted |> List.map snd) (digits |> Array.map (fst >> Some) |> List.ofArray) "labels, as written"
                        Expect.equal (predicted |> List.map fst |> Array.concat) usps.Images "the same values, bit for bit"
                        Expect.equal (predicted |> List.map (snd >> Option.get) |> Array.ofList) usps.Labels "the same labels"
                    | predicted, usps -> failtest $"{separator}: predict {predicted |> Result.map List.length}, usps {usps |> Result.map (fun d -> d.Count)}")
            test "USPS rows: 257 values with the label first, several lines, blanks and comments" {
                let a = Array.init 256 (fun i -> float32 (i % 3 - 1))
                let b = Array.init 256 (fun i -> -0.5f)
                let text = "\uFEFF" + String.Join("\n", [ "# two digits"; textRow (Some "6.0000") a; ""; textRow (Some "0") b + "\r" ])
                match readAs "zip.test" (Encoding.UTF8.GetBytes text) with
                | Ok [ va, la; vb, lb ] ->
                    Expect.equal (la, lb) (Some 6, Some 0) "labels"
                    Expect.equal va a "first"
                    Expect.equal vb b "second"
                | other -> failtest $"%A{other}"
            }
            test "format is recognised by content, not name" {
                expectDigit (readAs "digit.dat" (pgmP5 255 ramp)) (expected 255 ramp) None
            }
        ]

        test "each malformed file is one clear error naming the file" {
            let row n = String.Join(" ", Array.create n "0.5")
            let cases =
                [ "P5 15x16", "d.pgm", Array.append (Encoding.ASCII.GetBytes "P5 15 16 255\n") (Array.zeroCreate 240), "15x16"
                  "P3 magic", "d.pgm", Encoding.ASCII.GetBytes "P3 16 16 255\n", "colour PPM image (P3 or P6)"
                  "no magic", "d.pgm", Encoding.ASCII.GetBytes "hello", "bad PGM header"
                  "header cut short", "d.pgm", Encoding.ASCII.GetBytes "P5 16 16", "bad PGM header"
                  "letters for width", "d.pgm", Encoding.ASCII.GetBytes "P2 sixteen 16 255\n", "bad PGM header"
                  "maxval 0", "d.pgm", pgmP5 0 (Array.zeroCreate 256), "maxval 0"
                  "pixel above maxval", "d.pgm", pgmP2 15 (Array.init 256 (fun i -> if i = 7 then 16 else 0)), "pixel 7 is 16"
                  "P5 truncated", "d.pgm", (pgmP5 255 ramp)[.. 200], "truncated"
                  "P5 trailing bytes", "d.pgm", Array.append (pgmP5 255 ramp) [| 1uy |], "after"
                  "P5 16-bit truncated", "d.pgm", (pgmP5 1000 ramp)[.. 300], "truncated"
                  "P2 too few values", "d.pgm", (pgmP2 255 ramp)[.. 100], "values, expected 256"
                  "P2 not an integer", "d.pgm", Encoding.ASCII.GetBytes("P2 16 16 255\n" + String.Join(" ", Array.create 256 "1.5")), "not a non-negative integer"
                  "PNG 28x28", "d.png", png 28 28 (fun _ -> SKColors.White), "28x28"
                  "PNG corrupt", "d.png", Array.append (png 16 16 (fun _ -> SKColors.White)).[.. 20] (Array.zeroCreate 10), "PNG"
                  "PNG without signature", "d.png", Encoding.ASCII.GetBytes "not a picture", "not a PNG"
                  "255 values", "d.txt", Encoding.ASCII.GetBytes(row 256 + "\n" + row 255), "line 2: 255 values"
                  "value out of range", "d.txt", Encoding.ASCII.GetBytes(row 100 + " 1.5 " + row 155), "value 101: 1.5 is outside [-1, 1]"
                  "not a number", "d.txt", Encoding.ASCII.GetBytes(row 10 + " abc " + row 245), "\"abc\" is not a finite number"
                  "NaN", "d.txt", Encoding.ASCII.GetBytes(row 10 + " NaN " + row 245), "not a finite number"
                  "label not a digit", "d.txt", Encoding.ASCII.GetBytes("12 " + row 256), "label 12"
                  "label not whole", "d.txt", Encoding.ASCII.GetBytes("2.5 " + row 256), "label 2.5"
                  "empty", "d.txt", [||], "no digits"
                  "binary junk", "d.bin", [| 0xFFuy; 0xFEuy; 0x00uy |], "neither" ]
            for what, name, bytes, mentions in cases do
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, name)
                    File.WriteAllBytes(path, bytes)
                    match DigitFiles.read path with
                    | Ok _ -> failtest $"{what}: accepted"
                    | Error e ->
                        Expect.stringStarts e path $"{what}: names the file"
                        Expect.stringContains e mentions what
                        Expect.isFalse (e.Contains '\n') $"{what}: one line")
        }

        test "a missing file" {
            match DigitFiles.read "/nonexistent/digit.pgm" with
            | Ok _ -> failtest "accepted"
            | Error e -> Expect.equal e "/nonexistent/digit.pgm: file not found" "message"
        }
    ]
