/// The zip-code digit text files (ESL "ZIP code" data): one digit per line in the rows of
/// DigitRows, each with its label, blank lines only at the end.
namespace Lecun.Model

open System
open System.Globalization
open System.Text

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

    /// The refusal of a row, in this loader's words.
    let private message (error: DigitRows.RowError) =
        match error with
        | DigitRows.ValueCount found -> $"expected {values} values after the label, found {found}"
        | DigitRows.LabelNotANumber token -> $"label '{token}' is not a number (expected a digit 0..9, written like 6 or 6.0000)"
        | DigitRows.LabelNotWhole token -> $"label '{token}' is not a whole number (expected a digit 0..9)"
        | DigitRows.LabelOutside token -> $"label '{token}' is outside 0..9"
        | DigitRows.NotANumber(value, token) -> $"value {value}: '{token}' is not a number"
        | DigitRows.NotFinite(value, token) -> $"value {value}: '{token}' is not a finite number"
        | DigitRows.OutOfRange(value, token) -> $"value {value}: {token} is outside [-1, 1]"

    /// Parses the digits of a stream, one line at a time: memory is the digits read so far and one
    /// line, whatever the stream holds (RawFile.stream bounds how much that is).
    let private parseStream (source: string) (input: IO.Stream) : Result<Dataset, string> =
        let lines = DigitRows.LineReader(input, maxFileBytes)
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
        lines.SkipByteOrderMark lineEnd
        while isNull error && lineEnd >= 0 do
            let text, n = lines.Text, lineEnd
            line <- line + 1
            let mutable pos = lines.LineStart
            while pos < n && DigitRows.isSeparator text[pos] do pos <- pos + 1
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
                if count = blocks.Count * blockDigits then blocks.Add(Array.zeroCreate<float32> (blockDigits * values))
                let image = Span<float32>(blocks[count / blockDigits], (count % blockDigits) * values, values)
                match DigitRows.parse DigitRows.Required text pos n image with
                | Error e -> error <- at line (message e)
                | Ok(Some label) ->
                    labels.Add label
                    count <- count + 1
                | Ok None -> error <- at line "no label"
            if isNull error then
                lineEnd <- lines.Next()
                if lineEnd = DigitRows.LineReader.TooLong then
                    error <- at (line + 1) $"longer than {maxFileBytes} bytes"
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

    /// Loads a file on disk or embedded, gzip or plain, streamed as `load` streams it.
    let loadFile (file: DataFile) : Result<Dataset, string> =
        RawFile.streamFile maxFileBytes "usps file" file (parseStream file.Name)

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
