/// What the model and command-line tests share: the data, small random networks and digits, temporary
/// folders, and the command line run in-process.
module Lecun.Tests.TestSetup

open System
open System.IO
open Lecun.Model

/// The paper's digits, found through the data search path: the embedded copy unless
/// $LECUN_DATA or ./data holds another.
let usps = lazy (Data.load DataSetName.Usps None |> function Ok d -> d | Error e -> failwith e)

/// Writes the embedded file `name` (e.g. "mnist/t10k-images-idx3-ubyte.gz") to `dir/name`, as
/// distributed, and returns its path: a fixture for tests that need the files on disk.
let writeEmbedded (dir: string) (name: string) =
    let path = Path.Combine(dir, name)
    Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
    File.WriteAllBytes(path, EmbeddedData.bytes name |> Option.defaultWith (fun () -> failwith $"{name} is not embedded in Lecun.Model"))
    path

/// A data folder holding usps/ and mnist/ written from the embedded copy, once per test run and
/// removed when it ends.
let dataFolder =
    lazy
        (let dir = Path.Combine(Path.GetTempPath(), $"lecun-test-data-{Guid.NewGuid():N}")
         for name in EmbeddedData.names do writeEmbedded dir name |> ignore
         AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> try Directory.Delete(dir, true) with _ -> ())
         dir)

let subset (d: Dataset) (count: int) = d.Take count

/// A small run: 1000 training and 500 test digits of USPS.
let small () =
    let d = usps.Force()
    { d with Train = subset d.Train 1000; Test = subset d.Test 500 }

/// A fresh folder per test, removed afterwards, so tests never see each other's files.
let withTempDir (f: string -> 'a) =
    let dir = Path.Combine(Path.GetTempPath(), $"lecun-test-{Guid.NewGuid():N}")
    Directory.CreateDirectory dir |> ignore
    try f dir finally (try Directory.Delete(dir, true) with _ -> ())

/// Initial weights with the zero biases replaced by small random values, so every parameter matters.
let randomParameters seed =
    let p = Init.create SqrtFanIn Layout.lecun1989 seed
    let rng = Rng(uint64 seed + 5UL)
    p |> Array.map (fun v -> if v = 0.0f then (rng.NextFloat32() - 0.5f) * 0.2f else v)

/// A one-digit data set of random pixels.
let oneDigit (seed: int) =
    let rng = Rng(uint64 seed)
    { Name = "one"; Images = EngineTests.randomImage rng; Labels = [| seed % 10 |] }

let private consoleGate = obj ()

/// Runs the command line in-process, capturing stdout and stderr. Console is process-wide, so one
/// command line runs at a time.
let runCli (args: string list) =
  lock consoleGate (fun () ->
    let out, err = new StringWriter(), new StringWriter()
    let oldOut, oldErr = Console.Out, Console.Error
    Console.SetOut out
    Console.SetError err
    try
        let code = Lecun.Cli.Program.run (Array.ofList args)
        code, out.ToString(), err.ToString()
    finally
        Console.SetOut oldOut
        Console.SetError oldErr)
