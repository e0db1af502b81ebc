/// The simulated 1989 data set ("mnist-sim", after Karpathy's 2022 reproduction): MNIST digits
/// resampled 28x28 -> 16x16, scaled to [-1, 1], and a seeded draw of 7291 training and 2007
/// test digits, the sizes of the paper's split.
namespace Lecun.Model

open System
open System.Buffers.Binary
open System.IO
open System.Runtime.InteropServices
open System.Security.Cryptography

module Resample =
    /// Source indices and weights along one axis, exactly as PyTorch computes them for
    /// F.interpolate(mode='bilinear', align_corners=False, antialias=False) on the CPU
    /// (aten/src/ATen/native/UpSample.h, compute_source_index_and_lambda), in float32:
    /// src = (dst + 0.5) * (in / out) - 0.5, clamped at 0; i0 = floor(src) capped at in - 1;
    /// i1 = i0 + 1 except at the last row/column (the edge is repeated); l1 = src - i0, l0 = 1 - l1.
    let axis (inSize: int) (outSize: int) : struct (int * int * float32 * float32) array =
        let scale = float32 inSize / float32 outSize
        Array.init outSize (fun d ->
            if inSize = outSize then struct (d, d, 1f, 0f)
            else
                let src = max (scale * (float32 d + 0.5f) - 0.5f) 0f
                let i0 = min (int (floor src)) (inSize - 1)
                let l1 = min (max (src - float32 i0) 0f) 1f
                let i1 = if i0 < inSize - 1 then i0 + 1 else i0
                struct (i0, i1, 1f - l1, l1))

    /// Bilinear resampling of one srcH x srcW image (row-major at src[srcOffset..]) to
    /// dstH x dstW (at dst[dstOffset..]). The sum is grouped as PyTorch's CPU kernel groups it:
    /// (a*w0 + b*w1)*h0 + (c*w0 + d*w1)*h1, each row interpolated first, in float32.
    let bilinear (srcH: int, srcW: int) (dstH: int, dstW: int) (src: float32 array) (srcOffset: int) (dst: float32 array) (dstOffset: int) =
        let rows = axis srcH dstH
        let cols = axis srcW dstW
        for y in 0 .. dstH - 1 do
            let struct (r0, r1, h0, h1) = rows[y]
            let row0 = srcOffset + r0 * srcW
            let row1 = srcOffset + r1 * srcW
            for x in 0 .. dstW - 1 do
                let struct (c0, c1, w0, w1) = cols[x]
                let top = src[row0 + c0] * w0 + src[row0 + c1] * w1
                let bottom = src[row1 + c0] * w0 + src[row1 + c1] * w1
                dst[dstOffset + y * dstW + x] <- top * h0 + bottom * h1

/// A built or prepared mnist-sim set.
type MnistSimSet =
    { Seed: int
      /// True when the training digits come from the MNIST training files, false when both
      /// splits are drawn (disjointly) from the 10,000 t10k digits.
      TrainFromMnistTrain: bool
      /// SHA-256 (hex) of the MNIST files it was built from, as they were on disk (see
      /// Data.sourceDigest), so a prepared set whose sources changed is not used; None when built
      /// from digits in memory.
      SourceDigest: string option
      Train: Dataset
      Test: Dataset }

module MnistSim =
    let defaultSeed = 1337
    let trainCount, testCount = 7291, 2007

    /// The first k of a uniformly random permutation of 0..n-1 (partial Fisher-Yates).
    let draw (rng: Rng) (n: int) (k: int) : int array =
        let idx = Array.init n id
        for i in 0 .. k - 1 do
            let j = i + rng.NextInt(n - i)
            let t = idx[i]
            idx[i] <- idx[j]
            idx[j] <- t
        Array.sub idx 0 k

    /// Resamples the chosen 28x28 images to 16x16 and scales them to [-1, 1]. The raw 0..255
    /// values are resampled first and scaled after (x / 127.5 - 1, so 0 -> -1 and 255 -> 1).
    /// Karpathy's prepro scales first; both maps are affine and the bilinear weights sum to one,
    /// so the two orders agree up to float32 rounding (an ulp or so).
    let digits (name: string) (images: IdxImages) (labels: int array) (chosen: int array) : Dataset =
        let side = Dataset.Side
        let out = Array.zeroCreate<float32> (chosen.Length * Dataset.Pixels)
        let pixels = images.Rows * images.Cols
        let raw = Array.zeroCreate<float32> pixels
        chosen
        |> Array.iteri (fun k i ->
            for p in 0 .. pixels - 1 do raw[p] <- float32 images.Pixels[i * pixels + p]
            Resample.bilinear (images.Rows, images.Cols) (side, side) raw 0 out (k * Dataset.Pixels)
            for p in k * Dataset.Pixels .. (k + 1) * Dataset.Pixels - 1 do
                out[p] <- out[p] / 127.5f - 1f)
        { Name = name; Images = out; Labels = chosen |> Array.map (fun i -> labels[i]) }

    /// Builds the set from the t10k files and, when given, `trainDigits` drawn from the MNIST training files.
    let buildSized (seed: int) (trainDigits: int) (t10k: IdxImages * int array) (mnistTrain: (IdxImages * int array) option) : Result<MnistSimSet, string> =
        let testImages, testLabels = t10k
        match mnistTrain with
        | Some (trainImages, trainLabels) ->
            let trainCount = trainDigits
            if trainImages.Count < trainCount then Error $"the MNIST training files hold {trainImages.Count} digits, mnist-sim needs {trainCount}"
            elif testImages.Count < testCount then Error $"the MNIST t10k files hold {testImages.Count} digits, mnist-sim needs {testCount}"
            else
                // Two independent streams of the same seed: one per source file.
                let trainIdx = draw (Rng.Derive(uint64 seed, 1UL)) trainImages.Count trainCount
                let testIdx = draw (Rng.Derive(uint64 seed, 2UL)) testImages.Count testCount
                Ok { Seed = seed
                     TrainFromMnistTrain = true
                     SourceDigest = None
                     Train = digits "mnist-sim train" trainImages trainLabels trainIdx
                     Test = digits "mnist-sim test" testImages testLabels testIdx }
        | None ->
            let needed = trainCount + testCount
            if testImages.Count < needed then
                Error $"the MNIST t10k files hold {testImages.Count} digits, mnist-sim needs {needed} when the MNIST training files are absent"
            else
                // One permutation, split in two: the splits cannot share a digit.
                let idx = draw (Rng.Derive(uint64 seed, 0UL)) testImages.Count needed
                Ok { Seed = seed
                     TrainFromMnistTrain = false
                     SourceDigest = None
                     Train = digits "mnist-sim train" testImages testLabels idx[.. trainCount - 1]
                     Test = digits "mnist-sim test" testImages testLabels idx[trainCount ..] }

    /// The simulated 1989 set: 7291 training digits (from MNIST's training files when present).
    let build (seed: int) (t10k: IdxImages * int array) (mnistTrain: (IdxImages * int array) option) =
        buildSized seed trainCount t10k mnistTrain

    /// What a split of mnist-sim holds, whoever wrote the file: the paper's split size and digits
    /// of every class. A prepared file is held to it when loaded, and `data verify` reports it.
    let checkSplit (split: string) (d: Dataset) : Result<unit, string> =
        let expected = if split = "train" then trainCount else testCount
        if d.Count <> expected then Error $"{split} split has {d.Count} digits, mnist-sim's has {expected}"
        else
            match Usps.classCounts d |> Array.tryFindIndex ((=) 0) with
            | Some c -> Error $"{split} split has no digit of class {c}, mnist-sim draws every class"
            | None -> Ok()

    // Prepared file: everything little-endian.
    //   "LECUNSIM" | version u32 = 2 | seed i32 | fromTrain u32 (0/1) | trainCount u32 | testCount u32
    //   | SHA-256 of the source files (32 bytes, zeros when unknown)
    //   | train labels (1 byte each) | test labels | train images (f32) | test images
    //   | SHA-256 of everything before it (32 bytes)
    // Exact float32 values (a text file would round them), and the checksum catches damage.
    let private magic = "LECUNSIM"B
    let private headerBytes = 60
    let private version = 2u
    /// The prepared file of the standard draw (7291 + 2007 digits); reads stop past it.
    let maxFileBytes = headerBytes + (trainCount + testCount) * (1 + 4 * Dataset.Pixels) + 32

    let fileName (seed: int) = $"mnist-sim-seed{seed}.bin"

    let toBytes (set: MnistSimSet) : byte array =
        let tc, sc = set.Train.Count, set.Test.Count
        let body = headerBytes + tc + sc + 4 * Dataset.Pixels * (tc + sc)
        let bytes = Array.zeroCreate<byte> (body + 32)
        let span = bytes.AsSpan()
        magic.AsSpan().CopyTo(span)
        BinaryPrimitives.WriteUInt32LittleEndian(span.Slice 8, version)
        BinaryPrimitives.WriteInt32LittleEndian(span.Slice 12, set.Seed)
        BinaryPrimitives.WriteUInt32LittleEndian(span.Slice 16, (if set.TrainFromMnistTrain then 1u else 0u))
        BinaryPrimitives.WriteInt32LittleEndian(span.Slice 20, tc)
        BinaryPrimitives.WriteInt32LittleEndian(span.Slice 24, sc)
        match set.SourceDigest with
        | Some hex -> Convert.FromHexString(hex).CopyTo(span.Slice(28, 32))
        | None -> ()
        let mutable p = headerBytes
        for l in Array.append set.Train.Labels set.Test.Labels do
            bytes[p] <- byte l
            p <- p + 1
        for v in Array.append set.Train.Images set.Test.Images do
            BinaryPrimitives.WriteSingleLittleEndian(span.Slice(p, 4), v)
            p <- p + 4
        SHA256.HashData(ReadOnlySpan(bytes, 0, body), span.Slice body) |> ignore
        bytes

    let save (path: string) (set: MnistSimSet) = AtomicFile.writeBytes path (toBytes set)

    let ofBytes (source: string) (bytes: byte array) : Result<MnistSimSet, string> =
        let corrupt why = Error $"{source}: {why}; rebuild it with `lecun data prepare mnist-sim`"
        if bytes.Length < headerBytes + 32 || not (ReadOnlySpan(bytes, 0, 8).SequenceEqual(ReadOnlySpan magic)) then
            corrupt "not a prepared mnist-sim file"
        else
            let span = ReadOnlySpan bytes
            let version = BinaryPrimitives.ReadUInt32LittleEndian(span.Slice 8)
            let seed = BinaryPrimitives.ReadInt32LittleEndian(span.Slice 12)
            let fromTrain = BinaryPrimitives.ReadUInt32LittleEndian(span.Slice 16)
            let tc = BinaryPrimitives.ReadInt32LittleEndian(span.Slice 20)
            let sc = BinaryPrimitives.ReadInt32LittleEndian(span.Slice 24)
            let total = int64 tc + int64 sc
            let body = int64 headerBytes + total * int64 (1 + 4 * Dataset.Pixels)
            let sources = span.Slice(28, 32)
            let sourceDigest = if sources.IndexOfAnyExcept(0uy) < 0 then None else Some(Convert.ToHexStringLower sources)
            if version <> 2u then corrupt $"format version {version}, this program reads version 2"
            elif tc <= 0 || sc <= 0 || body + 32L <> int64 bytes.Length then
                corrupt $"truncated or damaged ({bytes.Length} bytes, the header describes {tc} + {sc} digits)"
            else
                let body = int body
                let digest = SHA256.HashData(span.Slice(0, body))
                if not (span.Slice(body, 32).SequenceEqual(ReadOnlySpan digest)) then corrupt "checksum mismatch (damaged file)"
                else
                    let n = int total
                    let labels = Array.init n (fun i -> int bytes[headerBytes + i])
                    let images = Array.zeroCreate<float32> (n * Dataset.Pixels)
                    let raw = span.Slice(headerBytes + n, n * Dataset.Pixels * 4)
                    if BitConverter.IsLittleEndian then MemoryMarshal.Cast<byte, float32>(raw).CopyTo(images.AsSpan())
                    else for i in 0 .. images.Length - 1 do images[i] <- BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(4 * i))
                    if labels |> Array.exists (fun l -> l > 9) then corrupt "a label is outside 0..9"
                    elif images |> Array.exists (fun v -> not (v >= -1f && v <= 1f)) then corrupt "a value is outside [-1, 1] or not a number"
                    else
                        let split name lo count =
                            { Name = name
                              Labels = Array.sub labels lo count
                              Images = Array.sub images (lo * Dataset.Pixels) (count * Dataset.Pixels) }
                        let train, test = split "mnist-sim train" 0 tc, split "mnist-sim test" tc sc
                        match checkSplit "train" train |> Result.bind (fun () -> checkSplit "test" test) with
                        | Error e -> corrupt e
                        | Ok() ->
                            Ok { Seed = seed
                                 TrainFromMnistTrain = (fromTrain = 1u)
                                 SourceDigest = sourceDigest
                                 Train = train
                                 Test = test }

    let load (path: string) : Result<MnistSimSet, string> =
        RawFile.readRaw maxFileBytes "prepared mnist-sim file" path |> Result.bind (ofBytes path)
