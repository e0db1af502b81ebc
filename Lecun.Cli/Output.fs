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

/// JSON as every command writes it. A non-finite number (a diverged loss, say) is written as the
/// string "NaN", "Infinity" or "-Infinity" instead of making the writer throw.
let jsonOptions =
    JsonSerializerOptions(WriteIndented = true, NumberHandling = Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals)

/// Formats a count with thousands separators, as the paper's tables do.
let thousands (n: int) = n.ToString("N0", Globalization.CultureInfo.InvariantCulture)

/// `2.5e-03`, the paper's way of writing a loss.
let formatLoss (x: float) = x.ToString("0.0e+00", Globalization.CultureInfo.InvariantCulture)

/// The `error_mean`, `error_sd` and `misses_mean` of one split over seeds, as seeds.json and ladder.json write them.
let splitSummaryJson (s: SplitSummary) =
    JsonObject(dict [ "error_mean", JsonValue.Create s.Error.Mean :> JsonNode; "error_sd", JsonValue.Create s.Error.Sd; "misses_mean", JsonValue.Create s.Misses ]) :> JsonNode
