/// The zip-code digit text format (ESL "ZIP code" data): one digit per line, a label written as
/// `6` or `6.0000`, then 256 values in [-1, 1], row-major 16x16, separated by spaces or tabs.
namespace Lecun.Model

open System
open System.Globalization
open System.Text
open Lecun.Native.Text

module Usps =
    let private values = Dataset.Pixels

    /// Digits and class counts (0..9) of the distributed files (see Lecun.Model/Data/README.md).
    let trainCount, testCount = 7291, 2007
    let trainClassCounts = [| 1194; 1005; 731; 658; 652; 556; 664; 645; 542; 644 |]
    let testClassCounts = [| 359; 264; 198; 166; 200; 160; 170; 147; 166; 177 |]

    /// The largest file read: the distributed train split is 14.5 MB of text (7291 lines of about
    /// 2 KB); this leaves room for values written with many more digits.
    let maxFileBytes = 64 * 1024 * 1024
    /// No valid file holds more digits than the train split; the parser stops past that.
    let maxDigits = trainCount

    let inline private isSpace (b: byte) = DecimalText.IsSpace b

    /// A token as it appears in a message: printable ASCII, other bytes as '?', cut at 24 chars.
    let private shown (text: byte array) (start: int) (stop: int) =
        let n = min (stop - start) 24
        let chars = Array.init n (fun i -> let b = text[start + i] in if b >= 32uy && b < 127uy then char b else '?')
        let s = String(chars)
        if stop - start > n then s + "..." else s

    /// A label is a whole number 0..9, written `6`, `6.`, `6.0000` (a float with zero fraction).
    let private parseLabel (text: byte array) (start: int) (stop: int) : Result<int, string> =
        let mutable i = start
        if text[i] = 43uy || text[i] = 45uy then i <- i + 1
        let mutable value = 0
        let mutable digits = 0
        while i < stop && text[i] >= 48uy && text[i] <= 57uy do
            value <- min 1000 (value * 10 + int (text[i] - 48uy))
            digits <- digits + 1
            i <- i + 1
        let mutable fracZero = true
        if i < stop && text[i] = 46uy then
            i <- i + 1
            while i < stop && text[i] >= 48uy && text[i] <= 57uy do
                if text[i] <> 48uy then fracZero <- false
                i <- i + 1
        let token = shown text start stop
        if digits = 0 || i <> stop then
            Error $"label '{token}' is not a number (expected a digit 0..9, written like 6 or 6.0000)"
        elif not fracZero then
            Error $"label '{token}' is not a whole number (expected a digit 0..9)"
        elif value > 9 || (text[start] = 45uy && value <> 0) then
            Error $"label '{token}' is outside 0..9"
        else
            Ok value

    /// The lines of a stream, one at a time, in a buffer that grows only for a line longer than it (the
    /// distributed files' lines are about 2 KB). Line ends are not part of a line.
    type private LineReader(input: IO.Stream) =
        let mutable text = Array.zeroCreate<byte> (1 <<< 16)
        // text[start .. filled - 1] is read and not yet returned.
        let mutable start = 0
        let mutable filled = 0
        let mutable ended = false
        let mutable lineStart = 0
        /// The buffer holding the current line.
        member _.Text = text
        /// Where the current line starts in Text.
        member _.LineStart = lineStart
        /// Skips `bytes` at the start of the current line (a byte-order mark).
        member _.Skip(bytes: int) = lineStart <- lineStart + bytes
        /// Moves to the next line and returns where it ends in Text, or -1 when the stream has no more bytes.
        member _.Next() =
            let mutable eol = -1
            let mutable scanned = start
            let mutable searching = true
            while searching do
                let found = if scanned < filled then Array.IndexOf(text, 10uy, scanned, filled - scanned) else -1
                if found >= 0 then
                    eol <- found
                    searching <- false
                elif ended then
                    eol <- (if start < filled then filled else -1)
                    searching <- false
                else
                    scanned <- filled
                    if start > 0 then
                        Buffer.BlockCopy(text, start, text, 0, filled - start)
                        scanned <- scanned - start
                        filled <- filled - start
                        start <- 0
                    if filled = text.Length then
                        // No line of a file within maxFileBytes needs more than that.
                        let grown = int (min (2L * int64 text.Length) (int64 maxFileBytes))
                        let larger = Array.zeroCreate<byte> (if grown > text.Length then grown else 2 * text.Length)
                        Buffer.BlockCopy(text, 0, larger, 0, filled)
                        text <- larger
                    let got = input.Read(text, filled, text.Length - filled)
                    if got = 0 then ended <- true else filled <- filled + got
            lineStart <- start
            if eol >= 0 then start <- eol + 1
            eol

    /// Parses the digits of a stream, one line at a time: memory is the digits read so far and one
    /// line, whatever the stream holds (RawFile.stream bounds how much that is).
    let private parseStream (source: string) (input: IO.Stream) : Result<Dataset, string> =
        let lines = LineReader input
        // The digits go into blocks as they are read, joined at the end: allocation is twice the
        // digits, whatever the count.
        let blockDigits = 128
        let blocks = ResizeArray<float32 array>()
        let labels = ResizeArray<int>()
        let mutable line = 0
        let mutable count = 0
        let mutable firstBlank = 0
        let mutable error: string = null
        let at (line: int) (msg: string) = $"{source}: line {line}: {msg}"
        let mutable lineEnd = lines.Next()
        // Editors on Windows may start the file with a byte-order mark.
        let first = lines.Text
        if lineEnd >= 3 && first[0] = 0xEFuy && first[1] = 0xBBuy && first[2] = 0xBFuy then lines.Skip 3
        while isNull error && lineEnd >= 0 do
            let text, n = lines.Text, lineEnd
            let inline skipSpace p =
                let mutable p = p
                while p < n && isSpace text[p] do p <- p + 1
                p
            let inline tokenEnd p =
                let mutable p = p
                while p < n && not (isSpace text[p]) do p <- p + 1
                p
            line <- line + 1
            let mutable pos = skipSpace lines.LineStart
            if pos >= n then
                // Blank lines are harmless at the end of a file; in the middle they mean a
                // damaged file, reported below when the next digit shows up.
                if firstBlank = 0 then firstBlank <- line
            elif firstBlank <> 0 then
                line <- firstBlank
                error <- at line ("empty line between digits (expected a label and 256 values)")
            elif count = maxDigits then
                error <- at line $"more than {maxDigits} digits, the size of the largest usps split (not a usps file?)"
            else
                let stop = tokenEnd pos
                match parseLabel text pos stop with
                | Error msg -> error <- at line msg
                | Ok label ->
                    if count = blocks.Count * blockDigits then blocks.Add(Array.zeroCreate<float32> (blockDigits * values))
                    pos <- stop
                    // The 256 values: the hot loop, in Lecun.Native (see DecimalText for why).
                    let mutable k = 0
                    let image = Span<float32>(blocks[count / blockDigits], (count % blockDigits) * values, values)
                    let status = DecimalText.ParseRow(ReadOnlySpan<byte>(text, 0, n), &pos, image, -1f, 1f, &k)
                    let token = if status = RowStatus.Full then "" else shown text pos (tokenEnd pos)
                    match status with
                    | RowStatus.Full -> ()
                    | RowStatus.EndOfLine -> error <- at line $"expected 256 values after the label, found {k}"
                    | RowStatus.NotANumber -> error <- at line $"value {k + 1}: '{token}' is not a number"
                    | RowStatus.NotFinite -> error <- at line $"value {k + 1}: '{token}' is not a finite number"
                    | _ -> error <- at line $"value {k + 1}: {token} is outside [-1, 1]"
                    if isNull error then
                        pos <- skipSpace pos
                        if pos < n then
                            let mutable extra = 0
                            while pos < n do
                                extra <- extra + 1
                                pos <- skipSpace (tokenEnd pos)
                            error <- at line ($"expected 256 values after the label, found {values + extra}")
                        else
                            labels.Add label
                            count <- count + 1
            if isNull error then lineEnd <- lines.Next()
        if not (isNull error) then Error error
        elif count = 0 then Error $"{source}: empty file (expected one digit per line: a label and 256 values)"
        else
            let images = Array.zeroCreate<float32> (count * values)
            for b in 0 .. blocks.Count - 1 do
                let digits = min blockDigits (count - b * blockDigits)
                Array.blit blocks[b] 0 images (b * blockDigits * values) (digits * values)
            Ok { Name = IO.Path.GetFileName source; Images = images; Labels = labels.ToArray() }

    /// Parses the text of a whole file (already decompressed); `source` names it in messages.
    let parse (source: string) (text: byte array) : Result<Dataset, string> =
        try parseStream source (new IO.MemoryStream(text, false))
        with e -> Error $"{source}: cannot parse ({e.Message})"

    /// Loads a file, gzip or plain, streamed: the text is never held whole.
    let load (path: string) : Result<Dataset, string> = RawFile.stream maxFileBytes "usps file" path (parseStream path)

    /// Loads a file on disk (streamed, as `load`) or embedded (the distributed files, read whole).
    let loadFile (file: DataFile) : Result<Dataset, string> =
        match file with
        | DataFile.OnDisk path -> load path
        | DataFile.Embedded _ -> RawFile.readFile maxFileBytes "usps file" file |> Result.bind (parse file.Name)

    /// Digits per class 0..9.
    let classCounts (d: Dataset) =
        let counts = Array.zeroCreate<int> 10
        for l in d.Labels do counts[l] <- counts[l] + 1
        counts

    /// Checks a parsed split against the distributed files' digit and class counts.
    let checkSplit (split: string) (d: Dataset) : Result<unit, string> =
        let expectedCount, expectedClasses = if split = "train" then trainCount, trainClassCounts else testCount, testClassCounts
        let show (a: int array) = a |> Array.map string |> String.concat " "
        if d.Count <> expectedCount then
            Error $"{d.Name}: {d.Count} digits, the usps {split} split has {expectedCount} (truncated or a different file?)"
        else
            let got = classCounts d
            if got <> expectedClasses then
                Error $"{d.Name}: class counts {show got} differ from the usps {split} split's {show expectedClasses}"
            else Ok()

    /// One digit as a line of the text format (label as `6.0000`, values with 4 decimals).
    let formatLine (label: int) (image: ReadOnlySpan<float32>) =
        let sb = StringBuilder(2400)
        sb.Append(float32 label |> fun l -> l.ToString("0.0000", CultureInfo.InvariantCulture)) |> ignore
        for v in image do
            sb.Append(' ').Append(v.ToString("0.0000", CultureInfo.InvariantCulture)) |> ignore
        sb.ToString()
