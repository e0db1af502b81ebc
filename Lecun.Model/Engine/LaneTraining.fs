/// Minibatch training on the 16-lane path (KernelPath.Lanes): each 16 examples of a batch run forward
/// and backward together, one per vector lane, through every layer kind's lane kernels (LaneBatch,
/// LaneGradients). The weight and bias gradients are summed always in the same order: the groups of
/// each chunk split into two streams (the first half of the groups, then the rest), each stream
/// summing its groups in order (per lane, or a dense layer's weights over the lanes group by group),
/// the two streams added float by float at the end of the batch, then (per-lane sums) one fixed tree
/// over the lanes. So the gradient does not depend on whether the streams
/// run on one thread or two, nor on the vector width.
namespace Lecun.Model

open System
open System.Threading.Tasks
open Lecun.Native.Kernels

/// The buffers of one stream of 16-example groups, and the per-lane gradient sums of the groups it has
/// run since the batch began.
type LaneStream =
    { Layers: LaneTrainingLayer array
      /// The input of a first layer that reads no padded planes (a dense one), [in, 16].
      Input: float32 array
      /// The group's outputs and their loss gradients, example-major [16, outputs], and the gradients in lanes.
      Outputs: float32 array
      DOut: float32 array
      DOutLanes: float32 array
      /// One example's loss gradient, and the loss's scratch (outputs floats each).
      DOutOne: float32 array
      Scratch: float32 array
      /// Whether the stream has run a group since LaneTraining.beginBatch.
      mutable Used: bool }

/// The lane training buffers of a run: the two streams, and each example's first-layer input of the
/// current chunk (its padded frame where the first layer reads padded planes, else the image).
type LaneTrainer =
    { Streams: LaneStream array
      /// [chunk, FrameSize], example-major; laid into the lanes group by group.
      Frames: float32 array
      FrameSize: int
      /// How the first layer pads its input (its kind's ILayerSpecKind.Frame), asked once; None for a
      /// first layer that reads no padded planes.
      Padding: InputFrame option
      /// The teachers' averaged probabilities of each example of the chunk (distillation), [chunk][outputs].
      Teachers: float32 array array }

/// The loss gradient of example `example` of the chunk from its outputs y[offset .. offset + outputs - 1],
/// into dOut[0 .. outputs - 1]; `scratch` is the stream's (outputs floats).
type LaneLossGradient = delegate of example: int * y: float32 array * offset: int * scratch: float32 array * dOut: float32 array -> unit

/// Teacher `teacher`'s outputs for example `example` of the chunk, y[offset .. offset + outputs - 1]
/// (distillation: the caller turns them into the soft targets); `scratch` is the stream's.
type LaneTeacherOutput = delegate of teacher: int * example: int * y: float32 array * offset: int * scratch: float32 array -> unit

module LaneTraining =
    let private lanes = LaneBatch.Lanes

    /// The streams a chunk's groups are split into, whatever the threads that run them.
    let streamCount = 2

    /// Floats of one example's first-layer input: the padded planes of a locally-connected first layer,
    /// the input vector of a dense one.
    let frameSize (net: Network) =
        let windows = LaneLayer.create net.Plans.[0]
        if windows.Padded.Length > 0 then windows.Padded.Length / lanes else net.Layout.InputSize

    /// The buffers for chunks of up to `capacity` examples.
    let create (net: Network) (capacity: int) =
        let outputs = net.Layout.OutputSize
        let stream () =
            { Layers = net.Plans |> Array.map LaneTrainingLayer.create
              Input = Array.zeroCreate (net.Layout.InputSize * lanes)
              Outputs = Array.zeroCreate (lanes * outputs)
              DOut = Array.zeroCreate (lanes * outputs)
              DOutLanes = Array.zeroCreate (outputs * lanes)
              DOutOne = Array.zeroCreate outputs
              Scratch = Array.zeroCreate outputs
              Used = false }
        let size = frameSize net
        { Streams = Array.init streamCount (fun _ -> stream ())
          Frames = Array.zeroCreate (capacity * size)
          FrameSize = size
          Padding = (let g = net.Plans.[0].Geometry in g.Spec.Kind.Frame g.InShape)
          Teachers = Array.init capacity (fun _ -> Array.zeroCreate outputs) }

    /// Lays image images[offset ..] into frame `b` moved dx pixels right and dy down inside the first
    /// layer's padding, the pad value elsewhere: the input InputShifts' plan (dx, dy) reads.
    let layFrame (net: Network) (trainer: LaneTrainer) (images: float32 array) (offset: int) (dx: int) (dy: int) (b: int) =
        let frame = Span(trainer.Frames, b * trainer.FrameSize, trainer.FrameSize)
        match trainer.Padding, net.Plans.[0].Geometry.InShape with
        | Some input, [ planes; h; w ] ->
            let pad = input.Pad
            let ph, pw = h + 2 * pad, w + 2 * pad
            frame.Fill input.PadValue
            // The columns of each row that land inside the frame (pixel x at frame column x + pad + dx).
            let x0, x1 = max 0 (-(pad + dx)), min w (pw - pad - dx)
            if x1 > x0 then
                for c in 0 .. planes - 1 do
                    for y in 0 .. h - 1 do
                        let py = y + pad + dy
                        if py >= 0 && py < ph then
                            ReadOnlySpan(images, offset + (c * h + y) * w + x0, x1 - x0).CopyTo(frame.Slice((c * ph + py) * pw + x0 + pad + dx))
        | _ ->
            if dx <> 0 || dy <> 0 then invalidArg "dx" "shifting the input needs a first layer that pads its input (a locally-connected one)"
            ReadOnlySpan(images, offset, trainer.FrameSize).CopyTo frame

    /// Sets frame `b` to a padded frame made elsewhere (a distorted digit, see Distortion).
    let setFrame (trainer: LaneTrainer) (frame: float32 array) (b: int) =
        Array.blit frame 0 trainer.Frames (b * trainer.FrameSize) trainer.FrameSize

    /// Starts a batch: the streams' gradient sums back to zero.
    let beginBatch (trainer: LaneTrainer) =
        for s in trainer.Streams do
            if s.Used then
                for layer in s.Layers do
                    Array.Clear layer.WeightLanes
                    Array.Clear layer.BiasLanes
            s.Used <- false

    let private forward (net: Network) (parameters: float32 array) (stream: LaneStream) (dropLayer: int) =
        let mutable input = stream.Input
        for i in 0 .. net.Plans.Length - 1 do
            let plan = net.Plans.[i]
            let layer = stream.Layers.[i]
            let kind = LayerKinds.ofPlan plan
            if i = 0 && layer.Lane.Padded.Length > 0 then kind.LaneForwardLaidIn(plan, layer.Lane, parameters)
            else kind.LaneForward(plan, layer.Lane, parameters, input)
            let n = plan.Geometry.Units * lanes
            Layers.activationForward plan.Activation layer.Lane.Out n
            if i = dropLayer then
                Elementwise.Multiply(ReadOnlySpan(layer.Lane.Out, 0, n), ReadOnlySpan(layer.Mask, 0, n), Span(layer.Dropped, 0, n))
                input <- layer.Dropped
            else input <- layer.Lane.Out

    let private backward (net: Network) (parameters: float32 array) (stream: LaneStream) (dropLayer: int) =
        let mutable dY = stream.DOutLanes
        for i in net.Plans.Length - 1 .. -1 .. 0 do
            let plan = net.Plans.[i]
            let layer = stream.Layers.[i]
            let n = plan.Geometry.Units * lanes
            if i = dropLayer then
                // The next layer saw mask * y: the gradient reaching y passes through the same mask.
                Elementwise.Multiply(ReadOnlySpan(dY, 0, n), ReadOnlySpan(layer.Mask, 0, n), Span(dY, 0, n))
            Layers.activationBackward plan.Activation layer.Lane.Out dY layer.DeltaPre n
            let input =
                if i = 0 then stream.Input
                elif i - 1 = dropLayer then stream.Layers.[i - 1].Dropped
                else stream.Layers.[i - 1].Lane.Out
            (LayerKinds.ofPlan plan).LaneBackward(plan, layer, parameters, input, (i > 0))
            dY <- layer.DeltaIn

    /// Lays examples first .. first + n - 1 of `frames` ([chunk, size]) into the stream's lanes.
    let private layGroup (stream: LaneStream) (frames: float32 array) (size: int) (first: int) (n: int) =
        let layer0 = stream.Layers.[0]
        let target = if layer0.Lane.Padded.Length > 0 then layer0.Lane.Padded else stream.Input
        LaneBatch.ToLanes(ReadOnlySpan(frames, first * size, n * size), n, size, Span target)

    /// Teacher k (`net` with `parameters`) forward on the group laid in the stream, without dropout:
    /// each of its n examples' outputs to `output`.
    let private teacherForward (net: Network) (parameters: float32 array) (stream: LaneStream) (first: int) (n: int) (k: int) (output: LaneTeacherOutput) =
        let outputs = net.Layout.OutputSize
        forward net parameters stream -1
        LaneBatch.FromLanes(ReadOnlySpan stream.Layers.[net.Plans.Length - 1].Lane.Out, outputs, n, Span stream.Outputs)
        for b in 0 .. n - 1 do
            output.Invoke(k, first + b, stream.Outputs, b * outputs, stream.Scratch)

    /// Group `group` of the chunk (examples 16 group .. , `count` in the chunk): laid into the lanes with
    /// its dropout masks (rows of `masks`, [chunk, units of dropLayer]), forward, the loss gradients per
    /// example, backward; its gradients added to the stream's sums. Missing lanes hold zeros and add nothing.
    let private runGroup (net: Network) (parameters: float32 array) (trainer: LaneTrainer) (stream: LaneStream)
                         (masks: float32 array) (dropLayer: int) (count: int) (loss: LaneLossGradient)
                         (teachers: struct (float32 array array * LaneTeacherOutput) voption) (group: int) =
        let first = group * lanes
        let n = min lanes (count - first)
        let outputs = net.Layout.OutputSize
        layGroup stream trainer.Frames trainer.FrameSize first n
        if dropLayer >= 0 then
            let units = net.Plans.[dropLayer].Geometry.Units
            LaneBatch.ToLanes(ReadOnlySpan(masks, first * units, n * units), n, units, Span stream.Layers.[dropLayer].Mask)
        let last = stream.Layers.[net.Plans.Length - 1]
        // The teachers first, on the same frames and without dropout (the first layer only reads the
        // frames, so the network's own forward pass below reads them too).
        match teachers with
        | ValueSome(struct (teacherParameters, output)) ->
            for k in 0 .. teacherParameters.Length - 1 do
                teacherForward net teacherParameters.[k] stream first n k output
        | ValueNone -> ()
        forward net parameters stream dropLayer
        LaneBatch.FromLanes(ReadOnlySpan last.Lane.Out, outputs, n, Span stream.Outputs)
        for b in 0 .. n - 1 do
            loss.Invoke(first + b, stream.Outputs, b * outputs, stream.Scratch, stream.DOutOne)
            Array.blit stream.DOutOne 0 stream.DOut (b * outputs) outputs
        LaneBatch.ToLanes(ReadOnlySpan(stream.DOut, 0, n * outputs), n, outputs, Span stream.DOutLanes)
        backward net parameters stream dropLayer
        stream.Used <- true

    /// The outputs of another network than the chunk's (a saved teacher of distillation, whose first
    /// layer reads its input as the student's: the same frames) for the chunk's `count` examples, read
    /// from `frames` (the student trainer's, as layFrame/setFrame laid them) 16 at a time in stream 0
    /// of `trainer` (made for `net`); output.Invoke(k, example, y, offset, scratch) for each example.
    let teacherOutputs (net: Network) (parameters: float32 array) (trainer: LaneTrainer) (frames: float32 array)
                       (count: int) (k: int) (output: LaneTeacherOutput) =
        let stream = trainer.Streams.[0]
        for group in 0 .. (count + lanes - 1) / lanes - 1 do
            let first = group * lanes
            let n = min lanes (count - first)
            layGroup stream frames trainer.FrameSize first n
            teacherForward net parameters stream first n k output

    let private runStream net parameters trainer (s: int) masks dropLayer count loss teachers (firstGroup: int) (endGroup: int) =
        for group in firstGroup .. endGroup - 1 do
            runGroup net parameters trainer trainer.Streams.[s] masks dropLayer count loss teachers group

    /// Runs the chunk's `count` examples (their frames laid by layFrame/setFrame, their dropout masks
    /// in the rows of `masks`), adding their gradients to the streams' sums: the first half of the
    /// groups in stream 0, the rest in stream 1, on `threads` threads (1 or 2) with the same result.
    /// With `teachers` (distillation: their parameters, and what takes their outputs), each group first
    /// runs every teacher on its frames, so `loss` can read their soft targets.
    let runChunk (net: Network) (parameters: float32 array) (trainer: LaneTrainer) (masks: float32 array) (dropLayer: int)
                 (count: int) (threads: int) (loss: LaneLossGradient) (teachers: struct (float32 array array * LaneTeacherOutput) voption) =
        let groups = (count + lanes - 1) / lanes
        let split = (groups + 1) / 2
        if threads > 1 && groups > split then
            let second = Task.Run(fun () -> runStream net parameters trainer 1 masks dropLayer count loss teachers split groups)
            runStream net parameters trainer 0 masks dropLayer count loss teachers 0 split
            second.Wait()
        else
            runStream net parameters trainer 0 masks dropLayer count loss teachers 0 split
            runStream net parameters trainer 1 masks dropLayer count loss teachers split groups

    /// Ends a batch: the streams' sums, added lane by lane and then over the lanes, written into grad
    /// (the sum of the batch's gradients, as the batched passes write it).
    let endBatch (net: Network) (trainer: LaneTrainer) (grad: float32 array) =
        let first, second = trainer.Streams.[0], trainer.Streams.[1]
        if not first.Used then invalidOp "a batch ran no lane group"
        for i in 0 .. net.Plans.Length - 1 do
            let plan = net.Plans.[i]
            (LayerKinds.ofPlan plan).LaneGradientSum(plan, first.Layers.[i], (if second.Used then ValueSome second.Layers.[i] else ValueNone), grad)
