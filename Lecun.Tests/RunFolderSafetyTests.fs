/// Hostile input around run folders, signals and the terminal, each built here in the test:
/// `--force` on folders that are not a finished run (foreign files, the working folder, an ancestor),
/// every signal that ends a run, and control characters in what files hold and in their names.
module Lecun.Tests.RunFolderSafetyTests

open System
open System.Diagnostics
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Model
open Lecun.Cli
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

// ---- folders and processes ----------------------------------------------------------------------

/// Every entry under `dir` (hidden ones too) with its bytes, or None for a folder.
let private snapshot (dir: string) =
    Directory.EnumerateFileSystemEntries(dir, "*", EnumerationOptions(RecurseSubdirectories = true, AttributesToSkip = FileAttributes.None))
    |> Seq.map (fun p -> Path.GetRelativePath(dir, p), (if Directory.Exists p then None else Some(File.ReadAllBytes p)))
    |> Seq.sortBy fst
    |> List.ofSeq

/// A folder of someone's work, with a hidden file, a subfolder and files named as a run names its own.
let private foreignFolder (dir: string) =
    Directory.CreateDirectory(Path.Combine(dir, "figures")) |> ignore
    File.WriteAllText(Path.Combine(dir, "thesis.tex"), "\\chapter{One}\n")
    File.WriteAllBytes(Path.Combine(dir, ".draft.swp"), [| 0uy; 255uy; 13uy; 10uy |])
    File.WriteAllBytes(Path.Combine(dir, "figures", "plot.png"), Array.init 300 byte)
    File.WriteAllText(Path.Combine(dir, "metrics.csv"), "my own measurements\n")
    File.WriteAllText(Path.Combine(dir, "model.safetensors"), "not a model")

let private trainArgs (out: string) = [ "train"; "--passes"; "1"; "--holdout"; "7000"; "--backend"; "managed"; "--out"; out ]
let private ladderArgs (out: string) = [ "ladder"; "--steps"; "0"; "--seeds"; "1"; "--limit"; "20"; "--backend"; "managed"; "--out"; out ]

/// A training run started as a child process, once its hidden staging folder is in `dir`.
let private runningTrain (dir: string) =
    let p = startCliIn Environment.CurrentDirectory [ "train"; "--passes"; "200"; "--holdout"; "7000"; "--backend"; "managed"; "--out"; Path.Combine(dir, "run") ]
    let clock = Stopwatch.StartNew()
    while Directory.GetFileSystemEntries(dir).Length = 0 && clock.Elapsed.TotalSeconds < 60.0 && not p.HasExited do
        Threading.Thread.Sleep 20
    Expect.isFalse p.HasExited "the run was still going"
    p

let private oneLine (what: string) (err: string) =
    Expect.equal (err.TrimEnd('\n').Split('\n').Length) 1 $"{what}: one line on stderr: {err}"
    Expect.isFalse (err.Contains "   at ") $"{what}: no stack trace"

// ---- what must never reach a terminal -----------------------------------------------------------

/// Characters that drive a terminal instead of showing: C0 and C1 controls, DEL, bidirectional controls.
let private drivesTerminal (c: char) =
    (Char.IsControl c && c <> '\n' && c <> '\t')
    || c = '\u061C' || c = '\u200E' || c = '\u200F' || (c >= '\u202A' && c <= '\u202E') || (c >= '\u2066' && c <= '\u2069')

let private noControls (what: string) (text: string) =
    match text |> Seq.tryFind drivesTerminal with
    | Some c -> failtest $"{what}: U+{int c:X4} printed raw in: {text}"
    | None -> ()

/// A title bar rewrite, clear screen, red, a carriage return over the line, a right-to-left
/// override, a C1 CSI and DEL: what a hostile metadata value or file name holds.
let private hostileText = "evil\u001b]0;owned\u0007\u001b[2J\u001b[31mred\rover\u202Egnp.exe\u009b1m\u007f"

let private hostileModel (path: string) (changes: (string * string) list) =
    let metadata = changes |> List.fold (fun m (k, v) -> Map.add k v m) (ModelFile.metadata Recipe.lecun1989 DataSetName.Usps None)
    Checkpoint.save path Layout.lecun1989 (randomParameters 3) metadata

let private unsafeChars =
    [ yield! [ 0 .. 31 ] |> List.map char; '\u007f'; yield! [ 0x80 .. 0x9f ] |> List.map char
      '\u061C'; '\u200E'; '\u200F'; '\u202A'; '\u202B'; '\u202C'; '\u202D'; '\u202E'; '\u2066'; '\u2067'; '\u2068'; '\u2069' ]

let private genText =
    Gen.oneof [ Gen.elements unsafeChars; Gen.elements ('\\' :: 'x' :: 'é' :: '数' :: ' ' :: [ 'a' .. 'z' ]) ]
    |> Gen.listOf |> Gen.map (fun cs -> String(Array.ofList cs))

[<Tests>]
let tests =
    testSequencedGroup "console" <| testList "run folders, signals and the terminal" [
        testList "--force replaces only a finished run" [
            test "train and ladder with --force leave a folder of foreign files byte for byte" {
                withTempDir (fun dir ->
                    let target = Path.Combine(dir, "work")
                    foreignFolder target
                    let before = snapshot dir
                    for args in [ trainArgs target @ [ "--force" ]; ladderArgs target @ [ "--force" ]; trainArgs target; ladderArgs target ] do
                        let code, _, err = runCli args
                        Expect.equal code 1 $"{args}: exit code"
                        oneLine $"{args}" err
                        Expect.stringContains err "finished run" $"{args}: says --force replaces only a finished run"
                        Expect.equal (snapshot dir) before $"{args}: every file as it was, nothing beside it")
            }
            test "a finished run with a file added is not replaced, and neither is a marker that lists nothing of it" {
                withTempDir (fun dir ->
                    let run = Path.Combine(dir, "run")
                    let code, _, err = runCli (trainArgs run)
                    Expect.equal code 0 $"a run is written (stderr: {err})"
                    File.WriteAllText(Path.Combine(run, "notes.txt"), "mine")
                    let withNotes = snapshot dir
                    let code, _, err = runCli (trainArgs run @ [ "--force" ])
                    Expect.equal code 1 "exit code"
                    Expect.stringContains err "'notes.txt'" "names the file that is not the run's"
                    Expect.equal (snapshot dir) withNotes "the run and the notes as they were"
                    let other = Path.Combine(dir, "other")
                    foreignFolder other
                    File.WriteAllText(Path.Combine(other, RunFolder.markerName), """{"written_by":"lecun","files":["model.safetensors"]}""")
                    let before = snapshot other
                    let code, _, _ = runCli (ladderArgs other @ [ "--force" ])
                    Expect.equal code 1 "a marker does not make foreign files a run's"
                    Expect.equal (snapshot other) before "untouched")
            }
            test "the working folder and a folder that contains it are refused, even with --force, by train and ladder" {
                withTempDir (fun dir ->
                    let outer = Path.Combine(dir, "thesis")
                    foreignFolder outer
                    let work = Path.Combine(outer, "chapter")
                    Directory.CreateDirectory work |> ignore
                    File.WriteAllText(Path.Combine(work, "one.tex"), "text")
                    let link = Path.Combine(dir, "link-to-thesis")
                    Directory.CreateSymbolicLink(link, outer) |> ignore
                    let before = snapshot outer
                    for out in [ "."; "./"; ".."; outer; work; link; Path.Combine(link, "chapter") ] do
                        for args in [ trainArgs out @ [ "--force" ]; ladderArgs out @ [ "--force" ]; trainArgs out ] do
                            let code, _, err = runCliIn work args
                            Expect.equal code 1 $"{args}: exit code"
                            oneLine $"{args}" err
                            Expect.stringContains err "working folder" $"{args}: says why"
                            Expect.equal (snapshot outer) before $"{args}: every file as it was"
                    Expect.equal (Directory.GetFileSystemEntries dir |> Array.map Path.GetFileName |> Array.sort) [| "link-to-thesis"; "thesis" |] "no staging folder beside them")
            }
            test "a finished run is replaced with --force: train, train --seeds, ladder, and runs written before runs were marked" {
                withTempDir (fun dir ->
                    let seedIn (run: string) = (Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "metrics.json")))).RootElement.GetProperty("seed").GetInt32()
                    let run = Path.Combine(dir, "run")
                    let ok (args: string list) =
                        let code, _, err = runCli args
                        Expect.equal code 0 $"{args}: exit code (stderr: {err})"
                    ok (trainArgs run)
                    Expect.isTrue (File.Exists(Path.Combine(run, RunFolder.markerName))) "a finished run is marked"
                    let code, _, err = runCli (trainArgs run @ [ "--seed"; "5" ])
                    Expect.equal code 1 "without --force a finished run is kept"
                    Expect.stringContains err "--force" "says how to replace it"
                    Expect.equal (seedIn run) 1337 "kept"
                    ok (trainArgs run @ [ "--seed"; "5"; "--force" ])
                    Expect.equal (seedIn run) 5 "replaced"
                    File.Delete(Path.Combine(run, RunFolder.markerName))
                    ok (trainArgs run @ [ "--seed"; "6"; "--force" ])
                    Expect.equal (seedIn run) 6 "an unmarked run (as earlier versions wrote them) is replaced too"
                    let seeds = Path.Combine(dir, "seeds")
                    ok (trainArgs seeds @ [ "--seeds"; "2" ])
                    File.Delete(Path.Combine(seeds, RunFolder.markerName))
                    ok (trainArgs seeds @ [ "--force" ])
                    Expect.isTrue (File.Exists(Path.Combine(seeds, "model.safetensors"))) "an unmarked --seeds run replaced by a single run"
                    let ladder = Path.Combine(dir, "ladder")
                    ok (ladderArgs ladder)
                    ok (ladderArgs ladder @ [ "--seed"; "7"; "--force" ])
                    File.Delete(Path.Combine(ladder, RunFolder.markerName))
                    ok (trainArgs ladder @ [ "--force" ])
                    Expect.isFalse (File.Exists(Path.Combine(ladder, "ladder.json"))) "an unmarked ladder replaced by a run"
                    Expect.equal (Directory.GetFileSystemEntries dir |> Array.map Path.GetFileName |> Array.sort) [| "ladder"; "run"; "seeds" |] "nothing left beside the runs")
            }
            testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 60 } "RunFolder.stage with force refuses any folder of foreign files and touches nothing" <|
                Prop.forAll
                    (Arb.fromGen (
                        Gen.zip (Gen.elements [ "a.txt"; "model.safetensors"; "ladder.json"; "seeds.json"; "metrics.json"; RunFolder.markerName; "seed-3"; ".x" ])
                                (Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte))
                        |> Gen.nonEmptyListOf))
                    (fun files ->
                        withTempDir (fun dir ->
                            let target = Path.Combine(dir, "out")
                            Directory.CreateDirectory target |> ignore
                            for name, bytes in files do File.WriteAllBytes(Path.Combine(target, name), bytes)
                            let before = snapshot dir
                            match RunFolder.stage target true false with
                            | Ok staged ->
                                RunFolder.discard staged
                                failtest $"accepted {files |> List.map fst}"
                            | Error e -> Expect.stringContains e "finished run" "says why"
                            Expect.equal (snapshot dir) before "nothing touched, nothing staged"))
        ]

        testList "every signal that ends a run" [
            test "HUP, QUIT, USR1, USR2, ALRM, XCPU, XFSZ, VTALRM, PROF: the unfinished run removed, one line, exit 1" {
                for signal in [ "HUP"; "QUIT"; "USR1"; "USR2"; "ALRM"; "XCPU"; "XFSZ"; "VTALRM"; "PROF" ] do
                    withTempDir (fun dir ->
                        use p = runningTrain dir
                        let err = p.StandardError.ReadToEndAsync()
                        Threading.Thread.Sleep 200
                        sendSignal signal p
                        Expect.isTrue (p.WaitForExit 90000) $"SIG{signal}: exits"
                        Expect.equal p.ExitCode 1 $"SIG{signal}: exit code"
                        Expect.stringStarts err.Result $"interrupted by SIG{signal}: removed what was being written" $"SIG{signal}: says so"
                        oneLine $"SIG{signal}" err.Result
                        Expect.equal (Directory.GetFileSystemEntries dir) [||] $"SIG{signal}: nothing left, hidden or not")
            }
            test "a burst of signals, the same and others: one line, once" {
                let burst = [ "HUP"; "HUP"; "TERM"; "QUIT"; "INT"; "HUP"; "USR1"; "TERM"; "QUIT"; "ALRM"; "HUP"; "TERM" ]
                for trial in 1 .. 3 do
                    withTempDir (fun dir ->
                        use p = runningTrain dir
                        let err = p.StandardError.ReadToEndAsync()
                        // Each signal in its own `kill`, as fast as they can be sent, after a different delay each trial.
                        Threading.Thread.Sleep(100 * trial)
                        for signal in burst do sendSignal signal p
                        Expect.isTrue (p.WaitForExit 90000) "exits"
                        Expect.equal p.ExitCode 1 "exit code"
                        oneLine $"trial {trial}" err.Result
                        Expect.stringStarts err.Result "interrupted by SIG" "the one line says what ended the run"
                        Expect.equal (Directory.GetFileSystemEntries dir) [||] "nothing left")
            }
        ]

        testList "control characters from files never reach the terminal raw" [
            testProperty "printable escapes every control character and changes nothing else" <|
                Prop.forAll (Arb.fromGen genText) (fun text ->
                    let shown = Output.printable text
                    let line = Output.printableLine text
                    noControls "printable" shown
                    noControls "printableLine" line
                    Expect.isFalse (line.Contains '\n' || line.Contains '\t') "printableLine is one line"
                    Expect.equal (shown.Split('\n').Length) (text.Split('\n').Length) "printable keeps the lines"
                    if not (text |> Seq.exists (fun c -> drivesTerminal c)) then Expect.equal shown text "text without controls is printed as it is"
                    // Each control becomes its visible escape, in place.
                    let expected =
                        text |> Seq.map (fun c ->
                            if not (drivesTerminal c) then string c
                            elif int c < 0x100 then $"\\x{int c:x2}"
                            else $"\\u{int c:x4}")
                        |> String.concat ""
                    Expect.equal shown expected "escapes in place")
            test "serve's start-up lines: a model whose metadata holds escape sequences, CR and U+202E" {
                withTempDir (fun dir ->
                    let model = Path.Combine(dir, $"model{hostileText}.safetensors")
                    hostileModel model [ "recipe", hostileText; "seed", hostileText; "data_set", hostileText ]
                    use p = startCliIn dir [ "serve"; "--model"; model; "--port"; "0"; "--backend"; "managed" ]
                    let err = p.StandardError.ReadToEndAsync()
                    let lines = ResizeArray<string>()
                    let reader = Threading.Tasks.Task.Run(fun () ->
                        let mutable line = p.StandardOutput.ReadLine()
                        while not (isNull line) do
                            lock lines (fun () -> lines.Add line)
                            line <- p.StandardOutput.ReadLine())
                    let clock = Stopwatch.StartNew()
                    while not (lock lines (fun () -> lines.Exists(fun l -> l.StartsWith "listening"))) && clock.Elapsed.TotalSeconds < 60.0 && not p.HasExited do
                        Threading.Thread.Sleep 50
                    sendSignal "TERM" p
                    p.WaitForExit 90000 |> ignore
                    reader.Wait 5000 |> ignore
                    let out = String.Join("\n", lock lines (fun () -> List.ofSeq lines))
                    Expect.stringContains out "serving " $"the start-up line was printed (stderr: {err.Result})"
                    noControls "serve stdout" out
                    noControls "serve stderr" err.Result
                    Expect.stringContains out "evil\\x1b]0;owned\\x07\\x1b[2J\\x1b[31mred\\x0dover\\u202egnp.exe\\x9b1m\\x7f" "the metadata shown, escaped"
                    Expect.stringContains err.Result "\\x1b" "the warning naming the data set, escaped")
            }
            test "eval, predict, show and data info: file names and values from files printed escaped" {
                withTempDir (fun dir ->
                    // A model file that reads, named with control characters.
                    let good = Path.Combine(dir, $"good{hostileText}.safetensors")
                    File.Copy(ServeFixture.modelFile (), good)
                    let digit = Path.Combine(dir, $"digit{hostileText}.txt")
                    File.WriteAllText(digit, String.Join(" ", Array.create 256 "0.5"))
                    let badValue = Path.Combine(dir, $"bad{hostileText}.txt")
                    File.WriteAllText(badValue, hostileText + " " + String.Join(" ", Array.create 255 "0.5"))
                    let badModel = Path.Combine(dir, $"bad{hostileText}.safetensors")
                    hostileModel badModel [ "loss", hostileText ]
                    let dataDir = Path.Combine(dir, $"data{hostileText}")
                    Directory.CreateDirectory dataDir |> ignore
                    for args, expectCode in
                        [ [ "eval"; "--model"; badModel; "--backend"; "managed" ], 1
                          [ "eval"; "--model"; good + ".missing"; "--backend"; "managed" ], 1
                          [ "predict"; "--model"; good; "--backend"; "managed"; digit ], 0
                          [ "predict"; "--model"; good; "--backend"; "managed"; badValue ], 1
                          [ "show"; "--model"; good; "--backend"; "managed"; "--out"; Path.Combine(dir, "show.png"); digit ], 0
                          [ "show"; "--model"; badModel; "--backend"; "managed"; "--out"; Path.Combine(dir, "show.png"); "--digit"; "1" ], 1
                          [ "data"; "info"; "--data"; dataDir ], 0
                          [ "train"; "--passes"; "1"; "--data"; dataDir; "--out"; Path.Combine(dir, "never") ], 1 ] do
                        let code, out, err = runCli args
                        Expect.equal code expectCode $"{args}: exit code (stderr: {err})"
                        noControls $"{args}: stdout" out
                        noControls $"{args}: stderr" err
                        Expect.stringContains (out + err) "\\x1b[2J" $"{args}: the hostile text is shown, escaped"
                        if expectCode = 1 then oneLine $"{args}" err)
            }
        ]
    ]
