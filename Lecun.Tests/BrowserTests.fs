/// The `serve` page in a real browser: Debian's chromium, driven headless through chromedriver by
/// Selenium. Without them the tests skip with a message, or fail where LECUN_REQUIRE_BROWSER=1 or
/// CI is set (.ci/run installs both).
module Lecun.Tests.BrowserTests

open System
open System.IO
open System.Net
open Expecto
open OpenQA.Selenium
open OpenQA.Selenium.Chrome
open OpenQA.Selenium.Interactions
open OpenQA.Selenium.Support.UI
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Cli
open Lecun.Tests.ServeFixture

let private chromium = Environment.GetEnvironmentVariable "LECUN_CHROMIUM" |> Option.ofObj |> Option.defaultValue "/usr/bin/chromium"
let private chromedriver = Environment.GetEnvironmentVariable "LECUN_CHROMEDRIVER" |> Option.ofObj |> Option.defaultValue "/usr/bin/chromedriver"

let private browserRequired = TestKit.browserRequired

/// Where the browser tests leave their screenshots (LECUN_SCREENSHOTS, else the temp folder).
let screenshotDir () =
    let dir = Environment.GetEnvironmentVariable "LECUN_SCREENSHOTS" |> Option.ofObj |> Option.defaultValue (Path.Combine(Path.GetTempPath(), "lecun-screenshots"))
    Directory.CreateDirectory dir |> ignore
    dir

/// Runs `f` with the page of a model served on a free loopback port open in headless chromium.
let private withPage (f: IWebDriver -> unit) =
    let missing = [ chromium; chromedriver ] |> List.filter (File.Exists >> not)
    if not missing.IsEmpty then
        let reason = $"""{String.Join(" and ", missing)} not found (apt-get install chromium chromium-driver; .ci/run does)"""
        if browserRequired then failtestf "LECUN_REQUIRE_BROWSER=1 or CI is set but %s" reason
        else TestKit.ExpectedSkip.skip TestKit.NoBrowser $"no browser: {reason}; set LECUN_REQUIRE_BROWSER=1 to make this a failure"
    let server = ServeCommand.start (modelView ()) IPAddress.Loopback 0
    try
        let service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName chromedriver, Path.GetFileName chromedriver)
        service.HideCommandPromptWindow <- true
        service.SuppressInitialDiagnosticInformation <- true
        let options = ChromeOptions(BinaryLocation = chromium)
        for a in [ "--headless=new"; "--no-sandbox"; "--disable-gpu"; "--disable-dev-shm-usage"; "--window-size=1300,1000"; "--no-first-run" ] do
            options.AddArgument a
        use driver = new ChromeDriver(service, options, TimeSpan.FromSeconds 60.0)
        driver.Navigate().GoToUrl server.Url
        f driver
    finally
        server.App.StopAsync().Wait()
        (server.App :> IDisposable).Dispose()

let private js (driver: IWebDriver) (script: string) (args: obj array) = (driver :?> IJavaScriptExecutor).ExecuteScript(script, args)

let private waitFor (driver: IWebDriver) (what: string) (condition: unit -> bool) =
    let wait = WebDriverWait(driver, TimeSpan.FromSeconds 20.0)
    wait.Message <- what
    wait.Until(fun _ -> condition ()) |> ignore

/// Count of a canvas's pixels darker than mid grey, and of distinct grey levels, read in the page.
let private canvasStats (driver: IWebDriver) (selector: string) =
    let result =
        js driver "const c = document.querySelector(arguments[0]); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let dark = 0; const levels = new Set();
                   for (let i = 0; i < d.length; i += 4) { if (d[i] < 128) dark++; levels.add(d[i]); }
                   return [dark, levels.size];" [| selector |]
        :?> Collections.ObjectModel.ReadOnlyCollection<obj>
    Convert.ToInt32 result.[0], Convert.ToInt32 result.[1]

/// A stroke of pointer events over the pad, through points given in pad pixels (320 x 320).
let private stroke (driver: IWebDriver) (points: (int * int) list) =
    let pad = driver.FindElement(By.Id "pad")
    let mouse = PointerInputDevice(PointerKind.Mouse, "pen")
    let actions = ActionSequence(mouse, 0)
    let x0, y0 = List.head points
    actions.AddAction(mouse.CreatePointerMove(pad, x0 - 160, y0 - 160, TimeSpan.Zero)) |> ignore
    actions.AddAction(mouse.CreatePointerDown(MouseButton.Left)) |> ignore
    for (xa, ya), (xb, yb) in List.pairwise points do
        for s in 1 .. 8 do
            let x = xa + (xb - xa) * s / 8
            let y = ya + (yb - ya) * s / 8
            actions.AddAction(mouse.CreatePointerMove(pad, x - 160, y - 160, TimeSpan.FromMilliseconds 10.0)) |> ignore
    actions.AddAction(mouse.CreatePointerUp(MouseButton.Left)) |> ignore
    (driver :?> IActionExecutor).PerformActions(Collections.Generic.List [ actions ])

let private predictions (driver: IWebDriver) = js driver "return Number(document.body.dataset.predictions || 0);" [||] |> Convert.ToInt32

/// The page's normalization of test digits drawn into a canvas of the pad's size: each digit (ink
/// (v + 1) / 2 as alpha) drawn with the browser's smoothing into a box of `size` pixels at (x, y),
/// sheared by `shear` (x moves by shear * (centre row - row)); returns the 256 values per digit.
let private renormalized (driver: IWebDriver) (images: float32 array array) (size: float) (x: float) (y: float) (shear: float) =
    let script = "
        const [digits, size, x, y, shear] = arguments;
        const pad = document.getElementById('pad');
        const small = document.createElement('canvas'); small.width = 16; small.height = 16;
        const sctx = small.getContext('2d');
        const big = document.createElement('canvas'); big.width = pad.width; big.height = pad.height;
        const bctx = big.getContext('2d');
        bctx.imageSmoothingEnabled = true; bctx.imageSmoothingQuality = 'high';
        return digits.map(pixels => {
            const image = sctx.createImageData(16, 16);
            pixels.forEach((v, i) => image.data.set([0, 0, 0, Math.round((v + 1) / 2 * 255)], 4 * i));
            sctx.putImageData(image, 0, 0);
            bctx.setTransform(1, 0, 0, 1, 0, 0);
            bctx.clearRect(0, 0, big.width, big.height);
            bctx.setTransform(1, 0, -shear, 1, shear * (y + size / 2), 0);
            bctx.drawImage(small, x, y, size, size);
            return Array.from(lecunPage.normalizeInk(lecunPage.inkOf(big), big.width, big.height));
        });"
    let batches =
        images
        |> Array.chunkBySize 100
        |> Array.collect (fun batch ->
            let arg = batch |> Array.map (Array.map float)
            let result = js driver script [| box arg; box size; box x; box y; box shear |] :?> Collections.ObjectModel.ReadOnlyCollection<obj>
            result |> Seq.map (fun d -> (d :?> Collections.ObjectModel.ReadOnlyCollection<obj>) |> Seq.map (fun v -> float32 (Convert.ToDouble v)) |> Array.ofSeq) |> Array.ofSeq)
    batches

let private errorRate (view: ModelView.ModelView) (images: float32 array array) (labels: int array) =
    let data = { Name = "drawn"; Images = Array.concat images; Labels = labels }
    let result = Evaluate.split Backend.Managed view.Net Loss.Mse view.Parameters (Workspace.create view.Net 8) data
    result.Metrics.Error

[<Tests>]
let tests =
    // In the "console" group: their lines must not land in the output another test captures.
    testSequencedGroup "console" <| testList "serve page in chromium" [
        test "a stroke drawn with pointer events shows a class, the 16x16 input and the layer maps" {
            withPage (fun driver ->
                waitFor driver "the gallery of misclassified digits loads" (fun () -> driver.FindElements(By.CssSelector "#gallery figure").Count > 0)
                let before = predictions driver
                // A seven: the top bar, then the long diagonal down to the left.
                stroke driver [ 95, 70; 235, 70; 225, 95; 150, 265 ]
                waitFor driver "an answer to the stroke" (fun () -> predictions driver > before && driver.FindElement(By.Id "class").Text.Length = 1)
                let cls = driver.FindElement(By.Id "class").Text
                Expect.isTrue (Char.IsDigit cls.[0]) $"a class is shown ({cls})"
                let dark, _ = canvasStats driver "#input"
                Expect.isGreaterThan dark 10 "the 16x16 input shows ink"
                Expect.isLessThan dark 200 "and paper around it"
                let maps = driver.FindElements(By.CssSelector "#h1 canvas")
                Expect.equal maps.Count 12 "twelve H1 maps"
                Expect.equal (driver.FindElements(By.CssSelector "#h2 canvas").Count) 12 "twelve H2 maps"
                for selector in [ "#h1 canvas:nth-child(1)"; "#h2 canvas:nth-child(5)"; "#h3"; "#out" ] do
                    let _, levels = canvasStats driver selector
                    Expect.isGreaterThan levels 1 $"{selector} is painted with the layer's values"
                Expect.equal (driver.FindElement(By.Id "model-info").Text.Contains "lecun1989") true "the model's recipe in the corner"
                let shot = Path.Combine(screenshotDir (), "serve.png")
                (driver :?> ITakesScreenshot).GetScreenshot().SaveAsFile shot
                Expect.isTrue (FileInfo(shot).Length > 10000L) $"screenshot saved ({shot})"
                printfn "browser: the drawn seven was read as %s; screenshot %s" cls shot
                // Clear empties the drawing.
                driver.FindElement(By.Id "clear").Click()
                waitFor driver "the cleared input" (fun () -> fst (canvasStats driver "#input") = 0)
            )
        }
        test "a drawing becomes its input and its reading in well under a second (medians printed)" {
            withPage (fun driver ->
                let timing =
                    (driver :?> IJavaScriptExecutor).ExecuteAsyncScript("""
                        const done = arguments[arguments.length - 1];
                        const arc = (cx, cy, r, a0, a1, n) => Array.from({ length: n + 1 }, (_, i) => {
                            const t = a0 + (a1 - a0) * i / n; return { x: cx + r * Math.cos(t), y: cy + r * Math.sin(t) }; });
                        const strokes = [arc(160, 105, 55, -2.8, 1.57, 24).concat(arc(160, 215, 60, -1.57, 2.7, 24))];
                        const input = [], reading = [];
                        (async () => {
                            for (let i = 0; i < 200; i++) {
                                const t0 = performance.now();
                                const pixels = lecunPage.inputOfStrokes(strokes, 320, 320);
                                const t1 = performance.now();
                                const r = await fetch('api/predict', { method: 'POST', body: JSON.stringify({ pixels: Array.from(pixels) }) });
                                await r.json();
                                input.push(t1 - t0); reading.push(performance.now() - t0);
                            }
                            const median = a => a.sort((x, y) => x - y)[a.length >> 1];
                            done([median(input), median(reading)]);
                        })();""")
                    :?> Collections.ObjectModel.ReadOnlyCollection<obj>
                let input, reading = Convert.ToDouble timing.[0], Convert.ToDouble timing.[1]
                printfn "browser: drawing -> 16x16 input %.1f ms, drawing -> reading (input + /api/predict) %.1f ms (medians of 200)" input reading
                Expect.isLessThan reading 1000.0 "a reading within a second"
            )
        }
        test "a digit of the gallery loads into the same view" {
            withPage (fun driver ->
                waitFor driver "the gallery" (fun () -> driver.FindElements(By.CssSelector "#gallery figure canvas").Count > 0)
                let view = modelView ()
                let first = view.Misses.[0]
                let before = predictions driver
                waitFor driver "the first gallery digit is loaded" (fun () ->
                    driver.FindElement(By.CssSelector "#gallery figure").Click()
                    driver.FindElement(By.Id "source").Text.Contains $"digit {first.Index}")
                waitFor driver "its reading" (fun () -> predictions driver > before)
                Expect.equal (driver.FindElement(By.Id "class").Text) (string first.Predicted) "the model's (wrong) class"
            )
        }
        test "the page's normalization of USPS test digits drawn into the pad keeps the error rate within 1 point" {
            withPage (fun driver ->
                let view = modelView ()
                let test = match view.Data with Ok d -> d.Test | Error e -> failwith e
                let images = Array.init test.Count (fun i -> test.Image(i).ToArray())
                let raw = errorRate view images test.Labels
                let report = Collections.Generic.List<string>()
                for name, size, x, y, shear in [ "upright, 230 px", 230.0, 37.0, 51.0, 0.0; "slanted 0.3, 180 px", 180.0, 90.0, 60.0, 0.3 ] do
                    let drawn = renormalized driver images size x y shear
                    let error = errorRate view drawn test.Labels
                    report.Add $"{name}: {error:F2}%%"
                    Expect.isLessThanOrEqual (abs (error - raw)) 1.0 $"{name}: error {error:F2}%% against {raw:F2}%% on the raw digits"
                printfn "browser: test error of the raw digits %.2f%%, re-normalized by the page: %s" raw (String.Join("; ", report))
            )
        }
    ]
