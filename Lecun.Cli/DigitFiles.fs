/// Digits given to `predict` as files: 16x16 PGM (P2 or P5), 16x16 PNG, or text rows of 256
/// numbers (257 with a leading label, as the USPS zip files store them).
///
/// Convention, shared with the data sets and the paper's figures: the network sees -1 for white
/// background and +1 for black ink. Image pixels are luminance with 0 = black, so a pixel p of
/// an image with maximum value m becomes 1 - 2 p / m (white m -> -1, black 0 -> +1).
module Lecun.Cli.DigitFiles

open System
open System.Globalization
open System.IO
open System.Text
open SkiaSharp
open Lecun.Model

/// One digit: 256 values in [-1, 1], row-major 16x16, and the label when the file gives one.
type Digit = float32 array * int option

let private side = Dataset.Side
let private pixels = Dataset.Pixels

let private ofPixel (maxval: int) (p: int) = 1.0f - 2.0f * float32 p / float32 maxval


// ---------------------------------------------------------------- PGM

/// Reads the PGM header tokens (magic, width, height, maxval), skipping whitespace and
/// `#` comments; returns them and the position just after the last token.
let private pgmHeader (bytes: byte array) : Result<string list * int, string> =
    let isSpace b = b = ' 'B || b = '\t'B || b = '\n'B || b = '\r'B || b = '\011'B || b = '\012'B
    let rec token pos acc =
        if List.length acc = 4 then Ok(List.rev acc, pos)
        elif pos >= bytes.Length then Error "bad PGM header: it ends before width, height and maxval"
        elif isSpace bytes[pos] then token (pos + 1) acc
        elif bytes[pos] = '#'B then
            let eol = Array.IndexOf(bytes, '\n'B, pos)
            token (if eol < 0 then bytes.Length else eol + 1) acc
        else
            let mutable e = pos
            while e < bytes.Length && not (isSpace bytes[e]) && bytes[e] <> '#'B do
                e <- e + 1
            token e (Encoding.ASCII.GetString(bytes, pos, e - pos) :: acc)
    token 0 []

let private parseInt (text: string) =
    match Int32.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture) with
    | true, v -> Some v
    | _ -> None

let private readPgm (bytes: byte array) : Result<Digit, string> =
    pgmHeader bytes
    |> Result.bind (fun (tokens, pos) ->
        match tokens |> List.map parseInt with
        | _ when tokens[0] <> "P2" && tokens[0] <> "P5" -> Error $"bad PGM header: magic {tokens[0]}, expected P2 or P5"
        | [ _; Some w; Some h; Some maxval ] ->
            if w <> side || h <> side then Error $"image is {w}x{h}, expected {side}x{side}"
            elif maxval < 1 || maxval > 65535 then Error $"bad PGM header: maxval {maxval} is outside 1..65535"
            else Ok(tokens[0], maxval, pos)
        | _ -> Error $"""bad PGM header: "{String.Join(" ", tokens.Tail)}" is not width, height and maxval as integers""")
    |> Result.bind (fun (magic, maxval, pos) ->
        let checkRange i p =
            if p > maxval then Error $"pixel {i} is {p}, above maxval {maxval}" else Ok(ofPixel maxval p)
        if magic = "P5" then
            // Exactly one whitespace byte separates maxval from the raster; samples wider than a
            // byte are big-endian.
            let start = pos + 1
            let width = if maxval < 256 then 1 else 2
            let expected = pixels * width
            let available = bytes.Length - start
            if available < expected then Error $"raster has {max available 0} bytes, expected {expected} (truncated?)"
            elif available > expected then Error $"{available - expected} bytes after the {side}x{side} raster"
            else
                [ 0 .. pixels - 1 ]
                |> Results.traverse (fun i ->
                    let p = if width = 1 then int bytes[start + i] else (int bytes[start + 2 * i] <<< 8) ||| int bytes[start + 2 * i + 1]
                    checkRange i p)
                |> Result.map (fun values -> Array.ofList values, None)
        else
            let text = Encoding.ASCII.GetString(bytes, pos, bytes.Length - pos)
            // Comments may appear in the raster of a plain PGM too.
            let values =
                text.Split('\n')
                |> Array.collect (fun line ->
                    let line = match line.IndexOf '#' with -1 -> line | i -> line.Substring(0, i)
                    line.Split([| ' '; '\t'; '\r'; '\011'; '\012' |], StringSplitOptions.RemoveEmptyEntries))
            if values.Length <> pixels then Error $"raster has {values.Length} values, expected {pixels}"
            else
                values
                |> List.ofArray
                |> List.indexed
                |> Results.traverse (fun (i, v) ->
                    match parseInt v with
                    | Some p -> checkRange i p
                    | None -> Error $"pixel {i} is \"{v}\", not a non-negative integer")
                |> Result.map (fun values -> Array.ofList values, None))

// ---------------------------------------------------------------- PNG

/// Luminance with the ITU-R 601 weights (what PIL's convert("L") uses, so a PNG reads the same
/// here as in a Python reproduction); transparency is composited over white paper.
let private luminance (r: byte) (g: byte) (b: byte) (a: byte) =
    let alpha = float32 a / 255.0f
    let l = 0.299f * float32 r + 0.587f * float32 g + 0.114f * float32 b
    // The weights sum to 1 only up to float rounding; clamping keeps white at exactly -1.
    Math.Clamp(l * alpha + 255.0f * (1.0f - alpha), 0.0f, 255.0f)

let private readPng (bytes: byte array) : Result<Digit, string> =
    use codec = SKCodec.Create(new SKMemoryStream(bytes))
    if isNull codec then
        Error "not a readable PNG (corrupt or truncated?)"
    elif codec.Info.Width <> side || codec.Info.Height <> side then
        Error $"image is {codec.Info.Width}x{codec.Info.Height}, expected {side}x{side}"
    else
        let info = SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Unpremul)
        use bitmap = SKBitmap.Decode(codec, info)
        if isNull bitmap then
            Error "not a readable PNG (corrupt or truncated?)"
        else
            let rgba = bitmap.Bytes
            let values =
                Array.init pixels (fun i ->
                    let l = luminance rgba[4 * i] rgba[4 * i + 1] rgba[4 * i + 2] rgba[4 * i + 3]
                    1.0f - 2.0f * l / 255.0f)
            Ok(values, None)

// ---------------------------------------------------------------- text rows

let private parseLine (lineNumber: int) (line: string) : Result<Digit, string> =
    let at = $"line {lineNumber}"
    let fields = line.Split([| ' '; '\t'; ','; ';' |], StringSplitOptions.RemoveEmptyEntries)
    if fields.Length <> pixels && fields.Length <> pixels + 1 then
        Error $"{at}: {fields.Length} values, expected {pixels} (or {pixels + 1} with a label first)"
    else
        let numbers =
            fields
            |> List.ofArray
            |> List.indexed
            |> Results.traverse (fun (i, f) ->
                match Double.TryParse(f, NumberStyles.Float, CultureInfo.InvariantCulture) with
                | true, v when Double.IsFinite v -> Ok v
                | _ -> Error $"{at}, value {i + 1}: \"{f}\" is not a finite number")
        numbers
        |> Result.bind (fun numbers ->
            let label, values =
                if numbers.Length = pixels + 1 then Some numbers.Head, numbers.Tail else None, numbers
            let label =
                match label with
                | None -> Ok None
                // The USPS files write labels as "6.0000".
                | Some l when l = Math.Round l && l >= 0.0 && l <= 9.0 -> Ok(Some(int l))
                | Some l -> Error $"{at}: label {l} is not a digit 0..9"
            let offset = if numbers.Length = pixels + 1 then 2 else 1
            let values =
                values
                |> List.indexed
                |> List.tryFind (fun (_, v) -> v < -1.0 || v > 1.0)
                |> function
                    | Some(i, v) -> Error $"{at}, value {i + offset}: {v} is outside [-1, 1]"
                    | None -> Ok(values |> List.map float32 |> Array.ofList)
            match label, values with
            | Error e, _
            | _, Error e -> Error e
            | Ok l, Ok v -> Ok(v, l))

let private readText (bytes: byte array) : Result<Digit list, string> =
    let text =
        try Ok(UTF8Encoding(false, true).GetString bytes)
        with :? DecoderFallbackException -> Error "neither a PGM, a PNG nor a text file"
    text
    |> Result.bind (fun text ->
        // Editors on Windows may start the file with a byte-order mark.
        text.TrimStart('\uFEFF').Split('\n')
        |> Array.mapi (fun i line -> i + 1, line.Trim())
        // Blank lines and # comments let people annotate hand-made files.
        |> Array.filter (fun (_, line) -> line <> "" && not (line.StartsWith "#"))
        |> List.ofArray
        |> Results.traverse (fun (n, line) -> parseLine n line)
        |> Result.bind (function
            | [] -> Error "no digits in the file (expected rows of 256 numbers)"
            | digits -> Ok digits))

// ---------------------------------------------------------------- dispatch

let private pngSignature = [| 0x89uy; 'P'B; 'N'B; 'G'B; '\r'B; '\n'B; 0x1Auy; '\n'B |]

let private startsWith (prefix: byte array) (bytes: byte array) =
    bytes.Length >= prefix.Length && bytes.AsSpan(0, prefix.Length).SequenceEqual(ReadOnlySpan prefix)

/// Reads the digits of one file. The format is recognised by content (PGM magic, PNG signature,
/// else text), so a misnamed file still reads; a .pgm or .png that is not one is an error.
/// Every error is one line naming the file.
let read (path: string) : Result<Digit list, string> =
    let bytes =
        try
            if File.Exists path then Ok(File.ReadAllBytes path) else Error "file not found"
        with
        | :? IOException
        | :? UnauthorizedAccessException as e -> Error $"cannot read the file ({e.Message})"
    let extension = Path.GetExtension(path).ToLowerInvariant()
    bytes
    |> Result.bind (fun bytes ->
        if startsWith "P2"B bytes || startsWith "P5"B bytes then readPgm bytes |> Result.map List.singleton
        elif startsWith pngSignature bytes then readPng bytes |> Result.map List.singleton
        elif extension = ".pgm" then Error "bad PGM header: the file does not start with P2 or P5"
        elif extension = ".png" then Error "not a PNG (no PNG signature)"
        else readText bytes)
    |> Result.mapError (fun e -> $"{path}: {e}")
