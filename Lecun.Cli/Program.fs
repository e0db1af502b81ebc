module Lecun.Cli.Program

open System
open Argu
open Lecun.Cli.Output

type CountParamsArgs =
    | Json
    | Network of file: string

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Json -> "print the table as JSON."
            | Network _ -> "count this network (a JSON network text, as train --network reads it) instead of the 1989 one."

[<HelpFlags("--help", "-h")>]
type CliArgs =
    | [<CliPrefix(CliPrefix.None)>] Train of ParseResults<TrainCommand.TrainArgs>
    | [<CliPrefix(CliPrefix.None)>] Eval of ParseResults<EvalCommand.EvalArgs>
    | [<CliPrefix(CliPrefix.None)>] Predict of ParseResults<EvalCommand.PredictArgs>
    | [<CliPrefix(CliPrefix.None)>] Ladder of ParseResults<LadderCommand.LadderArgs>
    | [<CliPrefix(CliPrefix.None)>] Count_Params of ParseResults<CountParamsArgs>
    | [<CliPrefix(CliPrefix.None)>] Data of ParseResults<DataCommand.DataArgs>
    | [<CliPrefix(CliPrefix.None)>] Bench of ParseResults<BenchCommand.BenchArgs>
    | [<CliPrefix(CliPrefix.None)>] Show of ParseResults<ShowCommand.ShowArgs>
    | [<CliPrefix(CliPrefix.None)>] Serve of ParseResults<ServeCommand.ServeArgs>
    | [<Inherit>] Verbose

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Train _ -> "train the network (default: the paper's 23-pass experiment on its USPS digits)."
            | Eval _ -> "loss, error, misses and confusion matrix of a checkpoint on a data split."
            | Predict _ -> "classify digits in files with a checkpoint."
            | Ladder _ -> "the essay's 33 years of improvements, one change per step, over seeds."
            | Count_Params _ -> "per-layer units, connections, parameters and MACs of the 1989 network."
            | Data _ -> "data sets: info, verify, fetch, prepare."
            | Bench _ -> "throughput on this machine (training, recognition, MAC/s, share of FMA peak) against the 1989 workstation."
            | Show _ -> "one PNG of the network reading a digit: input, H1/H2 maps, H3, outputs, H1's kernels."
            | Serve _ -> "a page where you draw a digit and watch the network read it, and its JSON API."
            | Verbose -> "show stack traces on errors; train also prints where each matrix product runs."

let private dispatch (args: ParseResults<CliArgs>) =
    match args.GetSubCommand() with
    | Train a -> TrainCommand.run (args.Contains Verbose) a
    | Eval a -> EvalCommand.runEval a
    | Predict a -> EvalCommand.runPredict a
    | Ladder a -> LadderCommand.run a
    | Count_Params a -> CountParams.run (a.Contains CountParamsArgs.Json) (a.TryGetResult CountParamsArgs.Network)
    | Data a -> DataCommand.run a
    | Bench a -> BenchCommand.run a
    | Show a -> ShowCommand.run a
    | Serve a -> ServeCommand.run a
    | Verbose -> fail "no command given (try --help)"

/// The (sub)command a command line names, for the hint: `lecun`, `lecun train`, `lecun data verify`.
let private commandOf (argv: string array) =
    // The command names as Argu spells them (Count_Params -> count-params), from the union itself.
    let commands =
        Reflection.FSharpType.GetUnionCases typeof<CliArgs>
        |> Array.filter (fun c -> c.GetFields() |> Array.exists (fun f -> f.PropertyType.Name.StartsWith "ParseResults"))
        |> Array.map (fun c -> c.Name.ToLowerInvariant().Replace('_', '-'))
        |> List.ofArray
    let dataCommands = [ "info"; "verify"; "fetch"; "prepare" ]
    let words = argv |> Array.filter (fun a -> not (a.StartsWith "-")) |> List.ofArray
    match words with
    | "data" :: sub :: _ when List.contains sub dataCommands -> $"lecun data {sub}"
    | command :: _ when List.contains command commands -> $"lecun {command}"
    | _ -> "lecun"

/// Argu's message of a usage error is the problem, then the whole usage: only the problem is
/// printed, and where the options are.
let usageError (argv: string array) (message: string) =
    let problem =
        let first = message.Split('\n') |> Array.tryFind (fun l -> l.Trim() <> "") |> Option.defaultValue "bad command line"
        let first = first.Trim()
        if first.StartsWith("ERROR:", StringComparison.OrdinalIgnoreCase) then first.Substring(6).Trim() else first
    let command = commandOf argv
    let what = if command = "lecun" then "the commands" else "the options"
    $"error: {problem}\nrun '{command} --help' for {what}"

/// The exception that says what went wrong: tasks and type initializers wrap the real one.
let private innermost (e: exn) =
    let mutable e = e
    let mutable unwrapped = true
    while unwrapped do
        match e with
        | :? AggregateException as a when a.InnerExceptions.Count >= 1 -> e <- a.InnerExceptions[0]
        | :? TypeInitializationException
        | :? Reflection.TargetInvocationException when not (isNull e.InnerException) -> e <- e.InnerException
        | _ -> unwrapped <- false
    e

/// Runs one command line and returns the exit code: 0 done, 1 anything else (bad usage, bad
/// input, a failed or interrupted run), with one line on stderr saying why. Everything printed
/// passes through `Output.printable`: text from files never reaches the terminal as controls.
let run (argv: string array) =
    let verbose = argv |> Array.contains "--verbose"
    // Argu's structure check of the templates costs ~40 ms of a ~1.3 s train; the tests run it instead.
    let parser = ArgumentParser.Create<CliArgs>(programName = "lecun", checkStructure = false)
    withPrintableConsole (fun () ->
        try
            let parsed = parser.ParseCommandLine(argv, raiseOnUsage = true)
            dispatch parsed
        with e ->
            if Lecun.Model.Unfinished.isInterrupted () then
                // A signal handler is removing what was being written and then ends the process with
                // its own line; returning now would end it before the removal is done.
                Threading.Thread.Sleep(TimeSpan.FromSeconds 30.0)
            match innermost e with
            | :? ArguParseException as e when e.ErrorCode = ErrorCode.HelpText ->
                printfn "%s" e.Message
                0
            | UserError message ->
                eprintfn "error: %s" (printableLine message)
                1
            | :? ArguParseException as e ->
                eprintfn "%s" (usageError argv e.Message)
                1
            | inner ->
                eprintfn "error: %s" (printableLine inner.Message)
                if verbose then eprintfn "%O" e
                1)

open System.Runtime.InteropServices

/// The signals that end the process unless handled (SIGHUP: the terminal or ssh session closed;
/// SIGQUIT: Ctrl-\). Each is handled as one: every temporary file and unfinished run folder is
/// removed, one line says so, exit 1. The rest are Linux's numbers, which .NET takes as raw values.
let private endingSignals =
    let linux = [ 10, "SIGUSR1"; 12, "SIGUSR2"; 14, "SIGALRM"; 24, "SIGXCPU"; 25, "SIGXFSZ"; 26, "SIGVTALRM"; 27, "SIGPROF" ]
    [ PosixSignal.SIGINT, "SIGINT (Ctrl-C)"; PosixSignal.SIGTERM, "SIGTERM"; PosixSignal.SIGHUP, "SIGHUP"; PosixSignal.SIGQUIT, "SIGQUIT" ]
    @ (if OperatingSystem.IsLinux() then linux |> List.map (fun (number, name) -> enum<PosixSignal> number, name) else [])

/// 1 once a signal has been taken: later ones (the same or another) add nothing.
let private signalled = ref 0

let private onSignal (name: string) (context: PosixSignalContext) =
    context.Cancel <- true
    if Threading.Interlocked.Exchange(&signalled.contents, 1) = 0 then
        try
            let removed = Lecun.Model.Unfinished.interrupt ()
            let what =
                if removed.IsEmpty then "nothing was being written"
                else $"""removed what was being written ({String.Join(", ", removed |> List.map IO.Path.GetFileName)}); finished files are whole"""
            // stderr may have gone with the terminal (SIGHUP): the files are removed all the same.
            try
                eprintfn "interrupted by %s: %s" name what
                Console.Error.Flush()
            with _ -> ()
        finally
            exit 1

[<EntryPoint>]
let main argv =
    let registrations = endingSignals |> List.map (fun (signal, name) -> PosixSignalRegistration.Create(signal, onSignal name))
    try run argv
    finally
        for r in registrations do r.Dispose()
