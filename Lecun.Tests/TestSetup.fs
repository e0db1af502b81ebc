/// What the model and command-line tests share, compiled right after TestKit: the data, small random
/// networks and digits, the command line run in-process, and a local HTTP server that answers as told.
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

/// `count` generated 16x16 digits in 10 classes, labels cycling 0..9: each class is a fixed smooth
/// stroke pattern (from `Rng 1989`), each digit that pattern moved by up to one pixel with a little
/// noise, values in [-1, 1]. Learnable like digits, made in memory, so a test that needs only some
/// digits runs without the real data set.
let syntheticDigits (name: string) (seed: int) (count: int) =
    let side = Dataset.Side
    let patterns =
        let rng = Rng 1989UL
        Array.init 10 (fun _ ->
            let centres = Array.init 3 (fun _ -> 3.0f + rng.NextFloat32() * 10.0f, 3.0f + rng.NextFloat32() * 10.0f)
            Array.init Dataset.Pixels (fun i ->
                let y, x = float32 (i / side), float32 (i % side)
                let ink = centres |> Array.sumBy (fun (cy, cx) -> exp (-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / 6.0f))
                min 1.0f (2.0f * ink) * 2.0f - 1.0f))
    let rng = Rng(uint64 seed)
    let labels = Array.init count (fun i -> i % 10)
    let images =
        labels
        |> Array.collect (fun label ->
            let dy, dx = int (rng.NextFloat32() * 3.0f) - 1, int (rng.NextFloat32() * 3.0f) - 1
            Array.init Dataset.Pixels (fun i ->
                let y, x = i / side - dy, i % side - dx
                let v = if y >= 0 && y < side && x >= 0 && x < side then patterns.[label].[y * side + x] else -1.0f
                max (-1.0f) (min 1.0f (v + (rng.NextFloat32() - 0.5f) * 0.2f))))
    { Name = name; Images = images; Labels = labels }

/// A small run of generated digits, the size of `small ()`: 1000 training and 500 test digits.
let synthetic () =
    { Train = syntheticDigits "synthetic train" 1 1000
      Test = syntheticDigits "synthetic test" 2 500
      Source = "generated digits" }

/// Initial weights with the zero biases replaced by small random values, so every parameter matters.
let randomParameters seed =
    let p = Init.create SqrtFanIn Layout.lecun1989 seed
    let rng = Rng(uint64 seed + 5UL)
    p |> Array.map (fun v -> if v = 0.0f then (rng.NextFloat32() - 0.5f) * 0.2f else v)

/// A one-digit data set of random pixels.
let oneDigit (seed: int) =
    let rng = Rng(uint64 seed)
    { Name = "one"; Images = TestKit.randomImage rng; Labels = [| seed % 10 |] }

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

/// An HTTP server on 127.0.0.1 only (any free port) that reads each request's headers and answers
/// with `respond request stream token`, which writes the raw reply, well-formed or not, and may
/// take as long as it likes: `token` is cancelled when the server is disposed.
type RawHttpServer(respond: string -> Net.Sockets.NetworkStream -> Threading.CancellationToken -> Threading.Tasks.Task) =
    let listener = new Net.Sockets.TcpListener(Net.IPAddress.Loopback, 0)
    let stop = new Threading.CancellationTokenSource()
    do listener.Start()
    let port = (listener.LocalEndpoint :?> Net.IPEndPoint).Port
    let serve (client: Net.Sockets.TcpClient) =
        task {
            use client = client
            use stream = client.GetStream()
            let buffer = Array.zeroCreate<byte> 8192
            let mutable request = ""
            let mutable ended = false
            while not ended do
                let! n = stream.ReadAsync(buffer.AsMemory(), stop.Token)
                request <- request + Text.Encoding.ASCII.GetString(buffer, 0, n)
                ended <- n = 0 || request.Contains "\r\n\r\n" || request.Length > 65536
            try do! respond request stream stop.Token with _ -> ()
        }
    let accepting =
        task {
            try
                while not stop.IsCancellationRequested do
                    let! client = listener.AcceptTcpClientAsync(stop.Token)
                    serve client |> ignore
            with _ -> ()
        }
    member _.Url(path: string) = $"http://127.0.0.1:{port}{path}"
    interface IDisposable with
        member _.Dispose() =
            stop.Cancel()
            listener.Stop()
            (try accepting.Wait 2000 |> ignore with _ -> ())
