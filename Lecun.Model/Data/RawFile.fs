/// Reading a data file whole, gzip or plain, with the checks that GZipStream does not make.
namespace Lecun.Model

open System
open System.IO
open System.IO.Compression

module RawFile =
    /// Uncompressed sizes above this are refused: no data set here is near it, and a corrupt
    /// gzip trailer must not make us allocate gigabytes.
    let private maxBytes = 1 <<< 30

    let isGzip (bytes: ReadOnlySpan<byte>) = bytes.Length >= 2 && bytes[0] = 0x1Fuy && bytes[1] = 0x8Buy

    /// Decompresses a whole gzip file held in memory. .NET's GZipStream returns a silently
    /// shorter stream when the input is truncated (it only fails on corrupt deflate data or a bad
    /// CRC once it reaches the trailer), so we also check the trailer's ISIZE field (the
    /// uncompressed length mod 2^32) against what we got: a truncated file ends in compressed
    /// data, not in its real trailer, and this catches it.
    let gunzip (name: string) (compressed: byte array) : Result<byte array, string> =
        if compressed.Length < 18 then
            Error $"{name}: truncated gzip file ({compressed.Length} bytes, shorter than a gzip header and trailer)"
        else
            let isize = BitConverter.ToUInt32(compressed, compressed.Length - 4)
            if int64 isize > int64 maxBytes then
                Error $"{name}: truncated or corrupt gzip file (the trailer claims {isize} uncompressed bytes)"
            else
                try
                    use input = new MemoryStream(compressed, false)
                    use gz = new GZipStream(input, CompressionMode.Decompress)
                    let output = Array.zeroCreate<byte> (int isize)
                    let got = gz.ReadAtLeast(output.AsSpan(), output.Length, false)
                    let extra = Array.zeroCreate<byte> 1
                    if got < output.Length then
                        Error $"{name}: truncated or corrupt gzip file (decompressed {got} bytes, the trailer says {isize})"
                    elif gz.Read(extra, 0, 1) <> 0 then
                        Error $"{name}: truncated or corrupt gzip file (more data than the trailer's size {isize})"
                    else
                        Ok output
                with
                | :? InvalidDataException
                | :? IOException -> Error $"{name}: corrupt gzip file (the compressed data or its checksum is invalid)"

    /// Decodes bytes already in memory (for downloads): gzip when it starts with the gzip magic.
    let decode (name: string) (bytes: byte array) : Result<byte array, string> =
        if isGzip (ReadOnlySpan bytes) then gunzip name bytes else Ok bytes

    /// Reads a file whole, decompressing it when it is gzip (by its magic bytes, not its name).
    let read (path: string) : Result<byte array, string> =
        if not (File.Exists path) then
            Error $"{path}: file not found"
        else
            let bytes =
                try Ok(File.ReadAllBytes path)
                with
                | :? IOException
                | :? UnauthorizedAccessException as e -> Error $"{path}: cannot read ({e.Message})"
            bytes |> Result.bind (decode path)
