module Lecun.Tests.Main

open Expecto
open Expecto.Impl

/// Expecto's own summary, then the plain `N passed, N failed` line that CI reads.
let private withCountLine (printer: TestPrinters) =
    { printer with
        summary =
            fun config summary ->
                async {
                    do! printer.summary config summary
                    let failed = summary.failed.Length + summary.errored.Length
                    printfn "\n%d passed, %d failed" summary.passed.Length failed
                } }

[<EntryPoint>]
let main argv =
    Tests.runTestsInAssemblyWithCLIArgs [ CLIArguments.Printer(withCountLine TestPrinters.defaultPrinter) ] argv
