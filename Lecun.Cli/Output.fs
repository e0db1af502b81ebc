/// How the command line talks to the user: one-line errors, JSON, and whether stdout is a terminal.
module Lecun.Cli.Output

open System
open System.Text.Json
open System.Text.Json.Nodes
open Spectre.Console
open Lecun.Model

/// A problem the user can fix (bad input, missing file): printed as one line, exit code 1.
exception UserError of string

let fail message = raise (UserError message)

let orFail (result: Result<'a, string>) =
    match result with
    | Ok value -> value
    | Error message -> fail message

/// True for a character that makes a terminal do something instead of showing it: C0 and C1 controls,
/// DEL, and the bidirectional marks, embeddings, overrides and isolates (which reorder what follows).
let private isControl (c: char) =
    Char.IsControl c
    || c = '\u061C' || c = '\u200E' || c = '\u200F' || (c >= '\u202A' && c <= '\u202E') || (c >= '\u2066' && c <= '\u2069')

let private escapeControls (keepLines: bool) (text: string) =
    let kept (c: char) = not (isControl c) || (keepLines && (c = '\n' || c = '\t'))
    if String.forall kept text then text
    else
        let escaped = Text.StringBuilder(text.Length + 16)
        for c in text do
            if kept c then escaped.Append c |> ignore
            elif int c < 0x100 then escaped.Append($"\\x{int c:x2}") |> ignore
            else escaped.Append($"\\u{int c:x4}") |> ignore
        escaped.ToString()

/// Text as the terminal gets it: every control character written as a visible escape (`\x1b`,
/// `\x0d`, `\u202e`), line breaks and tabs kept. Everything the program prints passes through it
/// (`PrintableWriter`), so what a file holds is shown, never obeyed.
let printable (text: string) = escapeControls true text

/// One line as the terminal gets it: `printable`, with line breaks and tabs escaped too.
let printableLine (text: string) = escapeControls false text

/// A writer that passes everything written to it through `printable`.
type PrintableWriter(inner: IO.TextWriter) =
    inherit IO.TextWriter(inner.FormatProvider)
    override _.Encoding = inner.Encoding
    override _.Write(c: char) = if isControl c && c <> '\n' && c <> '\t' then inner.Write(printable (string c)) else inner.Write c
    override _.Write(text: string) = if not (isNull text) then inner.Write(printable text)
    override _.Write(buffer: char array, index: int, count: int) = inner.Write(printable (String(buffer, index, count)))
    override _.Flush() = inner.Flush()

/// Spectre's console on the writer stdout had before `PrintableWriter` replaced it: the progress
/// display draws with escape sequences of its own. Whether it is a terminal is decided while the
/// writer is still the console's.
type private UnescapedOutput(writer: IO.TextWriter) =
    let standard = AnsiConsoleOutput writer
    let isTerminal = standard.IsTerminal
    interface IAnsiConsoleOutput with
        member _.Writer = writer
        member _.IsTerminal = isTerminal
        member _.Width = standard.Width
        member _.Height = standard.Height
        member _.SetEncoding encoding = standard.SetEncoding encoding

/// Runs `action` with stdout and stderr passing through `printable` (Spectre's progress display
/// keeps the writer underneath), then puts the writers back.
let withPrintableConsole (action: unit -> 'a) : 'a =
    let out, err = Console.Out, Console.Error
    AnsiConsole.Console <- AnsiConsole.Create(AnsiConsoleSettings(Out = UnescapedOutput out))
    Console.SetOut(new PrintableWriter(out))
    Console.SetError(new PrintableWriter(err))
    try action ()
    finally
        Console.Out.Flush()
        Console.Error.Flush()
        Console.SetOut out
        Console.SetError err

/// True when stdout is a terminal (live progress); false when redirected (plain lines).
let isInteractive () =
    not Console.IsOutputRedirected && isNull (Environment.GetEnvironmentVariable "CI")

/// The live progress display of long work: description, bar, percentage, elapsed and remaining time,
/// cleared when done (the per-pass lines printed meanwhile stay).
let progressDisplay () : Progress =
    let columns: ProgressColumn array =
        [| TaskDescriptionColumn(); ProgressBarColumn(); PercentageColumn(); ElapsedTimeColumn(); RemainingTimeColumn() |]
    AnsiConsole.Progress().AutoClear(true).Columns(columns)

/// Runs one step of unknown length: on a terminal behind a spinner with `text`, cleared when done;
/// otherwise after printing `text` as a plain line.
let withStatus (text: string) (work: unit -> 'a) : 'a =
    if isInteractive () then AnsiConsole.Status().Start(Markup.Escape text, fun _ -> work ())
    else
        printfn "%s" text
        work ()

/// JSON as every command writes it (as a run's files are: RunJson.options).
let jsonOptions = RunJson.options

/// Formats a count with thousands separators, as the paper's tables do.
let thousands (n: int) = n.ToString("N0", Globalization.CultureInfo.InvariantCulture)

/// `2.5e-03`, the paper's way of writing a loss.
let formatLoss (x: float) = x.ToString("0.0e+00", Globalization.CultureInfo.InvariantCulture)
