/// Training and evaluation: the per-example loop of the paper and the per-pass report.
namespace Lecun.Model

open System
open System.Diagnostics
open System.Threading.Tasks
open Lecun.Native.Backends
open Lecun.Native.Kernels

/// Outputs and metrics of one split, from one batched evaluation.
type SplitEvaluation = { Metrics: SplitMetrics; Predictions: int array }

module Evaluate =
    /// Batch size of evaluation: one 16-lane batch (LaneBatch) where the CPU has AVX-512; otherwise
    /// small batches that keep their im2col matrices in cache (measured per digit against larger
    /// batches: see docs/design.md, "Measurements behind kernel choices").
    let batch = if KernelPath.batchPath = Lanes then LaneBatch.Lanes else 8

    /// Loss, error and misses of a whole data set, evaluated in batches on the given workspace.
    let split (backend: IBackend) (net: Network) (loss: Loss) (parameters: float32 array) (ws: Workspace) (data: Dataset) =
        let outputs = net.Layout.OutputSize
        let predictions = Array.zeroCreate data.Count
        let mutable lossSum = 0.0
        let mutable misses = 0
        let mutable start = 0
        while start < data.Count do
            let count = min ws.Capacity (data.Count - start)
            Forward.run backend net parameters ws data.Images (start * Dataset.Pixels) count
            let y = Forward.outputs net ws
            for b in 0 .. count - 1 do
                let label = data.Labels.[start + b]
                lossSum <- lossSum + Loss.value loss y (b * outputs) outputs label
                let predicted = Loss.argmax y (b * outputs) outputs
                predictions.[start + b] <- predicted
                if predicted <> label then misses <- misses + 1
            start <- start + count
        let n = max data.Count 1
        { Metrics = { Loss = lossSum / float n; Error = 100.0 * float misses / float n; Misses = misses; Count = data.Count }
          Predictions = predictions }

/// Training stopped because the loss or a weight stopped being a finite number (a diverging run:
/// too large a learning rate, or a starting checkpoint with extreme weights).
exception TrainingDiverged of seed: int * pass: int * what: string
    with
        override e.Message =
            $"training diverged (seed {e.seed}): {e.what} after pass {e.pass}; stopped, and no model file was written (try a smaller --lr)"

type TrainResult =
    { Parameters: float32 array
      Passes: PassMetrics list
      /// Wall time of training and per-pass evaluation.
      Seconds: float
      /// Test-set predictions after the last pass.
      TestPredictions: int array
      /// With distillation: the teachers' ensemble (K times the inference cost) on the test split.
      Ensemble: SplitMetrics option }

module Train =
    /// How often (in presentations) progress is reported: often enough for a smooth bar, rarely enough to cost nothing.
    let progressEvery = 512

    /// The per-run state of the optimizer and the training-time randomness.
    type State =
        { Grad: float32 array
          DOut: float32 array
          /// A batch chunk's loss gradients, [chunk, outputs] (see Workspace.batchChunk).
          BatchDOut: float32 array
          /// The first layer's unfold plans for the recipe's random shifts.
          Shifts: InputShifts
          /// The recipe's optimizer and its state (only its own).
          Optimizer: IOptimizer
          Rng: Rng
          /// The refinements: affine/elastic distortions (None when the recipe has none) and distillation's teachers.
          Distorter: Distorter option
          Teachers: TeacherSet option
          Soft: float32 array
          /// The 16-lane training buffers, made when a batched pass first runs on the lanes.
          Lanes: Lazy<LaneTrainer>
          /// Threads a batch's 16-example groups run on (1 or 2; the same result either way).
          LaneThreads: int
          /// Sharpness-aware minimization's buffers (None when the recipe has none).
          Sam: SamBuffers option
          /// Tangent propagation's buffers (None when the recipe has none).
          Tangents: TangentBuffers option }

    let createState (net: Network) (recipe: Recipe) =
        let n = net.Layout.ParamCount
        { Grad = Array.zeroCreate n
          DOut = Array.zeroCreate net.Layout.OutputSize
          BatchDOut = Array.zeroCreate (Workspace.trainingCapacity recipe.BatchSize * net.Layout.OutputSize)
          Shifts = InputShifts.create net recipe.Shift
          Optimizer = Optimizers.create recipe.Optimizer n
          // Its own stream, so the initial weights of a seed do not depend on the augmentation.
          Rng = Rng.Derive(uint64 recipe.Seed, 1UL)
          Distorter =
            if DistortionSettings.isNone recipe.Refine.Distortion then None
            else Some(Distortion.create net recipe.Refine.Distortion recipe.Seed)
          Teachers = None
          Soft = Array.zeroCreate net.Layout.OutputSize
          Lanes = lazy (LaneTraining.create net (Workspace.trainingCapacity recipe.BatchSize))
          LaneThreads = 1
          Sam = if recipe.Refine.Sam > 0.0f then Some(Sam.create n) else None
          Tangents =
            if recipe.Refine.TangentProp <= 0.0f then None
            else
                // The tangents live on the frame the distortions write (the first layer's padded input).
                let g = net.Plans.[0].Geometry
                match g.Spec.Kind.Frame g.InShape, g.InShape with
                | Some frame, [ 1; h; w ] -> Some(TangentProp.create net (h + 2 * frame.Pad) (w + 2 * frame.Pad) recipe.Seed)
                | _ -> invalidArg (nameof recipe) "tangent propagation needs a first layer that pads and unfolds its input, of one plane (a locally-connected one)" }

    /// Whether a pass at the recipe's batch size runs its batches on the 16-lane path under the
    /// provider: batches of more than one example, where the CPU has the lane kernels and the provider
    /// allows them (not under mkl, whose batched passes stay im2col + GEMM, every product a CBLAS call).
    let runsOnLanes (backend: IBackend) (net: Network) (batchSize: int) =
        batchSize > 1 && KernelPath.under backend net.BatchPath = Lanes

    /// Index of the layer whose output is dropped out (the input of the first layer that reads a vector), if the recipe drops any
    /// (a value option: nothing is allocated per pass).
    let dropLayer (net: Network) (recipe: Recipe) : int voption =
        if recipe.Dropout <= 0.0f then ValueNone
        else
            match net.Plans |> Array.tryFindIndex (fun p -> p.Geometry.Spec.Kind.ReadsVector) with
            | Some i when i > 0 -> ValueSome(i - 1)
            | _ -> ValueNone

    /// Draws one example's random shift (dx, dy; zero without shifts). Drawn before its dropout mask.
    let private drawShift (recipe: Recipe) (state: State) =
        if recipe.Shift > 0 then
            let dx = state.Rng.NextInt(2 * recipe.Shift + 1) - recipe.Shift
            let dy = state.Rng.NextInt(2 * recipe.Shift + 1) - recipe.Shift
            struct (dx, dy)
        else struct (0, 0)

    /// Draws example b's dropout mask into ws.DropMask.[drop] (units per example).
    let private drawMask (state: State) (ws: Workspace) (drop: int) (keep: float32) (units: int) (b: int) =
        if drop >= 0 then
            let mask = ws.DropMask.[drop]
            for u in b * units .. (b + 1) * units - 1 do
                mask.[u] <- if state.Rng.NextFloat32() < keep then 1.0f / keep else 0.0f

    /// Draws example b's random shift and dropout mask, in that order (the same draws whether the
    /// examples then run one at a time or as a batch): the first layer's plan goes to ws.FirstUnfolds.[b].
    let private drawAugmentation (recipe: Recipe) (state: State) (ws: Workspace) (drop: int) (keep: float32) (units: int) (b: int) =
        let struct (dx, dy) = drawShift recipe state
        if recipe.Shift > 0 then ws.FirstUnfolds.[b] <- InputShifts.plan state.Shifts dx dy
        drawMask state ws drop keep units b

    /// One pass of training over `data` in file order; parameters are updated in place. One loop over
    /// batches of the recipe's size B (per-example training is B = 1), each batch in chunks whose
    /// gradients are summed before the batch's one step. When B > 1 and C > 1 (C the workspace's
    /// capacity), a chunk of at most C examples runs on the 16 lanes where the provider serves them
    /// (every refinement included), otherwise as batched forward and backward passes (batched GEMMs,
    /// when no refinement shapes each example); else a chunk is one example (the path the others are
    /// tested against; SAM and tangent propagation always run there). An optimizer that fuses its step
    /// into the backward pass (SGD at B = 1, see IOptimizer.FusedSink) takes each example's gradient
    /// straight into the parameters instead.
    let trainOnePass (backend: IBackend) (net: Network) (recipe: Recipe) (pass: int) (parameters: float32 array) (ws: Workspace)
                     (state: State) (data: Dataset) (onProgress: int -> unit) =
        let outputs = net.Layout.OutputSize
        let batch = max 1 recipe.BatchSize
        let rate = Recipe.rateAt recipe pass
        // The engine's forward and backward passes take the dropped layer's index, -1 for none.
        let drop = dropLayer net recipe |> ValueOption.defaultValue -1
        let keep = 1.0f - recipe.Dropout
        let dropUnits = if drop >= 0 then net.Plans.[drop].Geometry.Units else 0
        let grad = state.Grad
        state.Optimizer.BeginPass(backend, net, recipe.Loss, parameters, data, rate, batch)
        let fused = state.Optimizer.FusedSink(rate, batch, parameters)
        let refine = recipe.Refine
        // The soft targets' settings and teacher buffer, chosen once per pass.
        let softWeight = match state.Teachers with Some t -> t.Settings.Weight | None -> 0.0f
        let temperature = match state.Teachers with Some t -> t.Settings.Temperature | None -> 1.0f
        let teacher = match state.Teachers with Some t -> t.Probabilities | None -> state.Soft
        let refined = state.Distorter.IsSome || state.Teachers.IsSome || Refinements.softTargets refine
        // SAM and tangent propagation take a second forward and backward pass per example, which has no
        // batched or lane form: with them a batch's examples run one at a time.
        let perExampleOnly = state.Sam.IsSome || state.Tangents.IsSome
        let lanes = runsOnLanes backend net batch && ws.Capacity > 1 && not perExampleOnly
        let batched = batch > 1 && ws.Capacity > 1 && not (refined || perExampleOnly)
        let chunk = if lanes || batched then min ws.Capacity (state.BatchDOut.Length / outputs) else 1

        // Examples first .. first + count - 1 as one batched forward and backward pass, their gradient
        // written into grad (or added, when `accumulate`).
        let presentBatch (first: int) (count: int) (accumulate: bool) =
            // Each example's augmentations drawn in example order: the same draws as one at a time.
            for b in 0 .. count - 1 do
                drawAugmentation recipe state ws drop keep dropUnits b
            let xOffset = first * Dataset.Pixels
            if recipe.Shift > 0 then Forward.runBatchShifted backend net parameters ws data.Images xOffset count drop
            else Forward.runWith backend net parameters ws data.Images xOffset count drop
            let y = Forward.outputs net ws
            for b in 0 .. count - 1 do
                Loss.gradient recipe.Loss y (b * outputs) outputs data.Labels.[first + b] state.DOut
                Array.blit state.DOut 0 state.BatchDOut (b * outputs) outputs
            Backward.runBatchInto backend net parameters ws data.Images xOffset count state.BatchDOut (GradientSink.into grad accumulate) drop

        // Example i alone, through its refinements: its gradient into the fused sink, or into grad.
        let presentOne (i: int) (accumulate: bool) =
            let mutable x, xOffset = data.Images, i * Dataset.Pixels
            // The same draws, in the same order, as drawAugmentation: shift, then dropout mask.
            let struct (dx, dy) = drawShift recipe state
            let shift =
                match state.Distorter with
                | Some d ->
                    // The distorted digit, moved by the same shift, in the padded frame.
                    Distortion.apply d data.Images xOffset dx dy
                    x <- d.Frame
                    xOffset <- 0
                    ValueSome d.Unfold
                // A value option: nothing is allocated per presentation.
                | None when recipe.Shift > 0 -> ValueSome(InputShifts.plan state.Shifts dx dy)
                | None -> ValueNone
            drawMask state ws drop keep dropUnits 0
            // The teachers read the digit, not the student's weights: once per presentation.
            match state.Teachers with
            | Some t -> Distill.teach backend net t shift x xOffset
            | None -> ()
            let x = x
            let xOffset = xOffset
            // The forward pass and the loss gradient at the current weights, with this presentation's
            // input and dropout mask (inline: nothing is allocated per presentation).
            let inline forward () =
                match shift with
                | ValueSome unfold -> Forward.runShifted backend net parameters ws unfold x xOffset drop
                | ValueNone -> Forward.runWith backend net parameters ws x xOffset 1 drop
                if Refinements.softTargets refine then
                    // Label smoothing and/or the teachers' soft outputs.
                    Distill.gradient (Forward.outputs net ws) 0 outputs data.Labels.[i] refine.LabelSmoothing teacher temperature softWeight state.Soft state.DOut
                else Loss.gradient recipe.Loss (Forward.outputs net ws) 0 outputs data.Labels.[i] state.DOut
            // With tangent propagation, the digit moved a little along a random tangent, with the same dropout mask.
            match state.Tangents with
            | Some tp ->
                TangentProp.perturb tp x
                if drop >= 0 then Array.blit ws.DropMask.[drop] 0 tp.Workspace.DropMask.[drop] 0 dropUnits
            | None -> ()
            // The example's gradient at the current weights into target (added when `add`).
            let inline gradientInto (target: float32 array) (add: bool) =
                match state.Tangents, shift with
                | Some tp, ValueSome unfold ->
                    // Recipe.validate asks for distortions, so the frame is read through its plan.
                    Forward.runShifted backend net parameters tp.Workspace unfold tp.Perturbed 0 drop
                    forward ()
                    TangentProp.addGradient refine.TangentProp (Forward.outputs net ws) (Forward.outputs net tp.Workspace) outputs state.DOut tp.DOut
                    Backward.runWith backend net parameters ws x xOffset state.DOut target add drop
                    Backward.runWith backend net parameters tp.Workspace tp.Perturbed 0 tp.DOut target true drop
                | _ ->
                    forward ()
                    Backward.runWith backend net parameters ws x xOffset state.DOut target add drop
            match state.Sam, fused with
            | Some sam, _ ->
                // Recipe.validate keeps SAM off the fused SGD step: the weights must be restored before a step.
                Sam.gradient sam refine.Sam parameters gradientInto grad accumulate
            | None, ValueSome sink ->
                forward ()
                Backward.runInto backend net parameters ws x xOffset state.DOut sink drop
            | None, ValueNone -> gradientInto grad accumulate

        // Examples first .. first + count - 1 on the 16-lane path, through every refinement: each
        // example's shift, distortion and dropout mask drawn in example order (the same draws, in the
        // same order, as presentOne) and its frame laid in; then the chunk's groups, each running its
        // teachers (distillation) on the same frames before the network itself (saved teachers, of
        // other networks, run over the chunk's frames first, in lane buffers of their own).
        let masks = if drop >= 0 then ws.DropMask.[drop] else Array.empty
        let soft = Refinements.softTargets refine
        let presentLanes (first: int) (count: int) =
            let trainer = state.Lanes.Value
            for b in 0 .. count - 1 do
                let xOffset = (first + b) * Dataset.Pixels
                let struct (dx, dy) = drawShift recipe state
                match state.Distorter with
                | Some d ->
                    Distortion.apply d data.Images xOffset dx dy
                    LaneTraining.setFrame trainer d.Frame b
                | None -> LaneTraining.layFrame net trainer data.Images xOffset dx dy b
                drawMask state ws drop keep dropUnits b
            // Each example's loss gradient from its outputs in the lanes, and its teachers' averaged
            // probabilities at the temperature from theirs (as Distill.teach averages them), one delegate
            // each per chunk.
            let laneLoss =
                LaneLossGradient(fun b y offset scratch dOut ->
                    let label = data.Labels.[first + b]
                    if soft then
                        let teacherOf = if state.Teachers.IsSome then trainer.Teachers.[b] else teacher
                        Distill.gradient y offset outputs label refine.LabelSmoothing teacherOf temperature softWeight scratch dOut
                    else Loss.gradient recipe.Loss y offset outputs label dOut)
            let teachers =
                match state.Teachers with
                | Some t ->
                    let teacherCount = t.Parameters.Length
                    let output =
                        LaneTeacherOutput(fun k b y offset scratch ->
                            Distill.addToMean teacherCount k y offset outputs temperature scratch trainer.Teachers.[b])
                    if t.InLanes then ValueSome(struct (t.Parameters, output))
                    else
                        // Saved teachers (other networks) on the same frames, in lane buffers of their own.
                        for k in 0 .. t.Parameters.Length - 1 do
                            LaneTraining.teacherOutputs t.Networks.[k] t.Parameters.[k] t.LaneTrainers.[k].Value trainer.Frames count k output
                        ValueNone
                | None -> ValueNone
            LaneTraining.runChunk net parameters trainer masks drop count state.LaneThreads laneLoss teachers

        let mutable start = 0
        while start < data.Count do
            let size = min batch (data.Count - start)
            if lanes then LaneTraining.beginBatch state.Lanes.Value
            // The first chunk writes the batch's gradient, the others add theirs (on the lanes, every
            // chunk adds to the lanes' sums, written into grad once the batch is done).
            let mutable first = start
            while first < start + size do
                let count = min chunk (start + size - first)
                if lanes then presentLanes first count
                elif batched then presentBatch first count (first > start)
                else presentOne first (first > start)
                first <- first + count
            if lanes then LaneTraining.endBatch net state.Lanes.Value grad
            if fused.IsNone then state.Optimizer.Step(rate, batch, size, parameters, grad)
            let before = start
            start <- start + size
            if start / progressEvery > before / progressEvery then onProgress (start / progressEvery * progressEvery)

    /// Runs the recipe's training and evaluation code once on a few blank digits with throwaway weights,
    /// so that the just-in-time compiler has the hot kernels ready before a run starts (started on an
    /// idle core while the data loads, it shortens the first pass).
    /// Touches nothing a run uses: its own network, weights, workspaces and generator.
    let warmUp (backend: IBackend) (recipe: Recipe) =
        let net = Recipe.network recipe
        let digits = 2 * Evaluate.batch + 3
        let blank = { Name = "warm-up"; Images = Array.create (digits * Dataset.Pixels) -1.0f; Labels = Array.init digits (fun i -> i % 10) }
        let parameters = Init.create recipe.WeightInit net.Layout recipe.Seed
        let warm = { recipe with Optimizer = (match recipe.Optimizer with Newton n -> Newton { n with Patterns = 2 } | o -> o) }
        trainOnePass backend net warm 1 parameters (Workspace.create net (Workspace.trainingCapacity warm.BatchSize)) (createState net warm) blank ignore
        Evaluate.split backend net recipe.Loss parameters (Workspace.create net Evaluate.batch) blank |> ignore

    /// The training of `run` once its teachers (if any) are trained: `clock` was started by the caller.
    let private trainWith (backend: IBackend) (recipe: Recipe) (data: TrainTest) (initial: float32 array)
                          (teachers: TeacherSet option) (ensemble: SplitMetrics option) (clock: Stopwatch)
                          (onProgress: int -> int -> unit) (onPass: PassMetrics -> unit) =
        let net = Recipe.network recipe
        let average = if recipe.Refine.AverageLast > 0 then Some(WeightAverage.create initial.Length) else None
        let parameters = Array.copy initial
        let ws = Workspace.create net (Workspace.trainingCapacity recipe.BatchSize)
        let state = { createState net recipe with Teachers = teachers }
        let evalWorkspace = Workspace.create net Evaluate.batch
        // Two snapshots: one being evaluated while the next pass fills the other.
        let snapshots = Array.init 2 (fun _ -> Array.zeroCreate<float32> parameters.Length)
        let mutable pending : Task<SplitEvaluation array> option = None
        let mutable testPredictions = Array.empty
        let passes = ResizeArray()
        let report (task: Task<SplitEvaluation array>) (pass: int) =
            let results = task.Result
            testPredictions <- results.[1].Predictions
            let metrics = { Pass = pass; Train = results.[0].Metrics; Test = results.[1].Metrics; Seconds = clock.Elapsed.TotalSeconds }
            for name, loss in [ "training", metrics.Train.Loss; "test", metrics.Test.Loss ] do
                if not (Double.IsFinite loss) then raise (TrainingDiverged(recipe.Seed, pass, $"the {name} loss is {loss}"))
            passes.Add metrics
            onPass metrics
        for pass in 1 .. recipe.Passes do
            trainOnePass backend net recipe pass parameters ws state data.Train (onProgress pass)
            match Array.tryFindIndex (Single.IsFinite >> not) parameters with
            | Some i -> raise (TrainingDiverged(recipe.Seed, pass, $"weight {i} is {parameters.[i]}"))
            | None -> ()
            // The previous pass's evaluation has had a whole pass of time; it is done or nearly so.
            pending |> Option.iter (fun t -> report t (pass - 1))
            let snapshot = snapshots.[pass % 2]
            // While weights are averaged, the average is what is evaluated (and saved).
            match average with
            | Some avg when WeightAverage.covers recipe.Refine.AverageLast recipe.Passes pass ->
                WeightAverage.add avg parameters
                Array.blit avg.Average 0 snapshot 0 parameters.Length
            | _ -> Array.blit parameters 0 snapshot 0 parameters.Length
            pending <-
                Some(Task.Run(fun () ->
                    [| Evaluate.split backend net recipe.Loss snapshot evalWorkspace data.Train
                       Evaluate.split backend net recipe.Loss snapshot evalWorkspace data.Test |]))
        pending |> Option.iter (fun t -> report t recipe.Passes)
        let final = match average with Some avg when avg.Count > 0 -> Array.copy avg.Average | _ -> parameters
        { Parameters = final; Passes = List.ofSeq passes; Seconds = clock.Elapsed.TotalSeconds; TestPredictions = testPredictions; Ensemble = ensemble }

    /// Distillation's teachers for a recipe that distills: each the same recipe less distillation,
    /// from its own seed (Distill.teacherSeed), trained here, or the saved teachers handed to the run;
    /// and their ensemble's test metrics.
    let trainTeachers (backend: IBackend) (recipe: Recipe) (saved: SavedTeacher array) (data: TrainTest) =
        match recipe.Refine.Distill with
        | None -> None, None
        | Some d when d.Saved ->
            let teachers = Distill.createSaved (Recipe.network recipe) d saved
            let ensemble = Distill.evaluateEnsembleOf backend (saved |> Array.map (fun t -> t.Network, t.Parameters)) data.Test
            Some teachers, Some(fst ensemble)
        | Some d ->
            let net = Recipe.network recipe
            let teacherWeights =
                Array.init d.Teachers (fun k ->
                    let r = { recipe with Refine = { recipe.Refine with Distill = None }; Seed = Distill.teacherSeed recipe.Seed k }
                    (trainWith backend r data (Init.create r.WeightInit net.Layout r.Seed) None None (Stopwatch.StartNew()) (fun _ _ -> ()) ignore).Parameters)
            Some(Distill.create net d teacherWeights), Some(fst (Distill.evaluateEnsemble backend net teacherWeights data.Test))

    /// The saved teachers a recipe distils from, checked against its network (Distill.checkTeacher):
    /// as many as the recipe names, none when it names none.
    let checkSavedTeachers (recipe: Recipe) (saved: SavedTeacher array) : Result<SavedTeacher array, string> =
        let named = match recipe.Refine.Distill with Some d when d.Saved -> d.Teachers | _ -> 0
        if saved.Length <> named then
            Error $"recipe {recipe.Name} distils from {named} saved teachers, but {saved.Length} were given"
        else
            let student = Recipe.network recipe
            saved |> Results.traverse (Distill.checkTeacher student) |> Result.map (fun _ -> saved)

    /// Trains from `initial` for recipe.Passes passes, evaluating both splits after each pass; a
    /// distilling recipe first trains its teachers (trainTeachers), or distils from the saved
    /// teachers given (`saved`, as many as the recipe names; none otherwise).
    /// `onProgress pass presentations` reports within a pass; `onPass` after each pass's evaluation.
    /// Each pass is evaluated on a snapshot of the weights on another core while the next pass trains,
    /// so evaluation costs no training time; both callbacks run on the calling thread.
    let runWithTeachers (backend: IBackend) (saved: SavedTeacher array) (recipe: Recipe) (data: TrainTest) (initial: float32 array)
                        (onProgress: int -> int -> unit) (onPass: PassMetrics -> unit) =
        match Recipe.validate recipe |> Result.bind (Recipe.fitsTrainingSet data.Train.Count) |> Result.bind (fun r -> checkSavedTeachers r saved) with
        | Error problem -> invalidArg (nameof recipe) problem
        | Ok _ -> ()
        let clock = Stopwatch.StartNew()
        let teachers, ensemble = trainTeachers backend recipe saved data
        trainWith backend recipe data initial teachers ensemble clock onProgress onPass

    /// runWithTeachers without saved teachers.
    let run (backend: IBackend) (recipe: Recipe) (data: TrainTest) (initial: float32 array)
            (onProgress: int -> int -> unit) (onPass: PassMetrics -> unit) =
        runWithTeachers backend [||] recipe data initial onProgress onPass
