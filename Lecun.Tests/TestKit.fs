/// What every test file shares, compiled first: the providers each engine test is generated for, and
/// the skips a run may expect (any other skip fails the run, see Main).
module Lecun.Tests.TestKit

open System
open Expecto
open Lecun.Native.Backends

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
