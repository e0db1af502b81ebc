/// Parameter updates over the flat buffer: one vector operation each, whatever the network.
module Lecun.Model.Optimizer

open System

/// Plain gradient descent: p <- p - lr * g (no momentum, no weight decay), as the paper's recipe.
let sgdStep (learningRate: float32) (parameters: float32 array) (grad: float32 array) =
    Lecun.Native.Kernels.Elementwise.MultiplyAdd(ReadOnlySpan grad, -learningRate, ReadOnlySpan parameters, Span parameters)

/// Per-parameter rates (the diagonal Newton step): p <- p - rate_i * g_i.
let scaledStep (rates: float32 array) (parameters: float32 array) (grad: float32 array) (scratch: float32 array) =
    Lecun.Native.Kernels.Elementwise.Multiply(ReadOnlySpan rates, ReadOnlySpan grad, Span scratch)
    Lecun.Native.Kernels.Elementwise.Subtract(ReadOnlySpan parameters, ReadOnlySpan scratch, Span parameters)

/// AdamW's moment estimates and step count.
type AdamState =
    { M: float32 array
      V: float32 array
      mutable Step: int }

module AdamState =
    let create n = { M = Array.zeroCreate n; V = Array.zeroCreate n; Step = 0 }

/// One AdamW step (Loshchilov & Hutter; PyTorch's torch.optim.AdamW): decoupled weight decay
/// p <- p (1 - lr wd), then p <- p - lr m_hat / (sqrt v_hat + eps).
let adamWStep (lr: float32) (weightDecay: float32) (beta1: float32) (beta2: float32) (epsilon: float32)
              (state: AdamState) (parameters: float32 array) (grad: float32 array) =
    state.Step <- state.Step + 1
    let t = float state.Step
    let bias1 = 1.0f - float32 (Math.Pow(float beta1, t))
    let bias2Sqrt = float32 (sqrt (1.0 - Math.Pow(float beta2, t)))
    let decay = 1.0f - lr * weightDecay
    Lecun.Native.Kernels.AdamW.Step(Span parameters, ReadOnlySpan grad, Span state.M, Span state.V, decay, lr / bias1, beta1, beta2, bias2Sqrt, epsilon)
