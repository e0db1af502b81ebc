module Lecun.Tests.Main

open Expecto
open Expecto.Impl
open Lecun.Tests.TestKit

/// Skips whose message names no reason this run accepts (ExpectedSkip): each is a failure.
let mutable private unexpectedSkips = 0

/// Expecto's own summary, the skips this run did not expect, then the plain `N passed, N failed`
/// line that CI reads (the unexpected skips counted as failed).
let private withCountLine (printer: TestPrinters) =
    { printer with
        summary =
            fun config summary ->
                async {
                    do! printer.summary config summary
                    let unexpected =
                        summary.ignored
                        |> List.choose (fun (test, result) ->
                            match result.result with
                            | Ignored message when not (ExpectedSkip.isAccepted message) -> Some(test.name, message)
                            | _ -> None)
                    for name, message in unexpected do
                        eprintfn "unexpected skip: %s: %s" (String.concat "/" name) message
                    unexpectedSkips <- unexpected.Length
                    let failed = summary.failed.Length + summary.errored.Length + unexpected.Length
                    printfn "\n%d passed, %d failed" summary.passed.Length failed
                } }

[<EntryPoint>]
let main argv =
    let code = Tests.runTestsInAssemblyWithCLIArgs [ CLIArguments.Printer(withCountLine TestPrinters.defaultPrinter) ] argv
    if code = 0 && unexpectedSkips > 0 then 1 else code
