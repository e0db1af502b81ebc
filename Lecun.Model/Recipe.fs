/// What a training run is: the recipe record, the three named recipes, and the overrides that change
/// one (train's options, the ladder's steps), each checked here so a script gets the same refusals as
/// the command line.
namespace Lecun.Model

open System
open System.Globalization
open FsToolkit.ErrorHandling

/// The paper's diagonal Newton method (see Newton.fs).
type NewtonSettings =
    { /// Levenberg-Marquardt damping: steps are eps / (mu + h).
      Mu: float32
      /// Training digits the Hessian diagonal is estimated on before each pass.
      Patterns: int
      /// (first pass, eps as a multiple of the recipe's learning rate), in pass order.
      Schedule: (int * float32) list }

type AdamWSettings =
    { /// The learning rate falls linearly from the recipe's rate at pass 1 to this at the last pass.
      FinalLearningRate: float32
      WeightDecay: float32
      Beta1: float32
      Beta2: float32
      Epsilon: float32 }

type OptimizerKind =
    /// Plain stochastic gradient descent at a constant learning rate.
    | Sgd
    | Newton of NewtonSettings
    | AdamW of AdamWSettings

/// Everything that defines a training run; a recipe is a named default of this record.
type Recipe =
    { Name: string
      Passes: int
      /// SGD's rate; AdamW's initial rate; the scale of the Newton eps schedule.
      LearningRate: float32
      /// 1 = per-example updates (the paper); B > 1 = updates on the gradient averaged over B examples.
      BatchSize: int
      Hidden: Activation
      Output: Activation
      /// The bound of the initial weights (fresh runs; a checkpoint given with --init replaces them).
      WeightInit: WeightInit
      Loss: Loss
      Optimizer: OptimizerKind
      /// Dropout rate on the input of the first dense layer (H3); 0 = none.
      Dropout: float32
      /// Random shifts of up to this many pixels in x and y, each training presentation; 0 = none.
      Shift: int
      /// The refinements beyond the ladder (distortions, averaging, soft targets, schedule).
      Refine: Refinements
      Seed: int
      /// The network trained: the 1989 network for every named recipe (`train --network` changes it).
      Network: NetSpec }

/// One change to a recipe, as `train`'s options and the ladder's steps state it. Numbers are kept as
/// given (float64, as typed) and checked after their conversion to the float32 that training uses.
[<RequireQualifiedAccess>]
type RecipeOverride =
    | Passes of int
    /// SGD's rate, AdamW's initial rate or Newton's eps.
    | LearningRate of float
    | BatchSize of int
    | Seed of int
    /// Softmax cross-entropy makes the outputs linear; the other losses put the hidden squashing back on them.
    | Loss of Loss
    /// The squashing of every unit that is not a linear output (identity is refused: the network would be linear).
    | Activation of Activation
    | WeightInit of WeightInit
    /// The optimizer brings the learning rate of the recipe that introduced it unless one is given.
    | Optimizer of OptimizerKind
    /// Newton's damping; the optimizer must be Newton.
    | Mu of float
    | Shift of int
    | Dropout of float
    // The refinements: distortions (degrees; fractions; pixels), averaging, soft targets, schedule
    | Rotation of float
    | Scaling of float
    | Shear of float
    | Elastic of float
    | ElasticSigma of float
    | AverageLast of int
    | LabelSmoothing of float
    | Schedule of LrSchedule
    /// Teachers of distillation (0 = none); the temperature and the weight need teachers.
    | Distill of int
    | Temperature of float
    | DistillWeight of float
    /// Distillation from this many saved teachers (`train --teacher`, model files handed to the run);
    /// 0 = none. It does not combine with --distill's teachers trained in the run.
    | SavedTeachers of int
    /// Sharpness-aware minimization's radius (0 = none); the optimizer must be AdamW.
    | Sam of float
    /// Tangent propagation's weight (0 = none); needs distortions (it perturbs the distorted frame) and AdamW.
    | TangentProp of float

module Recipe =
    /// The paper's experiment: per-example SGD in file order, 23 passes, MSE, tanh everywhere, lr 0.03.
    let lecun1989 =
        { Name = "lecun1989"; Passes = 23; LearningRate = 0.03f; BatchSize = 1; Hidden = Tanh; Output = Tanh
          WeightInit = SqrtFanIn; Loss = Mse; Optimizer = Sgd; Dropout = 0.0f; Shift = 0
          Refine = Refinements.none; Seed = 1337; Network = Spec.lecun1989 }

    /// The paper's own optimizer, with the squashing function and initialization its authors state
    /// (LeCun et al. 1998, Appendix A: 1.7159 tanh(2a/3), which puts the ±1 targets inside the
    /// quasi-linear range as the 1989 paper says its targets were, and weights U[-2.4/F, 2.4/F]).
    /// eps, mu and the pattern count were chosen on the training set only (see README, "newton1989").
    let newton1989 =
        { lecun1989 with
            Name = "newton1989"
            LearningRate = 0.0005f
            Hidden = ScaledTanh
            Output = ScaledTanh
            WeightInit = FanIn
            Optimizer = Newton { Mu = 0.01f; Patterns = 500; Schedule = [ 1, 1.0f ] } }

    /// AdamW's initial rate at batch size `batch` for the per-example rate `rate` (the minibatch rule,
    /// scaledForBatch): rate * sqrt(batch).
    let adamWRateAt (rate: float32) (batch: int) = rate * sqrt (float32 batch)

    /// What 33 years added, on the same network: ReLU, linear outputs with softmax cross-entropy,
    /// AdamW, shifts of up to one pixel, dropout 0.25 before H3, 80 passes.
    let modern =
        { lecun1989 with
            Name = "modern"
            Passes = 80
            LearningRate = 3e-4f
            Hidden = Relu
            Output = Identity
            Loss = SoftmaxCrossEntropy
            Optimizer = AdamW { FinalLearningRate = 1e-4f; WeightDecay = 0.01f; Beta1 = 0.9f; Beta2 = 0.999f; Epsilon = 1e-8f }
            Dropout = 0.25f
            Shift = 1 }

    /// modern plus each refinement (Refinements) that lowered the error on held-out training digits
    /// (settings chosen with --holdout 1000; docs/results.md, "Beyond the essay"), without modern's
    /// dropout, which the distortions make redundant, and in minibatches of 32 (on the 16 lanes where
    /// the provider serves them) at the minibatch rule's rate. Ladder steps 6.. add them one at a time.
    let refined =
        { modern with
            Name = "refined"
            Passes = 240
            Dropout = 0.0f
            BatchSize = 32
            LearningRate = adamWRateAt modern.LearningRate 32
            Refine =
                { Refinements.none with
                    Distortion = { DistortionSettings.none with Rotation = 15.0f; Scaling = 0.15f; Shear = 0.2f }
                    LabelSmoothing = 0.1f
                    Schedule = Cosine } }

    let all = [ lecun1989; newton1989; modern; refined ]

    let tryFind (name: string) =
        match all |> List.tryFind (fun r -> r.Name = name) with
        | Some r -> Ok r
        | None -> Error $"""unknown recipe '{name}' (known: {all |> List.map (fun r -> r.Name) |> String.concat ", "})"""

    /// The layout of the recipe's network (the 1989 network's own value when it is that one).
    let layout (r: Recipe) = if r.Network = Spec.lecun1989 then Layout.lecun1989 else Layout.create r.Network

    let network (r: Recipe) = Network.create (layout r) r.Hidden r.Output

    /// The learning rate (or Newton eps) of a pass, 1-based.
    let rateAt (r: Recipe) (pass: int) =
        match r.Optimizer with
        | Sgd -> r.LearningRate
        | AdamW a ->
            let t = LrSchedule.progress r.Refine.Schedule r.Passes pass
            r.LearningRate + (a.FinalLearningRate - r.LearningRate) * t
        | Newton n ->
            let scale = n.Schedule |> List.filter (fun (first, _) -> first <= pass) |> List.tryLast |> Option.map snd |> Option.defaultValue 1.0f
            r.LearningRate * scale

    /// Passes at most: more cannot be counted in presentations (int) on the largest data set.
    let maxPasses = 10_000

    /// Random shifts move the digit inside the first layer's padding, which is 2 pixels wide on each side of
    /// H1's 16x16 input; up to 8 pixels is allowed (beyond 2 the digit leaves the field of some units).
    let maxShift = 8

    /// A batch is at most the whole training set, and no data set trains on more digits than the usps
    /// train split (mnist-sim draws as many); a run checks the batch against its own training set
    /// (fitsTrainingSet), which --holdout makes smaller.
    let maxBatchSize = Usps.maxDigits

    /// The one list of the optimizers: each by its command-line name with the recipe that introduced it,
    /// whose settings and learning rate it brings when chosen by name. (A pass's rate, the description,
    /// the checks and the minibatch rule below match on the optimizer, so the compiler names each place a
    /// new one must answer; Optimizers.create makes its state.)
    let private introduced = [ "sgd", lecun1989; "newton", newton1989; "adamw", modern ]

    /// The optimizers by their command-line names, each with the settings of the recipe that introduced it.
    let optimizers = introduced |> List.map (fun (name, r) -> r.Optimizer, name)

    let parseOptimizer (text: string) = NameTable.parse "optimizer" optimizers text

    let private caseOf = Microsoft.FSharp.Reflection.FSharpValue.PreComputeUnionTagReader typeof<OptimizerKind>

    /// The name and the introducing recipe of an optimizer, whatever its settings.
    let private introduction (o: OptimizerKind) =
        introduced |> List.find (fun (_, r) -> caseOf (box r.Optimizer) = caseOf (box o))

    let optimizerName (o: OptimizerKind) = fst (introduction o)

    /// The learning rate an optimizer brings when none is given: that of the recipe that introduced it.
    let private defaultRate (o: OptimizerKind) = (snd (introduction o)).LearningRate

    /// One line that says what a recipe does, for headers and metadata.
    let describe (r: Recipe) =
        let optimizer =
            match r.Optimizer with
            | Sgd -> $"sgd lr {r.LearningRate}"
            | Newton n -> $"diagonal newton eps {r.LearningRate} mu {n.Mu} ({n.Patterns} patterns)"
            | AdamW a -> $"adamw lr {r.LearningRate}->{a.FinalLearningRate} wd {a.WeightDecay}"
        let f = r.Refine
        let d = f.Distortion
        let extras =
            [ if r.Shift > 0 then $"shifts {r.Shift}px"
              if r.Dropout > 0.0f then $"dropout {r.Dropout}"
              // The refinements.
              if d.Rotation > 0.0f then $"rotation {d.Rotation}deg"
              if d.Scaling > 0.0f then $"scaling {d.Scaling}"
              if d.Shear > 0.0f then $"shear {d.Shear}"
              if d.ElasticAlpha > 0.0f then $"elastic {d.ElasticAlpha}/{d.ElasticSigma}"
              if f.Schedule <> Linear then $"{LrSchedule.name f.Schedule} schedule"
              if f.LabelSmoothing > 0.0f then $"label smoothing {f.LabelSmoothing}"
              if f.AverageLast > 0 then $"weights averaged over the last {f.AverageLast} passes"
              match f.Distill with
              | Some t when t.Saved -> $"distilled from {t.Teachers} saved teachers at T {t.Temperature} weight {t.Weight}"
              | Some t -> $"distilled from {t.Teachers} teachers at T {t.Temperature} weight {t.Weight}"
              | None -> ()
              if f.Sam > 0.0f then $"sharpness-aware rho {f.Sam}"
              if f.TangentProp > 0.0f then $"tangent propagation weight {f.TangentProp}" ]
        let network = if r.Network = Spec.lecun1989 then [] else [ $"network of {(layout r).ParamCount} parameters" ]
        String.concat ", " (network @ [ $"{Activation.name r.Hidden}/{Activation.name r.Output}"; $"init {WeightInit.name r.WeightInit}"; Loss.name r.Loss; optimizer; $"batch {r.BatchSize}"; $"{r.Passes} passes" ] @ extras)

    let private check condition (message: string) = if condition then Ok() else Error message

    let private show32 (y: float32) =
        if Single.IsPositiveInfinity y then "infinity"
        elif Single.IsNegativeInfinity y then "-infinity"
        else y.ToString("R", CultureInfo.InvariantCulture)

    /// A positive float64 option as the float32 training uses, refused when the conversion makes it 0, a
    /// denormal or infinity (`--lr 1e-50` is 0 in float32, `--mu 1e300` infinity).
    let private positive32 (flag: string) (mustBe: string) (x: float) : Result<float32, string> =
        let y = float32 x
        if not (x > 0.0 && Double.IsFinite x) then Error $"{flag} must be {mustBe}, got {x}"
        elif not (Single.IsNormal y) then
            Error $"{flag} must be {mustBe}, got {x}, which is {show32 y} in float32 (the precision training uses)"
        else Ok y

    /// A dropout rate as float32, refused when it is outside [0, 1) there or too small to drop anything
    /// (1 - rate rounds to 1).
    let private dropout32 (x: float) : Result<float32, string> =
        let y = float32 x
        let inFloat32 = $", which is {show32 y} in float32 (the precision training uses)"
        if not (x >= 0.0 && x < 1.0) then Error $"--dropout must be in [0, 1), got {x}"
        elif not (y >= 0.0f && y < 1.0f) then Error $"--dropout must be in [0, 1), got {x}{inFloat32}"
        elif x > 0.0 && 1.0f - y = 1.0f then Error $"--dropout must be 0 or large enough to drop a unit, got {x}{inFloat32}: 1 - rate rounds to 1"
        else Ok y

    let private checkPasses (n: int) =
        if n < 1 then Error $"--passes must be at least 1, got {n}"
        elif n > maxPasses then Error $"--passes must be at most {maxPasses}, got {n}"
        else Ok n

    let private checkBatch (n: int) =
        if n < 1 then Error $"--batch-size must be at least 1, got {n}"
        elif n > maxBatchSize then Error $"--batch-size must be at most {maxBatchSize} (the most training digits of any data set), got {n}"
        else Ok n

    /// The batch size against the training set a run trains on (after --holdout): a batch larger than
    /// the set would only ever be the set, so it is refused rather than silently shrunk.
    let fitsTrainingSet (trainDigits: int) (r: Recipe) : Result<Recipe, string> =
        if r.BatchSize > trainDigits then
            Error $"--batch-size must be at most the {trainDigits} training digits, got {r.BatchSize}"
        else Ok r

    let private checkShift (n: int) =
        if n < 0 || n > maxShift then Error $"--shift must be between 0 and {maxShift} pixels, got {n}" else Ok n

    /// Every rule a recipe obeys, on the record itself (what a script hands to `Train.run`). The overrides
    /// check their values before this, so the command line names the option and the value as typed.
    let validate (r: Recipe) : Result<Recipe, string> =
        let normal (what: string) (v: float32) = check (Single.IsNormal v && v > 0.0f) $"recipe {r.Name}: {what} must be a positive float32 number, got {show32 v}"
        result {
            do! checkPasses r.Passes |> Result.ignore
            do! normal "the learning rate" r.LearningRate
            do! checkBatch r.BatchSize |> Result.ignore
            do! check (r.Hidden <> Identity) $"recipe {r.Name}: identity hidden units would make the network linear"
            do! check (r.Dropout >= 0.0f && r.Dropout < 1.0f) $"recipe {r.Name}: the dropout rate must be in [0, 1), got {show32 r.Dropout}"
            do! checkShift r.Shift |> Result.ignore
            let! net = Layout.tryCreate r.Network |> Result.mapError (fun e -> $"recipe {r.Name}: the network: {e}")
            let input = r.Network.Input
            do! check (input.Planes = 1 && input.Height = 16 && input.Width = 16 && net.OutputSize = 10)
                    $"recipe {r.Name}: the network must read one 16x16 plane (a digit) and have 10 outputs (one per class), got {input.Planes}x{input.Height}x{input.Width} and {net.OutputSize}"
            // Shifts and distortions move the digit inside the first layer's padding (InputShifts, Distortion).
            let first = List.head net.Layers
            do! check ((r.Shift = 0 && DistortionSettings.isNone r.Refine.Distortion) || (first.Spec.Kind.Frame first.InShape).IsSome)
                    $"recipe {r.Name}: shifts and distortions need a network whose first layer pads its input (a locally-connected one)"
            match r.Optimizer with
            | Sgd -> ()
            | Newton n ->
                do! normal "newton's mu" n.Mu
                do! check (n.Patterns >= 1) $"recipe {r.Name}: newton's Hessian needs at least 1 pattern, got {n.Patterns}"
                for first, scale in n.Schedule do
                    do! check (first >= 1) $"recipe {r.Name}: newton's schedule starts a rate at pass {first}; passes count from 1"
                    do! normal $"newton's rate scale from pass {first}" scale
            | AdamW a ->
                do! check (a.FinalLearningRate >= 0.0f && Single.IsFinite a.FinalLearningRate) $"recipe {r.Name}: AdamW's final learning rate must be a non-negative number, got {show32 a.FinalLearningRate}"
                do! check (a.WeightDecay >= 0.0f && Single.IsFinite a.WeightDecay) $"recipe {r.Name}: AdamW's weight decay must be a non-negative number, got {show32 a.WeightDecay}"
                do! check (a.Beta1 >= 0.0f && a.Beta1 < 1.0f && a.Beta2 >= 0.0f && a.Beta2 < 1.0f) $"recipe {r.Name}: AdamW's betas must be in [0, 1), got {show32 a.Beta1} and {show32 a.Beta2}"
                do! normal "AdamW's epsilon" a.Epsilon
            // The refinements.
            let f = r.Refine
            let usesAdamW = match r.Optimizer with AdamW _ -> true | Sgd | Newton _ -> false
            do! check (f.AverageLast >= 0 && f.AverageLast <= r.Passes) $"--average-last must be between 0 and the passes ({r.Passes}), got {f.AverageLast}"
            do! check (not (Refinements.softTargets f) || r.Loss = SoftmaxCrossEntropy) "--label-smoothing, --distill and --teacher need softmax cross-entropy (--loss softmax-ce)"
            do! check (f.Schedule = Linear || usesAdamW) "--schedule applies to the adamw optimizer only"
            do! check (f.Distortion.ElasticAlpha = 0.0f || f.Distortion.ElasticSigma > 0.0f) "--elastic-sigma must be positive"
            do! check (f.Sam >= 0.0f && Single.IsFinite f.Sam) $"recipe {r.Name}: SAM's radius must be a non-negative number, got {show32 f.Sam}"
            // SAM puts the weights back after its perturbed gradient, before the step: a fused step would update them before that.
            do! check (f.Sam = 0.0f || usesAdamW) "--sam applies to the adamw optimizer only"
            do! check (f.TangentProp >= 0.0f && Single.IsFinite f.TangentProp) $"recipe {r.Name}: tangent propagation's weight must be a non-negative number, got {show32 f.TangentProp}"
            // Its second pass adds a gradient after the first: a fused step would have moved the weights between them.
            do! check (f.TangentProp = 0.0f || usesAdamW) "--tangent-prop applies to the adamw optimizer only"
            do! check (f.TangentProp = 0.0f || not (DistortionSettings.isNone f.Distortion)) "--tangent-prop needs distortions (--rotation, --scaling, --shear or --elastic): it perturbs the distorted frame"
            return r
        }

    /// The order overrides apply in, whatever order they were given in: the loss before the activation (the
    /// loss decides whether the outputs are linear, the activation keeps linear outputs linear), the optimizer
    /// before the learning rate (an optimizer brings its rate unless one is given) and before mu (which
    /// needs the newton optimizer).
    let private rank (o: RecipeOverride) =
        match o with
        | RecipeOverride.Passes _ -> 0
        | RecipeOverride.BatchSize _ -> 1
        | RecipeOverride.Seed _ -> 2
        | RecipeOverride.Loss _ -> 3
        | RecipeOverride.Activation _ -> 4
        | RecipeOverride.WeightInit _ -> 5
        | RecipeOverride.Optimizer _ -> 6
        | RecipeOverride.LearningRate _ -> 7
        | RecipeOverride.Mu _ -> 8
        | RecipeOverride.Shift _ -> 9
        | RecipeOverride.Dropout _ -> 10
        | RecipeOverride.Rotation _ -> 11
        | RecipeOverride.Scaling _ -> 12
        | RecipeOverride.Shear _ -> 13
        | RecipeOverride.Elastic _ -> 14
        | RecipeOverride.ElasticSigma _ -> 15
        | RecipeOverride.LabelSmoothing _ -> 16
        | RecipeOverride.Schedule _ -> 17
        | RecipeOverride.AverageLast _ -> 18
        | RecipeOverride.Distill _ -> 19
        | RecipeOverride.SavedTeachers _ -> 20
        | RecipeOverride.Temperature _ -> 21
        | RecipeOverride.DistillWeight _ -> 22
        | RecipeOverride.Sam _ -> 23
        | RecipeOverride.TangentProp _ -> 24

    // Helpers of the refinements' overrides.
    let private inRange (flag: string) (lo: float) (hi: float) (x: float) : Result<float32, string> =
        if x >= lo && x <= hi then Ok(float32 x) else Error $"{flag} must be between {lo} and {hi}, got {x}"
    let private distort (r: Recipe) (g: DistortionSettings -> DistortionSettings) = { r with Refine = { r.Refine with Distortion = g r.Refine.Distortion } }
    /// Distillation's settings when --distill gives only the teachers.
    let defaultDistill = { Teachers = 0; Temperature = 2.0f; Weight = 1.0f; Saved = false }
    let private teachers (r: Recipe) (flag: string) (g: DistillSettings -> DistillSettings) =
        match r.Refine.Distill with
        | Some d -> Ok { r with Refine = { r.Refine with Distill = Some(g d) } }
        | None -> Error $"{flag} needs --distill K (K teachers) or --teacher MODEL"

    let private applyOne (r: Recipe) (o: RecipeOverride) : Result<Recipe, string> =
        match o with
        | RecipeOverride.Passes n -> checkPasses n |> Result.map (fun n -> { r with Passes = n })
        | RecipeOverride.LearningRate x -> positive32 "--lr" "a positive number" x |> Result.map (fun lr -> { r with LearningRate = lr })
        | RecipeOverride.BatchSize n -> checkBatch n |> Result.map (fun n -> { r with BatchSize = n })
        | RecipeOverride.Seed s -> Ok { r with Seed = s }
        | RecipeOverride.Loss SoftmaxCrossEntropy -> Ok { r with Loss = SoftmaxCrossEntropy; Output = Identity }
        | RecipeOverride.Loss loss -> Ok { r with Loss = loss; Output = (if r.Output = Identity then r.Hidden else r.Output) }
        | RecipeOverride.Activation Identity -> Error "--activation identity would make the network linear; use tanh, scaled-tanh or relu"
        | RecipeOverride.Activation a -> Ok { r with Hidden = a; Output = (if r.Output = Identity then Identity else a) }
        | RecipeOverride.WeightInit w -> Ok { r with WeightInit = w }
        | RecipeOverride.Optimizer o -> Ok { r with Optimizer = o; LearningRate = defaultRate o }
        | RecipeOverride.Mu x ->
            match r.Optimizer with
            | Newton n -> positive32 "--mu" "positive" x |> Result.map (fun mu -> { r with Optimizer = Newton { n with Mu = mu } })
            | Sgd | AdamW _ -> Error "--mu applies to the newton optimizer only (use --recipe newton1989 or --optimizer newton)"
        | RecipeOverride.Shift n -> checkShift n |> Result.map (fun n -> { r with Shift = n })
        | RecipeOverride.Dropout x -> dropout32 x |> Result.map (fun d -> { r with Dropout = d })
        | RecipeOverride.Rotation x -> inRange "--rotation" 0.0 45.0 x |> Result.map (fun v -> distort r (fun d -> { d with Rotation = v }))
        | RecipeOverride.Scaling x -> inRange "--scaling" 0.0 0.5 x |> Result.map (fun v -> distort r (fun d -> { d with Scaling = v }))
        | RecipeOverride.Shear x -> inRange "--shear" 0.0 1.0 x |> Result.map (fun v -> distort r (fun d -> { d with Shear = v }))
        | RecipeOverride.Elastic x -> inRange "--elastic" 0.0 50.0 x |> Result.map (fun v -> distort r (fun d -> { d with ElasticAlpha = v }))
        | RecipeOverride.ElasticSigma x -> inRange "--elastic-sigma" 0.5 8.0 x |> Result.map (fun v -> distort r (fun d -> { d with ElasticSigma = v }))
        | RecipeOverride.LabelSmoothing x -> inRange "--label-smoothing" 0.0 0.5 x |> Result.map (fun v -> { r with Refine = { r.Refine with LabelSmoothing = v } })
        | RecipeOverride.Schedule s -> Ok { r with Refine = { r.Refine with Schedule = s } }
        | RecipeOverride.AverageLast n -> Ok { r with Refine = { r.Refine with AverageLast = n } }
        | RecipeOverride.Distill 0 -> Ok { r with Refine = { r.Refine with Distill = None } }
        | RecipeOverride.Distill n when n < 0 || n > 20 -> Error $"--distill must be between 0 and 20 teachers, got {n}"
        | RecipeOverride.Distill n ->
            let d = r.Refine.Distill |> Option.defaultValue defaultDistill
            Ok { r with Refine = { r.Refine with Distill = Some { d with Teachers = n; Saved = false } } }
        | RecipeOverride.SavedTeachers 0 -> Ok r
        | RecipeOverride.SavedTeachers n when n < 0 || n > 20 -> Error $"--teacher may be given 1 to 20 times, got {n}"
        | RecipeOverride.SavedTeachers n ->
            match r.Refine.Distill with
            | Some d when not d.Saved && d.Teachers > 0 -> Error "--teacher and --distill do not combine: distil from saved teachers or from teachers trained in the run"
            | d ->
                let d = d |> Option.defaultValue defaultDistill
                Ok { r with Refine = { r.Refine with Distill = Some { d with Teachers = n; Saved = true } } }
        | RecipeOverride.Temperature x -> inRange "--temperature" 0.1 20.0 x |> Result.bind (fun v -> teachers r "--temperature" (fun d -> { d with Temperature = v }))
        | RecipeOverride.DistillWeight x -> inRange "--distill-weight" 0.0 1.0 x |> Result.bind (fun v -> teachers r "--distill-weight" (fun d -> { d with Weight = v }))
        | RecipeOverride.Sam x -> inRange "--sam" 0.0 1.0 x |> Result.map (fun v -> { r with Refine = { r.Refine with Sam = v } })
        | RecipeOverride.TangentProp x -> inRange "--tangent-prop" 0.0 100.0 x |> Result.map (fun v -> { r with Refine = { r.Refine with TangentProp = v } })

    /// The minibatch rule: AdamW's initial rate grows with sqrt(B) (3e-4 at 1, 2.4e-3 at 64; the final
    /// rate stays), which kept modern's held-out error within 0.0-0.3 points of per-example training at
    /// 16-128 (docs/speed.md, "modern and refined at minibatch sizes"). A recipe's rate is its rate at its
    /// own batch size, so a batch size B given to a recipe of batch size B0 scales the rate by
    /// sqrt(B / B0) (from B0 = 1 exactly as adamWRateAt computes it). SGD and Newton keep their rates:
    /// their steps already average the batch's gradients.
    let scaledForBatch (baseBatch: int) (r: Recipe) =
        match r.Optimizer with
        | AdamW _ when r.BatchSize <> baseBatch ->
            if baseBatch = 1 then { r with LearningRate = adamWRateAt r.LearningRate r.BatchSize }
            else { r with LearningRate = r.LearningRate * sqrt (float32 r.BatchSize / float32 baseBatch) }
        | AdamW _ | Sgd | Newton _ -> r

    /// `baseRecipe` with the overrides applied (in the order of `rank`; of two of one kind the later wins)
    /// and the result validated, or the first problem found. A batch size given without a learning rate
    /// takes the minibatch rule (scaledForBatch).
    let apply (overrides: RecipeOverride list) (baseRecipe: Recipe) : Result<Recipe, string> =
        let given f = overrides |> List.exists f
        let batchRule = given (function RecipeOverride.BatchSize _ -> true | _ -> false) && not (given (function RecipeOverride.LearningRate _ -> true | _ -> false))
        overrides
        |> List.sortBy rank
        |> List.fold (fun acc o -> acc |> Result.bind (fun r -> applyOne r o)) (Ok baseRecipe)
        |> Result.map (fun r -> if batchRule then scaledForBatch baseRecipe.BatchSize r else r)
        |> Result.bind validate

    /// `train`'s option for an override and its value as typed, as the ladder prints a step's command.
    let flag (o: RecipeOverride) : string * string =
        let inv (x: float) = x.ToString(CultureInfo.InvariantCulture)
        match o with
        | RecipeOverride.Passes n -> "--passes", string n
        | RecipeOverride.LearningRate x -> "--lr", inv x
        | RecipeOverride.BatchSize n -> "--batch-size", string n
        | RecipeOverride.Seed s -> "--seed", string s
        | RecipeOverride.Loss l -> "--loss", Loss.name l
        | RecipeOverride.Activation a -> "--activation", Activation.name a
        | RecipeOverride.WeightInit w -> "--weight-init", WeightInit.name w
        | RecipeOverride.Optimizer o -> "--optimizer", optimizerName o
        | RecipeOverride.Mu x -> "--mu", inv x
        | RecipeOverride.Shift n -> "--shift", string n
        | RecipeOverride.Dropout x -> "--dropout", inv x
        | RecipeOverride.Rotation x -> "--rotation", inv x
        | RecipeOverride.Scaling x -> "--scaling", inv x
        | RecipeOverride.Shear x -> "--shear", inv x
        | RecipeOverride.Elastic x -> "--elastic", inv x
        | RecipeOverride.ElasticSigma x -> "--elastic-sigma", inv x
        | RecipeOverride.AverageLast n -> "--average-last", string n
        | RecipeOverride.LabelSmoothing x -> "--label-smoothing", inv x
        | RecipeOverride.Schedule s -> "--schedule", LrSchedule.name s
        | RecipeOverride.Distill n -> "--distill", string n
        | RecipeOverride.Temperature x -> "--temperature", inv x
        | RecipeOverride.DistillWeight x -> "--distill-weight", inv x
        | RecipeOverride.SavedTeachers n -> "--teacher", $"<{n} model files>"
        | RecipeOverride.Sam x -> "--sam", inv x
        | RecipeOverride.TangentProp x -> "--tangent-prop", inv x

    /// Seeds `first`, `first + 1`, ... `first + count - 1`, refused when the last one would not be an int
    /// (it would wrap around to a negative seed).
    let seeds (first: int) (count: int) : Result<int list, string> =
        if count < 1 then Error $"--seeds must be at least 1, got {count}"
        elif int64 first + int64 count - 1L > int64 Int32.MaxValue then
            Error $"--seed {first} with --seeds {count} goes past the largest seed, {Int32.MaxValue} (the seeds are {first}, {first}+1, ...)"
        else Ok [ first .. first + count - 1 ]
