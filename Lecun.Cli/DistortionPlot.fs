/// A picture of digits under a recipe's training distortions, as the first layer sees them
/// (in its padded 20x20 frame; the 16x16 box of the original digit is outlined).
module Lecun.Cli.DistortionPlot

open System
open SkiaSharp
open Lecun.Model

let private scale, gap, header = 5, 8, 56

/// "refined: rotation up to 10°, scaling up to 0.1, shifts up to 1 px" for the picture's title.
let title (recipe: string) (s: DistortionSettings) (shift: int) =
    let parts =
        [ if s.Rotation > 0.0f then $"rotation up to {s.Rotation}°"
          if s.Scaling > 0.0f then $"scaling up to {s.Scaling}"
          if s.Shear > 0.0f then $"shear up to {s.Shear}"
          if s.ElasticAlpha > 0.0f then $"elastic α {s.ElasticAlpha} σ {s.ElasticSigma}"
          if shift > 0 then $"shifts up to {shift} px" ]
    recipe + ": " + String.concat ", " parts

/// Row r: the original digit of images.[r] in its frame, then `copies` distortions of it, drawn by
/// a distorter of its own (seed `seed`), each with a random shift of up to `shift` pixels as in training.
let png (title: string) (net: Network) (settings: DistortionSettings) (shift: int) (seed: int) (images: float32 array array) (copies: int) =
    let d = Distortion.create net settings seed
    let identity = Distortion.create net DistortionSettings.none seed
    let rng = Rng.Derive(uint64 seed, 3UL)
    let fh, fw = d.Height + 2 * d.Pad, d.Width + 2 * d.Pad
    let cellW, cellH = fw * scale, fh * scale
    let width = gap + (copies + 1) * (cellW + gap)
    let height = header + images.Length * (cellH + gap) + gap
    use surface = SKSurface.Create(SKImageInfo(max width 420, height))
    let canvas = surface.Canvas
    canvas.Clear SKColors.White
    use font = new SKFont(SKTypeface.Default, 15.0f)
    use black = new SKPaint(Color = SKColors.Black, IsAntialias = true)
    canvas.DrawText(title, 10.0f, 22.0f, SKTextAlign.Left, font, black)
    use small = new SKFont(SKTypeface.Default, 12.0f)
    use dim = new SKPaint(Color = SKColors.DimGray, IsAntialias = true)
    canvas.DrawText("first column: the digit; then training presentations (frame = H1's padding, box = the 16x16 digit)", 10.0f, 44.0f, SKTextAlign.Left, small, dim)
    use paint = new SKPaint(IsAntialias = false)
    use box = new SKPaint(Color = SKColors.SkyBlue, IsStroke = true, StrokeWidth = 1.0f)
    use outline = new SKPaint(Color = SKColors.LightGray, IsStroke = true, StrokeWidth = 1.0f)
    let draw (frame: float32 array) (x: int) (y: int) =
        for r in 0 .. fh - 1 do
            for c in 0 .. fw - 1 do
                let v = Math.Clamp(frame.[r * fw + c], -1.0f, 1.0f)
                let g = byte (MathF.Round((1.0f - v) * 0.5f * 255.0f))
                paint.Color <- SKColor(g, g, g)
                canvas.DrawRect(float32 (x + c * scale), float32 (y + r * scale), float32 scale, float32 scale, paint)
        canvas.DrawRect(float32 x - 0.5f, float32 y - 0.5f, float32 cellW + 1.0f, float32 cellH + 1.0f, outline)
        canvas.DrawRect(float32 (x + d.Pad * scale) - 0.5f, float32 (y + d.Pad * scale) - 0.5f, float32 (d.Width * scale) + 1.0f, float32 (d.Height * scale) + 1.0f, box)
    images
    |> Array.iteri (fun row image ->
        let y = header + row * (cellH + gap)
        Distortion.apply identity image 0 0 0
        draw identity.Frame gap y
        for k in 1 .. copies do
            let dx, dy = (if shift > 0 then rng.NextInt(2 * shift + 1) - shift, rng.NextInt(2 * shift + 1) - shift else 0, 0)
            Distortion.apply d image 0 dx dy
            draw d.Frame (gap + k * (cellW + gap)) y)
    use image = surface.Snapshot()
    use data = image.Encode(SKEncodedImageFormat.Png, 100)
    data.ToArray()
