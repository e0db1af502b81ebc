/// The IDX format of the MNIST files: a magic number (two zero bytes, the element type 0x08 for
/// unsigned bytes, the number of dimensions), the dimensions as big-endian int32, then the data.
namespace Lecun.Model

open System
open System.Buffers.Binary

/// Images of an IDX file: Count images of Rows x Cols bytes (0..255), row-major, back to back.
type IdxImages =
    { Count: int
      Rows: int
      Cols: int
      Pixels: byte array }

module Idx =
    /// What mnist-sim reads: MNIST's own files, 28x28 images (resampled to 16x16), at most the
    /// 60,000 + 10,000 digits MNIST has. Reads stop at the largest file these allow.
    let side = 28
    let maxItems = 70_000
    let maxImageFileBytes = 16 + maxItems * side * side
    let maxLabelFileBytes = 8 + maxItems

    /// Checks the magic and dimension count, and returns the dimensions and where the data starts.
    let private header (source: string) (what: string) (dims: int) (bytes: byte array) : Result<int array * int, string> =
        let headerBytes = 4 + 4 * dims
        if bytes.Length < 4 then
            Error $"{source}: not an IDX file (only {bytes.Length} bytes)"
        elif bytes[0] <> 0uy || bytes[1] <> 0uy then
            Error $"{source}: not an IDX file (magic {bytes[0]:x2}{bytes[1]:x2}{bytes[2]:x2}{bytes[3]:x2}, expected 0000080{dims} for {what})"
        elif bytes[2] <> 8uy then
            Error $"{source}: IDX element type 0x{bytes[2]:x2}, expected 0x08 (unsigned bytes) for {what}"
        elif int bytes[3] <> dims then
            Error $"{source}: IDX file with {bytes[3]} dimensions, expected {dims} for {what}"
        elif bytes.Length < headerBytes then
            Error $"{source}: truncated IDX header ({bytes.Length} bytes, expected {headerBytes})"
        else
            let shape = Array.init dims (fun d -> BinaryPrimitives.ReadInt32BigEndian(ReadOnlySpan(bytes, 4 + 4 * d, 4)))
            let dimsText = String.Join("x", shape)
            if shape |> Array.exists (fun d -> d < 0) then
                Error $"{source}: IDX dimensions {dimsText} include a negative size"
            elif shape[0] = 0 then
                Error $"{source}: IDX {what} file holds no items (dimensions {dimsText})"
            elif shape[0] > maxItems then
                Error $"{source}: IDX {what} file claims {shape[0]} items; MNIST's files hold at most {maxItems}"
            elif dims = 3 && (shape[1] <> side || shape[2] <> side) then
                Error $"{source}: IDX images of {shape[1]}x{shape[2]} pixels; mnist-sim needs MNIST's {side}x{side} images"
            else
                // In floating point so absurd dimensions from a corrupt header cannot overflow.
                let expected = shape |> Array.fold (fun acc d -> acc * float d) 1.0
                let actual = float (bytes.Length - headerBytes)
                if actual < expected then
                    Error $"{source}: truncated IDX data ({actual} bytes after the header, dimensions {dimsText} need {expected})"
                elif actual > expected then
                    Error $"{source}: {actual - expected} unexpected bytes after the IDX data (dimensions {dimsText} need {expected})"
                else Ok(shape, headerBytes)

    /// Parses an image file (magic 0x00000803: count x rows x cols).
    let parseImages (source: string) (bytes: byte array) : Result<IdxImages, string> =
        header source "images" 3 bytes
        |> Result.map (fun (shape, start) -> { Count = shape[0]; Rows = shape[1]; Cols = shape[2]; Pixels = bytes[start..] })

    /// Parses a label file (magic 0x00000801: count) of digit classes 0..9.
    let parseLabels (source: string) (bytes: byte array) : Result<int array, string> =
        header source "labels" 1 bytes
        |> Result.bind (fun (shape, start) ->
            let labels = Array.init shape[0] (fun i -> int bytes[start + i])
            match labels |> Array.tryFindIndex (fun l -> l > 9) with
            | Some i -> Error $"{source}: label {labels[i]} of item {i} is outside 0..9"
            | None -> Ok labels)

    let loadImagesFile (file: DataFile) = RawFile.readFile maxImageFileBytes "MNIST image file" file |> Result.bind (parseImages file.Name)
    let loadLabelsFile (file: DataFile) = RawFile.readFile maxLabelFileBytes "MNIST label file" file |> Result.bind (parseLabels file.Name)
    let loadImages (path: string) = loadImagesFile (DataFile.OnDisk path)
    let loadLabels (path: string) = loadLabelsFile (DataFile.OnDisk path)

    /// Loads an image file and its label file (on disk or embedded), checking that they hold the
    /// same number of items.
    let loadPairFiles (images: DataFile) (labels: DataFile) : Result<IdxImages * int array, string> =
        match loadImagesFile images, loadLabelsFile labels with
        | Error e, _
        | _, Error e -> Error e
        | Ok i, Ok l when i.Count <> l.Length ->
            Error $"{images.Name} holds {i.Count} images but {labels.Name} holds {l.Length} labels"
        | Ok i, Ok l -> Ok(i, l)

    /// Loads an image file and its label file, checking that they hold the same number of items.
    let loadPair (imagesPath: string) (labelsPath: string) : Result<IdxImages * int array, string> =
        loadPairFiles (DataFile.OnDisk imagesPath) (DataFile.OnDisk labelsPath)
