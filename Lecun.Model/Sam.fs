/// Sharpness-aware minimization (Foret, Kleiner, Mobahi & Neyshabur 2021), one example at a time: the
/// gradient an optimizer steps on is taken at the weights moved a distance rho up the example's own
/// gradient, w + rho g / |g|, so that training prefers weights whose whole neighbourhood has a low loss.
/// Per-example perturbations (SAM's "m = 1") are the variant its authors found to generalize best.
namespace Lecun.Model

/// SAM's buffers for one run, allocated once.
type SamBuffers =
    { /// The example's gradient at the unperturbed weights.
      Ascent: float32 array
      /// The unperturbed weights, put back bit for bit after the perturbed gradient.
      Saved: float32 array }

module Sam =
    let create (parameters: int) = { Ascent = Array.zeroCreate parameters; Saved = Array.zeroCreate parameters }

    /// Moves the weights to w + rho g / |g| (g = b.Ascent), keeping w in b.Saved; a zero gradient
    /// leaves them where they are.
    let ascend (b: SamBuffers) (rho: float32) (parameters: float32 array) =
        System.Array.Copy(parameters, b.Saved, parameters.Length)
        let mutable squares = 0.0
        for g in b.Ascent do
            squares <- squares + float g * float g
        if squares > 0.0 then
            let scale = float32 (float rho / sqrt squares)
            for i in 0 .. parameters.Length - 1 do
                parameters.[i] <- parameters.[i] + scale * b.Ascent.[i]

    let restore (b: SamBuffers) (parameters: float32 array) = System.Array.Copy(b.Saved, parameters, parameters.Length)

    /// One example's sharpness-aware gradient into `grad` (added when `accumulate`): `gradientInto target
    /// accumulate` runs the example (same input, same dropout mask) at the current weights and writes its
    /// gradient into `target`; it runs first at w, then at w + rho g / |g|. The weights are w again after.
    let inline gradient (b: SamBuffers) (rho: float32) (parameters: float32 array)
                 (gradientInto: float32 array -> bool -> unit) (grad: float32 array) (accumulate: bool) =
        gradientInto b.Ascent false
        ascend b rho parameters
        gradientInto grad accumulate
        restore b parameters
