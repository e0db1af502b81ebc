/// The layers' backward passes over a whole batch (minibatch training): one GEMM per plane group and
/// run (locally-connected) or one per layer (dense) for the input gradients and the weight gradients
/// of all `count` examples, summed over the batch. The forward half is Layers' (any count).
namespace Lecun.Model

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

module BatchLayers =
    let inline private ro a offset length = Layers.ro a offset length
    let inline private rw a offset length = Layers.rw a offset length

    /// Column gradients of a batched input gradient are computed and folded about this many floats at a time.
    let ChunkFloats = 32768

    /// Examples per chunk of a batched input gradient over columns of `rows` x `positions` per example.
    let inputGradientChunk (rows: int) (positions: int) (count: int) = max 1 (min count (ChunkFloats / (rows * positions)))

    /// The bias gradient of a batch: dPre [count, units] summed over the examples (into `sum`), then into the sink.
    let private biasGradient (sink: GradientSink) (g: LayerGeometry) (dPre: float32 array) (count: int) (sum: float32 array) =
        let units = g.Units
        Array.blit dPre 0 sum 0 units
        for b in 1 .. count - 1 do
            Elementwise.Add(ro sum 0 units, ro dPre (b * units) units, rw sum 0 units)
        Layers.biasGradient sink g.Bias.Offset sum units

    /// Locally-connected backward of `count` examples whose forward pass filled cols [rows, count * positions].
    /// dPre is [count, planes, positions]; it is first laid out plane-major in `staged`. Then, with
    /// ld = count * positions:
    ///   dCols[run, ld] = W[group planes, run]^T @ staged[group planes, ld]   (when needInput), col2im'd into dIn [count, inputs]
    ///   dW[group planes, run] (sink) = staged[group planes, ld] @ cols[run, ld]^T
    /// and the bias gradient, each summed over the batch by the products themselves.
    let localBackward (backend: IBackend) (plan: LayerPlan) (parameters: float32 array) (cols: float32 array)
                      (dPre: float32 array) (count: int) (staged: float32 array) (biasSum: float32 array) (sink: GradientSink)
                      (needInput: bool) (dCols: float32 array) (dIn: float32 array) =
        let g, groups, unfold = plan.Geometry, plan.Groups, plan.Unfold.Value
        let struct (_, _, _, _, planes, n) = Layers.localDims g
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
        biasGradient sink g dPre count biasSum
        for grp in groups do
            for run in grp.Runs do
                backend.Gemm(false, true, grp.Planes, run.Length, ld, sink.Alpha,
                             ro staged (grp.FirstPlane * ld) (grp.Planes * ld), ld,
                             ro cols (run.ColRow * ld) (run.Length * ld), ld,
                             sink.Beta, rw sink.Target (g.Weight.Offset + grp.FirstPlane * fanIn + run.WeightColumn) (grp.Planes * fanIn - run.WeightColumn), fanIn)

    /// Dense backward of `count` examples: dIn [count, in] = dPre [count, units] @ W^T (first, from the
    /// weights as they were), then dW = x^T dPre and db = sum of dPre into the sink.
    let denseBackward (backend: IBackend) (g: LayerGeometry) (parameters: float32 array) (x: float32 array) (xOffset: int)
                      (dPre: float32 array) (count: int) (biasSum: float32 array) (sink: GradientSink) (needInput: bool) (dIn: float32 array) =
        let fanIn, units = g.FanIn, g.Units
        if needInput then
            backend.Gemm(false, true, count, fanIn, units, 1.0f, ro dPre 0 (count * units), units,
                         ro parameters g.Weight.Offset g.Weight.Length, units, 0.0f, rw dIn 0 (count * fanIn), fanIn)
        backend.Gemm(true, false, fanIn, units, count, sink.Alpha, ro x xOffset (count * fanIn), fanIn, ro dPre 0 (count * units), units,
                     sink.Beta, rw sink.Target g.Weight.Offset g.Weight.Length, units)
        biasGradient sink g dPre count biasSum
