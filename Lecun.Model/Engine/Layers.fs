/// The layers' forward/backward pairs over the flat parameter buffer, with explicit shapes: a
/// locally-connected layer is im2col + GEMM (or its fused PhasePermute path), a dense layer GEMV/GEMM.
/// One example at a time for backward (the paper's training), any count for forward; the batched
/// backward pairs are in BatchLayers.
namespace Lecun.Model

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

module Layers =
    let inline internal ro (a: float32 array) (offset: int) (length: int) = ReadOnlySpan<float32>(a, offset, length)
    let inline internal rw (a: float32 array) (offset: int) (length: int) = Span<float32>(a, offset, length)

    let internal localDims (g: LayerGeometry) =
        match g.Spec, g.InShape, g.OutShape with
        | Local l, [ inPlanes; ih; iw ], [ planes; oh; ow ] -> struct (l, inPlanes, ih, iw, planes, oh * ow)
        | _ -> invalidArg "g" $"{g.Name} is not a locally-connected layer"

    /// y = act(a) in place over the first `length` values of a layer's output buffer (any count of examples).
    let activationForward (act: Activation) (y: float32 array) (length: int) =
        match act with
        | Tanh -> FastTanh.Apply(ro y 0 length, rw y 0 length)
        | ScaledTanh ->
            let s = rw y 0 length
            Elementwise.Multiply(s, Elementwise.ScaledTanhS, s)
            FastTanh.Apply(s, s)
            Elementwise.Multiply(s, Elementwise.ScaledTanhA, s)
        | Relu -> Elementwise.ReluForward(ro y 0 length, rw y 0 length)
        | Identity -> ()

    /// dPre = act'(pre) * dY over the first `length` values, written through the units' outputs y.
    let activationBackward (act: Activation) (y: float32 array) (dy: float32 array) (dPre: float32 array) (length: int) =
        match act with
        | Tanh -> Elementwise.TanhBackward(ro y 0 length, ro dy 0 length, rw dPre 0 length)
        | ScaledTanh -> Elementwise.ScaledTanhBackward(ro y 0 length, ro dy 0 length, rw dPre 0 length)
        | Relu -> Elementwise.ReluBackward(ro y 0 length, ro dy 0 length, rw dPre 0 length)
        | Identity -> Array.blit dy 0 dPre 0 length

    /// [count, planes, positions] <-> [planes, count * positions]: example-major outputs and the
    /// plane-major matrices of a batched locally-connected layer's GEMMs.
    let internal toPlaneMajor (source: float32 array) (target: float32 array) (planes: int) (positions: int) (count: int) =
        let ld = count * positions
        for b in 0 .. count - 1 do
            for p in 0 .. planes - 1 do
                Array.blit source ((b * planes + p) * positions) target (p * ld + b * positions) positions

    let internal toExampleMajor (source: float32 array) (target: float32 array) (planes: int) (positions: int) (count: int) =
        let ld = count * positions
        for p in 0 .. planes - 1 do
            for b in 0 .. count - 1 do
                Array.blit source (p * ld + b * positions) target ((b * planes + p) * positions) positions

    /// out[b] += bias for each of `count` examples.
    let internal addBias (parameters: float32 array) (g: LayerGeometry) (out: float32 array) (count: int) =
        let units = g.Units
        for b in 0 .. count - 1 do
            let o = rw out (b * units) units
            Elementwise.Add(o, ro parameters g.Bias.Offset units, o)

    /// Locally-connected forward for `count` examples: x [count, inPlanes, ih, iw] -> out [count, planes, oh, ow].
    /// One example (count = 1) also fills colsT, the transposed columns its backward pass reads, and runs
    /// on `path` (PhasePermute where the plan's unfold allows it, else Im2colGemm).
    /// `unfold` is the plan's own, or one of the same geometry that shifts the input (see InputShifts);
    /// a batch reads example b through perExample.[b] when perExample is not empty.
    let localForward (backend: IBackend) (plan: LayerPlan) (path: KernelPath) (unfold: Im2ColPlan) (perExample: Im2ColPlan array)
                     (parameters: float32 array) (x: float32 array) (xOffset: int) (count: int)
                     (cols: float32 array) (colsT: float32 array) (staging: float32 array) (scratch: float32 array) (out: float32 array) =
        let g, groups = plan.Geometry, plan.Groups
        let struct (l, inPlanes, ih, iw, planes, n) = localDims g
        let inSize = inPlanes * ih * iw
        let ld = count * n
        // A batch of one (a chunk or a last batch of one digit) reads its digit through its own plan too.
        let unfold = if count = 1 && perExample.Length > 0 then perExample.[0] else unfold
        // One example reads the plan's input size: a distorted digit's padded frame is larger (see Distortion).
        if count = 1 then unfold.ForwardBoth(ro x xOffset unfold.InputSize, l.PadValue, Span cols, Span colsT, Span scratch)
        else
            for b in 0 .. count - 1 do
                let u = if perExample.Length > 0 then perExample.[b] else unfold
                u.Forward(ro x (xOffset + b * inSize) inSize, l.PadValue, Span cols, b * n, ld, Span scratch)
        // One example's GEMM lands in place; a batch's lands plane-major and is transposed after.
        let target = if count = 1 then out else staging
        let fanIn = g.FanIn
        if count = 1 && path = PhasePermute && unfold.FusesProducts then
            unfold.Product(ro parameters g.Weight.Offset g.Weight.Length, fanIn, ReadOnlySpan cols, planes, ReadOnlySpan plan.Segments, Span out)
        else
            for grp in groups do
                let mutable beta = 0.0f
                for run in grp.Runs do
                    backend.Gemm(false, false, grp.Planes, ld, run.Length, 1.0f,
                                 ro parameters (g.Weight.Offset + grp.FirstPlane * fanIn + run.WeightColumn) (grp.Planes * fanIn - run.WeightColumn),
                                 fanIn, ro cols (run.ColRow * ld) (run.Length * ld), ld,
                                 beta, rw target (grp.FirstPlane * ld) (grp.Planes * ld), ld)
                    beta <- 1.0f
        if count > 1 then toExampleMajor staging out planes n count
        addBias parameters g out count

    /// Dense forward for `count` examples: x [count, in] -> out [count, units] = x @ W + b.
    let denseForward (backend: IBackend) (g: LayerGeometry) (parameters: float32 array)
                     (x: float32 array) (xOffset: int) (count: int) (out: float32 array) =
        let fanIn, units = g.FanIn, g.Units
        let w = ro parameters g.Weight.Offset g.Weight.Length
        if count = 1 then backend.Gemv(true, fanIn, units, 1.0f, w, units, ro x xOffset fanIn, 0.0f, rw out 0 units)
        else backend.Gemm(false, false, count, units, fanIn, 1.0f, ro x xOffset (count * fanIn), fanIn, w, units, 0.0f, rw out 0 (count * units), units)
        addBias parameters g out count

    /// A bias gradient (one per unit) into its slice of the sink.
    let internal biasGradient (sink: GradientSink) (offset: int) (dPre: float32 array) (units: int) =
        let target = rw sink.Target offset units
        if sink.Beta = 0.0f && sink.Alpha = 1.0f then (ro dPre 0 units).CopyTo target
        elif sink.Beta = 0.0f then Elementwise.Multiply(ro dPre 0 units, sink.Alpha, target)
        else Elementwise.MultiplyAdd(ro dPre 0 units, sink.Alpha, target, target)

    /// Locally-connected backward of one example. The gradient with respect to the input goes to dIn
    /// when `needInput`, computed first, from the weights as they were; then the weight and bias
    /// gradients go to the sink (which may be the parameters themselves, see GradientSink).
    /// Both products are a plain A*B or A^T*B:
    ///   dW[group planes, run] = dPre[group planes, positions] @ colsT[positions, run]
    ///   dCols[run, positions] += W[group planes, run]^T @ dPre[group planes, positions]
    let localBackward (backend: IBackend) (plan: LayerPlan) (path: KernelPath) (parameters: float32 array)
                      (colsT: float32 array) (dPre: float32 array) (sink: GradientSink)
                      (needInput: bool) (dCols: float32 array) (dIn: float32 array) =
        let g, groups, unfold = plan.Geometry, plan.Groups, plan.Unfold.Value
        let struct (_, _, _, _, _, n) = localDims g
        let rows = unfold.Rows
        let fanIn = g.FanIn
        let units = g.Units
        if needInput && path = PhasePermute && unfold.FusesProducts then
            let planes = List.head g.OutShape
            unfold.InputGradient(ro parameters g.Weight.Offset g.Weight.Length, fanIn, ro dPre 0 units, planes,
                                 ReadOnlySpan plan.Segments, Span dCols, Span dIn)
        elif needInput then
            // Clears the columns and the zero after them that col2im reads.
            Array.Clear dCols
            for grp in groups do
                for run in grp.Runs do
                    backend.Gemm(true, false, run.Length, n, grp.Planes, 1.0f,
                                 ro parameters (g.Weight.Offset + grp.FirstPlane * fanIn + run.WeightColumn) ((grp.Planes - 1) * fanIn + run.Length), fanIn,
                                 ro dPre (grp.FirstPlane * n) (grp.Planes * n), n,
                                 1.0f, rw dCols (run.ColRow * n) (run.Length * n), n)
            unfold.Backward(ReadOnlySpan dCols, Span dIn)
        biasGradient sink g.Bias.Offset dPre units
        for grp in groups do
            for run in grp.Runs do
                backend.Gemm(false, false, grp.Planes, run.Length, n, sink.Alpha,
                             ro dPre (grp.FirstPlane * n) (grp.Planes * n), n,
                             ro colsT run.ColRow ((n - 1) * rows + run.Length), rows,
                             sink.Beta, rw sink.Target (g.Weight.Offset + grp.FirstPlane * fanIn + run.WeightColumn) (grp.Planes * fanIn - run.WeightColumn), fanIn)

    /// Dense backward of one example: dIn = W dPre (first, from the weights as they were), then
    /// dW = x^T dPre and db = dPre into the sink.
    let denseBackward (backend: IBackend) (g: LayerGeometry) (parameters: float32 array) (x: float32 array) (xOffset: int)
                      (dPre: float32 array) (sink: GradientSink) (needInput: bool) (dIn: float32 array) =
        let fanIn, units = g.FanIn, g.Units
        if needInput then
            backend.Gemv(false, fanIn, units, 1.0f, ro parameters g.Weight.Offset g.Weight.Length, units, ReadOnlySpan dPre, 0.0f, Span dIn)
        backend.Gemm(false, false, fanIn, units, 1, sink.Alpha, ro x xOffset fanIn, 1, ReadOnlySpan dPre, units,
                     sink.Beta, rw sink.Target g.Weight.Offset g.Weight.Length, units)
        biasGradient sink g.Bias.Offset dPre units
