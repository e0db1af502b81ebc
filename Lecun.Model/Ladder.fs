/// The 33-year ladder of Karpathy's essay "Deep Neural Nets: 33 years ago and 33 years from now":
/// the paper's recipe, then one modern change at a time, each step exactly the one before plus its change.
namespace Lecun.Model

type LadderStep =
    { /// "0".."5" for the ladder, "0n" for the side row (the paper's own optimizer beside step 0).
      Label: string
      Adds: string
      Recipe: Recipe
      /// `train` flags that give exactly this step's recipe, in order, each key once.
      Flags: (string * string) list
      /// The data set the step trains on (step 5 swaps in mnist-sim-50k).
      DataSet: string
      /// The essay's single-seed (train, test) error in percent, on its MNIST-simulated data.
      Essay: (float * float) option }

    member s.Command =
        let flags = s.Flags |> List.map (fun (k, v) -> $"{k} {v}") |> String.concat " "
        $"lecun train --data-set {s.DataSet} {flags}"

module Ladder =
    /// Adds or replaces flags, keeping the position of a key that was already there.
    let private withFlags (added: (string * string) list) (flags: (string * string) list) =
        added |> List.fold (fun acc (k, v) ->
            if acc |> List.exists (fst >> (=) k) then acc |> List.map (fun (k', v') -> if k' = k then (k', v) else (k', v'))
            else acc @ [ k, v ]) flags

    /// Step 5's passes over ~50,000 digits: 12 passes present about as many digits (600,000) as step 4's
    /// 80 passes over 7,291 (583,280), so the step changes the data and not the amount of training.
    let step5Passes = 12

    // ---- issue 19 ----
    /// The techniques of Recipe.refined beyond modern, in ladder order: what each step adds, how it
    /// changes the step before, and its train flags. Derived from Recipe.refined, so the last step is it.
    let refinements : (string * (Recipe -> Recipe) * (string * string) list) list =
        let f = Recipe.refined.Refine
        let d = f.Distortion
        let inv (x: float32) = x.ToString(System.Globalization.CultureInfo.InvariantCulture)
        let withRefine (g: Refinements -> Refinements) (r: Recipe) = { r with Refine = g r.Refine }
        [ if d.Rotation > 0.0f || d.Scaling > 0.0f || d.Shear > 0.0f then
              $"affine distortions: rotation up to {inv d.Rotation} deg, scaling up to {inv d.Scaling}, shear up to {inv d.Shear}",
              withRefine (fun g -> { g with Distortion = { g.Distortion with Rotation = d.Rotation; Scaling = d.Scaling; Shear = d.Shear } }),
              [ "--rotation", inv d.Rotation; "--scaling", inv d.Scaling; "--shear", inv d.Shear ]
          if d.ElasticAlpha > 0.0f then
              $"elastic distortions, alpha {inv d.ElasticAlpha} px, sigma {inv d.ElasticSigma} px",
              withRefine (fun g -> { g with Distortion = { g.Distortion with ElasticAlpha = d.ElasticAlpha; ElasticSigma = d.ElasticSigma } }),
              [ "--elastic", inv d.ElasticAlpha; "--elastic-sigma", inv d.ElasticSigma ]
          if f.LabelSmoothing > 0.0f then
              $"label smoothing {inv f.LabelSmoothing}", withRefine (fun g -> { g with LabelSmoothing = f.LabelSmoothing }),
              [ "--label-smoothing", inv f.LabelSmoothing ]
          if f.Schedule <> Linear || Recipe.refined.Passes <> Recipe.modern.Passes then
              $"{LrSchedule.name f.Schedule} learning-rate schedule, {Recipe.refined.Passes} passes",
              (fun r -> { withRefine (fun g -> { g with Schedule = f.Schedule }) r with Passes = Recipe.refined.Passes }),
              [ "--schedule", LrSchedule.name f.Schedule; "--passes", string Recipe.refined.Passes ]
          if f.AverageLast > 0 then
              $"weights averaged over the last {f.AverageLast} passes", withRefine (fun g -> { g with AverageLast = f.AverageLast }),
              [ "--average-last", string f.AverageLast ]
          match f.Distill with
          | Some t ->
              $"distilled from {t.Teachers} teachers (this recipe less distillation) at temperature {inv t.Temperature}",
              withRefine (fun g -> { g with Distill = Some t }),
              [ "--distill", string t.Teachers; "--temperature", inv t.Temperature; "--distill-weight", inv t.Weight ]
          | None -> () ]

    /// The labels of issue 19's steps: "6", "7", ...
    let refinedLabels = refinements |> List.mapi (fun i _ -> string (6 + i))
    // ---- end issue 19 ----

    /// The ladder on `dataSet` (usps or mnist-sim); step 5 exists on mnist-sim only.
    let steps (dataSet: string) : LadderStep list =
        let s0 =
            { Label = "0"; Adds = "the paper's recipe (lecun1989)"; Recipe = Recipe.lecun1989
              Flags = [ "--recipe", "lecun1989" ]; DataSet = dataSet; Essay = Some(0.62, 4.09) }
        let next (prev: LadderStep) label adds (change: Recipe -> Recipe) flags essay =
            { prev with Label = label; Adds = adds; Recipe = change prev.Recipe; Flags = withFlags flags prev.Flags; Essay = essay }
        let s1 =
            // The essay: "Had to lower the learning rate to 0.01 as well" (cross-entropy's gradients are larger).
            next s0 "1" "linear outputs + softmax cross-entropy (lr 0.01)"
                (fun r -> { r with Output = Identity; Loss = SoftmaxCrossEntropy; LearningRate = 0.01f }) [ "--loss", "softmax-ce"; "--lr", "0.01" ] (Some(0.00, 4.38))
        let s2 =
            next s1 "2" "AdamW, lr 3e-4 falling linearly to 1e-4, weight decay 0.01"
                (fun r -> { r with Optimizer = Recipe.modern.Optimizer; LearningRate = Recipe.modern.LearningRate }) [ "--optimizer", "adamw"; "--lr", "0.0003" ] (Some(0.00, 3.59))
        let s3 =
            next s2 "3" "random shifts of up to 1 pixel (60 passes)"
                (fun r -> { r with Shift = 1; Passes = 60 }) [ "--shift", "1"; "--passes", "60" ] (Some(1.70, 2.19))
        let s4 =
            next s3 "4" "dropout 0.25 before H3, ReLU everywhere (80 passes) = modern"
                (fun r -> { r with Dropout = 0.25f; Hidden = Relu; Passes = 80 }) [ "--dropout", "0.25"; "--activation", "relu"; "--passes", "80" ] (Some(1.47, 1.59))
        let s5 =
            { next s4 "5" $"~50,000 MNIST training digits ({step5Passes} passes, as many presentations as step 4)"
                  (fun r -> { r with Passes = step5Passes }) [ "--passes", string step5Passes ] (Some(1.07, 1.25))
                with DataSet = "mnist-sim-50k" }
        let side =
            { s0 with Label = "0n"; Adds = "side row: the paper's optimizer, squashing and init (newton1989)"; Recipe = Recipe.newton1989
                      Flags = [ "--recipe", "newton1989" ]; Essay = None }
        // Issue 19: steps 6.. build on step 4 (step 5 changes the data), one kept technique each.
        let refinedSteps =
            refinements |> List.mapi (fun i (adds, change, flags) -> string (6 + i), adds, change, flags)
            |> List.scan (fun prev (label, adds, change, flags) -> next prev label adds change flags None) s4
            |> List.tail
        [ s0; side; s1; s2; s3; s4 ] @ (if dataSet = "mnist-sim" then [ s5 ] else []) @ refinedSteps

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
            |> Array.fold (fun acc part -> Result.bind (fun xs -> parsePart part |> Result.map (fun ys -> xs @ ys)) acc) (Ok [])
            |> Result.map (List.distinct >> List.sort >> List.map string)
