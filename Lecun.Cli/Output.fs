/// How the command line talks to the user: one-line errors, JSON, and whether stdout is a terminal.
module Lecun.Cli.Output

open System
open System.Text.Json

/// A problem the user can fix (bad input, missing file): printed as one line, exit code 1.
exception UserError of string

let fail message = raise (UserError message)

let orFail (result: Result<'a, string>) =
    match result with
    | Ok value -> value
    | Error message -> fail message

/// True when stdout is a terminal (live progress); false when redirected (plain lines).
let isInteractive () =
    not Console.IsOutputRedirected && isNull (Environment.GetEnvironmentVariable "CI")

/// The live progress display of long work: description, bar, percentage, elapsed and remaining time,
/// cleared when done (the per-pass lines printed meanwhile stay).
let progressDisplay () =
    Spectre.Console.AnsiConsole
        .Progress()
        .AutoClear(true)
        .Columns(Spectre.Console.TaskDescriptionColumn(), Spectre.Console.ProgressBarColumn(), Spectre.Console.PercentageColumn(),
                 Spectre.Console.ElapsedTimeColumn(), Spectre.Console.RemainingTimeColumn())

let jsonOptions = JsonSerializerOptions(WriteIndented = true)

/// Formats a count with thousands separators, as the paper's tables do.
let thousands (n: int) = n.ToString("N0", Globalization.CultureInfo.InvariantCulture)
