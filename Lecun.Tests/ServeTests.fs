module Lecun.Tests.ServeTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Text.Json
open System.Threading.Tasks
open Expecto
open FsCheck
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Cli
open Lecun.Tests.ServeFixture

let private invariant = Globalization.CultureInfo.InvariantCulture

let private bodyOf (pixels: float32 array) =
    let numbers = pixels |> Array.map (fun v -> v.ToString("R", invariant))
    "{\"pixels\":[" + String.Join(",", numbers) + "]}"

let private bytes (text: string) = ReadOnlyMemory(Encoding.UTF8.GetBytes text)

let private floats (e: JsonElement) = [| for v in e.EnumerateArray() -> v.GetSingle() |]

/// Checks a predict answer against the layers computed as `predict` computes them.
let private expectReading (json: string) (expected: float32 array array) =
    use doc = JsonDocument.Parse json
    let root = doc.RootElement
    let out = Array.last expected
    Expect.equal (root.GetProperty("class").GetInt32()) (Loss.argmax out 0 out.Length) "class"
    Expect.equal (floats (root.GetProperty "scores")) out "scores, bit for bit"
    let layers = root.GetProperty "layers"
    Array.iter2 (fun (name: string) (values: float32 array) ->
        Expect.equal (floats (layers.GetProperty name)) values $"layer {name}, bit for bit")
        [| "h1"; "h2"; "h3"; "out" |] expected

let private expectError (status: int) (reply: ServeApi.Reply) (what: string) =
    Expect.equal reply.Status status $"{what}: status"
    use doc = JsonDocument.Parse reply.Body
    let message = doc.RootElement.GetProperty("error").GetString()
    Expect.isFalse (String.IsNullOrWhiteSpace message) $"{what}: an error message"

let private digits () = (modelView ()).Data |> function Ok d -> d.Test | Error e -> failwith e

/// Bodies that must be refused with 400, each with what is wrong with it.
let badBodies =
    let ok = Array.create 256 "0"
    let withAt (i: int) (text: string) = "{\"pixels\":[" + String.Join(",", ok |> Array.updateAt i text) + "]}"
    [ "255 values", "{\"pixels\":[" + String.Join(",", Array.create 255 "0") + "]}"
      "257 values", "{\"pixels\":[" + String.Join(",", Array.create 257 "0") + "]}"
      "no values", "{\"pixels\":[]}"
      "a value above 1", withAt 17 "1.0001"
      "a value below -1", withAt 0 "-1.5"
      "an overflowing number", withAt 3 "1e999"
      "NaN", withAt 3 "NaN"
      "Infinity", withAt 3 "Infinity"
      "a string value", withAt 5 "\"0.5\""
      "a null value", withAt 5 "null"
      "a boolean value", withAt 5 "true"
      "a nested array", withAt 5 "[0]"
      "pixels a string", "{\"pixels\":\"0,0,0\"}"
      "pixels an object", "{\"pixels\":{\"0\":0}}"
      "pixels null", "{\"pixels\":null}"
      "no pixels", "{\"image\":[0]}"
      "pixels twice", "{\"pixels\":[" + String.Join(",", ok) + "],\"pixels\":[" + String.Join(",", ok) + "]}"
      "a bare array", "[" + String.Join(",", ok) + "]"
      "a number", "3"
      "truncated JSON", "{\"pixels\":[0,0"
      "trailing garbage", withAt 0 "0" + "x"
      "not JSON", "pixels=0"
      "an empty body", "" ]

[<Tests>]
let tests =
    testList "serve" [
        testList "API in-process" [
            test "predict answers what the network computes, every layer in docs/design.md's layout" {
                let view = modelView ()
                let pool = ServeApi.Workspaces view.Net
                let test = digits ()
                for i in 0 .. 49 do
                    let image = test.Image(i).ToArray()
                    let reply = ServeApi.predict view pool (bytes (bodyOf image))
                    Expect.equal reply.Status 200 "status"
                    expectReading (Encoding.UTF8.GetString reply.Body) (expectedLayers view image)
            }
            test "layer sizes: h1 768, h2 192, h3 30, out 10" {
                let view = modelView ()
                let reply = ServeApi.predict view (ServeApi.Workspaces view.Net) (bytes (bodyOf (Array.create 256 -1.0f)))
                use doc = JsonDocument.Parse reply.Body
                let layers = doc.RootElement.GetProperty "layers"
                for name, n in [ "h1", 768; "h2", 192; "h3", 30; "out", 10 ] do
                    Expect.equal (layers.GetProperty(name).GetArrayLength()) n name
            }
            for what, body in badBodies do
                test $"refuses {what} with 400 and an error" {
                    let view = modelView ()
                    expectError 400 (ServeApi.predict view (ServeApi.Workspaces view.Net) (bytes body)) what
                }
            test "refuses a body over 64 KB with 413" {
                let view = modelView ()
                let body = "{\"pixels\":[" + String.Join(",", Array.create 256 "0") + "]" + String(' ', 70000) + "}"
                expectError 413 (ServeApi.predict view (ServeApi.Workspaces view.Net) (bytes body)) "large body"
            }
            testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 60 } "any 256 values in [-1, 1] are read; one value outside, or another count, is refused"
            <| fun (seed: int) (outside: NormalFloat) (count: byte) ->
                let view = modelView ()
                let pool = ServeApi.Workspaces view.Net
                let rng = Random seed
                let image = Array.init 256 (fun _ -> float32 (rng.NextDouble() * 2.0 - 1.0))
                let good = ServeApi.predict view pool (bytes (bodyOf image))
                Expect.equal good.Status 200 "in-range values are read"
                expectReading (Encoding.UTF8.GetString good.Body) (expectedLayers view image)
                let v = outside.Get
                if abs v > 1.0 then
                    let bad = Array.map string image |> Array.updateAt (rng.Next 256) (v.ToString("R", invariant))
                    expectError 400 (ServeApi.predict view pool (bytes ("{\"pixels\":[" + String.Join(",", bad) + "]}"))) $"value {v}"
                let n = int count
                if n <> 256 then
                    expectError 400 (ServeApi.predict view pool (bytes ("{\"pixels\":[" + String.Join(",", Array.create n "0") + "]}"))) $"{n} values"
            test "weights that overflow float32 get 500 and an error, not NaN in JSON" {
                let view = modelView ()
                // As ModelFileTests: finite weights whose weighted sums overflow to ±infinity in a ReLU
                // network, and NaN where they meet.
                let net = Network.create Layout.lecun1989 Relu Identity
                let huge = { view with Net = net; Parameters = Array.init net.Layout.ParamCount (fun i -> if i % 2 = 0 then 3e38f else -3e38f) }
                expectError 500 (ServeApi.predict huge (ServeApi.Workspaces huge.Net) (bytes (bodyOf ((digits ()).Image(0).ToArray())))) "overflow"
            }
            test "model describes recipe, seed, test error and the misclassified test digits" {
                let view = modelView ()
                use doc = JsonDocument.Parse (ServeApi.model view).Body
                let root = doc.RootElement
                Expect.equal (root.GetProperty("recipe").GetString()) "lecun1989" "recipe"
                Expect.equal (root.GetProperty("seed").GetString()) "1337" "seed"
                let test = root.GetProperty "test"
                let misses = root.GetProperty("misses")
                Expect.equal (misses.GetArrayLength()) (test.GetProperty("misses").GetInt32()) "one gallery entry per miss"
                let data = digits ()
                let eval = Evaluate.split Backend.Managed view.Net Loss.Mse view.Parameters (Workspace.create view.Net 8) data
                Expect.floatClose Accuracy.veryHigh (test.GetProperty("error").GetDouble()) eval.Metrics.Error "test error as eval measures it"
                for m in misses.EnumerateArray() do
                    let i = m.GetProperty("index").GetInt32()
                    Expect.equal (m.GetProperty("label").GetInt32()) data.Labels.[i] "label"
                    Expect.equal (m.GetProperty("predicted").GetInt32()) eval.Predictions.[i] "prediction"
                    Expect.notEqual eval.Predictions.[i] data.Labels.[i] "a miss"
            }
            test "without --model, serve takes the newest model file under runs/ (a run's or a seed's folder)" {
                let runs = Path.Combine(Path.GetTempPath(), $"lecun-runs-{Guid.NewGuid():N}")
                try
                    Expect.isNone (ModelView.newestRun runs) "no runs/ folder: none"
                    let write (sub: string) (age: float) =
                        let file = Path.Combine(runs, sub, "model.safetensors")
                        Directory.CreateDirectory(Path.GetDirectoryName file) |> ignore
                        File.WriteAllBytes(file, [| 0uy |])
                        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(-age))
                        file
                    write "20260101-old-seed1" 30.0 |> ignore
                    let newest = write "20260102-seeds/seed-1338" 5.0
                    write "20260102-seeds/seed-1337" 10.0 |> ignore
                    Expect.equal (ModelView.newestRun runs) (Some newest) "the most recently written"
                finally
                    if Directory.Exists runs then Directory.Delete(runs, true)
            }
            test "digits: a data-set digit with its label; unknown split or index refused" {
                let view = modelView ()
                let reply = ServeApi.digit view "test" "7"
                Expect.equal reply.Status 200 "status"
                use doc = JsonDocument.Parse reply.Body
                Expect.equal (floats (doc.RootElement.GetProperty "pixels")) ((digits ()).Image(7).ToArray()) "pixels"
                Expect.equal (doc.RootElement.GetProperty("label").GetInt32()) (digits ()).Labels.[7] "label"
                expectError 404 (ServeApi.digit view "test" "2007") "index past the end"
                expectError 404 (ServeApi.digit view "valid" "1") "unknown split"
                expectError 400 (ServeApi.digit view "test" "-1") "negative index"
                expectError 400 (ServeApi.digit view "test" "1e3") "not an integer"
            }
        ]

        testSequencedGroup "console" <| test "predict answers equal the predict command's on the same digits" {
            let view = modelView ()
            let data = digits ()
            let dir = Path.Combine(Path.GetTempPath(), $"lecun-serve-predict-{Guid.NewGuid():N}")
            Directory.CreateDirectory dir |> ignore
            try
                let file = Path.Combine(dir, "digits.txt")
                let rows = [ for i in 100 .. 129 -> String.Join(" ", data.Image(i).ToArray() |> Array.map (fun v -> v.ToString("R", invariant))) ]
                File.WriteAllLines(file, rows)
                let code, out, err = TestSetup.runCli [ "predict"; "--model"; modelFile (); "--backend"; "managed"; "--json"; file ]
                Expect.equal code 0 $"predict runs (stderr: {err})"
                use doc = JsonDocument.Parse out
                let pool = ServeApi.Workspaces view.Net
                for k, item in Seq.indexed (doc.RootElement.EnumerateArray()) do
                    let reply = ServeApi.predict view pool (bytes (bodyOf (data.Image(100 + k).ToArray())))
                    use answer = JsonDocument.Parse reply.Body
                    Expect.equal (answer.RootElement.GetProperty("class").GetInt32()) (item.GetProperty("class").GetInt32()) "class"
                    let scores = [| for v in item.GetProperty("scores").EnumerateArray() -> float32 (v.GetDouble()) |]
                    Expect.equal (floats (answer.RootElement.GetProperty "scores")) scores "scores"
            finally
                Directory.Delete(dir, true)
        }

        testSequencedGroup "loopback server" <| testList "API over a loopback port" [
            let withServer (f: ServeCommand.Server -> HttpClient -> Task<unit>) =
                task {
                    let server = ServeCommand.start (modelView ()) IPAddress.Loopback 0
                    try
                        use client = new HttpClient(BaseAddress = Uri server.Url, Timeout = TimeSpan.FromSeconds 30.0)
                        do! f server client
                    finally
                        server.App.StopAsync().Wait()
                        (server.App :> IDisposable).Dispose()
                }
                |> fun t -> t.GetAwaiter().GetResult()

            test "listens on 127.0.0.1 only, serves the page, its files and the API" {
                withServer (fun server client ->
                    task {
                        Expect.stringStarts server.Url "http://127.0.0.1:" "the loopback address"
                        let port = Uri(server.Url).Port
                        let others =
                            Dns.GetHostAddresses(Dns.GetHostName())
                            |> Array.append (NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                                             |> Array.collect (fun n -> n.GetIPProperties().UnicastAddresses |> Seq.map (fun a -> a.Address) |> Array.ofSeq))
                            |> Array.filter (fun a -> a.AddressFamily = AddressFamily.InterNetwork && not (IPAddress.IsLoopback a))
                            |> Array.distinct
                        for address in others do
                            use socket = new TcpClient()
                            let refused =
                                try socket.Connect(address, port); false
                                with :? SocketException -> true
                            Expect.isTrue refused $"not reachable on {address}:{port}"
                        let! page = client.GetStringAsync "/"
                        Expect.stringContains page "<canvas id=\"pad\"" "the drawing pad"
                        for file, fragment in [ "app.js", "normalizeInk"; "style.css", "#pad" ] do
                            let! text = client.GetStringAsync file
                            Expect.stringContains text fragment file
                        let! missing = client.GetAsync "/nothing-here"
                        Expect.equal missing.StatusCode HttpStatusCode.NotFound "unknown path"
                        let! model = client.GetStringAsync "/api/model"
                        Expect.stringContains model "\"recipe\":\"lecun1989\"" "model"
                        let! digit = client.GetStringAsync "/api/digits/test/3"
                        use doc = JsonDocument.Parse digit
                        Expect.equal (floats (doc.RootElement.GetProperty "pixels")) ((digits ()).Image(3).ToArray()) "digit 3"
                    })
            }
            test "every bad request is refused over the wire with 400 or 413 and an error" {
                withServer (fun _ client ->
                    task {
                        for what, body in badBodies do
                            use content = new StringContent(body, Encoding.UTF8, "application/json")
                            let! response = client.PostAsync("/api/predict", content)
                            let! text = response.Content.ReadAsStringAsync()
                            Expect.equal response.StatusCode HttpStatusCode.BadRequest what
                            use doc = JsonDocument.Parse text
                            Expect.isTrue (doc.RootElement.GetProperty("error").GetString().Length > 0) what
                        let large = "{\"pixels\":[" + String.Join(",", Array.create 30000 "0.25") + "]}"
                        use content = new StringContent(large, Encoding.UTF8, "application/json")
                        let! response = client.PostAsync("/api/predict", content)
                        Expect.equal response.StatusCode HttpStatusCode.RequestEntityTooLarge "a declared length over 64 KB"
                        // The same without a declared length (chunked): refused after 64 KB are read.
                        use stream = new MemoryStream(Encoding.UTF8.GetBytes large)
                        use chunked = new StreamContent(stream)
                        let request = new HttpRequestMessage(HttpMethod.Post, "/api/predict", Content = chunked)
                        request.Headers.TransferEncodingChunked <- true
                        let! response = client.SendAsync request
                        Expect.equal response.StatusCode HttpStatusCode.RequestEntityTooLarge "a chunked body over 64 KB"
                    })
            }
            test "1,000 requests from 8 concurrent clients are all answered correctly" {
                withServer (fun server _ ->
                    task {
                        let view = modelView ()
                        let data = digits ()
                        let expected = Array.init 1000 (fun i -> expectedLayers view (data.Image(i).ToArray()))
                        let client (c: int) =
                            task {
                                use http = new HttpClient(BaseAddress = Uri server.Url, Timeout = TimeSpan.FromSeconds 60.0)
                                let mutable correct = 0
                                for i in c .. 8 .. 999 do
                                    use content = new StringContent(bodyOf (data.Image(i).ToArray()), Encoding.UTF8, "application/json")
                                    let! response = http.PostAsync("/api/predict", content)
                                    let! text = response.Content.ReadAsStringAsync()
                                    Expect.equal response.StatusCode HttpStatusCode.OK $"request {i}"
                                    expectReading text expected.[i]
                                    correct <- correct + 1
                                return correct
                            }
                        let! counts = Task.WhenAll [| for c in 0 .. 7 -> client c |]
                        Expect.equal (Array.sum counts) 1000 "every answer checked"
                    })
            }
        ]
    ]
