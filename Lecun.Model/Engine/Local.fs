/// The locally-connected layer kind: each output plane has one shared kernel per input plane it reads
/// (the connection table), every unit its own bias. Its products are im2col + GEMM per plane group and
/// run (or the PhasePermute path's fused products for one example), and its lane kernel is
/// LaneBatch.Local. Everything the engine asks of this kind is here (see ILayerKind).
namespace Lecun.Model

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

module LocalLayer =
    let inline private ro a offset length = Layers.ro a offset length
    let inline private rw a offset length = Layers.rw a offset length

    let private localDims (g: LayerGeometry) =
        match g.Spec, g.InShape, g.OutShape with
        | Local l, [ inPlanes; ih; iw ], [ planes; oh; ow ] -> struct (l, inPlanes, ih, iw, planes, oh * ow)
        | _ -> invalidArg "g" $"{g.Name} is not a locally-connected layer"

    /// Column gradients of a batched input gradient are computed and folded about this many floats at a time.
    let ChunkFloats = 32768

    /// Examples per chunk of a batched input gradient over columns of `rows` x `positions` per example.
    let inputGradientChunk (rows: int) (positions: int) (count: int) = max 1 (min count (ChunkFloats / (rows * positions)))

    /// Locally-connected forward for `count` examples: x [count, inPlanes, ih, iw] -> out [count, planes, oh, ow].
    /// One example (count = 1) also fills colsT, the transposed columns its backward pass reads, and runs
    /// on `path` (PhasePermute where the plan's unfold allows it, else Im2colGemm).
    /// `unfold` is the plan's own, or one of the same geometry that shifts the input (see InputShifts);
    /// a batch reads example b through perExample.[b] when perExample is not empty.
    let forward (backend: IBackend) (plan: LayerPlan) (path: KernelPath) (unfold: Im2ColPlan) (perExample: Im2ColPlan array)
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
        if count > 1 then Layers.toExampleMajor staging out planes n count
        Layers.addBias parameters g out count

    /// Locally-connected backward of one example. The gradient with respect to the input goes to dIn
    /// when `needInput`, computed first, from the weights as they were; then the weight and bias
    /// gradients go to the sink (which may be the parameters themselves, see GradientSink).
    /// Both products are a plain A*B or A^T*B:
    ///   dW[group planes, run] = dPre[group planes, positions] @ colsT[positions, run]
    ///   dCols[run, positions] += W[group planes, run]^T @ dPre[group planes, positions]
    let backward (backend: IBackend) (plan: LayerPlan) (path: KernelPath) (parameters: float32 array)
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
        Layers.biasGradient sink g.Bias.Offset dPre units
        for grp in groups do
            for run in grp.Runs do
                backend.Gemm(false, false, grp.Planes, run.Length, n, sink.Alpha,
                             ro dPre (grp.FirstPlane * n) (grp.Planes * n), n,
                             ro colsT run.ColRow ((n - 1) * rows + run.Length), rows,
                             sink.Beta, rw sink.Target (g.Weight.Offset + grp.FirstPlane * fanIn + run.WeightColumn) (grp.Planes * fanIn - run.WeightColumn), fanIn)

    /// Locally-connected backward of `count` examples whose forward pass filled cols [rows, count * positions].
    /// dPre is [count, planes, positions]; it is first laid out plane-major in `staged`. Then, with
    /// ld = count * positions:
    ///   dCols[run, ld] = W[group planes, run]^T @ staged[group planes, ld]   (when needInput), col2im'd into dIn [count, inputs]
    ///   dW[group planes, run] (sink) = staged[group planes, ld] @ cols[run, ld]^T
    /// and the bias gradient, each summed over the batch by the products themselves.
    let batchBackward (backend: IBackend) (plan: LayerPlan) (parameters: float32 array) (cols: float32 array)
                      (dPre: float32 array) (count: int) (staged: float32 array) (biasSum: float32 array) (sink: GradientSink)
                      (needInput: bool) (dCols: float32 array) (dIn: float32 array) =
        let g, groups, unfold = plan.Geometry, plan.Groups, plan.Unfold.Value
        let struct (_, _, _, _, planes, n) = localDims g
        let fanIn = g.FanIn
        let ld = count * n
        Layers.toPlaneMajor dPre staged planes n count
        if needInput then
            // A few examples at a time (their column gradients about 128 KB, so they are folded while
            // still in cache); each column's sums are the same whatever the chunk.
            let rows = unfold.Rows
            let chunk = inputGradientChunk rows n count
            for first in 0 .. chunk .. count - 1 do
                let examples = min chunk (count - first)
                let column, width = first * n, examples * n
                // Groups that read the same input planes add up: clear once, then accumulate.
                for r in 0 .. rows - 1 do (rw dCols (r * ld + column) width).Clear()
                for grp in groups do
                    for run in grp.Runs do
                        backend.Gemm(true, false, run.Length, width, grp.Planes, 1.0f,
                                     ro parameters (g.Weight.Offset + grp.FirstPlane * fanIn + run.WeightColumn) ((grp.Planes - 1) * fanIn + run.Length), fanIn,
                                     ro staged (grp.FirstPlane * ld + column) ((grp.Planes - 1) * ld + width), ld,
                                     1.0f, rw dCols (run.ColRow * ld + column) ((run.Length - 1) * ld + width), ld)
                BatchColumns.Fold(unfold, ReadOnlySpan(dCols, column, (rows - 1) * ld + width), ld, examples, Span(dIn, first * unfold.InputSize, examples * unfold.InputSize))
        Layers.batchBiasGradient sink g dPre count biasSum
        for grp in groups do
            for run in grp.Runs do
                backend.Gemm(false, true, grp.Planes, run.Length, ld, sink.Alpha,
                             ro staged (grp.FirstPlane * ld) (grp.Planes * ld), ld,
                             ro cols (run.ColRow * ld) (run.Length * ld), ld,
                             sink.Beta, rw sink.Target (g.Weight.Offset + grp.FirstPlane * fanIn + run.WeightColumn) (grp.Planes * fanIn - run.WeightColumn), fanIn)


    /// The products of one pass over `count` examples (see ILayerKind.Products).
    let products (plan: LayerPlan) (layer: int) (path: string) (count: int) (training: bool) =
        let u = plan.Unfold.Value
        let item role shape calls kernel = { Path = path; Layer = plan.Geometry.Name; Role = role; Shape = shape; Calls = calls; Kernel = kernel }
        let n = u.Positions * count
        let fused = if count = 1 then plan.ExamplePath else Im2colGemm
        Product.group
            [ for grp in plan.Groups do
                for run in grp.Runs do
                    yield item "forward" (Gemm(false, false, grp.Planes, n, run.Length)) 1 fused
                    if training then
                        if count = 1 then yield item "weight gradient" (Gemm(false, false, grp.Planes, run.Length, n)) 1 Im2colGemm
                        else yield item "weight gradient" (Gemm(false, true, grp.Planes, run.Length, n)) 1 Im2colGemm
                        if layer > 0 && count = 1 then yield item "input gradient" (Gemm(true, false, run.Length, n, grp.Planes)) 1 fused
                        elif layer > 0 then
                            // A batch's input gradient runs a few examples at a time (inputGradientChunk).
                            let chunk = inputGradientChunk u.Rows u.Positions count
                            if count / chunk > 0 then
                                yield item "input gradient" (Gemm(true, false, run.Length, chunk * u.Positions, grp.Planes)) (count / chunk) fused
                            if count % chunk > 0 then
                                yield item "input gradient" (Gemm(true, false, run.Length, (count % chunk) * u.Positions, grp.Planes)) 1 fused ]

    /// One lane batch through the layer whose padded input planes are in lane.Padded: LaneBatch.Local per plane group.
    let laneForwardLaidIn (plan: LayerPlan) (lane: LaneLayer) (parameters: float32 array) =
        let lanes = LaneBatch.Lanes
        let g = plan.Geometry
        let positions = lane.Origins.Length
        for struct (first, planes, taps) in lane.Taps do
            LaneBatch.Local(ReadOnlySpan lane.Padded, ReadOnlySpan lane.Origins, ReadOnlySpan taps,
                            ReadOnlySpan(parameters, g.Weight.Offset + first * g.FanIn, planes * g.FanIn), planes,
                            ReadOnlySpan(parameters, g.Bias.Offset + first * positions, planes * positions),
                            Span(lane.Out, first * positions * lanes, planes * positions * lanes))

    /// One lane batch through the layer: pad the input planes, then laneForwardLaidIn.
    let laneForward (plan: LayerPlan) (lane: LaneLayer) (parameters: float32 array) (input: float32 array) =
        let struct (l, inPlanes, h, w, _, _) = localDims plan.Geometry
        LaneBatch.Pad(ReadOnlySpan input, inPlanes, h, w, l.Padding, Span lane.Padded)
        laneForwardLaidIn plan lane parameters

    /// One lane batch's backward (see ILayerKind.LaneBackward): the transposed implicit GEMM through the
    /// forward pass's window and tap tables into the padded input gradient, each plane group adding in
    /// turn, then its interior; the weight gradients per lane from the padded input the forward pass
    /// read; the bias gradients per lane.
    let laneBackward (plan: LayerPlan) (layer: LaneTrainingLayer) (parameters: float32 array) (needInput: bool) =
        let lanes = LaneBatch.Lanes
        let g = plan.Geometry
        let struct (l, inPlanes, h, w, _, _) = localDims g
        let lane = layer.Lane
        let positions = lane.Origins.Length
        let fanIn = g.FanIn
        if needInput then
            Array.Clear layer.PaddedDelta
            for struct (first, planes, taps) in lane.Taps do
                LaneGradients.LocalInputGradient(ro layer.DeltaPre (first * positions * lanes) (planes * positions * lanes), ReadOnlySpan lane.Origins, ReadOnlySpan taps,
                                                 ReadOnlySpan(parameters, g.Weight.Offset + first * fanIn, planes * fanIn), planes, Span layer.PaddedDelta)
            LaneBatch.Unpad(ReadOnlySpan layer.PaddedDelta, inPlanes, h, w, l.Padding, Span layer.DeltaIn)
        for struct (first, planes, taps) in lane.Taps do
            LaneGradients.LocalWeightGradient(ReadOnlySpan lane.Padded, ReadOnlySpan lane.Origins, ReadOnlySpan taps,
                                              ro layer.DeltaPre (first * positions * lanes) (planes * positions * lanes), planes,
                                              Span(layer.WeightLanes, first * fanIn * lanes, planes * fanIn * lanes))
        Layers.addLaneBiases layer

    let kind =
        { new ILayerKind with
            member _.Forward(backend, plan, ws, i, firstUnfold, shifted, parameters, input, inputOffset, count) =
                let unfold = match firstUnfold with ValueSome u -> u | ValueNone -> plan.Unfold.Value
                let perExample = if shifted then ws.FirstUnfolds else Array.empty
                forward backend plan (KernelPath.under backend plan.ExamplePath) unfold perExample parameters input inputOffset count
                        ws.Cols.[i] ws.ColsT.[i] ws.Staging.[i] ws.UnfoldScratch.[i] ws.Outputs.[i]

            member _.Backward(backend, plan, ws, i, parameters, _, _, dPre, sink, needInput) =
                backward backend plan (KernelPath.under backend plan.ExamplePath) parameters ws.ColsT.[i] dPre sink needInput ws.DeltaCols.[i] ws.DeltaIn.[i]

            member _.BatchBackward(backend, plan, ws, i, parameters, _, _, dPre, count, sink, needInput) =
                batchBackward backend plan parameters ws.Cols.[i] dPre count ws.Staging.[i] ws.DeltaPre.[i] sink needInput
                              ws.BatchDeltaCols.[i] ws.BatchDeltaIn.[i]

            member _.Curvature(backend, plan, ws, i, squaredWeights, _, squaredColumns, hPre, sink, needInput) =
                Elementwise.Multiply(ReadOnlySpan ws.ColsT.[i], ReadOnlySpan ws.ColsT.[i], Span squaredColumns)
                backward backend plan (KernelPath.under backend plan.ExamplePath) squaredWeights squaredColumns hPre sink needInput ws.DeltaCols.[i] ws.DeltaIn.[i]

            member _.Products(plan, layer, path, count, training) = products plan layer path count training

            member _.LaneForward(plan, lane, parameters, input) = laneForward plan lane parameters input

            member _.LaneForwardLaidIn(plan, lane, parameters) = laneForwardLaidIn plan lane parameters

            member _.LaneBackward(plan, layer, parameters, _, needInput) = laneBackward plan layer parameters needInput

            member _.LaneGradientSum(plan, first, second, grad) = Layers.laneSums plan first second grad true }
