/// Training distortions of the input digit beyond whole-pixel shifts: random affine maps (rotation,
/// scaling, shear) and elastic deformations (Simard, Steinkraus & Platt 2003), drawn per presentation
/// from their own random stream and written into the first layer's padded frame (see Distort).
namespace Lecun.Model

open System
open Lecun.Native.Kernels

/// How strongly each training presentation is distorted; all zero = the identity.
type DistortionSettings =
    { /// Rotation drawn uniformly in [-Rotation, Rotation] degrees.
      Rotation: float32
      /// Scale factors 1 + s in x and in y, each s uniform in [-Scaling, Scaling].
      Scaling: float32
      /// Shear factor uniform in [-Shear, Shear].
      Shear: float32
      /// Elastic deformation: a random field uniform in [-1, 1] per frame pixel and direction, smoothed
      /// by a Gaussian of width ElasticSigma pixels, times ElasticAlpha pixels. 0 = none.
      ElasticAlpha: float32
      ElasticSigma: float32 }

module DistortionSettings =
    let none = { Rotation = 0.0f; Scaling = 0.0f; Shear = 0.0f; ElasticAlpha = 0.0f; ElasticSigma = 2.0f }
    let isNone (s: DistortionSettings) = s.Rotation = 0.0f && s.Scaling = 0.0f && s.Shear = 0.0f && s.ElasticAlpha = 0.0f

/// The buffers and random stream of one run's distortions; `Frame` holds the last distorted digit,
/// which the first layer reads through `Unfold` (the frame's own unpadded im2col plan).
type Distorter =
    { Settings: DistortionSettings
      Height: int
      Width: int
      Pad: int
      PadValue: float32
      Frame: float32 array
      Unfold: Im2ColPlan
      DispX: float32 array
      DispY: float32 array
      Scratch: float32 array
      Kernel: float32 array
      Rng: Rng }

module Distortion =
    /// The normalized Gaussian taps of the elastic smoothing, radius ceil(3 sigma).
    let gaussianKernel (sigma: float32) =
        let r = max 1 (int (ceil (3.0f * sigma)))
        let taps = Array.init (2 * r + 1) (fun i -> let d = float32 (i - r) in exp (-(d * d) / (2.0f * sigma * sigma)))
        let total = Array.sum taps
        taps |> Array.map (fun t -> t / total)

    /// A distorter for the network's first layer (one that pads and unfolds its input, of one plane,
    /// as its kind says: ILayerSpecKind.Frame); its stream is derived from the run's seed alone, so a
    /// seed's distortions do not depend on anything else.
    let create (net: Network) (settings: DistortionSettings) (seed: int) =
        let g = net.Plans.[0].Geometry
        match g.Spec.Kind.Frame g.InShape, g.InShape with
        | Some frame, [ 1; h; w ] ->
            if settings.ElasticAlpha > 0.0f && not (settings.ElasticSigma > 0.0f) then invalidArg "settings" "the elastic sigma must be positive"
            let fh, fw = h + 2 * frame.Pad, w + 2 * frame.Pad
            { Settings = settings
              Height = h
              Width = w
              Pad = frame.Pad
              PadValue = frame.PadValue
              Frame = Array.create (fh * fw) frame.PadValue
              Unfold = frame.FrameUnfold
              DispX = Array.zeroCreate (fh * fw)
              DispY = Array.zeroCreate (fh * fw)
              Scratch = Array.zeroCreate (fh * fw)
              Kernel = gaussianKernel (if settings.ElasticSigma > 0.0f then settings.ElasticSigma else 1.0f)
              Rng = Rng.Derive(uint64 seed, 2UL) }
        | _ -> invalidArg "net" "distortions need a first layer that pads and unfolds its input, of one plane (a locally-connected one)"

    let private symmetric (rng: Rng) (bound: float32) = if bound = 0.0f then 0.0f else (2.0f * rng.NextFloat32() - 1.0f) * bound

    /// Writes image `offset` of `images`, distorted at random and moved (dx, dy) whole pixels (right,
    /// down) inside the padding, into d.Frame. Allocates nothing.
    let apply (d: Distorter) (images: float32 array) (offset: int) (dx: int) (dy: int) =
        let s = d.Settings
        let rng = d.Rng
        let theta = symmetric rng s.Rotation * (MathF.PI / 180.0f)
        let ax = 1.0f + symmetric rng s.Scaling
        let ay = 1.0f + symmetric rng s.Scaling
        let shear = symmetric rng s.Shear
        // The source point of each frame pixel: rotation * shear * scaling, about the frame's centre.
        let c, sn = MathF.Cos theta, MathF.Sin theta
        let m00, m01 = c * ax, (c * shear - sn) * ay
        let m10, m11 = sn * ax, (sn * shear + c) * ay
        let elastic = s.ElasticAlpha > 0.0f
        if elastic then
            let fh, fw = d.Height + 2 * d.Pad, d.Width + 2 * d.Pad
            for i in 0 .. d.DispX.Length - 1 do
                d.DispX.[i] <- 2.0f * rng.NextFloat32() - 1.0f
                d.DispY.[i] <- 2.0f * rng.NextFloat32() - 1.0f
            Distort.Smooth(Span d.DispX, fh, fw, ReadOnlySpan d.Kernel, Span d.Scratch)
            Distort.Smooth(Span d.DispY, fh, fw, ReadOnlySpan d.Kernel, Span d.Scratch)
            Elementwise.Multiply(ReadOnlySpan d.DispX, s.ElasticAlpha, Span d.DispX)
            Elementwise.Multiply(ReadOnlySpan d.DispY, s.ElasticAlpha, Span d.DispY)
        let pixels = d.Height * d.Width
        Distort.Warp(ReadOnlySpan(images, offset, pixels), d.Height, d.Width, d.Pad, m00, m01, m10, m11, float32 -dx, float32 -dy,
                     (if elastic then ReadOnlySpan d.DispX else ReadOnlySpan.Empty),
                     (if elastic then ReadOnlySpan d.DispY else ReadOnlySpan.Empty), d.PadValue, Span d.Frame)
