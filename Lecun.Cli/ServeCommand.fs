/// `serve`: the page where you draw a digit and watch the network read it, and its JSON API, on
/// ASP.NET Core's Kestrel from the shared framework. The page's files are embedded in the assembly.
module Lecun.Cli.ServeCommand

open System
open System.Buffers
open System.IO
open System.Net
open System.Threading.Tasks
open Argu
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging
open Lecun.Model
open Lecun.Cli.Output
open Lecun.Cli.ServeApi

type ServeArgs =
    | Model of file: string
    | Host of address: string
    | Port of port: int
    | Data of dir: string
    | Backend of name: string

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "checkpoint to serve (default: the newest runs/*/model.safetensors, else train the default recipe first)."
            | Host _ -> "IP address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)."
            | Port _ -> "TCP port (default 8089; 0 picks a free one)."
            | Data _ -> "folder holding the data sets (for the gallery and /api/digits)."
            | Backend _ -> Providers.evaluatorUsage

/// The page's files, embedded from wwwroot/ (see Lecun.Cli.fsproj).
let private pageFiles =
    lazy
        (let assembly = Reflection.Assembly.GetExecutingAssembly()
         [ "index.html", "text/html; charset=utf-8"; "app.js", "text/javascript; charset=utf-8"; "style.css", "text/css; charset=utf-8" ]
         |> List.map (fun (name, contentType) ->
             use stream = assembly.GetManifestResourceStream("wwwroot/" + name)
             if isNull stream then failwith $"the page file {name} is not embedded in the assembly"
             use copy = new MemoryStream()
             stream.CopyTo copy
             name, { Status = 200; ContentType = contentType; Body = copy.ToArray() })
         |> Map.ofList)

let private send (ctx: HttpContext) (reply: Reply) : Task =
    ctx.Response.StatusCode <- reply.Status
    ctx.Response.ContentType <- reply.ContentType
    ctx.Response.ContentLength <- int64 reply.Body.Length
    ctx.Response.Headers.CacheControl <- "no-store"
    ctx.Response.Body.WriteAsync(reply.Body, 0, reply.Body.Length)

/// Reads the request body, at most maxBodyBytes + 1 bytes (so a larger one is known to be too large
/// without reading it all), into a pooled buffer; calls `use` with the bytes read or None when too large.
let private withBody (ctx: HttpContext) (useBody: ReadOnlyMemory<byte> option -> Reply) : Task<Reply> =
    task {
        let declared = ctx.Request.ContentLength
        if declared.HasValue && declared.Value > int64 maxBodyBytes then
            return useBody None
        else
            let buffer = ArrayPool<byte>.Shared.Rent(maxBodyBytes + 1)
            try
                let mutable total = 0
                let mutable reading = true
                while reading do
                    let! n = ctx.Request.Body.ReadAsync(buffer.AsMemory(total, maxBodyBytes + 1 - total))
                    total <- total + n
                    reading <- n > 0 && total <= maxBodyBytes
                return useBody (if total > maxBodyBytes then None else Some(ReadOnlyMemory(buffer, 0, total)))
            finally
                ArrayPool<byte>.Shared.Return buffer
    }

/// A running server: the application and the address it listens on.
type Server =
    { App: WebApplication
      Url: string }

    interface IAsyncDisposable with
        member s.DisposeAsync() = s.App.DisposeAsync()

/// Starts serving the model on address:port (port 0: a free port) and returns once it listens.
let start (view: ModelView.ModelView) (address: IPAddress) (port: int) : Server =
    let builder = WebApplication.CreateSlimBuilder()
    builder.Logging.ClearProviders() |> ignore
    builder.WebHost.ConfigureKestrel(fun options ->
        options.AddServerHeader <- false
        options.Listen(address, port)) |> ignore
    let app = builder.Build()
    let pool = Workspaces view.Net
    let files = pageFiles.Value
    let page name = RequestDelegate(fun ctx -> send ctx files.[name])
    app.MapGet("/", page "index.html") |> ignore
    for name in files.Keys do
        app.MapGet("/" + name, page name) |> ignore
    app.MapPost("/api/predict", RequestDelegate(fun ctx ->
        task {
            let! reply = withBody ctx (function None -> tooLarge () | Some body -> predict view pool body)
            do! send ctx reply
        }))
    |> ignore
    let modelReply = lazy (model view)
    app.MapGet("/api/model", RequestDelegate(fun ctx -> send ctx modelReply.Value)) |> ignore
    app.MapGet("/api/digits/{split}/{index}", RequestDelegate(fun ctx ->
        send ctx (digit view (string ctx.Request.RouteValues.["split"]) (string ctx.Request.RouteValues.["index"]))))
    |> ignore
    app.MapFallback(RequestDelegate(fun ctx -> send ctx (error 404 $"no such page or API: {ctx.Request.Method} {ctx.Request.Path}"))) |> ignore
    app.StartAsync().GetAwaiter().GetResult()
    let url = app.Services.GetService(typeof<IServer>) :?> IServer |> fun s -> s.Features.Get<IServerAddressesFeature>().Addresses |> Seq.head
    { App = app; Url = url.TrimEnd('/') + "/" }

/// The address to listen on: an IP address, or "localhost" for the loopback address.
let parseHost (text: string) =
    match IPAddress.TryParse text with
    | true, address -> address
    | _ when text.Equals("localhost", StringComparison.OrdinalIgnoreCase) -> IPAddress.Loopback
    | _ -> fail $"--host must be an IP address such as 127.0.0.1 or 0.0.0.0, got '{text}'"

/// The model to serve: --model, else the newest run under runs/, else a run of the default recipe
/// trained now (on the data set search path, or --data) and the model file it wrote. The provider
/// trains it; with the reference, the default provider does (the reference's 23 passes would take
/// minutes) and the reference serves it.
let private chooseModel (args: ParseResults<ServeArgs>) (evaluator: Evaluator) =
    match args.TryGetResult Model with
    | Some file -> file
    | None ->
        match ModelView.newestRun "runs" with
        | Some file ->
            printfn "no --model given: serving the newest run, %s" file
            file
        | None ->
            let recipe = Recipe.lecun1989
            printfn "no --model given and no run under runs/: training the default recipe (%s) first" recipe.Name
            let trainer = match evaluator with Evaluator.Engine _ -> evaluator | Evaluator.Reference -> Evaluator.Engine(Providers.choose None)
            let warming = TrainCommand.warmUp trainer recipe
            let data = Data.load DataSetName.Usps (args.TryGetResult Data) |> orFail
            let written = TrainCommand.trainAndReport false (TrainRun.request recipe DataSetName.Usps data trainer) warming
            printfn ""
            written.Runs.[0].ModelFile

let run (args: ParseResults<ServeArgs>) =
    let address = parseHost (args.GetResult(Host, "127.0.0.1"))
    let port = args.GetResult(Port, 8089)
    if port < 0 || port > 65535 then fail $"--port must be between 0 and 65535, got {port}"
    let evaluator = Providers.chooseEvaluator (args.TryGetResult Backend)
    let file = chooseModel args evaluator
    let view = ModelView.load evaluator file (args.TryGetResult Data)
    match view.Data with
    | Error e -> eprintfn "warning: %s; the page works without the gallery of misclassified digits" e
    | Ok _ -> ()
    let server =
        try start view address port
        with
        | :? IOException as e -> fail $"cannot listen on {address}:{port} ({e.Message})"
        | :? Sockets.SocketException as e when e.SocketErrorCode = Sockets.SocketError.AddressNotAvailable ->
            let own =
                try
                    NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                    |> Seq.collect (fun i -> i.GetIPProperties().UnicastAddresses |> Seq.map (fun a -> string a.Address))
                    |> String.concat ", "
                with _ -> "unknown"
            fail $"cannot listen on {address}: this machine has no such address (its addresses: {own}; 0.0.0.0 listens on all)"
        | :? Sockets.SocketException as e -> fail $"cannot listen on {address}:{port} ({e.Message})"
    printfn "serving %s (%s) at %s" file (ModelView.describe view) server.Url
    if IPAddress.IsLoopback address then printfn "listening on this machine only (--host 0.0.0.0 opens it to the network); Ctrl+C stops"
    else printfn "listening on %O: other machines can reach it; Ctrl+C stops" address
    Console.Out.Flush()
    server.App.WaitForShutdown()
    0
