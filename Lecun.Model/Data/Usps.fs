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

    let private parseCore (source: string) (text: byte array) : Result<Dataset, string> =
        let n = text.Length
        // Upper bound on the number of digits, so the arrays are allocated once.
        let capacity = min maxDigits (MemoryExtensions.Count(ReadOnlySpan<byte>(text), 10uy) + 1)
        // Editors on Windows may start the file with a byte-order mark.
        let bom = if n >= 3 && text[0] = 0xEFuy && text[1] = 0xBBuy && text[2] = 0xBFuy then 3 else 0
        let labels = Array.zeroCreate<int> capacity
        let images = Array.zeroCreate<float32> (capacity * values)
        let mutable pos = bom
        let mutable line = 0
        let mutable count = 0
        let mutable firstBlank = 0
        let mutable error: string = null
        let at (line: int) (msg: string) = $"{source}: line {line}: {msg}"
        let inline skipSpace p =
            let mutable p = p
            while p < n && isSpace text[p] do p <- p + 1
            p
        let inline tokenEnd p =
            let mutable p = p
            while p < n && not (isSpace text[p]) && text[p] <> 10uy do p <- p + 1
            p
        while isNull error && pos < n do
            line <- line + 1
            pos <- skipSpace pos
            if pos >= n || text[pos] = 10uy then
                // Blank lines are harmless at the end of a file; in the middle they mean a
                // damaged file, reported below when the next digit shows up.
                if firstBlank = 0 then firstBlank <- line
                pos <- pos + 1
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
                    labels[count] <- label
                    pos <- stop
                    // The 256 values: the hot loop, in Lecun.Native (see DecimalText for why).
                    let mutable k = 0
                    let status = DecimalText.ParseRow(ReadOnlySpan<byte>(text), &pos, Span<float32>(images, count * values, values), -1f, 1f, &k)
                    let token = if status = RowStatus.Full then "" else shown text pos (tokenEnd pos)
                    match status with
                    | RowStatus.Full -> ()
                    | RowStatus.EndOfLine -> error <- at line $"expected 256 values after the label, found {k}"
                    | RowStatus.NotANumber -> error <- at line $"value {k + 1}: '{token}' is not a number"
                    | RowStatus.NotFinite -> error <- at line $"value {k + 1}: '{token}' is not a finite number"
                    | _ -> error <- at line $"value {k + 1}: {token} is outside [-1, 1]"
                    if isNull error then
                        pos <- skipSpace pos
                        if pos < n && text[pos] <> 10uy then
                            let mutable extra = 0
                            while pos < n && text[pos] <> 10uy do
                                extra <- extra + 1
                                pos <- skipSpace (tokenEnd pos)
                            error <- at line ($"expected 256 values after the label, found {values + extra}")
                        else
                            count <- count + 1
                            pos <- pos + 1
        if not (isNull error) then Error error
        elif count = 0 then Error $"{source}: empty file (expected one digit per line: a label and 256 values)"
        else
            let name = IO.Path.GetFileName source
            if count = capacity then Ok { Name = name; Images = images; Labels = labels }
            else Ok { Name = name; Images = Array.sub images 0 (count * values); Labels = Array.sub labels 0 count }

    /// Parses the text of a whole file (already decompressed); `source` names it in messages.
    let parse (source: string) (text: byte array) : Result<Dataset, string> =
        try parseCore source text
        with e -> Error $"{source}: cannot parse ({e.Message})"

    /// Loads a file, gzip or plain.
    let load (path: string) : Result<Dataset, string> = RawFile.read maxFileBytes "usps file" path |> Result.bind (parse path)

    /// Loads a file on disk or embedded, gzip or plain.
    let loadFile (file: DataFile) : Result<Dataset, string> =
        RawFile.readFile maxFileBytes "usps file" file |> Result.bind (parse file.Name)

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
