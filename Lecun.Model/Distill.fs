/// Soft targets for softmax cross-entropy: label smoothing and knowledge distillation (Hinton, Vinyals
/// & Dean 2015) from an ensemble of trained copies of the network, run on the same (distorted) digit.
namespace Lecun.Model

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

type DistillSettings =
    { /// Teachers: copies of the network trained first, with the same recipe less distillation.
      Teachers: int
      /// Softmax temperature of the teachers' and the student's soft outputs.
      Temperature: float32
      /// Weight of the soft (teacher) term; the hard-label term gets 1 - Weight.
      Weight: float32
      /// The teachers are saved models handed to the run (`train --teacher`), not trained in it.
      Saved: bool }

/// A saved teacher: a trained network of any architecture that reads the same digits and has the
/// same outputs as the student (Distill.checkTeacher), with its weights; `Name` says where it came from.
type SavedTeacher = { Name: string; Network: Network; Parameters: float32 array }

/// The teachers of one run, with their buffers: everything a presentation needs, allocated once.
type TeacherSet =
    { Settings: DistillSettings
      Parameters: float32 array array
      /// Each teacher's network: the student's for teachers trained in the run, its own for a saved one.
      Networks: Network array
      /// Whether the teachers run in the student's lanes beside it (teachers of the student's network);
      /// saved teachers run on the same frames in lane buffers of their own network (LaneTrainers).
      InLanes: bool
      /// Saved teachers' lane buffers (LaneTraining.teacherOutputs), made when a batched pass first runs on the lanes.
      LaneTrainers: Lazy<LaneTrainer> array
      Workspaces: Workspace array
      /// The teachers' averaged probabilities at the temperature, for the current digit.
      Probabilities: float32 array
      Scratch: float32 array }

module Distill =
    /// p = softmax(y[offset ..] / temperature) into p[0 .. outputs-1].
    let softmaxAt (y: float32 array) (offset: int) (outputs: int) (temperature: float32) (p: float32 array) =
        let mutable m = Single.NegativeInfinity
        for k in 0 .. outputs - 1 do
            m <- max m y.[offset + k]
        let mutable z = 0.0f
        for k in 0 .. outputs - 1 do
            let e = exp ((y.[offset + k] - m) / temperature)
            p.[k] <- e
            z <- z + e
        for k in 0 .. outputs - 1 do
            p.[k] <- p.[k] / z

    /// The gradient with respect to the logits y of
    ///   (1 - w) CE(q_smooth, softmax y) + w T^2 KL(teacher || softmax(y / T)),
    /// where q_smooth puts 1 - smoothing + smoothing / K on the label and smoothing / K elsewhere, and
    /// `teacher` holds the teachers' averaged probabilities at temperature T (ignored when w = 0):
    ///   dOut = (1 - w) (softmax y - q_smooth) + w T (softmax(y / T) - teacher).
    /// With w = 0 and smoothing 0 it is softmax cross-entropy's gradient; so it is with w = 1, T = 1 and
    /// a teacher that puts all its probability on the label.
    let gradient (y: float32 array) (offset: int) (outputs: int) (label: int) (smoothing: float32)
                 (teacher: float32 array) (temperature: float32) (weight: float32) (scratch: float32 array) (dOut: float32 array) =
        let hard = 1.0f - weight
        if weight < 1.0f then
            softmaxAt y offset outputs 1.0f dOut
            let off = smoothing / float32 outputs
            for k in 0 .. outputs - 1 do
                let q = (if k = label then 1.0f - smoothing else 0.0f) + off
                dOut.[k] <- hard * (dOut.[k] - q)
        else Array.Clear(dOut, 0, outputs)
        if weight > 0.0f then
            softmaxAt y offset outputs temperature scratch
            for k in 0 .. outputs - 1 do
                dOut.[k] <- dOut.[k] + weight * temperature * (scratch.[k] - teacher.[k])

    /// The loss whose gradient `gradient` is (for reporting and tests).
    let value (y: float32 array) (offset: int) (outputs: int) (label: int) (smoothing: float32)
              (teacher: float32 array) (temperature: float32) (weight: float32) =
        let logSoftmax (t: float32) k =
            let mutable m = Double.NegativeInfinity
            for j in 0 .. outputs - 1 do
                m <- max m (float y.[offset + j] / float t)
            let mutable z = 0.0
            for j in 0 .. outputs - 1 do
                z <- z + exp (float y.[offset + j] / float t - m)
            float y.[offset + k] / float t - m - log z
        let off = float smoothing / float outputs
        let hard = -(Seq.sum [ for k in 0 .. outputs - 1 -> ((if k = label then 1.0 - float smoothing else 0.0) + off) * logSoftmax 1.0f k ])
        let soft =
            if weight = 0.0f then 0.0
            else
                let t = float temperature
                t * t * Seq.sum [ for k in 0 .. outputs - 1 do
                                    let q = float teacher.[k]
                                    if q > 0.0 then q * (log q - logSoftmax temperature k) ]
        (1.0 - float weight) * hard + float weight * soft

    /// Teacher k (of `count`)'s probabilities at the temperature, from its logits y[offset ..], added into
    /// `mean` (the teachers' average: cleared by the first teacher, divided by `count` after the last);
    /// `scratch` takes the softmax. Distill.teach and the lane path both average their teachers with it.
    let addToMean (count: int) (k: int) (y: float32 array) (offset: int) (outputs: int) (temperature: float32)
                  (scratch: float32 array) (mean: float32 array) =
        if k = 0 then Array.Clear(mean, 0, outputs)
        softmaxAt y offset outputs temperature scratch
        Elementwise.Add(ReadOnlySpan(mean, 0, outputs), ReadOnlySpan(scratch, 0, outputs), Span(mean, 0, outputs))
        if k = count - 1 then
            let scale = 1.0f / float32 count
            for j in 0 .. outputs - 1 do
                mean.[j] <- mean.[j] * scale

    /// The teachers' averaged probabilities at the temperature for one digit, read by each teacher's
    /// first layer through `firstUnfold` from x[xOffset ..] (a distorted frame, a shifted or a plain digit;
    /// checkTeacher makes the student's plan one each teacher's first layer can read through).
    let teach (backend: IBackend) (student: Network) (teachers: TeacherSet) (firstUnfold: Im2ColPlan voption) (x: float32 array) (xOffset: int) =
        let outputs = student.Layout.OutputSize
        let count = teachers.Parameters.Length
        for t in 0 .. count - 1 do
            let ws = teachers.Workspaces.[t]
            let net = teachers.Networks.[t]
            match firstUnfold with
            | ValueSome u -> Forward.runShifted backend net teachers.Parameters.[t] ws u x xOffset -1
            | ValueNone -> Forward.runWith backend net teachers.Parameters.[t] ws x xOffset 1 -1
            addToMean count t (Forward.outputs net ws) 0 outputs teachers.Settings.Temperature teachers.Scratch teachers.Probabilities

    /// The seed of teacher k (0-based) of a run with seed `seed`: apart from every other run's seeds.
    let teacherSeed (seed: int) (k: int) = seed * 1000 + 101 + k

    /// Teachers trained in the run: copies of the student's network, run in its lanes.
    let create (net: Network) (settings: DistillSettings) (parameters: float32 array array) =
        { Settings = settings
          Parameters = parameters
          Networks = parameters |> Array.map (fun _ -> net)
          InLanes = true
          LaneTrainers = Array.empty
          Workspaces = parameters |> Array.map (fun _ -> Workspace.create net 1)
          Probabilities = Array.zeroCreate net.Layout.OutputSize
          Scratch = Array.zeroCreate net.Layout.OutputSize }

    /// Saved teachers (checked with checkTeacher), each with a workspace of its own network.
    let createSaved (student: Network) (settings: DistillSettings) (saved: SavedTeacher array) =
        { Settings = settings
          Parameters = saved |> Array.map (fun t -> t.Parameters)
          Networks = saved |> Array.map (fun t -> t.Network)
          InLanes = false
          LaneTrainers = saved |> Array.map (fun t -> lazy (LaneTraining.create t.Network 0))
          Workspaces = saved |> Array.map (fun t -> Workspace.create t.Network 1)
          Probabilities = Array.zeroCreate student.Layout.OutputSize
          Scratch = Array.zeroCreate student.Layout.OutputSize }

    /// The first layer as it reads its input (kernel, stride, padding and its value), whatever its
    /// planes and table: two first layers with the same reading take the same unfold plans.
    let private firstReading (net: Network) =
        let g = net.Plans.[0].Geometry
        // As its kind says it pads and reads its input (ILayerSpecKind.Frame), not by matching on the kind.
        g.Spec.Kind.Frame g.InShape
        |> Option.map (fun f -> f.Pad, f.PadValue, f.FrameUnfold.Kernel, f.FrameUnfold.Stride, g.InShape)

    /// A saved teacher the student can learn from: it reads the same digits and has as many outputs,
    /// and its first layer reads its input as the student's does (each presentation's shifted or
    /// distorted frame is read by both through the student's plan); the teacher's name heads the error.
    let checkTeacher (student: Network) (teacher: SavedTeacher) : Result<SavedTeacher, string> =
        let s, t = student.Layout, teacher.Network.Layout
        if t.Spec.Input <> s.Spec.Input then
            Error $"{teacher.Name}: the teacher reads {t.Spec.Input.Planes}x{t.Spec.Input.Height}x{t.Spec.Input.Width} inputs, the student {s.Spec.Input.Planes}x{s.Spec.Input.Height}x{s.Spec.Input.Width}"
        elif t.OutputSize <> s.OutputSize then
            Error $"{teacher.Name}: the teacher has {t.OutputSize} outputs, the student {s.OutputSize}"
        elif (Array.last teacher.Network.Plans).Activation <> Identity then
            Error $"{teacher.Name}: the teacher's outputs must be linear (logits, as softmax-ce trains them): its soft outputs are a softmax of them"
        elif teacher.Parameters.Length <> t.ParamCount then
            Error $"{teacher.Name}: the teacher's weights hold {teacher.Parameters.Length} values; its network has {t.ParamCount}"
        elif firstReading teacher.Network <> firstReading student then
            Error $"{teacher.Name}: the teacher's first layer must read its input as the student's does (a locally-connected layer of the same kernel, stride, padding and pad value)"
        else Ok teacher

    /// The ensemble's prediction on a data set: the class of the largest averaged probability (T = 1),
    /// with the error and the averaged probabilities' cross-entropy; each teacher runs in its own network.
    let evaluateEnsembleOf (backend: IBackend) (teachers: (Network * float32 array) array) (data: Dataset) =
        let outputs = (fst teachers.[0]).Layout.OutputSize
        let workspaces = teachers |> Array.map (fun (net, _) -> Workspace.create net 1)
        let p = Array.zeroCreate outputs
        let sum = Array.zeroCreate outputs
        let predictions = Array.zeroCreate data.Count
        let mutable misses = 0
        let mutable loss = 0.0
        for i in 0 .. data.Count - 1 do
            Array.Clear sum
            for t in 0 .. teachers.Length - 1 do
                let net, w = teachers.[t]
                let ws = workspaces.[t]
                Forward.runWith backend net w ws data.Images (i * Dataset.Pixels) 1 -1
                softmaxAt (Forward.outputs net ws) 0 outputs 1.0f p
                for k in 0 .. outputs - 1 do
                    sum.[k] <- sum.[k] + p.[k] / float32 teachers.Length
            let predicted = Loss.argmax sum 0 outputs
            predictions.[i] <- predicted
            loss <- loss - log (max 1e-30 (float sum.[data.Labels.[i]]))
            if predicted <> data.Labels.[i] then misses <- misses + 1
        let n = max data.Count 1
        { Loss = loss / float n; Error = 100.0 * float misses / float n; Misses = misses; Count = data.Count }, predictions

    /// evaluateEnsembleOf for teachers of one network.
    let evaluateEnsemble (backend: IBackend) (net: Network) (parameters: float32 array array) (data: Dataset) =
        evaluateEnsembleOf backend (parameters |> Array.map (fun w -> net, w)) data
