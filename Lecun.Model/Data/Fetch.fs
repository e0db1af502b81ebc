/// `data fetch`: getting the USPS files from the public copy (or a folder), verified before they
/// are written, so a failed download or a damaged file never lands in the data folder.
namespace Lecun.Model

open System
open System.IO
open System.Net
open System.Net.Http
open System.Threading
open System.Threading.Tasks

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

    /// The longest a download may wait for the server at any one step (connecting, the headers,
    /// each read of the body) before it is given up as stalled; `--timeout` bounds the whole.
    let readTimeout = TimeSpan.FromSeconds 30.0

    let private maxRedirects = 10

    /// What a download gave up on, for the message.
    type private Stop =
        | Deadline
        | Stalled

    /// Downloads one URL, following redirects to http(s) URLs only. Every wait for the server ends
    /// at the deadline (the whole fetch's `--timeout`) or after `idle` without an answer,
    /// whichever comes first: a server that sends its headers and then stalls, or trickles the
    /// body a byte at a time, does not hold the command past its timeout.
    let private download (client: HttpClient) (deadline: CancellationToken) (timeout: TimeSpan) (idle: TimeSpan) (url: string) (progress: int64 -> int64 option -> unit) : Result<byte array, string> =
        let stopped = ref None
        let waitFor (work: CancellationToken -> Task<'a>) =
            use step = CancellationTokenSource.CreateLinkedTokenSource deadline
            step.CancelAfter idle
            try work(step.Token).GetAwaiter().GetResult()
            with :? OperationCanceledException ->
                stopped.Value <- Some(if deadline.IsCancellationRequested then Deadline else Stalled)
                reraise ()
        let rec answer (current: Uri) (redirects: int) : Result<HttpResponseMessage, string> =
            let response = waitFor (fun t -> client.GetAsync(current, HttpCompletionOption.ResponseHeadersRead, t))
            let status = int response.StatusCode
            if status >= 300 && status < 400 && status <> 304 then
                let location =
                    match response.Headers.NonValidated.TryGetValues "Location" with
                    | true, values -> values |> Seq.tryHead
                    | _ -> None
                response.Dispose()
                match location with
                | None -> Error $"{url}: HTTP {status} redirect without a Location"
                | Some location ->
                    match Uri.TryCreate(current, location) with
                    | false, _ -> Error $"{url}: redirected to '{location}', which is not a URL"
                    | true, target when target.Scheme <> Uri.UriSchemeHttp && target.Scheme <> Uri.UriSchemeHttps ->
                        Error $"{url}: redirected to {target}, not an http(s) URL (refused)"
                    | true, _ when redirects = maxRedirects -> Error $"{url}: more than {maxRedirects} redirects"
                    | true, target -> answer target (redirects + 1)
            else Ok response
        try
            answer (Uri url) 0
            |> Result.bind (fun response ->
                use response = response
                if not response.IsSuccessStatusCode then
                    Error $"{url}: HTTP {int response.StatusCode} {response.ReasonPhrase}"
                elif response.Content.Headers.ContentLength.HasValue && response.Content.Headers.ContentLength.Value > maxBytes then
                    Error $"{url}: {response.Content.Headers.ContentLength.Value} bytes, far more than the zip-code data (refused)"
                else
                    let total = Option.ofNullable response.Content.Headers.ContentLength
                    use body = waitFor (fun t -> response.Content.ReadAsStreamAsync t)
                    use buffer = new MemoryStream()
                    let chunk = Array.zeroCreate<byte> 65536
                    let read () = waitFor (fun t -> body.ReadAsync(chunk.AsMemory(), t).AsTask())
                    progress 0L total
                    let mutable got = read ()
                    while got > 0 && buffer.Length <= maxBytes do
                        buffer.Write(chunk, 0, got)
                        progress buffer.Length total
                        got <- read ()
                    if buffer.Length > maxBytes then Error $"{url}: more than {maxBytes} bytes, far more than the zip-code data (refused)"
                    else Ok(buffer.ToArray()))
        with
        | :? OperationCanceledException ->
            match stopped.Value with
            | Some Stalled -> Error $"{url}: the server sent nothing for {idle.TotalSeconds} s (stalled)"
            | _ -> Error $"{url}: no complete answer within {timeout.TotalSeconds} s"
        | :? HttpRequestException as e -> Error $"{url}: download failed ({e.Message})"
        | :? IOException as e -> Error $"{url}: download interrupted ({e.Message})"

    /// The file of one split in a folder: `usps/zip.train.gz`, `zip.train.gz`, or the plain forms.
    let splitFileIn (dir: string) (split: string) : string option =
        [ Path.Combine(dir, "usps", $"zip.{split}.gz")
          Path.Combine(dir, "usps", $"zip.{split}")
          Path.Combine(dir, $"zip.{split}.gz")
          Path.Combine(dir, $"zip.{split}") ]
        |> List.tryFind RawFile.exists

    /// Fetches, parses and checks one split; returns the original bytes and the digit count.
    let private getSplit (download: (string -> (int64 -> int64 option -> unit) -> Result<byte array, string>) option) (source: string) (split: string) (progress: FetchProgress -> unit) : Result<string * byte array * int, string> =
        let report from bytes total = progress { Split = split; From = from; Bytes = bytes; Total = total }
        let fetched =
            match download with
            | Some download ->
                let url = (if source.EndsWith "/" then source else source + "/") + $"zip.{split}.gz"
                download url (report url) |> Result.map (fun bytes -> url, bytes)
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
    /// `toDir/usps/` atomically, keeping the compression they came with. `timeout` bounds the
    /// whole transfer, both files; `idle` each wait for the server; `progress` hears how far each
    /// transfer has got.
    let uspsWithin (source: string) (toDir: string) (timeout: TimeSpan) (idle: TimeSpan) (progress: FetchProgress -> unit) : Result<Fetched list, string> =
        let client =
            if isUrl source then
                Some(new HttpClient(new SocketsHttpHandler(AllowAutoRedirect = false), Timeout = Threading.Timeout.InfiniteTimeSpan))
            else None
        use deadline = new CancellationTokenSource(timeout)
        let fetch = client |> Option.map (fun c -> download c deadline.Token timeout idle)
        try
            if client.IsNone && File.Exists source then
                Error $"{source}: a file, not a folder (give a folder holding zip.train.gz and zip.test.gz, or an http(s) URL)"
            elif client.IsNone && not (Directory.Exists source) then
                Error $"{source}: no such folder (give a folder holding zip.train.gz and zip.test.gz, or an http(s) URL)"
            else
                match getSplit fetch source "train" progress with
                | Error e -> Error e
                | Ok train ->
                    match getSplit fetch source "test" progress with
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

    /// `uspsWithin` with the default wait for a stalled server (a timeout shorter than it ends first).
    let uspsWithProgress (source: string) (toDir: string) (timeout: TimeSpan) (progress: FetchProgress -> unit) : Result<Fetched list, string> =
        uspsWithin source toDir timeout readTimeout progress

    /// `uspsWithProgress` without progress reports.
    let usps (source: string) (toDir: string) (timeout: TimeSpan) : Result<Fetched list, string> =
        uspsWithProgress source toDir timeout ignore
