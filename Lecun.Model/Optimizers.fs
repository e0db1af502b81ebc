/// The optimizers as the training loop sees them: one module each behind IOptimizer (create, then
/// BeginPass and Step), so the loop runs the same code whatever the optimizer and a run allocates only
/// its own optimizer's state. The update kernels are Optimizer.fs's.
namespace Lecun.Model

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

type IOptimizer =
    /// Before each pass, at the pass's rate (Newton re-estimates its curvature here).
    abstract BeginPass:
        backend: IBackend * net: Network * loss: Loss * parameters: float32 array * data: Dataset * rate: float32 * batch: int -> unit

    /// The step on `grad`, the sum of the gradients of `size` examples: the recipe's `batch`, or fewer
    /// for a short last batch (which averages over what it has).
    abstract Step: rate: float32 * batch: int * size: int * parameters: float32 array * grad: float32 array -> unit

    /// Where one example's gradient may go straight into the parameters instead of a gradient buffer
    /// and Step (the paper's per-example SGD step, fused into the backward pass), or ValueNone.
    abstract FusedSink: rate: float32 * batch: int * parameters: float32 array -> GradientSink voption

/// Plain gradient descent on the batch's mean gradient; at batch 1 its step is fused into the
/// backward pass (GradientSink.sgd), with the same roundings.
module SgdOptimizer =
    let create () =
        { new IOptimizer with
            member _.BeginPass(_, _, _, _, _, _, _) = ()
            member _.Step(rate, _, size, parameters, grad) = Optimizer.sgdStep (rate / float32 size) parameters grad
            member _.FusedSink(rate, batch, parameters) = if batch = 1 then ValueSome(GradientSink.sgd parameters rate) else ValueNone }

/// The paper's diagonal Newton method: per-parameter rates eps / (B (mu + h)) from the curvature
/// estimated before each pass (Newton.fs).
module NewtonOptimizer =
    let create (settings: NewtonSettings) (parameterCount: int) =
        let rates = Array.zeroCreate<float32> parameterCount
        let scratch = Array.zeroCreate<float32> parameterCount
        { new IOptimizer with
            member _.BeginPass(backend, net, loss, parameters, data, rate, batch) =
                let h = Newton.estimateDiagonal backend net loss parameters data settings.Patterns
                for i in 0 .. h.Length - 1 do
                    rates.[i] <- rate / (float32 batch * (settings.Mu + h.[i]))
            member _.Step(_, batch, size, parameters, grad) =
                if size <> batch then Elementwise.Multiply(ReadOnlySpan grad, float32 batch / float32 size, Span grad)
                Optimizer.scaledStep rates parameters grad scratch
            member _.FusedSink(_, _, _) = ValueNone }

/// AdamW on the batch's mean gradient.
module AdamWOptimizer =
    let create (settings: AdamWSettings) (parameterCount: int) =
        let state = Optimizer.AdamState.create parameterCount
        { new IOptimizer with
            member _.BeginPass(_, _, _, _, _, _, _) = ()
            member _.Step(rate, _, size, parameters, grad) =
                if size > 1 then Elementwise.Multiply(ReadOnlySpan grad, 1.0f / float32 size, Span grad)
                Optimizer.adamWStep rate settings.WeightDecay settings.Beta1 settings.Beta2 settings.Epsilon state parameters grad
            member _.FusedSink(_, _, _) = ValueNone }

module Optimizers =
    /// The recipe's optimizer for a buffer of `parameterCount` parameters.
    let create (kind: OptimizerKind) (parameterCount: int) =
        match kind with
        | Sgd -> SgdOptimizer.create ()
        | Newton settings -> NewtonOptimizer.create settings parameterCount
        | AdamW settings -> AdamWOptimizer.create settings parameterCount
