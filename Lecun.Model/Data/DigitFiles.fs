/// Digits given to `predict` as files: 16x16 PGM (P2 or P5), 16x16 PNG, or text rows of 256
/// numbers (257 with a leading label, as the USPS zip files store them).
///
/// Convention, shared with the data sets and the paper's figures: the network sees -1 for white
/// background and +1 for black ink. Image pixels are luminance with 0 = black, so a pixel p of
/// an image with maximum value m becomes 1 - 2 p / m (white m -> -1, black 0 -> +1).
module Lecun.Model.DigitFiles

open System
open System.Globalization
open System.IO
open System.Text
open SkiaSharp


/// One digit: 256 values in [-1, 1], row-major 16x16, and the label when the file gives one.
type Digit = float32 array * int option

let private side = Dataset.Side
let private pixels = Dataset.Pixels

let private ofPixel (maxval: int) (p: int) = 1.0f - 2.0f * float32 p / float32 maxval


// ---------------------------------------------------------------- PGM

/// Reads the PGM header tokens (magic, width, height, maxval), skipping whitespace and
/// `#` comments; returns them and where the raster starts: after the one whitespace byte that
/// ends maxval, or after a comment that follows maxval directly (the comment's newline is then
/// that whitespace).
let private isPgmSpace b = b = ' 'B || b = '\t'B || b = '\n'B || b = '\r'B || b = '\011'B || b = '\012'B

let private pgmHeader (bytes: byte array) : Result<string list * int, string> =
    let isSpace = isPgmSpace
    let endOfComment pos =
        let eol = Array.IndexOf(bytes, '\n'B, pos)
        if eol < 0 then bytes.Length else eol + 1
    let tokens = ResizeArray<string>()
    let mutable pos = 0
    while tokens.Count < 4 && pos < bytes.Length do
        if isSpace bytes[pos] then pos <- pos + 1
        elif bytes[pos] = '#'B then pos <- endOfComment pos
        else
            let mutable e = pos
            // A token is short; a longer run of non-space bytes is not a PGM header.
            while e < bytes.Length && e - pos <= 16 && not (isSpace bytes[e]) && bytes[e] <> '#'B do
                e <- e + 1
            tokens.Add(Encoding.ASCII.GetString(bytes, pos, e - pos))
            pos <- e
    if tokens.Count < 4 then Error "bad PGM header: it ends before width, height and maxval"
    elif pos < bytes.Length && bytes[pos] = '#'B then Ok(List.ofSeq tokens, endOfComment pos)
    else Ok(List.ofSeq tokens, pos + 1)

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
            let start = pos
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
            // The values are read in place, and the raster is refused at the first value past the
            // 256 its header allows: a file of millions of values costs no more than a digit.
            // Comments may appear in the raster of a plain PGM too.
            let values = Array.zeroCreate<float32> pixels
            let mutable count = 0
            let mutable firstBad = None
            let mutable i = pos - 1
            while count <= pixels && i < bytes.Length do
                if isPgmSpace bytes[i] then i <- i + 1
                elif bytes[i] = '#'B then
                    let eol = Array.IndexOf(bytes, '\n'B, i)
                    i <- if eol < 0 then bytes.Length else eol + 1
                else
                    let first = i
                    while i < bytes.Length && not (isPgmSpace bytes[i]) && bytes[i] <> '#'B do i <- i + 1
                    if count < pixels && firstBad.IsNone then
                        let token = ReadOnlySpan(bytes, first, i - first)
                        match Int32.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture) with
                        | true, p ->
                            match checkRange count p with
                            | Ok v -> values[count] <- v
                            | Error e -> firstBad <- Some e
                        | _ -> firstBad <- Some $"pixel {count} is \"{Encoding.ASCII.GetString(bytes, first, min (i - first) 40)}\", not a non-negative integer"
                    count <- count + 1
            if count > pixels then Error $"raster has more than {pixels} values, expected {pixels}"
            elif count < pixels then Error $"raster has {count} values, expected {pixels}"
            else
                match firstBad with
                | Some e -> Error e
                | None -> Ok(values, None))

// ---------------------------------------------------------------- PNG

/// Luminance with the ITU-R 601 weights (what PIL's convert("L") uses, so a PNG reads the same
/// here as in a Python reproduction); transparency is composited over white paper.
let private luminance (r: byte) (g: byte) (b: byte) (a: byte) =
    let alpha = float32 a / 255.0f
    let l = 0.299f * float32 r + 0.587f * float32 g + 0.114f * float32 b
    // The weights sum to 1 only up to float rounding; clamping keeps white at exactly -1.
    Math.Clamp(l * alpha + 255.0f * (1.0f - alpha), 0.0f, 255.0f)

/// Decodes the whole PNG or refuses it: a decoder that stops early (truncated or corrupt image
/// data) would hand back a partly blank image, and a partial digit must not be classified.
/// Walks the PNG's chunks: each whole (length, type, data, CRC), its CRC right, up to IEND. A file
/// cut anywhere, even after the last row's pixels (in the zlib checksum or a chunk's CRC), or
/// damaged in any chunk, is refused before decoding.
let private checkPngChunks (bytes: byte array) : Result<unit, string> =
    let mutable pos = 8
    let mutable result = None
    while result.IsNone do
        if bytes.Length - pos < 12 then
            result <- Some(Error "truncated PNG: it ends before its IEND chunk")
        else
            let length = int64 (Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(bytes, pos, 4)))
            if length > int64 (bytes.Length - pos - 12) then
                result <- Some(Error $"truncated PNG: a chunk of {length} bytes goes past the end of the file")
            else
                let length = int length
                let kind = Encoding.ASCII.GetString(bytes, pos + 4, 4)
                let crc = Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(bytes, pos + 8 + length, 4))
                if RawFile.crc32 (ReadOnlySpan(bytes, pos + 4, 4 + length)) <> crc then
                    result <- Some(Error "corrupt PNG: a chunk's checksum does not match its data")
                elif kind = "IEND" then result <- Some(Ok())
                else pos <- pos + 12 + length
    result.Value

let private decodePng (bytes: byte array) : Result<Digit, string> =
    use codec = SKCodec.Create(new SKMemoryStream(bytes))
    if isNull codec then
        Error "not a readable PNG (corrupt or truncated?)"
    elif codec.Info.Width <> side || codec.Info.Height <> side then
        Error $"image is {codec.Info.Width}x{codec.Info.Height}, expected {side}x{side}"
    else
        let info = SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Unpremul)
        let rgba = Array.zeroCreate<byte> (4 * pixels)
        let handle = Runtime.InteropServices.GCHandle.Alloc(rgba, Runtime.InteropServices.GCHandleType.Pinned)
        let result =
            try codec.GetPixels(info, handle.AddrOfPinnedObject())
            finally handle.Free()
        match result with
        | SKCodecResult.Success ->
            let values =
                Array.init pixels (fun i ->
                    let l = luminance rgba[4 * i] rgba[4 * i + 1] rgba[4 * i + 2] rgba[4 * i + 3]
                    1.0f - 2.0f * l / 255.0f)
            Ok(values, None)
        | SKCodecResult.IncompleteInput -> Error "truncated PNG: the image data ends before the last row"
        | other -> Error $"corrupt PNG: the decoder stopped ({other})"

let private readPng (bytes: byte array) =
    checkPngChunks bytes |> Result.bind (fun () -> PngData.check side bytes) |> Result.bind (fun () -> decodePng bytes)

// ---------------------------------------------------------------- text rows

/// The refusal of a row (DigitRows reads it), in this reader's words.
let private rowMessage (error: DigitRows.RowError) =
    match error with
    | DigitRows.ValueCount found -> $"{found} values, expected {pixels} (or {pixels + 1} with a label first)"
    | DigitRows.LabelNotANumber token
    | DigitRows.LabelNotWhole token
    | DigitRows.LabelOutside token -> $"label {token} is not a digit 0..9"
    | DigitRows.NotANumber(value, token)
    | DigitRows.NotFinite(value, token) -> $"value {value}: \"{token}\" is not a finite number"
    | DigitRows.OutOfRange(value, token) -> $"value {value}: {token} is outside [-1, 1]"

/// Bounds of a text digit file, so no input makes it read or hold without limit: a row of 256
/// numbers is a few kilobytes, and a file of all the USPS digits (9,298) fits twice over.
let maxTextDigits = 20_000
let maxLineChars = 65_536
/// Lines of any kind (digits, blank, comments) read before the file is refused.
let maxTextLines = 1_000_000

/// Reads text rows (DigitRows, the label optional) from a stream, one line at a time, each line
/// bounded: memory stays at one line plus the digit being handed on, whatever the file holds.
/// Blank lines and # comments are allowed anywhere, so people can annotate hand-made files.
let private readText (stream: Stream) (onDigit: Digit -> unit) : Result<int, string> =
    let lines = DigitRows.LineReader(stream, maxLineChars)
    let mutable digits = 0
    let mutable lineNumber = 0
    let mutable error: string = null
    let mutable lineEnd = lines.Next()
    lines.SkipByteOrderMark lineEnd
    while isNull error && lineEnd <> -1 do
        if lineEnd = DigitRows.LineReader.TooLong then
            error <- $"line {lineNumber + 1} is longer than {maxLineChars} characters; no digit row is"
        else
            lineNumber <- lineNumber + 1
            let text = lines.Text
            let mutable start = lines.LineStart
            // UTF-8 only: a line of other bytes is no text digit file.
            if not (Unicode.Utf8.IsValid(ReadOnlySpan(text, start, lineEnd - start))) then
                error <- "neither a PGM, a PNG nor a text file"
            else
                while start < lineEnd && DigitRows.isSeparator text[start] do start <- start + 1
                if start < lineEnd && text[start] <> '#'B then
                    if digits = maxTextDigits then
                        error <- $"more than {maxTextDigits} digits in one file (split it)"
                    else
                        let image = Array.zeroCreate<float32> pixels
                        match DigitRows.parse DigitRows.Optional text start lineEnd (Span image) with
                        | Ok label ->
                            onDigit (image, label)
                            digits <- digits + 1
                        | Error e -> error <- $"line {lineNumber}: {rowMessage e}"
            if isNull error && lineNumber >= maxTextLines then
                error <- $"more than {maxTextLines} lines; no digit file here is that long"
            if isNull error then lineEnd <- lines.Next()
    if not (isNull error) then Error error
    elif digits = 0 then Error "no digits in the file (expected rows of 256 numbers)"
    else Ok digits

// ---------------------------------------------------------------- dispatch

let private pngSignature = [| 0x89uy; 'P'B; 'N'B; 'G'B; '\r'B; '\n'B; 0x1Auy; '\n'B |]

let private startsWith (prefix: byte array) (bytes: byte array) =
    bytes.Length >= prefix.Length && bytes.AsSpan(0, prefix.Length).SequenceEqual(ReadOnlySpan prefix)

/// A 16x16 PGM or PNG is a few kilobytes; this leaves room for comments and metadata chunks.
let maxImageBytes = 4 * 1024 * 1024

/// Reads the digits of one file, handing each to `onDigit` as it is read, and returns their count.
/// The format is recognised by content (PGM magic, PNG signature, else text), so a misnamed file
/// still reads; a .pgm or .png that is not one is an error. Images are read whole up to
/// maxImageBytes, text line by line: no file, whatever its size, makes the reader hold more than
/// the bounds above. Every error is one line naming the file; digits handed on before it were
/// read from the file's lines before the error.
let readEach (path: string) (onDigit: Digit -> unit) : Result<int, string> =
    let extension = Path.GetExtension(path).ToLowerInvariant()
    let readFrom (stream: Stream) =
        let head = Array.zeroCreate<byte> pngSignature.Length
        let got = stream.ReadAtLeast(head.AsSpan(), head.Length, false)
        let head = Array.sub head 0 got
        let image (decode: byte array -> Result<Digit, string>) =
            let rest = RawFile.readAtMost stream (maxImageBytes - got) None
            match rest with
            | None -> Error $"larger than {maxImageBytes} bytes; a 16x16 image is a few kilobytes"
            | Some rest -> decode (Array.append head rest) |> Result.map (fun digit -> onDigit digit; 1)
        if startsWith "P2"B head || startsWith "P5"B head then image readPgm
        elif startsWith "P3"B head || startsWith "P6"B head then Error "a colour PPM image (P3 or P6); only grayscale PGM (P2 or P5) is supported"
        elif startsWith "P1"B head || startsWith "P4"B head then Error "a PBM bitmap (P1 or P4); only grayscale PGM (P2 or P5) is supported"
        elif startsWith pngSignature head then image readPng
        elif extension = ".pgm" then Error "bad PGM header: the file does not start with P2 or P5"
        elif extension = ".png" then Error "not a PNG (no PNG signature)"
        else readText (new PrefixedStream(head, stream)) onDigit
    let result =
        try
            match RawFile.openRead 65536 path with
            | Error e -> Error e
            | Ok stream ->
                use stream = stream
                readFrom stream
        with
        | :? IOException
        | :? UnauthorizedAccessException as e -> Error $"cannot read the file ({e.Message})"
    result |> Result.mapError (fun e -> $"{path}: {e}")

/// The digits of one file, all of them (readEach collecting them).
let read (path: string) : Result<Digit list, string> =
    let digits = ResizeArray<Digit>()
    readEach path digits.Add |> Result.map (fun _ -> List.ofSeq digits)
