/// `show`: one picture of the network reading a digit, in the spirit of the paper's figures: the
/// input, H1's twelve 8x8 maps, H2's twelve 4x4 maps, H3's 30 units, the ten outputs with the winner
/// marked, and H1's twelve learned 5x5 kernels.
module Lecun.Cli.ShowCommand

open System
open Argu
open SkiaSharp
open Lecun.Model
open Lecun.Cli.Output

type ShowArgs =
    | [<Mandatory>] Model of file: string
    | Digit of index: int
    | Split of name: string
    | Data of dir: string
    | Out of file: string
    | Backend of name: string
    | [<MainCommand>] Input of file: string

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "checkpoint (model.safetensors) to look inside."
            | Digit _ -> "index of a digit of the model's data set (`eval --misses` lists the misclassified ones)."
            | Split _ -> "test (default) or train, for --digit."
            | Data _ -> "folder holding the data sets."
            | Out _ -> "PNG to write (default show.png)."
            | Backend _ -> Providers.evaluatorUsage
            | Input _ -> "a digit file instead of --digit: 16x16 PGM or PNG, or a text row of 256 values in [-1,1]."

/// What the picture shows: the digit, where it came from, and every layer's values for it.
type ShowContent =
    { Title: string
      Input: float32 array
      /// H1 [12,8,8], H2 [12,4,4], H3 [30], out [10] (docs/design.md's layout, flattened).
      Layers: float32 array array
      /// H1's weights [12,1,5,5].
      Kernels: float32 array }

let private margin, blockGap, labelHeight = 24, 40, 22

/// Draws values as grey squares, `cols` per row, at `scale` pixels each, on the one scale of the
/// picture: -1 white, 0 mid grey, +1 black (values beyond are clamped), with a thin frame.
let private drawGrid (canvas: SKCanvas) (values: float32 array) (offset: int) (rows: int) (cols: int) (scale: int) (x: int) (y: int) =
    use paint = new SKPaint(IsAntialias = false)
    for r in 0 .. rows - 1 do
        for c in 0 .. cols - 1 do
            let g = Plots.gray values.[offset + r * cols + c]
            paint.Color <- SKColor(g, g, g)
            canvas.DrawRect(float32 (x + c * scale), float32 (y + r * scale), float32 scale, float32 scale, paint)
    use frame = new SKPaint(Color = SKColors.Gray, IsStroke = true, StrokeWidth = 1.0f)
    canvas.DrawRect(float32 x - 0.5f, float32 y - 0.5f, float32 (cols * scale) + 1.0f, float32 (rows * scale) + 1.0f, frame)

let private drawLabel (canvas: SKCanvas) (text: string) (x: int) (y: int) (size: float32) (bold: bool) (color: SKColor) =
    use font = new SKFont(Plots.typeface bold, size)
    use paint = new SKPaint(Color = color, IsAntialias = true)
    canvas.DrawText(text, float32 x, float32 y, SKTextAlign.Left, font, paint)

/// `count` maps of side x side values each, in rows of `perRow`; returns the block's width and height.
let private drawMaps (canvas: SKCanvas) (values: float32 array) (count: int) (side: int) (perRow: int) (scale: int) (gap: int) (x: int) (y: int) =
    for m in 0 .. count - 1 do
        drawGrid canvas values (m * side * side) side side scale (x + (m % perRow) * (side * scale + gap)) (y + (m / perRow) * (side * scale + gap))
    let rows = (count + perRow - 1) / perRow
    perRow * (side * scale + gap) - gap, rows * (side * scale + gap) - gap

let private arrow (canvas: SKCanvas) (x0: int) (x1: int) (y: int) =
    use paint = new SKPaint(Color = SKColors.DimGray, IsAntialias = true, StrokeWidth = 2.0f, IsStroke = true)
    canvas.DrawLine(float32 x0, float32 y, float32 (x1 - 2), float32 y, paint)
    use head = new SKPath()
    head.MoveTo(float32 x1, float32 y)
    head.LineTo(float32 (x1 - 8), float32 (y - 5))
    head.LineTo(float32 (x1 - 8), float32 (y + 5))
    head.Close()
    paint.IsStroke <- false
    canvas.DrawPath(head, paint)

/// The picture as PNG bytes.
let png (content: ShowContent) : byte array =
    let layers = content.Layers
    if layers.Length <> 4 || layers.[0].Length <> 768 || layers.[1].Length <> 192 || layers.[2].Length <> 30 || layers.[3].Length <> 10 then
        invalidArg (nameof content) "show draws the 1989 network's layers (768, 192, 30 and 10 units)"
    let width, height = 1220, 420
    use surface = SKSurface.Create(SKImageInfo(width, height))
    let canvas = surface.Canvas
    canvas.Clear SKColors.White
    Plots.drawCentered canvas content.Title (float32 width / 2.0f) 30.0f 18.0f true SKColors.Black
    Plots.drawCentered canvas "grey levels on one scale for every block: -1 white, 0 grey, +1 black (kernels: -max|w| to +max|w|)"
        (float32 width / 2.0f) 54.0f 13.0f false SKColors.DimGray
    let top = 100
    let label text x = drawLabel canvas text x (top - 8) 14.0f true SKColors.Black
    // Input, 16x16 at 8 pixels each.
    let x = margin
    label "input 16×16" x
    drawGrid canvas content.Input 0 16 16 8 x top
    let mid = top + 64
    // H1: twelve 8x8 maps.
    let x = x + 128 + blockGap
    arrow canvas (x - blockGap + 6) (x - 6) mid
    label "H1: 12 maps 8×8" x
    let h1Width, _ = drawMaps canvas layers.[0] 12 8 6 7 8 x top
    // H1's kernels under H1's maps.
    let kernelTop = top + 2 * 56 + 8 + 56
    drawLabel canvas "H1 kernels: 12 learned 5×5 weights" x (kernelTop - 8) 14.0f true SKColors.Black
    let maxAbs = content.Kernels |> Array.fold (fun m v -> max m (abs v)) 1e-12f
    let scaled = content.Kernels |> Array.map (fun v -> v / maxAbs)
    drawMaps canvas scaled 12 5 6 8 16 x kernelTop |> ignore
    drawLabel canvas $"""scale ±{maxAbs.ToString("0.00", Globalization.CultureInfo.InvariantCulture)}""" x (kernelTop + 2 * 40 + 16 + 18) 12.0f false SKColors.DimGray
    // H2: twelve 4x4 maps.
    let x = x + h1Width + blockGap
    arrow canvas (x - blockGap + 6) (x - 6) mid
    label "H2: 12 maps 4×4" x
    let h2Width, _ = drawMaps canvas layers.[1] 12 4 6 10 8 x top
    // H3: 30 units, 6 rows of 5.
    let x = x + h2Width + blockGap
    arrow canvas (x - blockGap + 6) (x - 6) mid
    label "H3: 30" x
    for u in 0 .. 29 do
        drawGrid canvas layers.[2] u 1 1 16 (x + (u % 5) * 18) (top + (u / 5) * 18)
    // Outputs: one row per class, the winner framed in red.
    let x = x + 5 * 18 + blockGap
    arrow canvas (x - blockGap + 6) (x - 6) mid
    label "output: 10" x
    let out = layers.[3]
    let winner = Loss.argmax out 0 out.Length
    for k in 0 .. 9 do
        let y = top + k * 22
        let isWinner = k = winner
        drawLabel canvas (string k) x (y + 15) 14.0f isWinner (if isWinner then SKColors.Firebrick else SKColors.Black)
        drawGrid canvas out k 1 1 18 (x + 16) y
        drawLabel canvas (out.[k].ToString("+0.00;-0.00", Globalization.CultureInfo.InvariantCulture)) (x + 42) (y + 14) 12.0f isWinner
            (if isWinner then SKColors.Firebrick else SKColors.DimGray)
        if isWinner then
            use red = new SKPaint(Color = SKColors.Firebrick, IsStroke = true, StrokeWidth = 2.5f)
            canvas.DrawRect(float32 (x + 14), float32 (y - 2), 22.0f, 22.0f, red)
    drawLabel canvas $"class {winner}" x (top + 10 * 22 + 20) 16.0f true SKColors.Firebrick
    // The grey scale.
    let barX, barY, barW = margin, kernelTop + 10, 128
    drawLabel canvas "grey scale" barX (barY - 8) 14.0f true SKColors.Black
    for i in 0 .. barW - 1 do
        let g = Plots.gray (-1.0f + 2.0f * (float32 i + 0.5f) / float32 barW)
        use p = new SKPaint(Color = SKColor(g, g, g))
        canvas.DrawRect(float32 (barX + i), float32 barY, 1.0f, 18.0f, p)
    use frame = new SKPaint(Color = SKColors.Gray, IsStroke = true, StrokeWidth = 1.0f)
    canvas.DrawRect(float32 barX - 0.5f, float32 barY - 0.5f, float32 barW + 1.0f, 19.0f, frame)
    for text, pos in [ "-1", 0; "0", barW / 2; "+1", barW ] do
        Plots.drawCentered canvas text (float32 (barX + pos)) (float32 (barY + 36)) 12.0f false SKColors.DimGray
    Plots.encodePng surface

let run (args: ParseResults<ShowArgs>) =
    let file = args.GetResult Model
    let out = args.GetResult(Out, "show.png")
    let evaluator = Providers.chooseEvaluator (args.TryGetResult Backend)
    let split = args.GetResult(Split, "test")
    if split <> "test" && split <> "train" then fail $"--split must be train or test, got '{split}'"
    let view = ModelView.load evaluator file (args.TryGetResult Data)
    let image, source =
        match args.TryGetResult Digit, args.TryGetResult Input with
        | Some _, Some _ -> fail "give either --digit or an INPUT file, not both"
        | None, None -> fail "show needs --digit N or an INPUT digit file"
        | None, Some input ->
            match DigitFiles.read input |> orFail with
            | [ image, label ] -> image, (match label with Some l -> $"{input} (label {l})" | None -> input)
            | digits -> fail $"{input} holds {digits.Length} digits; show draws one"
        | Some index, None ->
            let image, label = ModelView.digit view split index |> orFail
            image, $"{view.DataSetName} {split} digit {index} (label {label})"
    let net, parameters, info = view.Net, view.Parameters, view.Info
    let layers = Evaluator.layers evaluator net parameters (Workspace.create net 1) image
    let winner = Loss.argmax layers.[3] 0 layers.[3].Length
    let recipe = info.Recipe |> Option.defaultValue "model"
    let seed = info.Seed |> Option.map (fun s -> $", seed {s}") |> Option.defaultValue ""
    let h1w = net.Layout.View "H1w"
    let content =
        { Title = $"{recipe}{seed} reads {source}: class {winner}"
          Input = image
          Layers = layers
          Kernels = Array.sub parameters h1w.Offset h1w.Length }
    AtomicFile.writeBytes out (png content)
    printfn "%s: class %d; wrote %s" source winner out
    0
