/// Tangent propagation (Simard, Victorri, LeCun & Denker 1992) in its finite-difference form: the
/// network's outputs should not move when the digit moves a little along the tangent of a small
/// translation, rotation, scaling or line thickening. Each presentation draws one such direction t (a
/// random mix of the five tangents of the presented, already distorted frame) and adds to the loss
///   weight / (2 step^2) |P (f(x + step t) - f(x))|^2,
/// P removing the mean of the ten outputs (softmax ignores it); for a small step this is the tangent
/// propagation penalty weight / 2 |P J t|^2 (J the outputs' Jacobian) without its second derivatives.
namespace Lecun.Model

open System

/// One run's tangent-propagation buffers and random stream, allocated once.
type TangentBuffers =
    { Height: int
      Width: int
      /// The perturbed frame x + step t, which the second forward pass reads.
      Perturbed: float32 array
      /// The frame's horizontal and vertical derivatives (central differences).
      Dx: float32 array
      Dy: float32 array
      /// The second forward and backward pass's workspace and its output gradient.
      Workspace: Workspace
      DOut: float32 array
      Rng: Rng }

module TangentProp =
    /// How far along the tangent the second pass looks: a tenth of the mixed direction, whose parts
    /// move ink by up to about a pixel (the finite difference's step).
    let step = 0.1f

    /// The scale of each tangent in the mix: one pixel of translation and thickening, 0.1 radian of
    /// rotation and 10% of scaling move the ink of a 16x16 digit by comparable amounts.
    let private rotationScale, scalingScale = 0.1f, 0.1f

    /// Buffers for a network whose first layer reads a frame of frameHeight x frameWidth; the stream is
    /// derived from the run's seed alone.
    let create (net: Network) (frameHeight: int) (frameWidth: int) (seed: int) =
        let n = frameHeight * frameWidth
        { Height = frameHeight
          Width = frameWidth
          Perturbed = Array.zeroCreate n
          Dx = Array.zeroCreate n
          Dy = Array.zeroCreate n
          Workspace = Workspace.create net 1
          DOut = Array.zeroCreate net.Layout.OutputSize
          Rng = Rng.Derive(uint64 seed, 3UL) }

    /// The tangent at frame pixel (y, x) of the five transformations mixed with coefficients cx, cy
    /// (translations, pixels), cr (rotation), cs (scaling), ct (thickening), from the frame's derivatives.
    let private tangentAt (b: TangentBuffers) (i: int) (y: int) (x: int) (cx: float32) (cy: float32) (cr: float32) (cs: float32) (ct: float32) =
        let gx, gy = b.Dx.[i], b.Dy.[i]
        // Coordinates about the frame's centre.
        let u = float32 x - 0.5f * float32 (b.Width - 1)
        let v = float32 y - 0.5f * float32 (b.Height - 1)
        // Moving the image by (dx, dy) changes pixel p by -(dx gx + dy gy); a rotation moves p by
        // (-v, u) theta, a scaling by (u, v) s; thickening moves each edge along its normal.
        -(cx * gx + cy * gy) - cr * rotationScale * (-v * gx + u * gy) - cs * scalingScale * (u * gx + v * gy)
        + ct * MathF.Sqrt(gx * gx + gy * gy)

    /// The frame's derivatives by central differences (one-sided at the frame's edge) into b.Dx, b.Dy.
    let derivatives (b: TangentBuffers) (frame: float32 array) =
        let h, w = b.Height, b.Width
        for y in 0 .. h - 1 do
            let up, down = max 0 (y - 1), min (h - 1) (y + 1)
            for x in 0 .. w - 1 do
                let left, right = max 0 (x - 1), min (w - 1) (x + 1)
                b.Dx.[y * w + x] <- (frame.[y * w + right] - frame.[y * w + left]) / float32 (right - left)
                b.Dy.[y * w + x] <- (frame.[down * w + x] - frame.[up * w + x]) / float32 (down - up)

    /// The tangent of the given mix at every pixel of `frame` into `tangent` (for tests and pictures).
    let tangent (b: TangentBuffers) (frame: float32 array) (cx, cy, cr, cs, ct) (tangent: float32 array) =
        derivatives b frame
        for y in 0 .. b.Height - 1 do
            for x in 0 .. b.Width - 1 do
                tangent.[y * b.Width + x] <- tangentAt b (y * b.Width + x) y x cx cy cr cs ct

    /// Draws a mix (each coefficient uniform in [-1, 1]) and writes frame + step t into b.Perturbed.
    let perturb (b: TangentBuffers) (frame: float32 array) =
        derivatives b frame
        let cx = 2.0f * b.Rng.NextFloat32() - 1.0f
        let cy = 2.0f * b.Rng.NextFloat32() - 1.0f
        let cr = 2.0f * b.Rng.NextFloat32() - 1.0f
        let cs = 2.0f * b.Rng.NextFloat32() - 1.0f
        let ct = 2.0f * b.Rng.NextFloat32() - 1.0f
        for y in 0 .. b.Height - 1 do
            for x in 0 .. b.Width - 1 do
                let i = y * b.Width + x
                b.Perturbed.[i] <- frame.[i] + step * tangentAt b i y x cx cy cr cs ct

    /// The penalty weight / (2 step^2) |P (yPerturbed - y)|^2 on outputs [0, outputs).
    let value (weight: float32) (y: float32 array) (yPerturbed: float32 array) (outputs: int) =
        let mutable mean = 0.0
        for k in 0 .. outputs - 1 do
            mean <- mean + float (yPerturbed.[k] - y.[k])
        mean <- mean / float outputs
        let mutable squares = 0.0
        for k in 0 .. outputs - 1 do
            let d = float (yPerturbed.[k] - y.[k]) - mean
            squares <- squares + d * d
        float weight / (2.0 * float step * float step) * squares

    /// The penalty's gradient: r = weight / step^2 P (yPerturbed - y) into dOutPerturbed, and -r added to
    /// dOut (the loss gradient at the unperturbed digit).
    let addGradient (weight: float32) (y: float32 array) (yPerturbed: float32 array) (outputs: int) (dOut: float32 array) (dOutPerturbed: float32 array) =
        let mutable mean = 0.0f
        for k in 0 .. outputs - 1 do
            mean <- mean + (yPerturbed.[k] - y.[k])
        mean <- mean / float32 outputs
        let scale = weight / (step * step)
        for k in 0 .. outputs - 1 do
            let r = scale * (yPerturbed.[k] - y.[k] - mean)
            dOutPerturbed.[k] <- r
            dOut.[k] <- dOut.[k] - r
