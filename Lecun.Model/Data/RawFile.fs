/// Reading a data file, gzip or plain, bounded by what a valid file of its kind can hold, with the
/// checks that GZipStream does not make.
namespace Lecun.Model

open System
open System.IO
open System.IO.Compression

/// A stream read once from start to end, as the wrappers below are: no seeking, no writing.
[<AbstractClass>]
type ForwardStream() =
    inherit Stream()
    override _.CanRead = true
    override _.CanSeek = false
    override _.CanWrite = false
    override _.Length = raise (NotSupportedException())
    override _.Position
        with get () = raise (NotSupportedException())
        and set _ = raise (NotSupportedException())
    override _.Flush() = ()
    override _.Seek(_, _) = raise (NotSupportedException())
    override _.SetLength _ = raise (NotSupportedException())
    override _.Write(_, _, _) = raise (NotSupportedException())

/// The bytes already read to recognise a file's format, then the rest of the stream: a pipe cannot seek back.
type PrefixedStream(prefix: byte array, rest: Stream) =
    inherit ForwardStream()
    let mutable used = 0
    override _.Read(buffer: byte array, offset: int, count: int) =
        if used < prefix.Length then
            let n = min count (prefix.Length - used)
            Buffer.BlockCopy(prefix, used, buffer, offset, n)
            used <- used + n
            n
        else rest.Read(buffer, offset, count)

/// At most `limit` bytes of another stream, after which it ends as if the other had; Exceeded says
/// whether the other held more (known once a read has reached the limit).
type BoundedStream(inner: Stream, limit: int64) =
    inherit ForwardStream()
    let mutable total = 0L
    let mutable exceeded = false
    let probe = Array.zeroCreate<byte> 1
    member _.Total = total
    member _.Exceeded = exceeded
    override _.Read(buffer: byte array, offset: int, count: int) =
        if exceeded || count = 0 then 0
        elif total = limit then
            // At the limit: one byte more says whether the stream ends here.
            if inner.Read(probe, 0, 1) > 0 then exceeded <- true
            0
        else
            let got = inner.Read(buffer, offset, int (min (int64 count) (limit - total)))
            total <- total + int64 got
            got

module RawFile =
    let isGzip (bytes: ReadOnlySpan<byte>) = bytes.Length >= 2 && bytes[0] = 0x1Fuy && bytes[1] = 0x8Buy

    /// Why a path that cannot be opened as a file cannot, for the message. .NET decodes the
    /// bytes of a file name as UTF-8 and replaces what is not UTF-8 with U+FFFD, so a name that
    /// is not valid UTF-8 (on the command line or in a folder listing) names no file .NET can open:
    /// when the folder holds an entry that decodes to the same text, that is the reason.
    let private whyNotAFile (path: string) =
        if Directory.Exists path then "is a folder, not a file"
        elif path.Contains '\uFFFD' then
            let folder = match Path.GetDirectoryName path with null | "" -> "." | d -> d
            let name = Path.GetFileName path
            let listed =
                try Directory.Exists folder && Directory.EnumerateFileSystemEntries folder |> Seq.exists (fun e -> Path.GetFileName e = name)
                with _ -> false
            if listed then "the file name is not valid UTF-8, and .NET cannot open such a name; rename the file (for example with `convmv` or `mv`)"
            else "file not found (and the name given is not valid UTF-8, shown with U+FFFD)"
        else "file not found"

    /// Whether anything is at the path, a file or a folder: a data file searched for by name and
    /// found as a folder is then reported as a folder by `openRead`, not passed over as missing.
    let exists (path: string) = File.Exists path || Directory.Exists path

    /// Opens a file to read, or says in a few words why it cannot be: no such file, a folder,
    /// a name .NET cannot open, no permission. The message does not name the path (callers do).
    let openRead (bufferSize: int) (path: string) : Result<FileStream, string> =
        if not (File.Exists path) then Error(whyNotAFile path)
        else
            try Ok(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize))
            with
            | :? IOException
            | :? UnauthorizedAccessException as e -> Error $"cannot read the file ({e.Message})"

    /// What a file that is not gzip but starts with another compressor's magic bytes holds, so
    /// that it is refused for what its bytes look like, not parsed as text or IDX.
    let otherCompression (bytes: byte array) : string option =
        let starts (prefix: byte array) = bytes.AsSpan().StartsWith(ReadOnlySpan prefix)
        if starts "BZh"B then Some "bzip2"
        elif starts [| 0xFDuy; '7'B; 'z'B; 'X'B; 'Z'B; 0uy |] then Some "xz"
        elif starts [| 0x28uy; 0xB5uy; 0x2Fuy; 0xFDuy |] then Some "zstd"
        elif starts [| 'P'B; 'K'B; 3uy; 4uy |] || starts [| 'P'B; 'K'B; 5uy; 6uy |] then Some "zip"
        elif starts [| 0x5Duy; 0uy; 0uy |] then Some "lzma"
        elif starts [| 0x1Fuy; 0x9Duy |] then Some "compress (.Z)"
        // A zlib stream as zlib and Python write it: deflate with a 32 KB window, and the header checksum.
        elif bytes.Length >= 2 && bytes[0] = 0x78uy && (0x7800 + int bytes[1]) % 31 = 0 then Some "zlib"
        else None

    /// Refuses data compressed by something other than gzip, naming what it looks like.
    let private refuseOtherCompression (what: string) (name: string) (bytes: byte array) : Result<unit, string> =
        match otherCompression bytes with
        | None -> Ok()
        | Some kind when name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ->
            Error $"{name}: not gzip although named .gz; it looks like {kind} data (decompress it, or recompress it with gzip)"
        | Some kind -> Error $"{name}: looks like {kind} data, not a {what}; decompress it, or compress it with gzip"

    /// Reads a stream to its end, or stops as soon as it has given more than `limit` bytes (None):
    /// memory never goes much past the limit, whatever the stream holds. `expected` (the size the
    /// file claims, when it claims one) sizes the first buffer; past it the bytes go into chunks of
    /// at most 4 MB, joined only when the stream has ended within the limit.
    let readAtMost (stream: Stream) (limit: int) (expected: int64 option) : byte array option =
        let chunkBytes = 4 <<< 20
        let first =
            match expected with
            | Some n when n >= 0L && n <= int64 limit -> int n
            | _ -> min limit (1 <<< 16)
        let chunks = ResizeArray<byte array>()
        let mutable buffer = Array.zeroCreate<byte> first
        let mutable filled = 0
        let mutable total = 0L
        let mutable ended = false
        let probe = Array.zeroCreate<byte> 1
        while not ended && total <= int64 limit do
            if filled < buffer.Length then
                let got = stream.Read(buffer, filled, buffer.Length - filled)
                if got = 0 then ended <- true
                else
                    filled <- filled + got
                    total <- total + int64 got
            else
                // Full: one byte more tells whether the stream ends here, before allocating more.
                let got = stream.Read(probe, 0, 1)
                if got = 0 then ended <- true
                else
                    chunks.Add buffer
                    buffer <- Array.zeroCreate<byte> (int (min (int64 chunkBytes) (int64 limit + 1L - total)))
                    buffer[0] <- probe[0]
                    filled <- 1
                    total <- total + 1L
        if total > int64 limit then None
        elif chunks.Count = 0 then Some(if filled = buffer.Length then buffer else Array.sub buffer 0 filled)
        else
            let all = Array.zeroCreate<byte> (int total)
            let mutable at = 0
            for c in chunks do
                Buffer.BlockCopy(c, 0, all, at, c.Length)
                at <- at + c.Length
            Buffer.BlockCopy(buffer, 0, all, at, filled)
            Some all

    let private crcTable =
        Array.init 256 (fun n ->
            let mutable c = uint32 n
            for _ in 0 .. 7 do
                c <- if c &&& 1u <> 0u then 0xEDB88320u ^^^ (c >>> 1) else c >>> 1
            c)

    /// CRC-32 register `c` after `data` (start from 0xFFFFFFFF; the checksum is the end value xor 0xFFFFFFFF).
    let private crcUpdate (c: uint32) (data: ReadOnlySpan<byte>) =
        let mutable c = c
        for b in data do
            c <- crcTable[int ((c ^^^ uint32 b) &&& 0xFFu)] ^^^ (c >>> 8)
        c

    /// CRC-32 (ISO-HDLC), the checksum of a gzip member's trailer.
    let crc32 (data: ReadOnlySpan<byte>) = crcUpdate 0xFFFFFFFFu data ^^^ 0xFFFFFFFFu

    let private tooLarge (name: string) (what: string) (limit: int) (inflated: bool) =
        let how = if inflated then " once decompressed" else ""
        Error $"{name}: more than {limit} bytes{how}, larger than any {what}; not the expected file"

    let private drain (stream: Stream) =
        let buffer = Array.zeroCreate<byte> (1 <<< 16)
        while stream.Read(buffer, 0, buffer.Length) > 0 do ()

    /// CRC-32 of a stream's bytes from `skip` on.
    let private crcFrom (stream: Stream) (skip: int64) =
        let buffer = Array.zeroCreate<byte> (1 <<< 16)
        let mutable at = 0L
        let mutable c = 0xFFFFFFFFu
        let mutable got = stream.Read(buffer, 0, buffer.Length)
        while got > 0 do
            let from = int (max 0L (min (int64 got) (skip - at)))
            c <- crcUpdate c (ReadOnlySpan(buffer, from, got - from))
            at <- at + int64 got
            got <- stream.Read(buffer, 0, buffer.Length)
        c ^^^ 0xFFFFFFFFu

    /// Inflates a gzip file: every member (RFC 1952 allows several back to back, as `cat a.gz b.gz`
    /// makes them and `zcat` reads them), as a stream that `consume` reads, never held whole; it ends
    /// after `limit` bytes. What `consume` leaves is inflated and counted, then the file must end in
    /// the trailer of its data: GZipStream checks each member's CRC and size when it reaches its
    /// trailer, but ends silently early when the input is cut (inside the data or the trailer), so the
    /// file's last 8 bytes must be the trailer of the last member, the CRC-32 and the size of the
    /// output's last ISIZE bytes. A cut file ends in compressed data, not in that trailer. A file too
    /// large, cut or corrupt is refused whatever `consume` made of what it saw. Only a file of several
    /// members is inflated twice (`openCompressed` gives the file from its start each time): the
    /// second time for the CRC of the last member's output.
    let private gunzipInto (name: string) (what: string) (limit: int) (openCompressed: unit -> Stream) (compressedLength: int64)
                           (trailer: byte array) (consume: Stream -> Result<'T, string>) : Result<'T, string> =
        if compressedLength < 18L then
            Error $"{name}: truncated gzip file ({compressedLength} bytes, shorter than a gzip header and trailer)"
        else
            let crc = BitConverter.ToUInt32(trailer, 0)
            let isize = BitConverter.ToUInt32(trailer, 4)
            try
                let consumed, total, exceeded =
                    use gz = new GZipStream(openCompressed (), CompressionMode.Decompress, true)
                    let bounded = new BoundedStream(gz, int64 limit)
                    let consumed = consume bounded
                    drain bounded
                    consumed, bounded.Total, bounded.Exceeded
                if exceeded then tooLarge name what limit true
                elif isize = uint32 total then consumed
                elif int64 isize < total then
                    use gz = new GZipStream(openCompressed (), CompressionMode.Decompress, true)
                    if crcFrom gz (total - int64 isize) = crc then consumed
                    else Error $"{name}: truncated or corrupt gzip file (it does not end in the trailer of its data)"
                else Error $"{name}: truncated or corrupt gzip file (it does not end in the trailer of its data)"
            with
            | :? InvalidDataException
            | :? IOException -> Error $"{name}: corrupt gzip file (the compressed data or its checksum is invalid)"

    /// gunzipInto keeping the whole output (IDX files, downloads), from a seekable stream.
    let private gunzip (name: string) (what: string) (limit: int) (compressed: Stream) (compressedLength: int64) (trailer: byte array) =
        let fromStart () =
            compressed.Seek(0L, SeekOrigin.Begin) |> ignore
            compressed
        gunzipInto name what limit fromStart compressedLength trailer (fun inflated ->
            // Deflate inflates at most ~1032:1, so a trailer claiming more than that is not
            // trusted to size the buffer (it still grows, bounded by the limit).
            let isize = BitConverter.ToUInt32(trailer, 4)
            match readAtMost inflated limit (Some(min (int64 isize) (compressedLength * 1032L))) with
            | Some output -> Ok output
            | None -> tooLarge name what limit true)

    /// Decodes bytes already in memory (downloads): gzip when it starts with the gzip magic.
    let decode (limit: int) (what: string) (name: string) (bytes: byte array) : Result<byte array, string> =
        if isGzip (ReadOnlySpan bytes) then
            use input = new MemoryStream(bytes, false)
            gunzip name what limit input bytes.LongLength bytes[max 0 (bytes.Length - 8) ..] 
        elif bytes.Length > limit then tooLarge name what limit false
        else refuseOtherCompression what name bytes |> Result.map (fun () -> bytes)

    /// Reads at most `limit` bytes of a file as they are on disk (no decompression).
    let readRaw (limit: int) (what: string) (path: string) : Result<byte array, string> =
        try
            match openRead (1 <<< 16) path with
            | Error e -> Error $"{path}: {e}"
            | Ok stream ->
                use stream = stream
                let size = if stream.CanSeek then Some stream.Length else None
                match readAtMost stream limit size with
                | None -> tooLarge path what limit false
                | Some bytes -> Ok bytes
        with
        | :? IOException
        | :? UnauthorizedAccessException as e -> Error $"{path}: cannot read ({e.Message})"

    /// Reads an open stream from its start, as `stream` reads a file: `consume` gets its bytes,
    /// inflated when it is gzip (by its magic bytes), as a stream that ends after `limit` bytes, and
    /// the size they are expected to have when the stream tells it (a plain file's length, a gzip
    /// trailer's size, at most what deflate can make of the compressed bytes). More than `limit`
    /// bytes, a cut or corrupt gzip file, or another compressor's data is refused, whatever
    /// `consume` returned; `name` names the stream in messages.
    let private streamFrom (limit: int) (what: string) (name: string) (source: Stream)
                           (consume: Stream -> int64 option -> Result<'T, string>) : Result<'T, string> =
        // Enough of the start to tell gzip from the other compressors (otherCompression).
        let head = Array.zeroCreate<byte> 6
        let got = source.ReadAtLeast(head.AsSpan(), head.Length, false)
        let magic = Array.sub head 0 got
        // Deflate inflates at most ~1032:1, so a trailer claiming more than that is not trusted
        // to size a buffer.
        let inflatedSize (trailer: byte array) (compressedLength: int64) =
            Some(min (int64 (BitConverter.ToUInt32(trailer, 4))) (compressedLength * 1032L))
        if isGzip (ReadOnlySpan magic) && source.CanSeek then
            let length = source.Length
            let trailer = Array.zeroCreate<byte> 8
            if length >= 8L then
                source.Seek(-8L, SeekOrigin.End) |> ignore
                source.ReadExactly(trailer.AsSpan())
            gunzipInto name what limit (fun () -> source.Seek(0L, SeekOrigin.Begin) |> ignore; source) length trailer
                (fun inflated -> consume inflated (inflatedSize trailer length))
        elif isGzip (ReadOnlySpan magic) then
            // A gzip pipe is held compressed (at most `limit` bytes), then inflated as a stream.
            match readAtMost source (limit - got) None with
            | None -> tooLarge name what limit false
            | Some rest ->
                let compressed = Array.append magic rest
                let trailer = compressed[max 0 (compressed.Length - 8) ..]
                gunzipInto name what limit (fun () -> new MemoryStream(compressed, false)) compressed.LongLength trailer
                    (fun inflated -> consume inflated (if trailer.Length = 8 then inflatedSize trailer compressed.LongLength else None))
        elif source.CanSeek && source.Length > int64 limit then tooLarge name what limit false
        else
            match refuseOtherCompression what name magic with
            | Error e -> Error e
            | Ok() ->
                let bounded = new BoundedStream(new PrefixedStream(magic, source), int64 limit)
                let consumed = consume bounded (if source.CanSeek then Some source.Length else None)
                drain bounded
                if bounded.Exceeded then tooLarge name what limit false else consumed

    /// Reads an open stream whole as `read` reads a file.
    let private readStream (limit: int) (what: string) (name: string) (source: Stream) : Result<byte array, string> =
        streamFrom limit what name source (fun bytes expected ->
            match readAtMost bytes limit expected with
            | Some all -> Ok all
            | None -> tooLarge name what limit false)

    /// Reads a file, decompressing it when it is gzip (by its magic bytes, not its name), and
    /// refuses it as soon as it holds more than `limit` bytes (`what` names the kind of file in
    /// the message). The compressed file is streamed, never held whole.
    let read (limit: int) (what: string) (path: string) : Result<byte array, string> =
        try
            match openRead (1 <<< 16) path with
            | Error e -> Error $"{path}: {e}"
            | Ok stream ->
                use stream = stream
                readStream limit what path stream
        with
        | :? IOException
        | :? UnauthorizedAccessException as e -> Error $"{path}: cannot read ({e.Message})"

    /// Reads a data file on disk or embedded, with the same bounds and checks as `read`.
    let readFile (limit: int) (what: string) (file: DataFile) : Result<byte array, string> =
        match file with
        | DataFile.OnDisk path -> read limit what path
        | DataFile.Embedded name ->
            match EmbeddedData.tryOpen name with
            | None -> Error $"{file.Name}: not in this build of Lecun.Model"
            | Some stream ->
                try
                    use stream = stream
                    readStream limit what file.Name stream
                with :? IOException as e -> Error $"{file.Name}: cannot read ({e.Message})"

    /// `read` without holding the file: `consume` reads its bytes, inflated when it is gzip, as a stream
    /// that ends after `limit` bytes; a file that holds more is refused (whatever `consume` returned),
    /// and so is a cut or corrupt gzip file. Memory is what `consume` keeps plus a few buffers.
    let stream (limit: int) (what: string) (path: string) (consume: Stream -> Result<'T, string>) : Result<'T, string> =
        try
            match openRead (1 <<< 16) path with
            | Error e -> Error $"{path}: {e}"
            | Ok file ->
                use file = file
                streamFrom limit what path file (fun bytes _ -> consume bytes)
        with
        | :? IOException
        | :? UnauthorizedAccessException as e -> Error $"{path}: cannot read ({e.Message})"

    /// `stream` for a data file on disk or embedded.
    let streamFile (limit: int) (what: string) (file: DataFile) (consume: Stream -> Result<'T, string>) : Result<'T, string> =
        match file with
        | DataFile.OnDisk path -> stream limit what path consume
        | DataFile.Embedded name ->
            match EmbeddedData.tryOpen name with
            | None -> Error $"{file.Name}: not in this build of Lecun.Model"
            | Some source ->
                try
                    use source = source
                    streamFrom limit what file.Name source (fun bytes _ -> consume bytes)
                with :? IOException as e -> Error $"{file.Name}: cannot read ({e.Message})"
