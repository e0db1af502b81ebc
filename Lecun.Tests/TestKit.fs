/// What every test file shares, compiled first: the providers each engine test is generated for, the
/// skips a run may expect (any other skip fails the run, see Main), temporary folders, the program run
/// as a child process, and the numeric checks the engine, kernel and training tests share.
module Lecun.Tests.TestKit

open System
open System.Diagnostics
open System.IO
open Expecto
open Lecun.Native.Backends
open Lecun.Model

let private isSet (name: string) = Environment.GetEnvironmentVariable name = "1"

/// LECUN_REQUIRE_MKL=1 (CI): MKL's absence is a failure, not a skip.
let mklRequired = isSet "LECUN_REQUIRE_MKL"

/// LECUN_REQUIRE_BROWSER=1 or CI set: a missing browser is a failure, not a skip.
let browserRequired = isSet "LECUN_REQUIRE_BROWSER" || not (String.IsNullOrEmpty(Environment.GetEnvironmentVariable "CI"))

/// The reasons a test may skip on some machine. A skip names one of these; Main fails the run on a
/// skip that does not, and on a skip of MKL or the browser where the run requires them.
type ExpectedSkip =
    /// A check of the AVX-512 kernels against the AVX2 ones, on a CPU without AVX-512.
    | NoAvx512
    /// The 16-lane kernels, on a CPU with neither AVX-512 nor AVX2 with FMA.
    | NoLanes
    /// A test of the mkl or auto provider where libmkl_rt does not load.
    | NoMkl
    /// The `serve` page's browser tests where chromium or its driver is missing.
    | NoBrowser

module ExpectedSkip =
    let private tag = function
        | NoAvx512 -> "[expected skip: no AVX-512] "
        | NoLanes -> "[expected skip: no 16-lane kernels] "
        | NoMkl -> "[expected skip: no MKL] "
        | NoBrowser -> "[expected skip: no browser] "

    /// The skips this run accepts: the CPU's, and MKL's and the browser's unless the run requires them.
    let accepted () =
        [ NoAvx512; NoLanes
          if not mklRequired then NoMkl
          if not browserRequired then NoBrowser ]

    /// Skips the running test for a named reason.
    let skip (reason: ExpectedSkip) (detail: string) : 'a = skiptest (tag reason + detail)

    /// Whether a skip's message names a reason this run accepts.
    let isAccepted (message: string) =
        accepted () |> List.exists (fun r -> message.StartsWith(tag r, StringComparison.Ordinal))

/// The MKL provider, or an expected skip (a failure under LECUN_REQUIRE_MKL=1) where MKL does not load.
let mkl () =
    match Backend.Mkl with
    | null -> ExpectedSkip.skip NoMkl $"MKL not available ({Backend.MklUnavailableReason})"
    | b -> b

/// The auto provider, or an expected skip where MKL does not load.
let auto () =
    match Backend.Auto with
    | null -> ExpectedSkip.skip NoMkl $"MKL not available, so there is no auto provider ({Backend.MklUnavailableReason})"
    | b -> b

/// Each provider by name (auto, mkl, managed): the provider, or None where this machine lacks it.
let providers =
    [ for name in Backend.Names ->
        name,
        match name with
        | "managed" -> Some Backend.Managed
        | "mkl" -> Option.ofObj Backend.Mkl
        | _ -> Option.ofObj Backend.Auto ]

/// One test list per provider, each holding the tests `build` makes for that provider, so no test
/// loops over providers in its body. A provider this machine lacks gets one test that skips (NoMkl).
let perProvider (build: IBackend -> Test list) =
    [ for name, provider in providers ->
        match provider with
        | Some b -> testList name (build b)
        | None -> testList name [ testCase "is available" <| fun () -> ExpectedSkip.skip NoMkl $"no {name} provider: {Backend.MklUnavailableReason}" ] ]

/// The tests that need the real USPS digits (paper-level accuracy, the embedded files' digests), in a
/// list named "real data" wherever they sit: `--filter-test-list "real data"` selects them all, and the
/// rest of the suite runs on generated digits (TestSetup.synthetic). CI runs both.
let realData (tests: Test list) = testList "real data" tests

/// A fresh folder under the system temp folder, deleted on Dispose, so tests never see each other's files.
type TempDir() =
    let path = Path.Combine(Path.GetTempPath(), "lecun-tests-" + Guid.NewGuid().ToString("N"))
    do Directory.CreateDirectory path |> ignore
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() = try Directory.Delete(path, true) with _ -> ()

/// Runs `f` on a fresh folder, removed afterwards.
let withTempDir (f: string -> 'a) =
    use dir = new TempDir()
    f dir.Path

/// The program as a child process (`dotnet lecun.dll args`) in `workingDir`, its output redirected:
/// for signals and for what only a separate process shows (working folder, exit on a signal).
let startCliIn (workingDir: string) (args: string list) =
    let info = ProcessStartInfo("dotnet", RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = workingDir)
    info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "lecun.dll"))
    for a in args do info.ArgumentList.Add a
    Process.Start info

/// The program as a child process in the current folder.
let startCli (args: string list) = startCliIn Environment.CurrentDirectory args

/// Runs the program as a child process to its end in `workingDir`: exit code, stdout, stderr.
let runCliIn (workingDir: string) (args: string list) =
    use p = startCliIn workingDir args
    let out, err = p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit 120000) then
        p.Kill true
        failtest $"{args}: no exit within 120 s"
    p.ExitCode, out.Result, err.Result

/// `kill -SIGNAL pid`.
let sendSignal (signal: string) (p: Process) =
    use kill = Process.Start("kill", [ $"-{signal}"; string p.Id ])
    kill.WaitForExit()

/// A digit of uniformly random pixels in [-1, 1).
/// Bytes this thread allocates in a steady-state call of `run`: one call first to warm up (JIT, tiering,
/// lazily made buffers), then the fewest bytes of three measured calls. Code that allocates on every call
/// allocates in all three; the runtime's rare one-off allocations on a loaded machine (the tiering of a
/// method mid-call) do not fail the check.
let steadyAllocation (run: unit -> unit) =
    run ()
    [ for _ in 1 .. 3 ->
        let before = GC.GetAllocatedBytesForCurrentThread()
        run ()
        GC.GetAllocatedBytesForCurrentThread() - before ]
    |> List.min

let randomImage (rng: Rng) = Array.init 256 (fun _ -> rng.NextFloat32() * 2.0f - 1.0f)

/// |a - b| <= tol * max(|b|, scale): relative, with the group's largest magnitude as the floor so that
/// entries that are nearly zero by cancellation are judged against the size of their neighbours.
let expectClose (tol: float) (actual: float array) (expected: float array) (what: string) =
    let scale = expected |> Array.map abs |> Array.max |> max 1e-12
    let worst =
        Array.map2 (fun a b -> abs (a - b) / max (abs b) scale) actual expected |> Array.max
    Expect.isLessThanOrEqual worst tol $"{what}: worst relative error {worst:E2}"

/// Engine gradient of one example (forward at count 1, loss gradient, backward).
let engineGradient (backend: IBackend) (net: Network) (loss: Loss) (p: float32 array) (x: float32 array) (label: int) =
    let ws = Workspace.create net 1
    let grad = Array.zeroCreate<float32> p.Length
    let dOut = Array.zeroCreate<float32> net.Layout.OutputSize
    Forward.run backend net p ws x 0 1
    Loss.gradient loss (Forward.outputs net ws) 0 net.Layout.OutputSize label dOut
    Backward.run backend net p ws x 0 dOut grad false
    grad
