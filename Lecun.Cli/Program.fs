module Lecun.Cli.Program

open System
open Argu
open Lecun.Cli.Output

type CountParamsArgs =
    | Json

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Json -> "print the table as JSON."

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
            | Verbose -> "show stack traces on errors."

let private dispatch (args: ParseResults<CliArgs>) =
    match args.GetSubCommand() with
    | Train a -> TrainCommand.run a
    | Eval a -> EvalCommand.runEval a
    | Predict a -> EvalCommand.runPredict a
    | Ladder a -> LadderCommand.run a
    | Count_Params a -> CountParams.run (a.Contains CountParamsArgs.Json)
    | Data a -> DataCommand.run a
    | Bench a -> BenchCommand.run a
    | Show a -> ShowCommand.run a
    | Serve a -> ServeCommand.run a
    | Verbose -> fail "no command given (try --help)"

/// Runs one command line and returns the exit code: 0 done, 1 the work failed, 2 bad usage.
let run (argv: string array) =
    let verbose = argv |> Array.contains "--verbose"
    // Argu's structure check of the templates costs ~40 ms of a ~1.3 s train; the tests run it instead.
    let parser = ArgumentParser.Create<CliArgs>(programName = "lecun", checkStructure = false)
    try
        try
            let parsed = parser.ParseCommandLine(argv, raiseOnUsage = true)
            dispatch parsed
        with
        | :? ArguParseException as e when e.ErrorCode = ErrorCode.HelpText ->
            printfn "%s" e.Message
            0
        | UserError message ->
            eprintfn "error: %s" message
            1
        | :? ArguParseException as e ->
            eprintfn "%s" e.Message
            2
        | e ->
            eprintfn "error: %s" e.Message
            if verbose then eprintfn "%O" e
            1
    finally
        Console.Out.Flush()

[<EntryPoint>]
let main argv = run argv
