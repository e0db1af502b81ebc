/// Parameter updates over the flat buffer: one vector operation each, whatever the network.
module Lecun.Model.Optimizer

open System
open System.Numerics.Tensors

/// Plain gradient descent: p <- p - lr * g (no momentum, no weight decay), as the paper's recipe.
let sgdStep (learningRate: float32) (parameters: float32 array) (grad: float32 array) =
    TensorPrimitives.MultiplyAdd(ReadOnlySpan grad, -learningRate, ReadOnlySpan parameters, Span parameters)
