/// The techniques added after the 33-year ladder: each changes how the network is trained,
/// none the network or its inference cost.
namespace Lecun.Model

/// How AdamW's learning rate moves from the recipe's rate to its final rate over the passes.
type LrSchedule =
    /// Linearly, pass by pass (modern's).
    | Linear
    /// Along half a cosine (Loshchilov & Hutter 2017): slowly at first and last, fastest in the middle.
    | Cosine

module LrSchedule =
    let names = [ Linear, "linear"; Cosine, "cosine" ]
    let name (s: LrSchedule) = NameTable.name names s
    let parse (text: string) = NameTable.parse "schedule" names text

    /// The fraction of the way from the initial to the final rate at pass `pass` (1-based) of `passes`.
    let progress (s: LrSchedule) (passes: int) (pass: int) =
        let t = if passes <= 1 then 0.0f else float32 (pass - 1) / float32 (passes - 1)
        match s with
        | Linear -> t
        | Cosine -> 0.5f * (1.0f - cos (System.MathF.PI * t))

type Refinements =
    { /// Affine and elastic distortions of each training presentation (beside the recipe's shifts).
      Distortion: DistortionSettings
      /// Averages the weights at the end of each of the last N passes (0 = none).
      AverageLast: int
      /// Label smoothing of softmax cross-entropy's targets (0 = none).
      LabelSmoothing: float32
      Schedule: LrSchedule
      /// Distillation from an ensemble of copies of the network trained first (None = none).
      Distill: DistillSettings option
      /// Sharpness-aware minimization's radius rho (Sam.fs), per example; 0 = none.
      Sam: float32
      /// Tangent propagation's weight (TangentProp.fs); 0 = none.
      TangentProp: float32 }

module Refinements =
    let none =
        { Distortion = DistortionSettings.none; AverageLast = 0; LabelSmoothing = 0.0f; Schedule = Linear; Distill = None; Sam = 0.0f; TangentProp = 0.0f }

    /// True when the training loss is not plain softmax cross-entropy on the labels.
    let softTargets (r: Refinements) = r.LabelSmoothing > 0.0f || r.Distill.IsSome
