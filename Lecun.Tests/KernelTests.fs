/// The SIMD kernels against plain float64 arithmetic, on shapes chosen to reach every vector block
/// and tail, not just the 1989 network's.
module Lecun.Tests.KernelTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Native.Backends
open Lecun.Native.Kernels
open Lecun.Model

type GemmCase =
    { TransA: bool; TransB: bool; M: int; N: int; K: int; Alpha: float32; Beta: float32; Pad: int; Seed: uint64 }

let private genGemm =
    gen {
        let! transA = Gen.elements [ false; true ]
        let! transB = Gen.elements [ false; true ]
        // Up to 70 columns: 32-, 16-wide blocks, masked tails and scalar columns all occur.
        let! m = Gen.choose (1, 13)
        let! n = Gen.choose (1, 70)
        let! k = Gen.choose (1, 40)
        let! alpha = Gen.elements [ 1.0f; -0.5f; 2.0f ]
        let! beta = Gen.elements [ 0.0f; 1.0f; 0.25f ]
        let! pad = Gen.choose (0, 3)
        let! seed = Gen.choose (0, 100000)
        return { TransA = transA; TransB = transB; M = m; N = n; K = k; Alpha = alpha; Beta = beta; Pad = pad; Seed = uint64 seed }
    }

type KernelGen =
    static member Gemm() = Arb.fromGen genGemm

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<KernelGen> ]; maxTest = 300 }

/// The kernel widths this CPU runs natively: the AVX2 path (two Vector256 per 16 lanes) always, and the
/// AVX-512 path where the CPU has it. On an AVX-512 machine every test below that runs `eachWidth`
/// checks both paths against the same definition, so they agree bit for bit with each other too.
let widths = if KernelWidth.HasAvx512 then [ false; true ] else [ false ]

/// Runs f with the kernels on the AVX-512 path (wide) or the AVX2 path, then restores the setting. The
/// setting holds for this test's flow only (KernelWidth.Avx2Forced is an AsyncLocal), so tests running in
/// parallel never see or restore each other's; f must leave it as it found it.
let atWidth (wide: bool) (f: unit -> 'a) =
    let saved = KernelWidth.Avx2Forced
    KernelWidth.Avx2Forced <- not wide
    try
        let result = f ()
        Expect.equal KernelWidth.UseAvx512 wide "the kernels still take the path this test chose"
        result
    finally
        KernelWidth.Avx2Forced <- saved

/// Runs check at every width this CPU has (see widths).
let eachWidth (check: unit -> unit) = for wide in widths do atWidth wide check

/// The float's bits, so +0 and -0 (equal as floats) are told apart.
let bitsOf (x: float32) = BitConverter.SingleToInt32Bits x

/// Bit-for-bit equality of two float32 arrays, naming the first element that differs.
let expectSameBits (actual: float32 array) (expected: float32 array) (what: string) =
    Expect.equal actual.Length expected.Length $"{what}: length"
    for i in 0 .. actual.Length - 1 do
        if bitsOf actual.[i] <> bitsOf expected.[i] then
            failtestf "%s [%d]: %.9g (0x%08x) where %.9g (0x%08x) expected" what i actual.[i] (bitsOf actual.[i]) expected.[i] (bitsOf expected.[i])

/// The forward error bound of a float32 sum of k products (plus a beta term): a few units of
/// roundoff per term times the sum of the terms' magnitudes, since cancellation can leave a result
/// far smaller than its terms.
let private sumBound (k: int) (magnitude: float) = 4.0 * float (k + 1) * 6e-8 * magnitude + 1e-12

/// Spans that end exactly where an inaccessible page begins, so a kernel that reads or writes even one
/// float past its span crashes the test run instead of passing unnoticed (a read-modify-write of the
/// floats after a span writes back what it read, which no sentinel value can catch).
module GuardPage =
    open System.Runtime.InteropServices

    [<DllImport("libc", SetLastError = true)>]
    extern nativeint mmap(nativeint addr, unativeint length, int prot, int flags, int fd, nativeint offset)

    [<DllImport("libc", SetLastError = true)>]
    extern int mprotect(nativeint addr, unativeint length, int prot)

    [<DllImport("libc", SetLastError = true)>]
    extern int munmap(nativeint addr, unativeint length)

    let private pageSize = Environment.SystemPageSize

    /// The floats at an address, as a span.
    let span (start: nativeint) (floats: int) = Span<float32>(start.ToPointer(), floats)

    /// Runs `f` on the address of a fresh, zeroed block of `floats` floats followed by a PROT_NONE page.
    let run (floats: int) (f: nativeint -> unit) =
        let pages = (floats * 4 + pageSize - 1) / pageSize
        let length = unativeint ((pages + 1) * pageSize)
        let block = mmap(0n, length, 3 (* read | write *), 0x22 (* private | anonymous *), -1, 0n)
        if block = -1n then failwith $"mmap failed ({Marshal.GetLastPInvokeError()})"
        try
            let guard = block + nativeint (pages * pageSize)
            if mprotect(guard, unativeint pageSize, 0) <> 0 then failwith $"mprotect failed ({Marshal.GetLastPInvokeError()})"
            f (guard - nativeint (floats * 4))
        finally
            munmap(block, length) |> ignore

[<Tests>]
let tests =
    testList "kernels" [
        yield! TestKit.perProvider (fun backend ->
            [ testPropertyWithConfig config "GEMM equals the float64 product, any shape, transposes, alpha, beta, padding" <| fun (c: GemmCase) ->
                let rng = Rng c.Seed
                let rows trans r cols = if trans then cols else r
                let colsOf trans r cols = if trans then r else cols
                // Stored shapes, with `Pad` extra floats per row (leading dimension > columns).
                let aRows, aCols = rows c.TransA c.M c.K, colsOf c.TransA c.M c.K
                let bRows, bCols = rows c.TransB c.K c.N, colsOf c.TransB c.K c.N
                let lda, ldb, ldc = aCols + c.Pad, bCols + c.Pad, c.N + c.Pad
                let fill n = Array.init n (fun _ -> rng.NextFloat32() * 2.0f - 1.0f)
                let a, b, c0 = fill (aRows * lda), fill (bRows * ldb), fill (c.M * ldc)
                let aAt i p = float (if c.TransA then a.[p * lda + i] else a.[i * lda + p])
                let bAt p j = float (if c.TransB then b.[j * ldb + p] else b.[p * ldb + j])
                let out = Array.copy c0
                backend.Gemm(c.TransA, c.TransB, c.M, c.N, c.K, c.Alpha, ReadOnlySpan a, lda, ReadOnlySpan b, ldb, c.Beta, Span out, ldc)
                for i in 0 .. c.M - 1 do
                    for j in 0 .. ldc - 1 do
                        if j < c.N then
                            let terms = [ for p in 0 .. c.K - 1 -> aAt i p * bAt p j ]
                            let betaTerm = if c.Beta = 0.0f then 0.0 else float c.Beta * float c0.[i * ldc + j]
                            let expected = float c.Alpha * List.sum terms + betaTerm
                            let bound = sumBound c.K (abs (float c.Alpha) * List.sumBy abs terms + abs betaTerm)
                            Expect.isLessThanOrEqual (abs (float out.[i * ldc + j] - expected)) bound
                                $"C[{i},{j}] of {c}"
                        else
                            Expect.equal out.[i * ldc + j] c0.[i * ldc + j] $"wrote past the row into C[{i},{j}]"

              testProperty "GEMV equals the float64 product" <| fun (seed: uint64) (trans: bool) (mRaw: byte) (nRaw: byte) ->
                let rng = Rng seed
                let m, n = 1 + int mRaw % 200, 1 + int nRaw % 40
                let lda = n + int (seed % 3UL)
                let a = Array.init (m * lda) (fun _ -> rng.NextFloat32() - 0.5f)
                let x = Array.init (if trans then m else n) (fun _ -> rng.NextFloat32() - 0.5f)
                let y0 = Array.init (if trans then n else m) (fun _ -> rng.NextFloat32() - 0.5f)
                for beta in [ 0.0f; 0.5f ] do
                    let terms i =
                        if trans then [ for r in 0 .. m - 1 -> float a.[r * lda + i] * float x.[r] ]
                        else [ for c in 0 .. n - 1 -> float a.[i * lda + c] * float x.[c] ]
                    let y = Array.copy y0
                    backend.Gemv(trans, m, n, 1.5f, ReadOnlySpan a, lda, ReadOnlySpan x, beta, Span y)
                    for i in 0 .. y.Length - 1 do
                        let t = terms i
                        let expected = 1.5 * List.sum t + float beta * float y0.[i]
                        let bound = sumBound t.Length (1.5 * List.sumBy abs t + abs (float beta * float y0.[i]))
                        Expect.isLessThanOrEqual (abs (float y.[i] - expected)) bound $"trans={trans} {m}x{n} beta={beta} y[{i}]" ])

        test "FastTanh is within 5e-7 relative of tanh on [-10, 10], and odd" {
            let mutable worst = 0.0
            for step in -200000 .. 200000 do
                let x = float32 step * 5e-5f
                let t = Math.Tanh(float x)
                let e = abs (float (FastTanh.Scalar x) - t) / max (abs t) 1e-30
                worst <- max worst e
                Expect.equal (FastTanh.Scalar -x) (-(FastTanh.Scalar x)) "odd"
            Expect.isLessThan worst 5e-7 "max relative error"
            // Past the clamp at 7.9 the result stays at tanh(7.9), 2.4e-7 below 1.
            Expect.isLessThanOrEqual (1.0 - float (FastTanh.Scalar 50.0f)) 3e-7 "saturates"
            Expect.isLessThanOrEqual (FastTanh.Scalar 50.0f) 1.0f "never above 1"
        }

        testProperty "FastTanh gives the same bits in vector lanes and in the scalar tail" <| fun (seed: uint64) (offset: byte) ->
            let rng = Rng seed
            let n = 16 + int offset % 40
            let x = Array.init n (fun _ -> (rng.NextFloat32() - 0.5f) * 12.0f)
            let y = Array.zeroCreate n
            FastTanh.Apply(ReadOnlySpan x, Span y)
            Expect.sequenceEqual y (x |> Array.map FastTanh.Scalar) "vector path = scalar path"

        test "FastTanh agrees with MKL's vsTanh" {
            match Backend.MklUnavailableReason with
            | null ->
                let x = Array.init 4096 (fun i -> float32 (i - 2048) * 0.005f)
                let ours = Array.zeroCreate x.Length
                FastTanh.Apply(ReadOnlySpan x, Span ours)
                let mkl = Array.zeroCreate x.Length
                Lecun.Native.Mkl.Vml.Tanh(ReadOnlySpan x, Span mkl)
                TestKit.expectClose 1e-6 (Array.map float ours) (Array.map float mkl) "tanh"
            | reason -> TestKit.ExpectedSkip.skip TestKit.NoMkl $"MKL not available ({reason})"
        }

        testProperty "the AdamW kernel equals the float64 update in vector lanes and tail alike" <| fun (seed: uint64) ->
            let rng = Rng seed
            let n = 37 // two 16-wide vectors and a 5-element tail
            let p = Array.init n (fun _ -> rng.NextFloat32() - 0.5f)
            let state = Optimizer.AdamState.create n
            let expected = Array.map float p
            let m, v = Array.zeroCreate n, Array.zeroCreate n
            let lr, wd, b1, b2, eps = 1e-3, 0.01, 0.9, 0.999, 1e-8
            for step in 1..3 do
                let g = Array.init n (fun _ -> rng.NextFloat32() - 0.5f)
                Optimizer.adamWStep (float32 lr) (float32 wd) (float32 b1) (float32 b2) (float32 eps) state p g
                for i in 0 .. n - 1 do
                    let gi = float g.[i]
                    m.[i] <- b1 * m.[i] + (1.0 - b1) * gi
                    v.[i] <- b2 * v.[i] + (1.0 - b2) * gi * gi
                    let t = float step
                    expected.[i] <- expected.[i] * (1.0 - lr * wd) - lr * (m.[i] / (1.0 - b1 ** t)) / (sqrt (v.[i] / (1.0 - b2 ** t)) + eps)
            TestKit.expectClose 1e-5 (Array.map float p) expected "parameters after 3 steps"
    ]

/// A random unfold geometry: the 1989 network's two (shape 0 and 1), ones the permute path takes
/// (16 output positions with the stride tiling the input; shapes 2 and 4 stride 2, 3 and 5 stride 1),
/// and arbitrary ones (many take the general gather).
let unfoldShape (rng: Rng) (shape: int) =
    match shape % 8 with
    | 0 -> 1, 16, 5, 2, 2
    | 1 -> 12, 8, 5, 2, 2
    | 2 | 4 ->
        let pad = rng.NextInt 3
        1 + rng.NextInt 3, 8, 2 * pad + 1 + rng.NextInt 2, 2, pad
    | 3 | 5 ->
        let pad = rng.NextInt 3
        1 + rng.NextInt 3, 4, 2 * pad + 1, 1, pad
    | _ ->
        let side, pad = 3 + rng.NextInt 14, rng.NextInt 3
        1 + rng.NextInt 3, side, min (1 + rng.NextInt 5) (side + 2 * pad), 1 + rng.NextInt 3, pad

/// A plan of shape `shape` (see unfoldShape); every other shape moves its input by a random shift,
/// up to two pixels past the padding (rows and columns that leave the padded planes are dropped).
let unfoldPlan (rng: Rng) (shape: int) =
    let planes, side, k, stride, pad = unfoldShape rng shape
    if shape / 8 % 2 = 0 then Im2ColPlan(planes, side, side, k, stride, pad)
    else
        let reach = pad + 2
        Im2ColPlan(planes, side, side, k, stride, pad, rng.NextInt(2 * reach + 1) - reach, rng.NextInt(2 * reach + 1) - reach)

/// The input index column entry (row r, position p) reads, or None for padding.
let sourceOf (plan: Im2ColPlan) r p =
    let k = plan.Kernel
    let ow = Im2ColPlan.OutputSide(plan.Width, k, plan.Stride, plan.Pad)
    let c, ky, kx = r / (k * k), r / k % k, r % k
    let y, x = p / ow * plan.Stride + ky - plan.Pad - plan.ShiftY, p % ow * plan.Stride + kx - plan.Pad - plan.ShiftX
    if y >= 0 && y < plan.Height && x >= 0 && x < plan.Width then Some((c * plan.Height + y) * plan.Width + x) else None

/// cols[r, p] straight from the definition: the padded input under each window.
let columnsByDefinition (plan: Im2ColPlan) (x: float32 array) (padValue: float32) =
    Array.init (plan.Rows * plan.Positions) (fun e ->
        match sourceOf plan (e / plan.Positions) (e % plan.Positions) with
        | Some i -> x.[i]
        | None -> padValue)

[<Tests>]
let unfoldTests =
    // Sequenced: these tests switch the kernels between the AVX-512 and AVX2 paths (on an AVX-512 CPU),
    // which must not happen under tests running in parallel.
    testList "im2col" [
        testProperty "Forward and ForwardBoth write the columns of the definition, in both layouts, shifted or not" <| fun (seed: uint64) (shape: byte) ->
          eachWidth <| fun () ->
            let rng = Rng seed
            let plan = unfoldPlan rng (int shape)
            let x = Array.init plan.InputSize (fun _ -> rng.NextFloat32() * 2.0f - 1.0f)
            let n, rows = plan.Positions, plan.Rows
            let expected = columnsByDefinition plan x -1.0f
            // One example in the middle of a batch of three: its columns at offset n of rows 3n long.
            let batch = Array.zeroCreate (rows * 3 * n)
            plan.Forward(ReadOnlySpan x, -1.0f, Span batch, n, 3 * n, Span(Array.zeroCreate plan.ScratchSize))
            for r in 0 .. rows - 1 do
                for p in 0 .. n - 1 do
                    Expect.equal batch.[r * 3 * n + n + p] expected.[r * n + p] $"batched cols[{r},{p}]"
            let cols = Array.zeroCreate (rows * n)
            let colsT = Array.zeroCreate plan.TransposedSize
            plan.ForwardBoth(ReadOnlySpan x, -1.0f, Span cols, Span colsT, Span(Array.zeroCreate plan.ScratchSize))
            Expect.sequenceEqual cols expected "cols"
            for r in 0 .. rows - 1 do
                for p in 0 .. n - 1 do
                    Expect.equal colsT.[p * rows + r] expected.[r * n + p] $"colsT[{p},{r}]"

        testProperty "col2im sums the entries that read each input, in column order, bit for bit" <| fun (seed: uint64) (shape: byte) ->
          eachWidth <| fun () ->
            let rng = Rng seed
            let plan = unfoldPlan rng (int shape)
            let n, rows = plan.Positions, plan.Rows
            let dCols = Array.init (rows * n + 1) (fun i -> if i = rows * n then 0.0f else rng.NextFloat32() - 0.5f)
            let expected = Array.zeroCreate plan.InputSize
            for r in 0 .. rows - 1 do
                for p in 0 .. n - 1 do
                    match sourceOf plan r p with
                    | Some i -> expected.[i] <- expected.[i] + dCols.[r * n + p]
                    | None -> ()
            let dIn = Array.create plan.InputSize nanf
            plan.Backward(ReadOnlySpan dCols, Span dIn)
            Expect.sequenceEqual dIn expected "dInput"

        testProperty "batched col2im (BatchColumns.Fold) equals each example's col2im, bit for bit" <| fun (seed: uint64) (shape: byte) (countRaw: byte) (padRaw: byte) ->
            let rng = Rng seed
            let plan = unfoldPlan rng (int shape)
            let n, rows, size = plan.Positions, plan.Rows, plan.InputSize
            let count = 1 + int countRaw % 5
            let ld = count * n + int padRaw % 3
            let dCols = Array.init (rows * ld) (fun _ -> rng.NextFloat32() - 0.5f)
            let dIn = Array.create (count * size) nanf
            BatchColumns.Fold(plan, ReadOnlySpan dCols, ld, count, Span dIn)
            for b in 0 .. count - 1 do
                // Example b's own [rows, n] columns, with the zero Backward expects after them.
                let own = Array.init (rows * n + 1) (fun i -> if i = rows * n then 0.0f else dCols.[(i / n) * ld + b * n + i % n])
                let expected = Array.create size nanf
                plan.Backward(ReadOnlySpan own, Span expected)
                expectSameBits dIn.[b * size .. (b + 1) * size - 1] expected $"example {b} of {count}"

        testProperty "the fused input gradient equals the column-gradient products and col2im, bit for bit" <| fun (seed: uint64) (shape: byte) ->
          eachWidth <| fun () ->
            let rng = Rng seed
            // Geometries of the permute path (16 output positions, the stride tiling the input) with random
            // connection tables: a local layer of 1-13 planes reading runs of its 1-5 input planes.
            let inPlanes = 1 + rng.NextInt 5
            let planes = 1 + rng.NextInt 13
            let _, side, k, stride, pad = unfoldShape rng (2 + 2 * (int shape % 2))
            let reads = 1 + rng.NextInt inPlanes
            let table = List.init planes (fun _ -> List.sort (List.take reads (List.sortBy (fun _ -> rng.NextInt 1000) [ 0 .. inPlanes - 1 ])))
            let spec =
                { Input = { Planes = inPlanes; Height = side; Width = side }
                  Layers = [ Local { Name = "L"; Planes = planes; Kernel = k; Stride = stride; Padding = pad; PadValue = -1.0f; Table = table } ] }
            let net = Network.create (Layout.create spec) Tanh Tanh
            let plan = net.Plans.[0]
            let unfold = plan.Unfold.Value
            Expect.isTrue unfold.FusesProducts "the geometry takes the permute path"
            let g = plan.Geometry
            let n, kk = unfold.Positions, k * k
            let w = Array.init g.Weight.Length (fun _ -> rng.NextFloat32() - 0.5f)
            let dPre = Array.init g.Units (fun _ -> rng.NextFloat32() - 0.5f)
            let dCols = Array.zeroCreate unfold.ColumnsWithZero
            let segments = plan.Segments
            for s in 0 .. 5 .. segments.Length - 1 do
                let p0, count, c0, inputs, column = segments.[s], segments.[s + 1], segments.[s + 2], segments.[s + 3], segments.[s + 4]
                Backend.Managed.Gemm(true, false, inputs * kk, n, count, 1.0f,
                                     ReadOnlySpan(w, p0 * g.FanIn + column, (count - 1) * g.FanIn + inputs * kk), g.FanIn,
                                     ReadOnlySpan(dPre, p0 * n, count * n), n, 1.0f, Span(dCols, c0 * kk * n, inputs * kk * n), n)
            let expected = Array.zeroCreate unfold.InputSize
            unfold.Backward(ReadOnlySpan dCols, Span expected)
            let dIn = Array.create unfold.InputSize nanf
            unfold.InputGradient(ReadOnlySpan w, g.FanIn, ReadOnlySpan dPre, planes, ReadOnlySpan segments,
                                 Span(Array.zeroCreate (unfold.InputGradientScratch planes)), Span dIn)
            expectSameBits dIn expected "dInput"
            // The fused forward products against the segments' matrix products, run in order.
            let x = Array.init unfold.InputSize (fun _ -> rng.NextFloat32() * 2.0f - 1.0f)
            let cols = Array.zeroCreate (unfold.Rows * n)
            unfold.Forward(ReadOnlySpan x, -1.0f, Span cols, 0, n, Span(Array.zeroCreate unfold.ScratchSize))
            let byProducts = Array.create (planes * n) nanf
            let mutable previous = -1
            for s in 0 .. 5 .. segments.Length - 1 do
                let p0, count, c0, inputs, column = segments.[s], segments.[s + 1], segments.[s + 2], segments.[s + 3], segments.[s + 4]
                Backend.Managed.Gemm(false, false, count, n, inputs * kk, 1.0f,
                                     ReadOnlySpan(w, p0 * g.FanIn + column, (count - 1) * g.FanIn + inputs * kk), g.FanIn,
                                     ReadOnlySpan(cols, c0 * kk * n, inputs * kk * n), n, (if p0 = previous then 1.0f else 0.0f),
                                     Span(byProducts, p0 * n, count * n), n)
                previous <- p0
            let fused = Array.create (planes * n) nanf
            unfold.Product(ReadOnlySpan w, g.FanIn, ReadOnlySpan cols, planes, ReadOnlySpan segments, Span fused)
            expectSameBits fused byProducts "fused forward products"

        test "Transpose16 transposes" {
            eachWidth <| fun () ->
                let m = Array.init 256 float32
                let t = Array.zeroCreate 256
                Im2ColPlan.Transpose16(ReadOnlySpan m, Span t)
                for i in 0..15 do
                    for j in 0..15 do
                        Expect.equal t.[i * 16 + j] m.[j * 16 + i] $"[{i},{j}]"
        }

        // A float32 result against the float64 sum of its products plus a bias, within the rounding
        // bound of a sum of that many terms.
        let expectSum (terms: float list) (bias: float32) (actual: float32) (what: string) =
            let expected = List.sum terms + float bias
            let bound = sumBound (terms.Length + 1) (List.sumBy abs terms + abs (float bias))
            Expect.isLessThanOrEqual (abs (float actual - expected)) bound what

        // The 16-lane kernels run at every width (as two Vector256 without AVX-512); the engine builds lane
        // buffers exactly where they run natively.
        let withLanes (check: unit -> unit) =
            Expect.equal (Workspace.create Network.lecun1989 16).Lanes.Length
                (if LaneBatch.IsSupported then Network.lecun1989.Plans.Length else 0) "lane buffers exactly where the lane kernels run natively"
            eachWidth check

        testProperty "LaneBatch.Local equals the float64 sums of its definition, at every block edge" <| fun (seed: uint64) (shape: byte) ->
            withLanes (fun () ->
                let rng = Rng seed
                let lanes = LaneBatch.Lanes
                let planes, positions, fanIn = 1 + int shape % 9, 1 + int (seed % 9UL), 1 + int (seed / 9UL % 30UL)
                let input = Array.init (420 + lanes) (fun _ -> rng.NextFloat32() - 0.5f)
                let origins = Array.init positions (fun _ -> int (rng.NextFloat32() * 200.0f))
                let taps = Array.init fanIn (fun _ -> int (rng.NextFloat32() * 200.0f))
                let w = Array.init (planes * fanIn) (fun _ -> rng.NextFloat32() - 0.5f)
                let bias = Array.init (planes * positions) (fun _ -> rng.NextFloat32() - 0.5f)
                let out = Array.create ((planes * positions + 1) * lanes) nanf
                LaneBatch.Local(ReadOnlySpan input, ReadOnlySpan origins, ReadOnlySpan taps, ReadOnlySpan w, planes, ReadOnlySpan bias, Span out)
                for p in 0 .. planes - 1 do
                    for s in 0 .. positions - 1 do
                        for e in 0 .. lanes - 1 do
                            expectSum [ for t in 0 .. fanIn - 1 -> float w.[p * fanIn + t] * float input.[origins.[s] + taps.[t] + e] ]
                                bias.[p * positions + s] out.[(p * positions + s) * lanes + e]
                                $"plane {p} position {s} lane {e} of {planes}x{positions}, fan-in {fanIn}"
                Expect.isTrue (out.[planes * positions * lanes ..] |> Array.forall Single.IsNaN) "nothing written past the output")

        testProperty "LaneBatch.Dense equals the float64 sums of x @ W + b, at every block edge" <| fun (seed: uint64) (shape: byte) ->
            withLanes (fun () ->
                let rng = Rng seed
                let lanes = LaneBatch.Lanes
                let fanIn, units = 1 + int shape % 40, 1 + int (seed % 20UL)
                let x = Array.init (fanIn * lanes) (fun _ -> rng.NextFloat32() - 0.5f)
                let w = Array.init (fanIn * units) (fun _ -> rng.NextFloat32() - 0.5f)
                let bias = Array.init units (fun _ -> rng.NextFloat32() - 0.5f)
                let out = Array.create ((units + 1) * lanes) nanf
                LaneBatch.Dense(ReadOnlySpan x, fanIn, ReadOnlySpan w, units, ReadOnlySpan bias, Span out)
                for u in 0 .. units - 1 do
                    for e in 0 .. lanes - 1 do
                        expectSum [ for i in 0 .. fanIn - 1 -> float w.[i * units + u] * float x.[i * lanes + e] ] bias.[u] out.[u * lanes + e]
                            $"unit {u} lane {e} of {fanIn}x{units}"
                Expect.isTrue (out.[units * lanes ..] |> Array.forall Single.IsNaN) "nothing written past the output")

        testProperty "ToLanes and FromLanes touch nothing past their spans" <| fun (seed: uint64) (shape: byte) ->
            withLanes (fun () ->
                let rng = Rng seed
                let lanes = LaneBatch.Lanes
                let units, count = 1 + int shape % 40, 1 + int (seed % 16UL)
                let examples = Array.init (count * units) (fun _ -> rng.NextFloat32() - 0.5f)
                let packed = Array.zeroCreate (units * lanes)
                GuardPage.run (count * units) (fun input ->
                    examples.AsSpan().CopyTo(GuardPage.span input (count * units))
                    LaneBatch.ToLanes(Span.op_Implicit (GuardPage.span input (count * units)), count, units, Span packed))
                GuardPage.run (units * lanes) (fun output ->
                    LaneBatch.ToLanes(ReadOnlySpan examples, count, units, GuardPage.span output (units * lanes)))
                let back = Array.zeroCreate (count * units)
                GuardPage.run (count * units) (fun output ->
                    LaneBatch.FromLanes(ReadOnlySpan packed, units, count, GuardPage.span output (count * units))
                    (GuardPage.span output (count * units)).CopyTo(Span back))
                Expect.sequenceEqual back examples "round trip through guarded spans")

        testProperty "ToLanes and FromLanes transpose exactly; lanes of missing examples are zero" <| fun (seed: uint64) (shape: byte) ->
            withLanes (fun () ->
                let rng = Rng seed
                let lanes = LaneBatch.Lanes
                let units, count = 1 + int shape % 40, 1 + int (seed % 16UL)
                let examples = Array.init (count * units) (fun _ -> rng.NextFloat32() - 0.5f)
                let packed = Array.create (units * lanes) nanf
                LaneBatch.ToLanes(ReadOnlySpan examples, count, units, Span packed)
                for u in 0 .. units - 1 do
                    for e in 0 .. lanes - 1 do
                        Expect.equal packed.[u * lanes + e] (if e < count then examples.[e * units + u] else 0.0f) $"unit {u} lane {e}"
                let back = Array.create (count * units + 1) nanf
                LaneBatch.FromLanes(ReadOnlySpan packed, units, count, Span back)
                Expect.sequenceEqual back.[.. count * units - 1] examples "round trip"
                Expect.isTrue (Single.IsNaN back.[count * units]) "nothing written past the examples")
    ]

/// Each kernel against its definition written out element by element in float32: the exact sequence of
/// roundings (fused multiply-add chains, summation trees) that both the AVX-512 and the AVX2 path must
/// give, bit for bit, at every width this CPU has. This is what makes a model file the same on both.
[<Tests>]
let widthTests =
    let fma (a: float32) (b: float32) (c: float32) = MathF.FusedMultiplyAdd(a, b, c)
    let finish (acc: float32) (alpha: float32) (beta: float32) (c: float32) = if beta = 0.0f then acc * alpha else acc * alpha + c * beta
    let randomArray (rng: Rng) n = Array.init n (fun _ -> rng.NextFloat32() * 2.0f - 1.0f)
    testList "kernel widths" [
        testPropertyWithConfig config "GEMM (A or A^T) B gives each element one chain of fused multiply-adds from +0, then alpha and beta" <| fun (c: GemmCase) ->
            eachWidth <| fun () ->
                let rng = Rng c.Seed
                let lda = (if c.TransA then c.M else c.K) + c.Pad
                let ldb, ldc = c.N + c.Pad, c.N + c.Pad
                let a = randomArray rng ((if c.TransA then c.K else c.M) * lda)
                let b, c0 = randomArray rng (c.K * ldb), randomArray rng (c.M * ldc)
                let aAt i p = if c.TransA then a.[p * lda + i] else a.[i * lda + p]
                let expected = Array.copy c0
                for i in 0 .. c.M - 1 do
                    for j in 0 .. c.N - 1 do
                        let mutable s = 0.0f
                        for p in 0 .. c.K - 1 do s <- fma (aAt i p) b.[p * ldb + j] s
                        expected.[i * ldc + j] <- finish s c.Alpha c.Beta c0.[i * ldc + j]
                let out = Array.copy c0
                Backend.Managed.Gemm(c.TransA, false, c.M, c.N, c.K, c.Alpha, ReadOnlySpan a, lda, ReadOnlySpan b, ldb, c.Beta, Span out, ldc)
                expectSameBits out expected $"{KernelWidth.Path} {c}"

        testPropertyWithConfig config "GEMM A B^T: below ShortDot one chain of fused multiply-adds from +0; from it on, 16 lane chains summed ((0+1)+(2+3)) + ... by 128-bit, 256-bit halves, then the tail" <| fun (c: GemmCase) ->
            eachWidth <| fun () ->
                let rng = Rng c.Seed
                // k from 4 to 160: both sides of ShortDot (64), whole 16-blocks, the 2x2 output blocks and their edges.
                let k = c.K * 4
                let lda, ldb, ldc = k + c.Pad, k + c.Pad, c.N + c.Pad
                let a, b, c0 = randomArray rng (c.M * lda), randomArray rng (c.N * ldb), randomArray rng (c.M * ldc)
                let dot (x: int) (y: int) =
                    if k < ManagedBackend.ShortDot then
                        let mutable s = 0.0f
                        for p in 0 .. k - 1 do s <- fma a.[x + p] b.[y + p] s
                        s
                    else
                    let lanes = Array.zeroCreate 16
                    let whole = k / 16 * 16
                    for p in 0 .. 16 .. whole - 1 do
                        for l in 0 .. 15 do lanes.[l] <- fma a.[x + p + l] b.[y + p + l] lanes.[l]
                    let four o = (lanes.[o] + lanes.[o + 1]) + (lanes.[o + 2] + lanes.[o + 3])
                    let mutable s = (four 0 + four 4) + (four 8 + four 12)
                    for p in whole .. k - 1 do s <- fma a.[x + p] b.[y + p] s
                    s
                let expected = Array.copy c0
                for i in 0 .. c.M - 1 do
                    for j in 0 .. c.N - 1 do
                        expected.[i * ldc + j] <- finish (dot (i * lda) (j * ldb)) c.Alpha c.Beta c0.[i * ldc + j]
                let out = Array.copy c0
                Backend.Managed.Gemm(false, true, c.M, c.N, k, c.Alpha, ReadOnlySpan a, lda, ReadOnlySpan b, ldb, c.Beta, Span out, ldc)
                expectSameBits out expected $"{KernelWidth.Path} {c} k={k}"

        testProperty "GEMV x^T A sums four chains (rows i mod 4) as (s0 + s1) + (s2 + s3); A x sums 16 lanes by the AVX-512 tree" <| fun (seed: uint64) (mRaw: byte) (nRaw: byte) ->
            eachWidth <| fun () ->
                let rng = Rng seed
                let m, n = 1 + int mRaw % 200, 1 + int nRaw % 70
                let lda = n + int (seed % 3UL)
                let a = randomArray rng (m * lda)
                for beta in [ 0.0f; 0.5f ] do
                    // y = x^T A: column j's four chains.
                    let x, y0 = randomArray rng m, randomArray rng n
                    let expected =
                        Array.init n (fun j ->
                            let s = Array.zeroCreate 4
                            for i in 0 .. m - 1 do s.[i % 4] <- fma x.[i] a.[i * lda + j] s.[i % 4]
                            finish ((s.[0] + s.[1]) + (s.[2] + s.[3])) 1.5f beta y0.[j])
                    let y = Array.copy y0
                    Backend.Managed.Gemv(true, m, n, 1.5f, ReadOnlySpan a, lda, ReadOnlySpan x, beta, Span y)
                    expectSameBits y expected $"{KernelWidth.Path} x^T A {m}x{n} beta={beta}"
                    // y = A x: for n >= 16, lane l sums columns l, l + 16, ... (the last block ends at n, its
                    // repeated columns count as zero products), then per four lanes (l0 + l2) + (l1 + l3), then
                    // (g0 + g1) + (g2 + g3); for n < 16 one chain.
                    let x, y0 = randomArray rng n, randomArray rng m
                    let expected =
                        Array.init m (fun i ->
                            let s =
                                if n < 16 then Array.fold2 (fun s w v -> fma w v s) 0.0f a.[i * lda .. i * lda + n - 1] x
                                else
                                    let lanes = Array.zeroCreate 16
                                    let mutable j = 0
                                    while j + 16 <= n do
                                        for l in 0 .. 15 do lanes.[l] <- fma a.[i * lda + j + l] x.[j + l] lanes.[l]
                                        j <- j + 16
                                    if j < n then
                                        let start = n - 16
                                        for l in 0 .. 15 do lanes.[l] <- fma a.[i * lda + start + l] (if start + l >= j then x.[start + l] else 0.0f) lanes.[l]
                                    let g o = (lanes.[o] + lanes.[o + 2]) + (lanes.[o + 1] + lanes.[o + 3])
                                    (g 0 + g 4) + (g 8 + g 12)
                            finish s 1.5f beta y0.[i])
                    let y = Array.copy y0
                    Backend.Managed.Gemv(false, m, n, 1.5f, ReadOnlySpan a, lda, ReadOnlySpan x, beta, Span y)
                    expectSameBits y expected $"{KernelWidth.Path} A x {m}x{n} beta={beta}"

        testProperty "element-wise kernels, FastTanh and AdamW give every element its scalar formula's bits, any length" <| fun (seed: uint64) (nRaw: byte) ->
            eachWidth <| fun () ->
                let rng = Rng seed
                let n = 1 + int nRaw % 70
                let x, y = randomArray rng n, randomArray rng n
                // Some exact zeros of both signs, where max and the sign conventions matter.
                x.[0] <- -0.0f
                if n > 9 then x.[9] <- 0.0f
                let run (f: float32 array -> unit) =
                    let out = Array.create n nanf
                    f out
                    out
                let s = -0.37f
                let cases =
                    [ "Add", run (fun o -> Elementwise.Add(ReadOnlySpan x, ReadOnlySpan y, Span o)), Array.map2 (+) x y
                      "Subtract", run (fun o -> Elementwise.Subtract(ReadOnlySpan x, ReadOnlySpan y, Span o)), Array.map2 (-) x y
                      "Multiply", run (fun o -> Elementwise.Multiply(ReadOnlySpan x, ReadOnlySpan y, Span o)), Array.map2 (*) x y
                      "Scale", run (fun o -> Elementwise.Multiply(ReadOnlySpan x, s, Span o)), Array.map (fun v -> v * s) x
                      "MultiplyAdd", run (fun o -> Elementwise.MultiplyAdd(ReadOnlySpan x, s, ReadOnlySpan y, Span o)), Array.map2 (fun v w -> v * s + w) x y
                      "ReluForward", run (fun o -> Elementwise.ReluForward(ReadOnlySpan x, Span o)), Array.map (fun v -> MathF.Max(v, 0.0f)) x
                      "ReluBackward", run (fun o -> Elementwise.ReluBackward(ReadOnlySpan x, ReadOnlySpan y, Span o)), Array.map2 (fun v d -> if v > 0.0f then d else 0.0f) x y
                      "TanhBackward", run (fun o -> Elementwise.TanhBackward(ReadOnlySpan x, ReadOnlySpan y, Span o)), Array.map2 (fun v d -> (1.0f - v * v) * d) x y
                      "ScaledTanhBackward", run (fun o -> Elementwise.ScaledTanhBackward(ReadOnlySpan x, ReadOnlySpan y, Span o)),
                          Array.map2 (fun v d -> Elementwise.ScaledTanhS * (Elementwise.ScaledTanhA - v * v / Elementwise.ScaledTanhA) * d) x y
                      "FastTanh", run (fun o -> FastTanh.Apply(ReadOnlySpan(Array.map (fun v -> v * 9.0f) x), Span o)), Array.map (fun v -> FastTanh.Scalar(v * 9.0f)) x ]
                for name, actual, expected in cases do expectSameBits actual expected $"{KernelWidth.Path} {name}, n={n}"
                // One AdamW step against its scalar formula, element by element.
                let p, g, m, v = randomArray rng n, randomArray rng n, randomArray rng n, Array.init n (fun _ -> rng.NextFloat32())
                let decay, step, b1, b2, bias2, eps = 0.9999f, 1e-3f, 0.9f, 0.999f, 0.0447f, 1e-8f
                let pe, me, ve = Array.copy p, Array.copy m, Array.copy v
                for i in 0 .. n - 1 do
                    me.[i] <- b1 * m.[i] + (1.0f - b1) * g.[i]
                    ve.[i] <- b2 * v.[i] + (1.0f - b2) * g.[i] * g.[i]
                    pe.[i] <- p.[i] * decay - step * me.[i] / (MathF.Sqrt ve.[i] / bias2 + eps)
                AdamW.Step(Span p, ReadOnlySpan g, Span m, Span v, decay, step, b1, b2, bias2, eps)
                expectSameBits p pe $"{KernelWidth.Path} AdamW parameters, n={n}"
                expectSameBits m me $"{KernelWidth.Path} AdamW m, n={n}"
                expectSameBits v ve $"{KernelWidth.Path} AdamW v, n={n}"

        testProperty "Transpose16 writes exactly the rows and columns asked for, zeros for rows past the source" <| fun (seed: uint64) (shape: byte) ->
            eachWidth <| fun () ->
                let rng = Rng seed
                let srcRows, dstRows, dstCols = 1 + int shape % 16, 1 + int (seed % 16UL), 1 + int (seed / 16UL % 16UL)
                let src = randomArray rng (16 * 20)
                let dst0 = randomArray rng (16 * 24)
                let dst = Array.copy dst0
                do
                    use ps = fixed src
                    use pd = fixed dst
                    Im2ColPlan.Transpose16(ps, 20L, srcRows, pd, 24L, dstRows, dstCols)
                let expected =
                    Array.init dst0.Length (fun e ->
                        let j, i = e / 24, e % 24
                        if j < dstRows && i < dstCols then (if i < srcRows then src.[i * 20 + j] else 0.0f) else dst0.[e])
                expectSameBits dst expected $"{KernelWidth.Path} {srcRows} rows in, {dstRows}x{dstCols} out"

        testProperty "LaneBatch.Local gives each output one fused multiply-add chain over the taps from +0, then + bias" <| fun (seed: uint64) (shape: byte) ->
            eachWidth <| fun () ->
                let rng = Rng seed
                let lanes = LaneBatch.Lanes
                // Up to 9 planes and positions: whole and edge blocks of 4x4 (AVX-512) and 2x4 (AVX2).
                let planes, positions, fanIn = 1 + int shape % 9, 1 + int (seed % 9UL), 1 + int (seed / 9UL % 30UL)
                let input = randomArray rng (420 + lanes)
                let origins = Array.init positions (fun _ -> int (rng.NextFloat32() * 200.0f))
                let taps = Array.init fanIn (fun _ -> int (rng.NextFloat32() * 200.0f))
                let w, bias = randomArray rng (planes * fanIn), randomArray rng (planes * positions)
                let expected =
                    Array.init (planes * positions * lanes) (fun e ->
                        let unit, lane = e / lanes, e % lanes
                        let p, s = unit / positions, unit % positions
                        let mutable acc = 0.0f
                        for t in 0 .. fanIn - 1 do acc <- fma input.[origins.[s] + taps.[t] + lane] w.[p * fanIn + t] acc
                        acc + bias.[unit])
                let out = Array.create (planes * positions * lanes) nanf
                LaneBatch.Local(ReadOnlySpan input, ReadOnlySpan origins, ReadOnlySpan taps, ReadOnlySpan w, planes, ReadOnlySpan bias, Span out)
                expectSameBits out expected $"{KernelWidth.Path} {planes} planes x {positions} positions, fan-in {fanIn}"

        testProperty "LaneBatch.Dense gives each output two chains (even, odd inputs) from +0, then (a + e) + bias" <| fun (seed: uint64) (shape: byte) ->
            eachWidth <| fun () ->
                let rng = Rng seed
                let lanes = LaneBatch.Lanes
                // Odd and even fan-ins; up to 20 units: whole and edge blocks of 8 (AVX-512) and 4 (AVX2).
                let fanIn, units = 1 + int shape % 40, 1 + int (seed % 20UL)
                let x, w, bias = randomArray rng (fanIn * lanes), randomArray rng (fanIn * units), randomArray rng units
                let expected =
                    Array.init (units * lanes) (fun e ->
                        let u, lane = e / lanes, e % lanes
                        let chain first =
                            let mutable acc = 0.0f
                            for i in first .. 2 .. fanIn - 1 do acc <- fma x.[i * lanes + lane] w.[i * units + u] acc
                            acc
                        (chain 0 + chain 1) + bias.[u])
                let out = Array.create (units * lanes) nanf
                LaneBatch.Dense(ReadOnlySpan x, fanIn, ReadOnlySpan w, units, ReadOnlySpan bias, Span out)
                expectSameBits out expected $"{KernelWidth.Path} {fanIn}x{units}"

        test "forcing the AVX2 path holds for the flow that forced it and the tasks it starts, no other" {
            atWidth false (fun () ->
                // Read on threads of their own (a task's Result may run it inline, on this thread).
                let onThread (flow: bool) =
                    let seen = ref (true, SimdPath.Scalar)
                    let thread = Thread(fun () -> seen.Value <- (KernelWidth.Avx2Forced, KernelWidth.Path))
                    if flow then thread.Start() else thread.UnsafeStart()
                    thread.Join()
                    seen.Value
                Expect.isTrue KernelWidth.Avx2Forced "this flow forced the AVX2 path"
                Expect.equal (onThread true) (true, SimdPath.Avx2) "and the threads it starts see it"
                Expect.equal (onThread false) (false, (if KernelWidth.HasAvx512 then SimdPath.Avx512 else SimdPath.Avx2))
                    "a thread that does not carry this flow keeps the CPU's own path")
            // Flows setting opposite values at once never see each other's (a shared static would).
            let flows =
                [| for f in 0 .. 3 ->
                    Task.Run(fun () ->
                        let mine = f % 2 = 0
                        let mutable held = true
                        for _ in 1 .. 2000 do
                            KernelWidth.Avx2Forced <- mine
                            Thread.Yield() |> ignore
                            held <- held && KernelWidth.Avx2Forced = mine
                        held) |]
            Expect.isTrue (flows |> Array.forall (fun t -> t.Result)) "every flow kept its own setting"
        }

        test "the AVX2 path trains and evaluates to the AVX-512 path's bits, every recipe" {
            if not KernelWidth.HasAvx512 then
                TestKit.ExpectedSkip.skip TestKit.NoAvx512 "this CPU has no AVX-512: only the AVX2 path runs here, checked against the definitions above"
            let data = Data.load DataSetName.Usps None |> function Ok d -> d | Error e -> failwith e
            let digits = data.Train.Take 300
            for recipe in Recipe.all do
                let run wide =
                    atWidth wide (fun () ->
                        let net = Recipe.network recipe
                        let p = Init.create recipe.WeightInit net.Layout recipe.Seed
                        Train.trainOnePass Backend.Managed net recipe 1 p (Workspace.create net 1) (Train.createState net recipe) digits ignore
                        let evaluation = Evaluate.split Backend.Managed net recipe.Loss p (Workspace.create net Evaluate.batch) digits
                        p, evaluation.Metrics)
                let p2, m2 = run false
                let p5, m5 = run true
                expectSameBits p2 p5 $"{recipe.Name}: weights after 300 presentations"
                Expect.equal m2 m5 $"{recipe.Name}: evaluation"
        }
    ]
