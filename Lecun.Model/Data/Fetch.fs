/// `data fetch`: getting the USPS files from the public copy (or a folder), verified before they
/// are written, so a failed download or a damaged file never lands in the data folder.
namespace Lecun.Model

open System
open System.IO
open System.Net
open System.Net.Http

/// How far the transfer of one split has got: reported after every chunk downloaded, and once
/// when a split copied from a folder has been read.
type FetchProgress =
    { Split: string
      From: string
      /// Bytes received so far.
      Bytes: int64
      /// The size the server announced (Content-Length), or the file's size; None when unknown.
      Total: int64 option }

/// One file that `fetch` wrote.
type Fetched =
    { Split: string
      From: string
      Path: string
      Digits: int }

module Fetch =
    /// The Elements of Statistical Learning data page and its datasets folder (Hastie,
    /// Tibshirani & Friedman), the public home of the zip-code digits.
    let eslPage = "https://hastie.su.domains/ElemStatLearn/"
    let defaultBaseUrl = "https://hastie.su.domains/ElemStatLearn/datasets/"
    /// Public mirrors of the MNIST IDX files (for mnist-sim).
    let mnistMirrors = [ "https://ossci-datasets.s3.amazonaws.com/mnist/"; "https://storage.googleapis.com/cvdf-datasets/mnist/" ]
    let defaultTimeout = TimeSpan.FromSeconds 60.0
    /// The real files are about 1.7 MB compressed; anything far bigger is not them.
    let private maxBytes = int64 Usps.maxFileBytes

    let isUrl (source: string) =
        source.StartsWith("http://", StringComparison.OrdinalIgnoreCase)
        || source.StartsWith("https://", StringComparison.OrdinalIgnoreCase)

    let private download (client: HttpClient) (url: string) (progress: int64 -> int64 option -> unit) : Result<byte array, string> =
        try
            use response = client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult()
            if not response.IsSuccessStatusCode then
                Error $"{url}: HTTP {int response.StatusCode} {response.ReasonPhrase}"
            elif response.Content.Headers.ContentLength.HasValue && response.Content.Headers.ContentLength.Value > maxBytes then
                Error $"{url}: {response.Content.Headers.ContentLength.Value} bytes, far more than the zip-code data (refused)"
            else
                let total = Option.ofNullable response.Content.Headers.ContentLength
                use body = response.Content.ReadAsStream()
                use buffer = new MemoryStream()
                let chunk = Array.zeroCreate<byte> 65536
                progress 0L total
                let mutable read = body.Read(chunk, 0, chunk.Length)
                while read > 0 && buffer.Length <= maxBytes do
                    buffer.Write(chunk, 0, read)
                    progress buffer.Length total
                    read <- body.Read(chunk, 0, chunk.Length)
                if buffer.Length > maxBytes then Error $"{url}: more than {maxBytes} bytes, far more than the zip-code data (refused)"
                else Ok(buffer.ToArray())
        with
        | :? OperationCanceledException -> Error $"{url}: no complete answer within {client.Timeout.TotalSeconds} s"
        | :? HttpRequestException as e -> Error $"{url}: download failed ({e.Message})"
        | :? IOException as e -> Error $"{url}: download interrupted ({e.Message})"

    /// The file of one split in a folder: `usps/zip.train.gz`, `zip.train.gz`, or the plain forms.
    let splitFileIn (dir: string) (split: string) : string option =
        [ Path.Combine(dir, "usps", $"zip.{split}.gz")
          Path.Combine(dir, "usps", $"zip.{split}")
          Path.Combine(dir, $"zip.{split}.gz")
          Path.Combine(dir, $"zip.{split}") ]
        |> List.tryFind File.Exists

    /// Fetches, parses and checks one split; returns the original bytes and the digit count.
    let private getSplit (client: HttpClient option) (source: string) (split: string) (progress: FetchProgress -> unit) : Result<string * byte array * int, string> =
        let report from bytes total = progress { Split = split; From = from; Bytes = bytes; Total = total }
        let fetched =
            match client with
            | Some c ->
                let url = (if source.EndsWith "/" then source else source + "/") + $"zip.{split}.gz"
                download c url (report url) |> Result.map (fun bytes -> url, bytes)
            | None ->
                match splitFileIn source split with
                | None -> Error $"{source}: no zip.{split}.gz or zip.{split} (looked in the folder and its usps/ subfolder)"
                | Some path ->
                    RawFile.readRaw Usps.maxFileBytes "usps file" path
                    |> Result.map (fun bytes ->
                        report path bytes.LongLength (Some bytes.LongLength)
                        path, bytes)
        fetched
        |> Result.bind (fun (origin, bytes) ->
            RawFile.decode Usps.maxFileBytes "usps file" origin bytes
            |> Result.bind (Usps.parse origin)
            |> Result.bind (fun d ->
                Usps.checkSplit split { d with Name = origin }
                |> Result.map (fun () -> origin, bytes, d.Count)))

    /// Gets zip.train and zip.test from a base URL or a folder, verifies both (every value
    /// parsed; digit and class counts of the distributed files), and only then writes them to
    /// `toDir/usps/` atomically, keeping the compression they came with. `progress` hears how
    /// far each transfer has got.
    let uspsWithProgress (source: string) (toDir: string) (timeout: TimeSpan) (progress: FetchProgress -> unit) : Result<Fetched list, string> =
        let client =
            if isUrl source then Some(new HttpClient(Timeout = timeout))
            else None
        try
            if client.IsNone && not (Directory.Exists source) then
                Error $"{source}: no such folder (give a folder holding zip.train.gz and zip.test.gz, or an http(s) URL)"
            else
                match getSplit client source "train" progress with
                | Error e -> Error e
                | Ok train ->
                    match getSplit client source "test" progress with
                    | Error e -> Error e
                    | Ok test ->
                        try
                            [ "train", train; "test", test ]
                            |> List.map (fun (split, (origin, bytes, digits)) ->
                                let name = if RawFile.isGzip (ReadOnlySpan bytes) then $"zip.{split}.gz" else $"zip.{split}"
                                let path = Path.Combine(toDir, "usps", name)
                                AtomicFile.writeBytes path bytes
                                { Split = split; From = origin; Path = path; Digits = digits })
                            |> Ok
                        with e -> Error $"cannot write into {toDir}: {e.Message}"
        finally
            client |> Option.iter (fun c -> c.Dispose())

    /// `uspsWithProgress` without progress reports.
    let usps (source: string) (toDir: string) (timeout: TimeSpan) : Result<Fetched list, string> =
        uspsWithProgress source toDir timeout ignore
