/// The 33-year ladder of Karpathy's essay "Deep Neural Nets: 33 years ago and 33 years from now":
/// the paper's recipe, then one modern change at a time, each step exactly the one before plus its change.
namespace Lecun.Model

type LadderStep =
    { /// "0".."5" for the ladder, "0n" for the side row (the paper's own optimizer beside step 0).
      Label: string
      Adds: string
      /// The named recipe the step starts from.
      Base: Recipe
      /// The changes on top of `Base`, in the order `train` is given them, each kind once: the step's recipe
      /// and its printed command both come from this one list.
      Overrides: RecipeOverride list
      /// The data set the step trains on (step 5 swaps in mnist-sim-50k).
      DataSet: DataSetName
      /// The essay's single-seed (train, test) error in percent, on its MNIST-simulated data.
      Essay: (float * float) option }

    /// The recipe the step trains: its base with its overrides.
    member s.Recipe =
        match Recipe.apply s.Overrides s.Base with
        | Ok r -> r
        | Error e -> invalidOp $"ladder step {s.Label}: {e}"

    /// `train` options that give exactly this step's recipe, in order, each option once.
    member s.Flags = ("--recipe", s.Base.Name) :: (s.Overrides |> List.map Recipe.flag)

    member s.Command =
        let flags = s.Flags |> List.map (fun (k, v) -> $"{k} {v}") |> String.concat " "
        $"lecun train --data-set {DataSetName.name s.DataSet} {flags}"

module Ladder =
    /// Adds or replaces overrides, keeping the position of a kind that was already there.
    let private withOverrides (added: RecipeOverride list) (overrides: RecipeOverride list) =
        let kind = Recipe.flag >> fst
        added |> List.fold (fun acc o ->
            if acc |> List.exists (fun o' -> kind o' = kind o) then acc |> List.map (fun o' -> if kind o' = kind o then o else o')
            else acc @ [ o ]) overrides

    /// Step 5's passes over ~50,000 digits: 12 passes present about as many digits (600,000) as step 4's
    /// 80 passes over 7,291 (583,280), so the step changes the data and not the amount of training.
    let step5Passes = 12

    /// The passes of the cosine schedule's step; a longer schedule, if refined has one, is a step of its own.
    let cosinePasses = 120

    /// The techniques of Recipe.refined beyond modern, in ladder order: what each step adds, how it
    /// changes the step before, and its train flags. Derived from Recipe.refined, so the last step is it.
    let refinements : (string * RecipeOverride list) list =
        let f = Recipe.refined.Refine
        let d = f.Distortion
        let inv (x: float32) = x.ToString(System.Globalization.CultureInfo.InvariantCulture)
        // float32 -> float through the shortest text, so the printed flag reads 0.15 and not 0.15000000596.
        let f64 (x: float32) = float (inv x)
        [ if d.Rotation > 0.0f || d.Scaling > 0.0f || d.Shear > 0.0f then
              $"affine distortions: rotation up to {inv d.Rotation} deg, scaling up to {inv d.Scaling}, shear up to {inv d.Shear}",
              [ RecipeOverride.Rotation(f64 d.Rotation); RecipeOverride.Scaling(f64 d.Scaling); RecipeOverride.Shear(f64 d.Shear) ]
          if d.ElasticAlpha > 0.0f then
              $"elastic distortions, alpha {inv d.ElasticAlpha} px, sigma {inv d.ElasticSigma} px",
              [ RecipeOverride.Elastic(f64 d.ElasticAlpha); RecipeOverride.ElasticSigma(f64 d.ElasticSigma) ]
          if f.LabelSmoothing > 0.0f then
              $"label smoothing {inv f.LabelSmoothing}", [ RecipeOverride.LabelSmoothing(f64 f.LabelSmoothing) ]
          let schedulePasses = min Recipe.refined.Passes cosinePasses
          if f.Schedule <> Linear || schedulePasses <> Recipe.modern.Passes then
              $"{LrSchedule.name f.Schedule} learning-rate schedule, {schedulePasses} passes",
              [ RecipeOverride.Schedule f.Schedule; RecipeOverride.Passes schedulePasses ]
          if Recipe.refined.Dropout <> Recipe.modern.Dropout then
              $"dropout {inv Recipe.refined.Dropout} (the distortions regularize)", [ RecipeOverride.Dropout(f64 Recipe.refined.Dropout) ]
          if Recipe.refined.Passes > schedulePasses then
              $"a longer schedule: {Recipe.refined.Passes} passes", [ RecipeOverride.Passes Recipe.refined.Passes ]
          if Recipe.refined.BatchSize <> Recipe.modern.BatchSize then
              $"minibatches of {Recipe.refined.BatchSize} (AdamW lr {inv Recipe.refined.LearningRate}, the minibatch rule)",
              [ RecipeOverride.BatchSize Recipe.refined.BatchSize; RecipeOverride.LearningRate(f64 Recipe.refined.LearningRate) ]
          if f.AverageLast > 0 then
              $"weights averaged over the last {f.AverageLast} passes", [ RecipeOverride.AverageLast f.AverageLast ]
          match f.Distill with
          | Some t ->
              $"distilled from {t.Teachers} teachers (this recipe less distillation) at temperature {inv t.Temperature}",
              [ RecipeOverride.Distill t.Teachers; RecipeOverride.Temperature(f64 t.Temperature); RecipeOverride.DistillWeight(f64 t.Weight) ]
          | None -> () ]

    /// The labels of the refinements' steps: "6", "7", ...
    let refinedLabels = refinements |> List.mapi (fun i _ -> string (6 + i))

    /// The ladder on `dataSet` (usps or mnist-sim); step 5 exists on mnist-sim only.
    let steps (dataSet: DataSetName) : LadderStep list =
        let s0 =
            { Label = "0"; Adds = "the paper's recipe (lecun1989)"; Base = Recipe.lecun1989; Overrides = []
              DataSet = dataSet; Essay = Some(0.62, 4.09) }
        let next (prev: LadderStep) label adds (change: RecipeOverride list) essay =
            { prev with Label = label; Adds = adds; Overrides = withOverrides change prev.Overrides; Essay = essay }
        let s1 =
            // The essay: "Had to lower the learning rate to 0.01 as well" (cross-entropy's gradients are larger).
            next s0 "1" "linear outputs + softmax cross-entropy (lr 0.01)"
                [ RecipeOverride.Loss SoftmaxCrossEntropy; RecipeOverride.LearningRate 0.01 ] (Some(0.00, 4.38))
        let s2 =
            next s1 "2" "AdamW, lr 3e-4 falling linearly to 1e-4, weight decay 0.01"
                [ RecipeOverride.Optimizer Recipe.modern.Optimizer; RecipeOverride.LearningRate 0.0003 ] (Some(0.00, 3.59))
        let s3 =
            next s2 "3" "random shifts of up to 1 pixel (60 passes)"
                [ RecipeOverride.Shift 1; RecipeOverride.Passes 60 ] (Some(1.70, 2.19))
        let s4 =
            next s3 "4" "dropout 0.25 before H3, ReLU everywhere (80 passes) = modern"
                [ RecipeOverride.Dropout 0.25; RecipeOverride.Activation Relu; RecipeOverride.Passes 80 ] (Some(1.47, 1.59))
        let s5 =
            { next s4 "5" $"~50,000 MNIST training digits ({step5Passes} passes, as many presentations as step 4)"
                  [ RecipeOverride.Passes step5Passes ] (Some(1.07, 1.25))
                with DataSet = DataSetName.MnistSim50k }
        let side =
            { s0 with Label = "0n"; Adds = "side row: the paper's optimizer, squashing and init (newton1989)"; Base = Recipe.newton1989
                      Essay = None }
        // The refinements: steps 6.. build on step 4 (step 5 changes the data), one kept technique each.
        let refinedSteps =
            refinements |> List.mapi (fun i (adds, change) -> string (6 + i), adds, change)
            |> List.scan (fun prev (label, adds, change) -> next prev label adds change None) s4
            |> List.tail
        [ s0; side; s1; s2; s3; s4 ] @ (if dataSet = DataSetName.MnistSim then [ s5 ] else []) @ refinedSteps

    /// Parses "0-4", "0,2,5" or "all" into step labels (the side row "0n" goes with step 0).
    let parseSteps (text: string) : Result<string list, string> =
        let known = [ "0"; "1"; "2"; "3"; "4"; "5" ] @ refinedLabels
        let parsePart (part: string) =
            match part.Trim().Split('-') with
            | [| a |] when List.contains a known -> Ok [ int a ]
            | [| a; b |] when List.contains a known && List.contains b known && int a <= int b -> Ok [ int a .. int b ]
            | _ -> Error $"unknown step '{part.Trim()}' (steps are 0 to {List.last known}, e.g. --steps 0-4 or --steps 0,2,4)"
        if text.Trim() = "all" then Ok known
        else
            text.Split(',')
            |> Results.traverse parsePart
            |> Result.map (List.concat >> List.distinct >> List.sort >> List.map string)

    /// The steps of the ladder on `dataSet` that `wanted` (parseSteps' labels) selects: a side row
    /// ("0n") goes with its step ("0").
    let select (dataSet: DataSetName) (wanted: string list) : LadderStep list =
        steps dataSet |> List.filter (fun s -> List.contains (s.Label.TrimEnd 'n') wanted)

    /// Steps wanted that cannot run on `dataSet`, with the reason: step 5 adds MNIST's training
    /// digits, so on usps it is reported as skipped rather than silently left out.
    let unavailable (dataSet: DataSetName) (wanted: string list) : (LadderStep * string) list =
        if List.contains "5" wanted && dataSet = DataSetName.Usps then
            let five = steps DataSetName.MnistSim |> List.find (fun s -> s.Label = "5")
            [ five, "step 5 adds MNIST training digits, so it runs on mnist-sim only (ladder --data-set mnist-sim)" ]
        else []

    /// The data sets a ladder runs on (step 5 brings in mnist-sim-50k itself).
    let parseDataSet (text: string) : Result<DataSetName, string> =
        match DataSetName.parse text with
        | Ok(DataSetName.Usps | DataSetName.MnistSim as d) -> Ok d
        | Ok DataSetName.MnistSim50k
        | Error _ -> Error $"unknown data set '{text}' for the ladder (known: usps, mnist-sim)"

    /// The fewest digits per split `--limit` may keep: one of each class.
    let minLimit = 10

    /// A `--limit` keeps at least minLimit digits.
    let checkLimit (limit: int option) : Result<unit, string> =
        match limit with
        | Some n when n < minLimit -> Error $"--limit must be at least {minLimit} digits, got {n}"
        | _ -> Ok()

    /// The first `limit` digits of each split (a quick look), or the data unchanged.
    let limit (limit: int option) (data: TrainTest) : Result<TrainTest, string> =
        checkLimit limit
        |> Result.map (fun () ->
            match limit with
            | Some n -> { data with Train = data.Train.Take n; Test = data.Test.Take n; Source = $"{data.Source}, first {n} digits of each split" }
            | None -> data)

    /// `seeds` runs of each of `stepCount` steps (at least one counted), within Runs.maxRuns.
    let checkRunCount (seeds: int) (stepCount: int) : Result<unit, string> =
        let stepCount = max 1 stepCount
        if seeds > Runs.maxRuns / stepCount then
            Error $"--seeds {seeds} over {stepCount} steps would be {int64 seeds * int64 stepCount} runs; at most {Runs.maxRuns} in one ladder (--seeds at most {Runs.maxRuns / stepCount})"
        else Ok()
