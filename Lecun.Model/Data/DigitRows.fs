/// The text rows every digit text file is written in, the USPS ("ZIP code") files and the rows
/// given to `predict` alike: one digit per line, a label written as `6` or `6.0000` (required or
/// optional, by the reader), then 256 values in [-1, 1], row-major 16x16, separated by spaces,
/// tabs, commas or semicolons. One grammar, read here; each reader decides what else a file may hold (blank lines,
/// comments) and words its messages.
namespace Lecun.Model

open System
open Lecun.Native.Text

module DigitRows =
    let private values = Dataset.Pixels

    /// Whether a row starts with a label: always (the USPS files), or when the line holds 257
    /// numbers rather than 256 (a digit given to `predict`).
    type Labels =
        | Required
        | Optional

    /// Why a row is not a digit; `value` counts the 256 values from 1 (the label is not one).
    type RowError =
        /// The line holds `found` values after the label (Required) or numbers in all (Optional).
        | ValueCount of found: int
        | LabelNotANumber of token: string
        | LabelNotWhole of token: string
        | LabelOutside of token: string
        | NotANumber of value: int * token: string
        | NotFinite of value: int * token: string
        | OutOfRange of value: int * token: string

    let inline isSeparator (b: byte) = DecimalText.IsSeparator b

    /// A token as it appears in a message: printable ASCII, other bytes as '?', cut at 24 chars.
    let shown (text: byte array) (start: int) (stop: int) =
        let n = min (stop - start) 24
        let chars = Array.init n (fun i -> let b = text[start + i] in if b >= 32uy && b < 127uy then char b else '?')
        let s = String(chars)
        if stop - start > n then s + "..." else s

    /// A label is a whole number 0..9, written `6`, `6.`, `6.0000` (a float with zero fraction).
    let private parseLabel (text: byte array) (start: int) (stop: int) : Result<int, RowError> =
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
        if digits = 0 || i <> stop then Error(LabelNotANumber token)
        elif not fracZero then Error(LabelNotWhole token)
        elif value > 9 || (text[start] = 45uy && value <> 0) then Error(LabelOutside token)
        else Ok value

    let private tokenEnd (text: byte array) (stop: int) (p: int) =
        let mutable p = p
        while p < stop && not (isSeparator text[p]) do p <- p + 1
        p

    let private skipSpace (text: byte array) (stop: int) (p: int) =
        let mutable p = p
        while p < stop && isSeparator text[p] do p <- p + 1
        p

    /// Numbers (whitespace-separated tokens) in text[start .. stop - 1].
    let private countTokens (text: byte array) (start: int) (stop: int) =
        let mutable count = 0
        let mutable p = skipSpace text stop start
        while p < stop do
            count <- count + 1
            p <- skipSpace text stop (tokenEnd text stop p)
        count

    /// Parses the row in text[start .. stop - 1] (a line without its end) into `image` (256 long)
    /// and returns its label, if it has one.
    let parse (labels: Labels) (text: byte array) (start: int) (stop: int) (image: Span<float32>) : Result<int option, RowError> =
        let mutable pos = skipSpace text stop start
        let labelled =
            match labels with
            | Required -> Ok true
            | Optional ->
                match countTokens text pos stop with
                | n when n = values -> Ok false
                | n when n = values + 1 -> Ok true
                | n -> Error(ValueCount n)
        let label =
            match labelled with
            | Error e -> Error e
            | Ok false -> Ok None
            | Ok true ->
                let stopLabel = tokenEnd text stop pos
                let label = parseLabel text pos stopLabel
                pos <- stopLabel
                label |> Result.map Some
        match label with
        | Error e -> Error e
        | Ok label ->
            // The 256 values: the hot loop, in Lecun.Native (see DecimalText for why).
            let mutable k = 0
            let status = DecimalText.ParseRow(ReadOnlySpan<byte>(text, 0, stop), &pos, image, -1f, 1f, &k)
            let token = if status = RowStatus.Full then "" else shown text pos (tokenEnd text stop pos)
            match status with
            | RowStatus.Full ->
                let extra = countTokens text pos stop
                if extra > 0 then Error(ValueCount(values + extra)) else Ok label
            | RowStatus.EndOfLine -> Error(ValueCount k)
            | RowStatus.NotANumber -> Error(NotANumber(k + 1, token))
            | RowStatus.NotFinite -> Error(NotFinite(k + 1, token))
            | _ -> Error(OutOfRange(k + 1, token))

    /// The lines of a stream, one at a time, in a buffer that grows only for a line longer than it (the
    /// distributed files' lines are about 2 KB), up to `maxLine` bytes. Line ends are not part of a line.
    type LineReader(input: IO.Stream, maxLine: int) =
        let mutable text = Array.zeroCreate<byte> (1 <<< 16)
        // text[start .. filled - 1] is read and not yet returned.
        let mutable start = 0
        let mutable filled = 0
        let mutable ended = false
        let mutable lineStart = 0
        /// The value Next returns for a line longer than maxLine bytes.
        static member TooLong = -2
        /// The buffer holding the current line.
        member _.Text = text
        /// Where the current line starts in Text.
        member _.LineStart = lineStart
        /// Skips `bytes` at the start of the current line (a byte-order mark).
        member _.Skip(bytes: int) = lineStart <- lineStart + bytes
        /// Moves to the next line and returns where it ends in Text, -1 when the stream has no more
        /// bytes, or TooLong.
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
                elif filled - start > maxLine then
                    eol <- LineReader.TooLong
                    searching <- false
                else
                    scanned <- filled
                    if start > 0 then
                        Buffer.BlockCopy(text, start, text, 0, filled - start)
                        scanned <- scanned - start
                        filled <- filled - start
                        start <- 0
                    if filled = text.Length then
                        // No line needs more than maxLine bytes and its end.
                        let grown = int (min (2L * int64 text.Length) (int64 maxLine + 1L))
                        let larger = Array.zeroCreate<byte> (if grown > text.Length then grown else 2 * text.Length)
                        Buffer.BlockCopy(text, 0, larger, 0, filled)
                        text <- larger
                    let got = input.Read(text, filled, text.Length - filled)
                    if got = 0 then ended <- true else filled <- filled + got
            lineStart <- start
            if eol >= 0 then start <- eol + 1
            eol

        /// Skips a UTF-8 byte-order mark at the start of the current line (editors on Windows may
        /// start a file with one).
        member this.SkipByteOrderMark(lineEnd: int) =
            let t = this.Text
            let s = this.LineStart
            if lineEnd - s >= 3 && t[s] = 0xEFuy && t[s + 1] = 0xBBuy && t[s + 2] = 0xBFuy then this.Skip 3
