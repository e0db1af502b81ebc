/// Pictures written for the user: training curves (ScottPlot) and the gallery of misclassified
/// digits (drawn directly with SkiaSharp, which ScottPlot brings). Every file is written
/// atomically as PNG.
module Lecun.Cli.Plots

open System
open ScottPlot
open SkiaSharp
open Lecun.Model

let private white = SKColors.White

/// ScottPlot's own choice of "sans" font lands on DejaVu Serif on Debian, so both pictures ask
/// for DejaVu Sans by name when it is installed and fall back to the defaults otherwise.
let private sansFamily = "DejaVu Sans"

let private sansInstalled =
    lazy
        (use t = SKTypeface.FromFamilyName sansFamily
         not (isNull t) && t.FamilyName = sansFamily)

let private regular = lazy (if sansInstalled.Value then SKTypeface.FromFamilyName sansFamily else SKTypeface.Default)
let private bold = lazy (if sansInstalled.Value then SKTypeface.FromFamilyName(sansFamily, SKFontStyle.Bold) else SKTypeface.Default)
let typeface (isBold: bool) = if isBold then bold.Value else regular.Value

let private newPlot () =
    let plot = new Plot()
    if sansInstalled.Value then plot.Font.Set sansFamily |> ignore
    plot

/// PNG with every row "Up"-filtered at zlib level 6. Skia's default tries every filter on every row:
/// on the two run pictures that took 18.5 and 23.4 ms against 7.6 and 10.2 ms here, for files 9% and
/// 3% smaller (measured on this machine, mean of 10 encodes).
let encodePng (surface: SKSurface) =
    use pixels = surface.PeekPixels()
    use data = pixels.Encode(SKPngEncoderOptions(SKPngEncoderFilterFlags.Up, 6))
    data.ToArray()

/// A ScottPlot figure drawn at the given size on a surface of its own (no PNG round trip).
let private renderOn (plot: Plot) (width: int) (height: int) =
    let surface = SKSurface.Create(SKImageInfo(width, height))
    plot.Render(surface.Canvas, width, height)
    surface

let drawCentered (canvas: SKCanvas) (text: string) (x: float32) (baseline: float32) (size: float32) (bold: bool) (color: SKColor) =
    use font = new SKFont(typeface bold, size)
    use paint = new SKPaint(Color = color, IsAntialias = true)
    canvas.DrawText(text, x, baseline, SKTextAlign.Center, font, paint)

// ---------------------------------------------------------------- training curves

let private trainColor = Colors.C0 // blue
let private testColor = Colors.C1 // orange

/// The loss spans decades over a run (1e-1 down to 1e-3 is typical), so it is drawn on a log
/// scale. ScottPlot 5 has no log axis: the data is plotted as log10 and the ticks are placed by
/// hand, labelled in loss units.
let private lossLabel (v: float) =
    if v >= 1e-3 && v < 1e4 then v.ToString("0.###", Globalization.CultureInfo.InvariantCulture)
    else v.ToString("0e0", Globalization.CultureInfo.InvariantCulture)

/// Ticks for log10 values over the decades `low` to `high`. Which multiples of each decade get a
/// label depends on how many decades the data spans, so that a few labels are always in view:
/// all of 1..9 under one decade, 1, 2 and 5 under two, decades alone beyond; the rest are minor.
let private logTicks (low: int) (high: int) (span: float) =
    let ticks = TickGenerators.NumericManual()
    let labelled m = m = 1 || span < 0.8 || (span < 2.0 && (m = 2 || m = 5))
    for k in low .. high do
        for m in 1 .. 9 do
            let v = float m * Math.Pow(10.0, float k)
            if labelled m then ticks.AddMajor(Math.Log10 v, lossLabel v) else ticks.AddMinor(Math.Log10 v)
    ticks

let private integerTicks () = TickGenerators.NumericAutomatic(IntegerTicksOnly = true)

let private addSeries (plot: Plot) (xs: float array) (ys: float array) (label: string) (color: Color) (marker: MarkerShape) =
    let s = plot.Add.Scatter(xs, ys)
    s.LegendText <- label
    s.Color <- color
    s.LineWidth <- 2.0f
    s.MarkerShape <- marker
    s.MarkerSize <- if xs.Length > 40 then 0.0f else 6.0f

let private lossPlot (passes: PassMetrics list) =
    let plot = newPlot ()
    let xs = passes |> List.map (fun p -> float p.Pass) |> Array.ofList
    // A loss of exactly 0 has no logarithm; 1e-12 is far below anything a run reports.
    // A diverged run's NaN or infinite loss stays NaN: a gap in the line, left out of the range.
    let log (v: float) = if Double.IsFinite v then Math.Log10(max v 1e-12) else nan
    addSeries plot xs (passes |> List.map (fun p -> log p.Train.Loss) |> Array.ofList) "train" trainColor MarkerShape.FilledCircle
    addSeries plot xs (passes |> List.map (fun p -> log p.Test.Loss) |> Array.ofList) "test" testColor MarkerShape.FilledSquare
    // Ticks cover the whole decades around the data; the view is the data plus a margin, so a
    // run that moves within one decade still fills the panel.
    let logs = passes |> List.collect (fun p -> [ log p.Train.Loss; log p.Test.Loss ]) |> List.filter Double.IsFinite
    let low, high = if logs.IsEmpty then -3.0, 0.0 else List.min logs, List.max logs
    let margin = max 0.05 ((high - low) * 0.06)
    plot.Axes.Left.TickGenerator <- logTicks (int (Math.Floor low)) (int (Math.Ceiling high)) (high - low)
    plot.Axes.SetLimitsY(low - margin, high + margin)
    plot.Axes.Bottom.TickGenerator <- integerTicks ()
    // Minor grid lines at 2..9 x 10^k make the log scale readable; the pass axis needs none.
    plot.Grid.YAxisStyle.MinorLineStyle.Width <- 1.0f
    plot.Grid.YAxisStyle.MinorLineStyle.Color <- Colors.Black.WithAlpha 0.06
    plot.Title "loss (log scale)"
    plot.XLabel "pass"
    plot.YLabel "loss"
    plot.ShowLegend(Alignment.UpperRight) |> ignore
    plot

let private errorPlot (passes: PassMetrics list) =
    let plot = newPlot ()
    let xs = passes |> List.map (fun p -> float p.Pass) |> Array.ofList
    addSeries plot xs (passes |> List.map (fun p -> p.Train.Error) |> Array.ofList) "train" trainColor MarkerShape.FilledCircle
    addSeries plot xs (passes |> List.map (fun p -> p.Test.Error) |> Array.ofList) "test" testColor MarkerShape.FilledSquare
    plot.Axes.Bottom.TickGenerator <- integerTicks ()
    // Error rates are compared against 0 (the paper's train error nearly reaches it),
    // so the axis starts there instead of at the smallest value.
    plot.Axes.AutoScale()
    let top = plot.Axes.GetLimits().Top
    plot.Axes.SetLimitsY(0.0, (if top > 0.0 then top else 1.0))
    plot.Title "error"
    plot.XLabel "pass"
    plot.YLabel "error (%)"
    plot.ShowLegend(Alignment.UpperRight) |> ignore
    plot

let private panelWidth, panelHeight, titleBand = 700, 500, 44

/// Loss and error per pass, train and test, side by side under one title.
let curvesPng (title: string) (passes: PassMetrics list) : byte array =
    let width, height = 2 * panelWidth, panelHeight + titleBand
    use surface = SKSurface.Create(SKImageInfo(width, height))
    let canvas = surface.Canvas
    canvas.Clear white
    drawCentered canvas title (float32 width / 2.0f) 30.0f 20.0f true SKColors.Black
    use loss = lossPlot passes
    use error = errorPlot passes
    [ loss; error ]
    |> List.iteri (fun i plot ->
        // Each panel is rendered on its own and pasted in: ScottPlot clears the whole canvas it
        // renders on, so panels cannot share one.
        use panel = renderOn plot panelWidth panelHeight
        use image = panel.Snapshot()
        canvas.DrawImage(image, float32 (i * panelWidth), float32 titleBand))
    encodePng surface

let curves (title: string) (passes: PassMetrics list) (path: string) : unit = AtomicFile.writeBytes path (curvesPng title passes)

// ---------------------------------------------------------------- misclassified digits

/// At most this many digits are shown; beyond that a gallery stops being readable.
let maxGalleryDigits = 120

let private perRow, scale, labelBand, gap = 12, 4, 20, 10
let private side = Dataset.Side

/// Value -1 is white paper and +1 black ink, as the paper prints its digits.
let gray (v: float32) =
    let v = Math.Clamp(v, -1.0f, 1.0f)
    byte (MathF.Round((1.0f - v) * 0.5f * 255.0f))

let private drawDigit (canvas: SKCanvas) (image: float32 array) (x: float32) (y: float32) =
    use paint = new SKPaint(IsAntialias = false)
    for r in 0 .. side - 1 do
        for c in 0 .. side - 1 do
            let g = gray image[r * side + c]
            paint.Color <- SKColor(g, g, g)
            canvas.DrawRect(x + float32 (c * scale), y + float32 (r * scale), float32 scale, float32 scale, paint)
    // A thin frame, so a digit's white background stays distinct from the page.
    use frame = new SKPaint(Color = SKColors.LightGray, IsStroke = true, StrokeWidth = 1.0f)
    let size = float32 (side * scale)
    canvas.DrawRect(x - 0.5f, y - 0.5f, size + 1.0f, size + 1.0f, frame)

/// The misclassified digits in a grid, each labelled "true→predicted" (predicted in red).
/// Shows the first `maxGalleryDigits` and says so when there are more.
let errorGalleryPng (title: string) (images: float32 array array) (trueLabels: int array) (predicted: int array) : byte array =
    if images.Length <> trueLabels.Length || images.Length <> predicted.Length then
        invalidArg (nameof images) $"{images.Length} images, {trueLabels.Length} true labels, {predicted.Length} predictions"
    match images |> Array.tryFindIndex (fun im -> im.Length <> Dataset.Pixels) with
    | Some i -> invalidArg (nameof images) $"image {i} has {images[i].Length} values, expected {Dataset.Pixels}"
    | None -> ()
    let shown = min images.Length maxGalleryDigits
    let cell = side * scale
    let cols = max 1 (min perRow shown)
    let rows = (shown + perRow - 1) / perRow
    let header = 64
    let width = max 520 (gap + cols * (cell + gap))
    let height = header + rows * (cell + labelBand + gap) + gap
    use surface = SKSurface.Create(SKImageInfo(width, height))
    let canvas = surface.Canvas
    canvas.Clear white
    let middle = float32 width / 2.0f
    drawCentered canvas title middle 26.0f 18.0f true SKColors.Black
    let subtitle =
        match images.Length with
        | 0 -> "no misclassified digits"
        | n when n > shown -> $"{n} misclassified, the first {shown} shown (true → predicted)"
        | n -> $"""{n} misclassified {(if n = 1 then "digit" else "digits")} (true → predicted)"""
    drawCentered canvas subtitle middle 50.0f 14.0f false SKColors.DimGray
    // Centre the grid when the title makes the page wider than the digits.
    let left = (width - cols * (cell + gap) + gap) / 2
    use font = new SKFont(typeface true, 15.0f)
    use black = new SKPaint(Color = SKColors.Black, IsAntialias = true)
    use red = new SKPaint(Color = SKColors.Firebrick, IsAntialias = true)
    for i in 0 .. shown - 1 do
        let x = left + (i % perRow) * (cell + gap)
        let y = header + (i / perRow) * (cell + labelBand + gap)
        drawDigit canvas images[i] (float32 x) (float32 y)
        // "3→" in black, "5" in red, centred together under the digit.
        let truth, guess = $"{trueLabels[i]}→", string predicted[i]
        let w1, w2 = font.MeasureText truth, font.MeasureText guess
        let start = float32 x + (float32 cell - w1 - w2) / 2.0f
        let baseline = float32 (y + cell + labelBand - 4)
        canvas.DrawText(truth, start, baseline, SKTextAlign.Left, font, black)
        canvas.DrawText(guess, start + w1, baseline, SKTextAlign.Left, font, red)
    encodePng surface

let errorGallery (title: string) (images: float32 array array) (trueLabels: int array) (predicted: int array) (path: string) : unit =
    AtomicFile.writeBytes path (errorGalleryPng title images trueLabels predicted)

/// Draws both run pictures once, into memory, so that the native Skia library, the fonts and the
/// plotting code are loaded and compiled while a run trains on the other core rather than after it
/// (about 0.1 s of a 1.5 s default train). A failure here is ignored: the real drawing reports it.
let warmUp () =
    try
        let metrics = { Loss = 0.1; Error = 1.0; Misses = 1; Count = 100 }
        let passes = [ for p in 1 .. 2 -> { Pass = p; Train = metrics; Test = metrics; Seconds = 0.0 } ]
        curvesPng "warm-up" passes |> ignore
        errorGalleryPng "warm-up" [| Array.zeroCreate Dataset.Pixels |] [| 1 |] [| 7 |] |> ignore
    with _ -> ()

// ---------------------------------------------------------------- the 33-year ladder

/// One row of the ladder: mean and standard deviation over seeds, and the essay's single-seed figure.
type LadderPoint =
    { Label: string
      TrainMean: float
      TrainSd: float
      TestMean: float
      TestSd: float
      EssayTest: float option }

/// Test (and train) error per step with error bars of one standard deviation over the seeds, and the
/// essay's single-seed test error drawn beside each step for reference.
let ladder (title: string) (points: LadderPoint list) (references: (float * string) list) (path: string) : unit =
    use plot = newPlot ()
    for level, label in references do
        let line = plot.Add.HorizontalLine(level)
        line.LegendText <- label
        line.Color <- Colors.Gray
        line.LineWidth <- 1.0f
        line.LinePattern <- LinePattern.Dashed
    let xs = points |> List.mapi (fun i _ -> float i) |> Array.ofList
    let series (ys: float array) (errs: float array) (label: string) (color: Color) (marker: MarkerShape) (offset: float) =
        let x = xs |> Array.map (fun x -> x + offset)
        let bars = plot.Add.ErrorBar(x, ys, errs)
        bars.Color <- color
        bars.LineWidth <- 2.0f
        let s = plot.Add.Scatter(x, ys)
        s.LegendText <- label
        s.Color <- color
        s.LineWidth <- 0.0f
        s.MarkerShape <- marker
        s.MarkerSize <- 9.0f
    series (points |> List.map (fun p -> p.TestMean) |> Array.ofList) (points |> List.map (fun p -> p.TestSd) |> Array.ofList)
        "test error (mean ± sd over seeds)" testColor MarkerShape.FilledSquare 0.0
    series (points |> List.map (fun p -> p.TrainMean) |> Array.ofList) (points |> List.map (fun p -> p.TrainSd) |> Array.ofList)
        "train error (mean ± sd)" trainColor MarkerShape.FilledCircle -0.12
    let essay = points |> List.indexed |> List.choose (fun (i, p) -> p.EssayTest |> Option.map (fun e -> float i + 0.12, e))
    if not essay.IsEmpty then
        let s = plot.Add.Scatter(essay |> List.map fst |> Array.ofList, essay |> List.map snd |> Array.ofList)
        s.LegendText <- "essay's test error (MNIST-sim, one seed)"
        s.Color <- Colors.Gray
        s.LineWidth <- 0.0f
        s.MarkerShape <- MarkerShape.OpenDiamond
        s.MarkerSize <- 11.0f
    plot.Axes.Bottom.SetTicks(xs, points |> List.map (fun p -> p.Label) |> Array.ofList)
    plot.Axes.AutoScale()
    let limits = plot.Axes.GetLimits()
    plot.Axes.SetLimits(-0.6, float (points.Length - 1) + 0.6, 0.0, max 1.0 (limits.Top * 1.08))
    plot.Title title
    plot.XLabel "step (0n: newton1989, the paper's own recipe, beside step 0)"
    plot.YLabel "error (%)"
    plot.ShowLegend(Alignment.UpperRight) |> ignore
    use surface = renderOn plot 900 560
    AtomicFile.writeBytes path (encodePng surface)
