/// The refinements: distortions, weight averaging, soft targets and the `refined` recipe.
module Lecun.Tests.RefinementsTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Argu
open Lecun.Native.Backends
open Lecun.Native.Kernels
open Lecun.Model
open Lecun.Tests.TestKit

let private net = Recipe.network Recipe.modern
let private side, pad = 16, 2
let private frameSide = side + 2 * pad

let private property name maxTest (gen: Gen<'a>) (body: 'a -> unit) =
    testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = maxTest } name (Prop.forAll (Arb.fromGen gen) body)

/// Bytes this thread allocates in a steady-state training pass of `recipe` over `train`.
let private secondPassAllocation (net: Network) (recipe: Recipe) (state: Train.State) (parameters: float32 array) (train: Dataset) =
    let ws = Workspace.create net 1
    steadyAllocation (fun () -> Train.trainOnePass Backend.Managed net recipe 1 parameters ws state train ignore)

/// A digit with values in [-1, 1] (ink +1, paper -1), quarter steps so every value is exact.
let private genImage = Gen.choose (-4, 4) |> Gen.map (fun v -> float32 v / 4.0f) |> Gen.arrayOfLength (side * side)

/// The source point of frame pixel (y, x) in image coordinates, per Distort.Warp's definition.
let private source (m00, m01, m10, m11, tx, ty) (y: int) (x: int) =
    let c = 0.5f * float32 (frameSide - 1)
    let u, v = float32 x - c, float32 y - c
    m00 * u + m01 * v + c + tx - float32 pad, m10 * u + m11 * v + c + ty - float32 pad

/// The image at integer point (y, x), the padding's -1 outside.
let private at (image: float32 array) y x = if y >= 0 && y < side && x >= 0 && x < side then image.[y * side + x] else -1.0f

[<Tests>]
let tests =
    testList "refinements" [
        property "a distortion of strength zero is the identity: the frame is the padded digit, moved by the shift" 100
            (Gen.zip genImage (Gen.zip (Gen.choose (-2, 2)) (Gen.choose (-2, 2)))) (fun (image, (dx, dy)) ->
            let d = Distortion.create net DistortionSettings.none 7
            Distortion.apply d image 0 dx dy
            for y in 0 .. frameSide - 1 do
                for x in 0 .. frameSide - 1 do
                    Expect.equal d.Frame.[y * frameSide + x] (at image (y - pad - dy) (x - pad - dx)) $"frame pixel ({y}, {x}), shift ({dx}, {dy})")

        test "a distorter asks the first layer's kind how it pads: another padding and value give another frame; a dense first layer is refused" {
            let spec =
                { Input = { Planes = 1; Height = 12; Width = 12 }
                  Layers = [ Local { Name = "H1"; Planes = 4; Kernel = 3; Stride = 1; Padding = 3; PadValue = 0.5f; Table = ConnectionTable.full 1 4 }
                             Dense { Name = "out"; Units = 10 } ] }
            let other = Network.create (Layout.create spec) Tanh Tanh
            let d = Distortion.create other DistortionSettings.none 3
            Expect.equal (d.Height, d.Width, d.Pad, d.PadValue) (12, 12, 3, 0.5f) "the layer's input side, padding and pad value"
            Expect.isTrue (d.Frame.Length = 18 * 18 && d.Frame |> Array.forall ((=) 0.5f)) "an 18x18 frame of the pad value before any digit"
            let image = Array.init 144 (fun i -> float32 (i % 9) / 4.0f - 1.0f)
            Distortion.apply d image 0 0 0
            let columns (plan: Im2ColPlan) (input: float32 array) =
                let cols = Array.zeroCreate (plan.Rows * plan.Positions)
                plan.ForwardBoth(ReadOnlySpan input, 0.5f, Span cols, Span(Array.zeroCreate plan.TransposedSize), Span(Array.zeroCreate (max plan.ScratchSize 1)))
                cols
            Expect.sequenceEqual (columns d.Unfold d.Frame) (columns other.Plans.[0].Unfold.Value image) "the frame's windows are the layer's on the digit"
            let denseFirst = Network.create (Layout.create { spec with Layers = [ Dense { Name = "out"; Units = 10 } ] }) Tanh Tanh
            Expect.throwsC (fun () -> Distortion.create denseFirst DistortionSettings.none 3 |> ignore)
                (fun e -> Expect.stringContains e.Message "pads and unfolds its input" "says what the first layer lacks")
        }

        property "the frame through its plan gives the first layer exactly the columns of the shift plan on the digit" 30
            (Gen.zip genImage (Gen.zip (Gen.choose (-1, 1)) (Gen.choose (-1, 1)))) (fun (image, (dx, dy)) ->
            let d = Distortion.create net DistortionSettings.none 7
            Distortion.apply d image 0 dx dy
            let plain = InputShifts.plan (InputShifts.create net 1) dx dy
            let columns (plan: Im2ColPlan) (input: float32 array) =
                let cols = Array.zeroCreate (plan.Rows * plan.Positions)
                plan.ForwardBoth(ReadOnlySpan input, -1.0f, Span cols, Span(Array.zeroCreate plan.TransposedSize), Span(Array.zeroCreate (max plan.ScratchSize d.Unfold.ScratchSize)))
                cols
            Expect.sequenceEqual (columns d.Unfold d.Frame) (columns plain image) "columns")

        // Each distortion on an all-ink digit: a frame pixel whose source point lies outside the digit
        // (no pixel of it within reach of the bilinear sample) is exactly the background; one whose four
        // neighbours are all ink is ink.
        property "affine maps keep the background where they expose the frame" 60
            (Gen.zip3 (Gen.choose (-45, 45)) (Gen.zip (Gen.choose (-40, 40)) (Gen.choose (-40, 40))) (Gen.zip3 (Gen.choose (-50, 50)) (Gen.choose (-3, 3)) (Gen.choose (-3, 3))))
            (fun (degrees, (sx, sy), (shear, tx, ty)) ->
            let ink = Array.create (side * side) 1.0f
            let t = float32 degrees * MathF.PI / 180.0f
            let ax, ay, h = 1.0f + float32 sx / 100.0f, 1.0f + float32 sy / 100.0f, float32 shear / 100.0f
            let m = MathF.Cos t * ax, (MathF.Cos t * h - MathF.Sin t) * ay, MathF.Sin t * ax, (MathF.Sin t * h + MathF.Cos t) * ay
            let m00, m01, m10, m11 = m
            let frame = Array.zeroCreate (frameSide * frameSide)
            Distort.Warp(ReadOnlySpan ink, side, side, pad, m00, m01, m10, m11, float32 tx, float32 ty, ReadOnlySpan.Empty, ReadOnlySpan.Empty, -1.0f, Span frame)
            let mutable exposed = 0
            for y in 0 .. frameSide - 1 do
                for x in 0 .. frameSide - 1 do
                    let px, py = source (m00, m01, m10, m11, float32 tx, float32 ty) y x
                    let v = frame.[y * frameSide + x]
                    Expect.isTrue (v >= -1.0f && v <= 1.0f + 1e-6f) $"({y}, {x}) = {v} within [-1, 1]"
                    if px <= -1.0f || px >= float32 side || py <= -1.0f || py >= float32 side then
                        exposed <- exposed + 1
                        Expect.equal v -1.0f $"exposed pixel ({y}, {x}) (source {px}, {py}) is background"
                    elif px >= 0.0f && px <= float32 (side - 1) && py >= 0.0f && py <= float32 (side - 1) then
                        Expect.floatClose Accuracy.high (float v) 1.0 $"pixel ({y}, {x}) inside the digit is ink"
            // Without magnification or shear, a frame corner's source lies at least 13.4 pixels from the
            // centre, beyond the digit's reach (12.0), for the corner whose direction the translation shares.
            if sx >= 0 && sy >= 0 && shear = 0 then Expect.isGreaterThan exposed 0 "some pixels are exposed")

        property "elastic displacements keep the background where they expose the frame" 40
            (Gen.zip (Gen.choose (1, 30)) (Gen.choose (0, 1000))) (fun (alphaTenths, seed) ->
            let alpha = float32 alphaTenths / 10.0f
            let d = Distortion.create net { DistortionSettings.none with ElasticAlpha = alpha; ElasticSigma = 2.0f } seed
            let ink = Array.create (side * side) 1.0f
            Distortion.apply d ink 0 0 0
            // The smoothed field is a weighted mean of values in [-1, 1], so no displacement exceeds alpha:
            // a frame pixel more than alpha + 1 outside the digit reads background only.
            let reach = float32 pad - alpha - 1.0f
            for y in 0 .. frameSide - 1 do
                for x in 0 .. frameSide - 1 do
                    let v = d.Frame.[y * frameSide + x]
                    Expect.isTrue (v >= -1.0f && v <= 1.0f + 1e-6f) $"({y}, {x}) = {v} within [-1, 1]"
                    let outside = float32 (max (max (pad - y) (y - (pad + side - 1))) (max (pad - x) (x - (pad + side - 1))))
                    if outside > alpha + 1.0f then Expect.equal v -1.0f $"({y}, {x}) beyond the field's reach ({reach}) is background"
            for i in 0 .. d.DispX.Length - 1 do
                Expect.isTrue (abs d.DispX.[i] <= alpha + 1e-5f && abs d.DispY.[i] <= alpha + 1e-5f) "displacements within alpha")

        test "each distortion at strength zero leaves the digit as it is, and changes it otherwise" {
            let image = (TestSetup.usps.Force()).Train.Image(0).ToArray()
            let identity = Distortion.create net DistortionSettings.none 1
            Distortion.apply identity image 0 0 0
            for s in [ { DistortionSettings.none with Rotation = 10.0f }; { DistortionSettings.none with Scaling = 0.1f }
                       { DistortionSettings.none with Shear = 0.2f }; { DistortionSettings.none with ElasticAlpha = 4.0f } ] do
                let d = Distortion.create net s 1
                Distortion.apply d image 0 0 0
                Expect.notEqual d.Frame identity.Frame $"{s} changes the digit"
                Expect.equal d.Frame.[0] -1.0f $"{s}: the frame's corner stays background"
        }

        test "a seed's distortions are the same every time and differ between seeds" {
            let s = { DistortionSettings.none with Rotation = 10.0f; Scaling = 0.1f; ElasticAlpha = 3.0f }
            let image = (TestSetup.usps.Force()).Train.Image(3).ToArray()
            let frames seed = let d = Distortion.create net s seed in [ for _ in 1 .. 3 -> Distortion.apply d image 0 1 0; Array.copy d.Frame ]
            Expect.equal (frames 5) (frames 5) "same seed, same frames"
            Expect.notEqual (frames 5) (frames 6) "another seed, other frames"
        }

        test "training with distortions, soft targets and a teacher allocates nothing per digit" {
            let data = TestSetup.synthetic ()
            let distortion = { DistortionSettings.none with Rotation = 10.0f; Scaling = 0.1f; Shear = 0.1f; ElasticAlpha = 3.0f }
            let teacher = { Teachers = 1; Temperature = 2.0f; Weight = 0.5f; Saved = false }
            // No dropout: Train.dropLayer's option costs 24 bytes once per pass, not per digit.
            let recipe = { Recipe.modern with Dropout = 0.0f; Refine = { Recipe.modern.Refine with Distortion = distortion; LabelSmoothing = 0.1f; Distill = Some teacher } }
            let net = Recipe.network recipe
            let p = Init.create recipe.WeightInit net.Layout 1
            let state = { Train.createState net recipe with Teachers = Some(Distill.create net teacher [| Init.create recipe.WeightInit net.Layout 2 |]) }
            Expect.equal (secondPassAllocation net recipe state p data.Train) 0L "bytes allocated in 1000 presentations"
        }

        property "SAM's gradient is the gradient at w + rho g / |g|, and the weights are w again, bit for bit" 200
            (Gen.zip3 (Gen.arrayOfLength 12 (Gen.choose (-100, 100))) (Gen.arrayOfLength 12 (Gen.choose (1, 50))) (Gen.zip (Gen.choose (1, 100)) (Gen.elements [ false; true ])))
            (fun (w, a, (rhoHundredths, accumulate)) ->
            // The loss sum_i a_i w_i^2 / 2, whose gradient is a_i w_i.
            let parameters = w |> Array.map (fun v -> float32 v / 20.0f)
            let curvature = a |> Array.map (fun v -> float32 v / 10.0f)
            let rho = float32 rhoHundredths / 100.0f
            let before = Array.copy parameters
            let grad = Array.init 12 (fun i -> float32 i)
            let gradientInto (target: float32 array) (add: bool) =
                for i in 0 .. 11 do
                    let g = curvature.[i] * parameters.[i]
                    target.[i] <- if add then target.[i] + g else g
            Sam.gradient (Sam.create 12) rho parameters gradientInto grad accumulate
            Expect.sequenceEqual parameters before "the weights are put back"
            let g = Array.init 12 (fun i -> float curvature.[i] * float before.[i])
            let norm = sqrt (Array.sumBy (fun v -> v * v) g)
            let expected =
                Array.init 12 (fun i ->
                    let moved = if norm > 0.0 then float before.[i] + float rho * g.[i] / norm else float before.[i]
                    float curvature.[i] * moved + (if accumulate then float i else 0.0))
            TestKit.expectClose 1e-5 (Array.map float grad) expected "the gradient at the perturbed weights")

        test "SAM moves the weights exactly rho along the example's gradient" {
            let b = Sam.create 5
            Array.blit [| 3.0f; 0.0f; -4.0f; 0.0f; 0.0f |] 0 b.Ascent 0 5
            let w = [| 1.0f; 2.0f; 3.0f; 4.0f; 5.0f |]
            Sam.ascend b 0.5f w
            TestKit.expectClose 1e-6 (Array.map float w) [| 1.3; 2.0; 2.6; 4.0; 5.0 |] "w + 0.5 (3, 0, -4, 0, 0) / 5"
            Sam.restore b w
            Expect.sequenceEqual w [| 1.0f; 2.0f; 3.0f; 4.0f; 5.0f |] "and back"
            Array.Clear b.Ascent
            Sam.ascend b 0.5f w
            Expect.sequenceEqual w [| 1.0f; 2.0f; 3.0f; 4.0f; 5.0f |] "a zero gradient moves nothing"
        }

        test "training with SAM is deterministic, differs from training without, lowers the loss, and with tangent propagation allocates nothing per digit" {
            let data = TestSetup.small ()
            let data = { data with Train = data.Train.Take 300; Test = data.Test.Take 200 }
            // A larger rate than refined's, so that three passes over 300 digits move the loss clearly.
            let recipe = { Recipe.refined with Passes = 3; LearningRate = 2e-3f; Refine = { Recipe.refined.Refine with Sam = 0.05f } }
            let initial = Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed
            let once r = Train.run Backend.Managed r data initial (fun _ _ -> ()) ignore
            let sam = once recipe
            Expect.sequenceEqual (once recipe).Parameters sam.Parameters "deterministic"
            let plain = once { recipe with Refine = { recipe.Refine with Sam = 0.0f } }
            Expect.notEqual sam.Parameters plain.Parameters "the perturbed gradients change the weights"
            let net = Recipe.network recipe
            let before = (Evaluate.split Backend.Managed net recipe.Loss initial (Workspace.create net 32) data.Train).Metrics.Loss
            let after = (List.last sam.Passes).Train.Loss
            Expect.isLessThan after (0.9 * before) $"training loss {before:F4} -> {after:F4}"
            // With tangent propagation as well, which runs inside each of SAM's two gradients.
            let noDrop = { recipe with Dropout = 0.0f; Refine = { recipe.Refine with TangentProp = 0.1f } }
            Expect.equal (secondPassAllocation net noDrop (Train.createState net noDrop) (Array.copy initial) data.Train) 0L "bytes allocated in 300 presentations"
        }

        test "tangent propagation's gradient, as training computes it, is the derivative of the loss plus the penalty" {
            // Smooth units (tanh) and no dropout or label smoothing, so central differences are exact to O(h^2).
            let recipe =
                { Recipe.refined with
                    Hidden = Tanh; Dropout = 0.0f; Passes = 1
                    Refine = { Recipe.refined.Refine with LabelSmoothing = 0.0f; TangentProp = 1.0f } }
            let net = Recipe.network recipe
            let digits = (TestSetup.usps.Force()).Train.Take 1
            let initial = Init.create recipe.WeightInit net.Layout recipe.Seed
            let state = Train.createState net recipe
            let p = Array.copy initial
            // One digit at batch 1: after the pass, state.Grad is that presentation's gradient at `initial`,
            // and the distorter and the tangent buffers hold the frame and the perturbed frame it used.
            Train.trainOnePass Backend.Managed net recipe 1 p (Workspace.create net 1) state digits ignore
            let d, tp = state.Distorter.Value, state.Tangents.Value
            Expect.notEqual tp.Perturbed d.Frame "the perturbed frame differs from the frame"
            let ws, ws2 = Workspace.create net 1, Workspace.create net 1
            let total (w: float32 array) =
                Forward.runShifted Backend.Managed net w ws d.Unfold d.Frame 0 -1
                Forward.runShifted Backend.Managed net w ws2 d.Unfold tp.Perturbed 0 -1
                let y, y' = Forward.outputs net ws, Forward.outputs net ws2
                Loss.value SoftmaxCrossEntropy y 0 10 digits.Labels.[0] + TangentProp.value 1.0f y y' 10
            let penalty =
                Forward.runShifted Backend.Managed net initial ws d.Unfold d.Frame 0 -1
                Forward.runShifted Backend.Managed net initial ws2 d.Unfold tp.Perturbed 0 -1
                TangentProp.value 1.0f (Forward.outputs net ws) (Forward.outputs net ws2) 10
            Expect.isGreaterThan penalty 1e-4 "the penalty is not negligible at these weights"
            // The parameters whose gradient is largest in each layer.
            let checkedParameters =
                net.Layout.Views |> List.map (fun v -> [ v.Offset .. v.Offset + List.fold (*) 1 v.Shape - 1 ] |> List.maxBy (fun i -> abs state.Grad.[i]))
            // The same presentation without the penalty (the same draws: tangent propagation has its own stream).
            let plain = { recipe with Refine = { recipe.Refine with TangentProp = 0.0f } }
            let plainState = Train.createState net plain
            Train.trainOnePass Backend.Managed net plain 1 (Array.copy initial) (Workspace.create net 1) plainState digits ignore
            Expect.sequenceEqual plainState.Distorter.Value.Frame d.Frame "the same frame without the penalty"
            let mutable penaltyShare = 0.0
            for i in checkedParameters do
                let h = 1e-2f
                let at (delta: float32) = let w = Array.copy initial in w.[i] <- w.[i] + delta; total w
                let numeric = (at h - at -h) / (2.0 * float h)
                Expect.floatClose { absolute = 1e-3; relative = 3e-2 } (float state.Grad.[i]) numeric $"d/dw{i}"
                penaltyShare <- max penaltyShare (abs (float state.Grad.[i] - float plainState.Grad.[i]) / (abs numeric + 1e-3))
            // Were the penalty's part of the gradient wrong, the check above would see it.
            Expect.isGreaterThan penaltyShare 0.2 "the penalty's share of some checked gradient"
        }

        test "the tangents of a linear ramp are the transformations' derivatives" {
            let b = TangentProp.create net frameSide frameSide 1
            let a, c = 0.03f, -0.02f
            let centre = 0.5f * float32 (frameSide - 1)
            let ramp = Array.init (frameSide * frameSide) (fun i -> a * float32 (i % frameSide) + c * float32 (i / frameSide))
            let t = Array.zeroCreate ramp.Length
            for (cx, cy, cr, cs, ct), expected in
                [ (1.0f, 0.0f, 0.0f, 0.0f, 0.0f), (fun (_: float32) (_: float32) -> -a)
                  (0.0f, 1.0f, 0.0f, 0.0f, 0.0f), (fun _ _ -> -c)
                  (0.0f, 0.0f, 1.0f, 0.0f, 0.0f), (fun u v -> -0.1f * (-v * a + u * c))
                  (0.0f, 0.0f, 0.0f, 1.0f, 0.0f), (fun u v -> -0.1f * (u * a + v * c))
                  (0.0f, 0.0f, 0.0f, 0.0f, 1.0f), (fun _ _ -> MathF.Sqrt(a * a + c * c)) ] do
                TangentProp.tangent b ramp (cx, cy, cr, cs, ct) t
                for y in 0 .. frameSide - 1 do
                    for x in 0 .. frameSide - 1 do
                        let e = expected (float32 x - centre) (float32 y - centre)
                        Expect.floatClose { absolute = 1e-5; relative = 1e-4 } (float t.[y * frameSide + x]) (float e) $"mix {(cx, cy, cr, cs, ct)} at ({y}, {x})"
        }

        property "the tangent-propagation penalty ignores the outputs' mean, and its gradient is its derivative" 100
            (Gen.zip3 (Gen.arrayOfLength 10 (Gen.choose (-100, 100))) (Gen.arrayOfLength 10 (Gen.choose (-100, 100))) (Gen.choose (-50, 50))) (fun (ys, ds, shift) ->
            let y = ys |> Array.map (fun v -> float32 v / 50.0f)
            let y' = Array.map2 (fun (a: float32) d -> a + float32 d / 1000.0f) y ds
            let weight = 0.3f
            let moved = y' |> Array.map (fun v -> v + float32 shift / 10.0f)
            Expect.floatClose Accuracy.medium (TangentProp.value weight y moved 10) (TangentProp.value weight y y' 10) "adding a constant to every output"
            let dOut, dOut' = Array.zeroCreate 10, Array.zeroCreate 10
            TangentProp.addGradient weight y y' 10 dOut dOut'
            for k in 0 .. 9 do
                let h = 1e-3f
                let at (delta: float32) = let z = Array.copy y' in z.[k] <- z.[k] + delta; TangentProp.value weight y z 10
                Expect.floatClose { absolute = 1e-3; relative = 1e-2 } (float dOut'.[k]) ((at h - at -h) / (2.0 * float h)) $"d/dy'{k}"
                Expect.floatClose Accuracy.high (float dOut.[k]) (float -dOut'.[k]) $"d/dy{k} = -d/dy'{k}")

        test "the averaged weights are the hand-computed mean of the last passes' weights" {
            let data = TestSetup.synthetic ()
            let data = { data with Train = data.Train.Take 200; Test = data.Test.Take 50 }
            let recipe = { Recipe.lecun1989 with Passes = 3 }
            let initial = Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed
            let quiet = fun (_: int) (_: int) -> ()
            let after passes = (Train.run Backend.Managed { recipe with Passes = passes } data initial quiet ignore).Parameters
            let w2, w3 = after 2, after 3
            let averaged = Train.run Backend.Managed { recipe with Refine = { recipe.Refine with AverageLast = 2 } } data initial quiet ignore
            let expected = Array.map2 (fun (a: float32) b -> (float a + float b) / 2.0) w2 w3
            TestKit.expectClose 1e-6 (Array.map float averaged.Parameters) expected "mean of passes 2 and 3"
            Expect.notEqual w2 w3 "the two passes' weights differ"
            // The last pass's report is the averaged network's.
            let net = Recipe.network recipe
            let evaluated = Evaluate.split Backend.Managed net recipe.Loss averaged.Parameters (Workspace.create net Evaluate.batch) data.Test
            Expect.equal (List.last averaged.Passes).Test evaluated.Metrics "the last pass reports the averaged weights"
            let one = Train.run Backend.Managed { recipe with Refine = { recipe.Refine with AverageLast = 1 } } data initial quiet ignore
            Expect.sequenceEqual one.Parameters w3 "averaging the last pass alone is that pass's weights"
        }

        property "distillation from one teacher at temperature 1 on the hard label is softmax cross-entropy" 200
            (Gen.zip (Gen.arrayOfLength 10 (Gen.choose (-400, 400))) (Gen.choose (0, 9))) (fun (logits, label) ->
            let y = logits |> Array.map (fun v -> float32 v / 50.0f)
            let ce, distilled, plain = Array.zeroCreate 10, Array.zeroCreate 10, Array.zeroCreate 10
            Loss.gradient SoftmaxCrossEntropy y 0 10 label ce
            let onehot = Array.init 10 (fun k -> if k = label then 1.0f else 0.0f)
            Distill.gradient y 0 10 label 0.0f onehot 1.0f 1.0f (Array.zeroCreate 10) distilled
            Distill.gradient y 0 10 label 0.0f onehot 1.0f 0.0f (Array.zeroCreate 10) plain
            TestKit.expectClose 1e-6 (Array.map float distilled) (Array.map float ce) "teacher term"
            Expect.sequenceEqual plain ce "hard term alone, bit for bit"
            Expect.floatClose Accuracy.medium (Distill.value y 0 10 label 0.0f onehot 1.0f 1.0f) (Loss.value SoftmaxCrossEntropy y 0 10 label) "loss")

        property "the soft-target gradient is the derivative of the soft-target loss" 60
            (Gen.zip3 (Gen.arrayOfLength 10 (Gen.choose (-200, 200))) (Gen.arrayOfLength 10 (Gen.choose (1, 100)))
                      (Gen.zip3 (Gen.choose (0, 9)) (Gen.choose (0, 30)) (Gen.zip (Gen.choose (5, 40)) (Gen.choose (0, 10))))) (fun (logits, t, (label, eps, (temp, w))) ->
            let y = logits |> Array.map (fun v -> float32 v / 50.0f)
            let total = float32 (Array.sum t)
            let teacher = t |> Array.map (fun v -> float32 v / total)
            let smoothing, temperature, weight = float32 eps / 100.0f, float32 temp / 10.0f, float32 w / 10.0f
            let g = Array.zeroCreate 10
            Distill.gradient y 0 10 label smoothing teacher temperature weight (Array.zeroCreate 10) g
            for k in 0 .. 9 do
                let h = 1e-2f
                let at (delta: float32) = let z = Array.copy y in z.[k] <- z.[k] + delta; Distill.value z 0 10 label smoothing teacher temperature weight
                let numeric = (at h - at -h) / (2.0 * float h)
                Expect.floatClose { absolute = 2e-3; relative = 2e-2 } (float g.[k]) numeric $"d/dy{k}")

        test "refined runs end to end on a small subset, with distillation, and twice the same" {
            let data = TestSetup.small ()
            let data = { data with Train = data.Train.Take 300; Test = data.Test.Take 200 }
            let refine = { Recipe.refined.Refine with Distill = Some { Teachers = 2; Temperature = 2.0f; Weight = 0.7f; Saved = false }; AverageLast = 1 }
            let recipe = { Recipe.refined with Passes = 2; Refine = refine }
            let once () = Train.run Backend.Managed recipe data (Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed) (fun _ _ -> ()) ignore
            let a = once ()
            let last = List.last a.Passes
            Expect.equal a.Passes.Length 2 "two passes"
            Expect.isTrue (Double.IsFinite last.Train.Loss && Double.IsFinite last.Test.Loss) "finite losses"
            Expect.isLessThan last.Test.Error 85.0 "below chance (90%) after two passes on 300 digits"
            Expect.isSome a.Ensemble "the teachers' ensemble is reported"
            Expect.sequenceEqual (once ()).Parameters a.Parameters "deterministic"
        }

        test "the ladder's last step is the refined recipe, and each of its steps adds one technique" {
            for dataSet in [ DataSetName.Usps; DataSetName.MnistSim ] do
                let steps = Ladder.steps dataSet
                let refined = steps |> List.filter (fun s -> List.contains s.Label Ladder.refinedLabels)
                Expect.isNonEmpty refined "the refinements have steps"
                Expect.equal { (List.last refined).Recipe with Name = "refined" } Recipe.refined "the last step is refined"
                let four = steps |> List.find (fun s -> s.Label = "4")
                List.pairwise (four :: refined) |> List.iter (fun (a, b) ->
                    Expect.notEqual a.Recipe b.Recipe $"step {b.Label} changes something"
                    let other (r: Recipe) = { r with Refine = Refinements.none; Passes = 0; Dropout = 0.0f; BatchSize = 0; LearningRate = 0.0f }
                    Expect.equal (other a.Recipe) (other b.Recipe) $"step {b.Label} changes only the refinements (and the passes, dropout and batch size)"
                    // A step that changes the batch size takes the minibatch rule's rate, as `train --batch-size` does.
                    let expectedRate = if a.Recipe.BatchSize = b.Recipe.BatchSize then a.Recipe.LearningRate else (Recipe.scaledForBatch a.Recipe.BatchSize { a.Recipe with BatchSize = b.Recipe.BatchSize }).LearningRate
                    Expect.equal b.Recipe.LearningRate expectedRate $"step {b.Label}: its rate")
        }

        test "train refuses refinements that do not fit, with one clear message" {
            let parser = ArgumentParser.Create<Lecun.Cli.TrainCommand.TrainArgs>()
            for flags, expected in [ [| "--label-smoothing"; "0.1" |], "softmax"; [| "--recipe"; "modern"; "--rotation"; "90" |], "--rotation"
                                     [| "--recipe"; "modern"; "--temperature"; "2" |], "--distill"; [| "--schedule"; "cosine" |], "adamw"
                                     [| "--recipe"; "modern"; "--average-last"; "81" |], "--average-last"
                                     [| "--sam"; "0.05" |], "--sam applies to the adamw optimizer only"
                                     [| "--recipe"; "modern"; "--sam"; "2" |], "--sam must be between 0 and 1, got 2"
                                     [| "--recipe"; "modern"; "--tangent-prop"; "0.1" |], "--tangent-prop needs distortions"
                                     [| "--rotation"; "10"; "--tangent-prop"; "0.1" |], "--tangent-prop applies to the adamw optimizer only"
                                     [| "--recipe"; "refined"; "--tangent-prop"; "101" |], "--tangent-prop must be between 0 and 100, got 101" ] do
                let text = String.Join(" ", flags)
                match (try Lecun.Cli.TrainCommand.recipeFrom (parser.ParseCommandLine flags) |> ignore; None with Lecun.Cli.Output.UserError m -> Some m) with
                | Some message -> Expect.stringContains message expected text
                | None -> failtest $"{text} was accepted"
        }
    ]
