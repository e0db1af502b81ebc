/// The forward and backward passes: each layer a `*Forward`/`*Backward` pair over the flat parameter
/// buffer, with explicit shapes. Locally-connected layers are im2col + GEMM, dense layers GEMV/GEMM.
namespace Lecun.Model

open System
open Lecun.Native.Backends
open Lecun.Native.Kernels

/// The squashing function of hidden or output units.
type Activation =
    | Tanh
    /// 1.7159 tanh(2a/3), as LeCun's later papers use.
    | ScaledTanh
    | Relu
    /// No squashing (the linear outputs of softmax cross-entropy).
    | Identity

module Activation =
    let names = [ Tanh, "tanh"; ScaledTanh, "scaled-tanh"; Relu, "relu"; Identity, "identity" ]
    let name (a: Activation) = NameTable.name names a
    let parse (text: string) = NameTable.parse "activation" names text

/// A run of input planes that a group of output planes reads consecutively: one GEMM each way.
type PlaneRun =
    { /// First row of the run in the im2col matrix (input plane * k * k).
      ColRow: int
      /// First column of the run in a plane's [reads * k * k] weight row.
      WeightColumn: int
      /// Rows (= weight columns) in the run.
      Length: int }

/// Consecutive output planes with the same connection-table row: they share their GEMMs.
type PlaneGroup = { FirstPlane: int; Planes: int; Runs: PlaneRun list }

type LayerPlan =
    { Geometry: LayerGeometry
      /// Plane groups of a locally-connected layer (empty for dense layers).
      Groups: PlaneGroup list
      /// How a locally-connected layer unfolds its input (None for dense layers).
      Unfold: Im2ColPlan option
      /// A locally-connected layer's matrix products (one per plane group and run), in the order
      /// localForward and localBackward run them, as Im2ColPlan's fused products read them.
      Segments: int array
      Activation: Activation }

/// The network as the engine runs it: a layout plus the activation of each layer.
type Network =
    { Layout: NetLayout
      Plans: LayerPlan array }

module Network =
    let private groupsOf (l: LocalSpec) =
        let kk = l.Kernel * l.Kernel
        let runsOf (row: int list) =
            // Split the row into maximal runs of consecutive planes: [0..7] is one run, [0..3; 8..11] two.
            row
            |> List.indexed
            |> List.fold (fun runs (j, c) ->
                match runs with
                | (j0, c0, len) :: rest when c0 + len = c -> (j0, c0, len + 1) :: rest
                | _ -> (j, c, 1) :: runs) []
            |> List.rev
            |> List.map (fun (j, c, len) -> { ColRow = c * kk; WeightColumn = j * kk; Length = len * kk })
        l.Table
        |> List.indexed
        |> List.fold (fun groups (p, row) ->
            match groups with
            | (first, count, r) :: rest when r = row -> (first, count + 1, r) :: rest
            | _ -> (p, 1, row) :: groups) []
        |> List.rev
        |> List.map (fun (first, count, row) -> { FirstPlane = first; Planes = count; Runs = runsOf row })

    /// The matrix products of a locally-connected layer in the order localForward and localBackward run
    /// them: (first plane, planes, first input plane, input planes, weight column) for each.
    let private segmentsOf (l: LocalSpec) (groups: PlaneGroup list) =
        let kk = l.Kernel * l.Kernel
        [| for grp in groups do
             for run in grp.Runs do
                 yield! [| grp.FirstPlane; grp.Planes; run.ColRow / kk; run.Length / kk; run.WeightColumn |] |]

    /// The im2col plan of a locally-connected layer whose input is moved by (shiftY, shiftX) pixels
    /// inside its padding (see Im2ColPlan; 0, 0 for the layer's own); None for a dense layer.
    let unfoldOf (g: LayerGeometry) (shiftY: int) (shiftX: int) =
        match g.Spec, g.InShape with
        | Local l, [ planes; h; w ] -> Some(Im2ColPlan(planes, h, w, l.Kernel, l.Stride, l.Padding, shiftY, shiftX))
        | _ -> None

    /// Builds the engine's view of a layout: `hidden` on every hidden layer, `output` on the last.
    let create (layout: NetLayout) (hidden: Activation) (output: Activation) =
        let last = List.length layout.Layers - 1
        { Layout = layout
          Plans =
            layout.Layers
            |> List.mapi (fun i g ->
                let groups = match g.Spec with Local l -> groupsOf l | Dense _ -> []
                { Geometry = g
                  Groups = groups
                  Unfold = unfoldOf g 0 0
                  Segments = match g.Spec with Local l -> segmentsOf l groups | Dense _ -> Array.empty
                  Activation = if i = last then output else hidden })
            |> Array.ofList }

    /// The 1989 network: tanh everywhere, the outputs included.
    let lecun1989 = create Layout.lecun1989 Tanh Tanh

/// One layer of the 16-lane batch path (LaneBatch): activations unit-major, [units, 16 examples].
type LaneLayer =
    { /// A locally-connected layer's input planes with their padding, [inPlanes, ph, pw, 16]; the
      /// border holds the pad value from the start and is never written again. Empty for dense layers.
      Padded: float32 array
      /// Float offset in Padded of each output position's window (top-left, input plane 0).
      Origins: int array
      /// Per plane group: first plane, planes, and the float offset of each weight's input relative to
      /// a window's origin, in weight order (read plane, row, column).
      Taps: struct (int * int * int array) array
      /// The layer's outputs, [units, 16].
      Out: float32 array }

module LaneLayer =
    let create (plan: LayerPlan) =
        let lanes = LaneBatch.Lanes
        let g = plan.Geometry
        match g.Spec, g.InShape, g.OutShape with
        | Local l, [ inPlanes; h; w ], [ _; oh; ow ] ->
            let ph, pw = h + 2 * l.Padding, w + 2 * l.Padding
            let padded = Array.create (inPlanes * ph * pw * lanes) l.PadValue
            let origins = [| for oy in 0 .. oh - 1 do for ox in 0 .. ow - 1 -> (oy * l.Stride * pw + ox * l.Stride) * lanes |]
            let taps (row: int list) =
                [| for c in row do
                     for ky in 0 .. l.Kernel - 1 do
                         for kx in 0 .. l.Kernel - 1 -> ((c * ph + ky) * pw + kx) * lanes |]
            { Padded = padded
              Origins = origins
              Taps = plan.Groups |> List.map (fun grp -> struct (grp.FirstPlane, grp.Planes, taps l.Table.[grp.FirstPlane])) |> Array.ofList
              Out = Array.zeroCreate (g.Units * lanes) }
        | _ -> { Padded = Array.empty; Origins = Array.empty; Taps = Array.empty; Out = Array.zeroCreate (g.Units * lanes) }

/// Buffers for a forward pass of up to `Capacity` examples and a backward pass of one example.
/// Allocated once; the passes themselves allocate nothing.
type Workspace =
    { Capacity: int
      /// Each layer's outputs, [Capacity, units]. A batch on the 16-lane path fills only the last layer's.
      Outputs: float32 array array
      /// Each locally-connected layer's im2col matrix, [inPlanes * k * k, Capacity * outPositions].
      Cols: float32 array array
      /// The same for one example, transposed: [outPositions, inPlanes * k * k] (for the weight gradient),
      /// followed by the few floats of slack that im2col's vector stores may run into.
      ColsT: float32 array array
      /// GEMM results of a batched locally-connected layer, [planes, Capacity * positions], before
      /// they are transposed to example-major order.
      Staging: float32 array array
      /// Gradient of the loss with respect to each layer's pre-activation, one example.
      DeltaPre: float32 array array
      /// Gradient with respect to each layer's input, one example.
      DeltaIn: float32 array array
      /// Gradient with respect to each locally-connected layer's im2col matrix, one example,
      /// [inPlanes * k * k, outPositions], and the zero col2im reads after it; the scratch of
      /// Im2ColPlan.InputGradient where that runs instead.
      DeltaCols: float32 array array
      /// Dropout mask of each layer's output, one example: 0 (dropped) or 1/(1-rate) (kept). The caller
      /// fills the mask of the layer it passes as `dropLayer`.
      DropMask: float32 array array
      /// A layer's output after its dropout mask, which the next layer reads.
      Dropped: float32 array array
      /// Scratch of each locally-connected layer's im2col (its input plus a pad slot).
      UnfoldScratch: float32 array array
      /// A batch's input images, [input size, 16], for the 16-lane path.
      LaneInput: float32 array
      /// Each layer's 16-lane buffers; empty where that path does not run (one-example workspaces,
      /// CPUs without AVX-512).
      Lanes: LaneLayer array }

module Workspace =
    let create (net: Network) (capacity: int) =
        let plans = net.Plans
        let lanes = capacity > 1 && LaneBatch.IsSupported
        let colsSize (p: LayerPlan) count =
            match p.Geometry.Spec, p.Geometry.InShape, p.Geometry.OutShape with
            | Local l, [ inPlanes; _; _ ], [ _; oh; ow ] -> inPlanes * l.Kernel * l.Kernel * count * oh * ow
            | _ -> 0
        { Capacity = capacity
          Outputs = plans |> Array.map (fun p -> Array.zeroCreate (capacity * p.Geometry.Units))
          Cols = plans |> Array.map (fun p -> Array.zeroCreate (colsSize p capacity))
          ColsT = plans |> Array.map (fun p -> match p.Unfold with Some u -> Array.zeroCreate u.TransposedSize | None -> Array.empty)
          Staging =
            plans
            |> Array.map (fun p ->
                match p.Geometry.Spec with
                | Local _ when capacity > 1 -> Array.zeroCreate (capacity * p.Geometry.Units)
                | _ -> Array.empty)
          DeltaPre = plans |> Array.map (fun p -> Array.zeroCreate p.Geometry.Units)
          DeltaIn = plans |> Array.map (fun p -> Array.zeroCreate p.Geometry.InUnits)
          // One float more than the columns: col2im reads a zero there (see Im2ColPlan.Backward).
          DeltaCols =
            plans
            |> Array.map (fun p ->
                match p.Unfold, p.Geometry.OutShape with
                | Some u, planes :: _ -> Array.zeroCreate (max u.ColumnsWithZero (u.InputGradientScratch planes))
                | _ -> Array.empty)
          DropMask = plans |> Array.map (fun p -> Array.zeroCreate p.Geometry.Units)
          Dropped = plans |> Array.map (fun p -> Array.zeroCreate p.Geometry.Units)
          UnfoldScratch = plans |> Array.map (fun p -> match p.Unfold with Some u -> Array.zeroCreate u.ScratchSize | None -> Array.empty)
          LaneInput = if lanes then Array.zeroCreate (net.Layout.InputSize * LaneBatch.Lanes) else Array.empty
          Lanes = if lanes then plans |> Array.map LaneLayer.create else Array.empty }

/// Where a backward pass puts each parameter's gradient g: target <- alpha g + beta target.
/// Into a gradient buffer it is (grad, 1, 0), or (grad, 1, 1) to accumulate; a plain SGD step goes
/// straight into the parameters as (parameters, -lr, 1). The products and the bias update round
/// alpha g first and then the sum, exactly as writing g and then taking p - lr g would, so the fused
/// step changes no bit; it saves writing and re-reading a 9,760-float gradient per example.
[<Struct>]
type GradientSink =
    { Target: float32 array
      Alpha: float32
      Beta: float32 }

module GradientSink =
    let into (grad: float32 array) (accumulate: bool) = { Target = grad; Alpha = 1.0f; Beta = (if accumulate then 1.0f else 0.0f) }
    let sgd (parameters: float32 array) (learningRate: float32) = { Target = parameters; Alpha = -learningRate; Beta = 1.0f }

module Layers =
    let inline private ro (a: float32 array) (offset: int) (length: int) = ReadOnlySpan<float32>(a, offset, length)
    let inline private rw (a: float32 array) (offset: int) (length: int) = Span<float32>(a, offset, length)

    let private localDims (g: LayerGeometry) =
        match g.Spec, g.InShape, g.OutShape with
        | Local l, [ inPlanes; ih; iw ], [ planes; oh; ow ] -> struct (l, inPlanes, ih, iw, planes, oh * ow)
        | _ -> invalidArg "g" $"{g.Name} is not a locally-connected layer"

    /// y = act(a) in place over `count` examples of a layer's output buffer.
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

    /// dPre = act'(pre) * dY, written through the unit's output y.
    let activationBackward (act: Activation) (y: float32 array) (dy: float32 array) (dPre: float32 array) (units: int) =
        match act with
        | Tanh -> Elementwise.TanhBackward(ro y 0 units, ro dy 0 units, rw dPre 0 units)
        | ScaledTanh -> Elementwise.ScaledTanhBackward(ro y 0 units, ro dy 0 units, rw dPre 0 units)
        | Relu -> Elementwise.ReluBackward(ro y 0 units, ro dy 0 units, rw dPre 0 units)
        | Identity -> Array.blit dy 0 dPre 0 units

    /// Locally-connected forward for `count` examples: x [count, inPlanes, ih, iw] -> out [count, planes, oh, ow].
    /// One example (count = 1) also fills colsT, the transposed columns its backward pass reads.
    /// `unfold` is the plan's own, or one of the same geometry that shifts the input (see InputShifts).
    let localForward (backend: IBackend) (plan: LayerPlan) (unfold: Im2ColPlan) (parameters: float32 array)
                     (x: float32 array) (xOffset: int) (count: int) (cols: float32 array) (colsT: float32 array) (staging: float32 array)
                     (scratch: float32 array) (out: float32 array) =
        let g, groups = plan.Geometry, plan.Groups
        let struct (l, inPlanes, ih, iw, planes, n) = localDims g
        let inSize = inPlanes * ih * iw
        let ld = count * n
        // One example reads the plan's input size: a distorted digit's padded frame is larger (see Distortion).
        if count = 1 then unfold.ForwardBoth(ro x xOffset unfold.InputSize, l.PadValue, Span cols, Span colsT, Span scratch)
        else
            for b in 0 .. count - 1 do
                unfold.Forward(ro x (xOffset + b * inSize) inSize, l.PadValue, Span cols, b * n, ld, Span scratch)
        // One example's GEMM lands in place; a batch's lands plane-major and is transposed after.
        let target = if count = 1 then out else staging
        let fanIn = g.FanIn
        if count = 1 && unfold.FusesProducts then
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
        if count > 1 then
            for p in 0 .. planes - 1 do
                for b in 0 .. count - 1 do
                    Array.blit staging (p * ld + b * n) out ((b * planes + p) * n) n
        let units = g.Units
        for b in 0 .. count - 1 do
            let o = rw out (b * units) units
            Elementwise.Add(o, ro parameters g.Bias.Offset units, o)

    /// Dense forward for `count` examples: x [count, in] -> out [count, units] = x @ W + b.
    let denseForward (backend: IBackend) (g: LayerGeometry) (parameters: float32 array)
                     (x: float32 array) (xOffset: int) (count: int) (out: float32 array) =
        let fanIn, units = g.FanIn, g.Units
        let w = ro parameters g.Weight.Offset g.Weight.Length
        if count = 1 then backend.Gemv(true, fanIn, units, 1.0f, w, units, ro x xOffset fanIn, 0.0f, rw out 0 units)
        else backend.Gemm(false, false, count, units, fanIn, 1.0f, ro x xOffset (count * fanIn), fanIn, w, units, 0.0f, rw out 0 (count * units), units)
        for b in 0 .. count - 1 do
            let o = rw out (b * units) units
            Elementwise.Add(o, ro parameters g.Bias.Offset units, o)

    /// A bias gradient (one per unit) into its slice of the sink.
    let private biasGradient (sink: GradientSink) (offset: int) (dPre: float32 array) (units: int) =
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
    let localBackward (backend: IBackend) (plan: LayerPlan) (parameters: float32 array)
                      (colsT: float32 array) (dPre: float32 array) (sink: GradientSink)
                      (needInput: bool) (dCols: float32 array) (dIn: float32 array) =
        let g, groups, unfold = plan.Geometry, plan.Groups, plan.Unfold.Value
        let struct (_, _, _, _, _, n) = localDims g
        let rows = unfold.Rows
        let fanIn = g.FanIn
        let units = g.Units
        if needInput && unfold.FusesProducts then
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

/// Training's random shifts of the input digit: one unfold plan of the first layer for each shift
/// (dx, dy) in [-Max, Max]^2, which moves the digit inside the layer's padding (see Im2ColPlan).
type InputShifts =
    { Max: int
      /// Row-major over (dy, dx): plan (dy + Max) * (2 Max + 1) + (dx + Max).
      Plans: Im2ColPlan array }

module InputShifts =
    /// The plans for shifts of up to `max` pixels (none for 0).
    let create (net: Network) (max: int) =
        if max < 0 then invalidArg "max" $"a shift must not be negative, got {max}"
        if max = 0 then { Max = 0; Plans = Array.empty }
        elif net.Plans.[0].Unfold.IsNone then invalidArg "net" "shifting the input needs a locally-connected first layer"
        else
            let first = net.Plans.[0].Geometry
            { Max = max
              Plans = [| for dy in -max .. max do
                           for dx in -max .. max do
                               (Network.unfoldOf first dy dx).Value |] }

    /// The plan that moves the input dx pixels right and dy down.
    let plan (shifts: InputShifts) (dx: int) (dy: int) =
        if abs dx > shifts.Max || abs dy > shifts.Max then invalidArg "dx" $"shift ({dx}, {dy}) exceeds {shifts.Max}"
        shifts.Plans.[(dy + shifts.Max) * (2 * shifts.Max + 1) + dx + shifts.Max]

module Forward =
    let private runFrom (backend: IBackend) (net: Network) (parameters: float32 array) (ws: Workspace) (firstUnfold: Im2ColPlan voption)
                        (x: float32 array) (xOffset: int) (count: int) (dropLayer: int) =
        if count > ws.Capacity then invalidArg "count" $"{count} examples exceed the workspace capacity {ws.Capacity}"
        if dropLayer >= 0 && count <> 1 then invalidArg "count" "dropout runs one example at a time"
        let mutable input = x
        let mutable inputOffset = xOffset
        for i in 0 .. net.Plans.Length - 1 do
            let plan = net.Plans.[i]
            let g = plan.Geometry
            let out = ws.Outputs.[i]
            match g.Spec with
            | Local _ ->
                let unfold = match firstUnfold with ValueSome u when i = 0 -> u | _ -> plan.Unfold.Value
                Layers.localForward backend plan unfold parameters input inputOffset count ws.Cols.[i] ws.ColsT.[i] ws.Staging.[i] ws.UnfoldScratch.[i] out
            | Dense _ -> Layers.denseForward backend g parameters input inputOffset count out
            Layers.activationForward plan.Activation out (count * g.Units)
            if i = dropLayer then
                Elementwise.Multiply(ReadOnlySpan(out, 0, g.Units), ReadOnlySpan ws.DropMask.[i], Span ws.Dropped.[i])
                input <- ws.Dropped.[i]
            else input <- out
            inputOffset <- 0

    /// Runs one training example with dropout after layer `dropLayer` (its mask in ws.DropMask), or
    /// `count` examples without dropout when dropLayer is -1. Images start at x[xOffset..], input-sized
    /// each; the last layer's outputs are ws.Outputs[last], [count, outputs].
    let runWith backend net parameters ws x xOffset count dropLayer =
        runFrom backend net parameters ws ValueNone x xOffset count dropLayer

    /// runWith for one training example whose first layer reads its input through `firstUnfold`,
    /// one of InputShifts' plans.
    let runShifted backend net parameters ws (firstUnfold: Im2ColPlan) x xOffset dropLayer =
        runFrom backend net parameters ws (ValueSome firstUnfold) x xOffset 1 dropLayer

    /// Runs `count` examples through the network 16 at a time, one per vector lane (see LaneBatch):
    /// fills only the last layer's outputs. Needs a workspace with lane buffers.
    let runLanes (net: Network) (parameters: float32 array) (ws: Workspace) (x: float32 array) (xOffset: int) (count: int) =
        if ws.Lanes.Length = 0 then invalidArg "ws" "this workspace has no 16-lane buffers"
        if count > ws.Capacity then invalidArg "count" $"{count} examples exceed the workspace capacity {ws.Capacity}"
        let lanes = LaneBatch.Lanes
        let inputSize = net.Layout.InputSize
        let last = net.Plans.Length - 1
        let outUnits = net.Plans.[last].Geometry.Units
        let mutable start = 0
        while start < count do
            let n = min lanes (count - start)
            LaneBatch.ToLanes(ReadOnlySpan(x, xOffset + start * inputSize, n * inputSize), n, inputSize, Span ws.LaneInput)
            let mutable input = ws.LaneInput
            for i in 0 .. last do
                let plan = net.Plans.[i]
                let g = plan.Geometry
                let lane = ws.Lanes.[i]
                match g.Spec, g.InShape with
                | Local l, [ inPlanes; h; w ] ->
                    LaneBatch.Pad(ReadOnlySpan input, inPlanes, h, w, l.Padding, Span lane.Padded)
                    let positions = lane.Origins.Length
                    for struct (first, planes, taps) in lane.Taps do
                        LaneBatch.Local(ReadOnlySpan lane.Padded, ReadOnlySpan lane.Origins, ReadOnlySpan taps,
                                        ReadOnlySpan(parameters, g.Weight.Offset + first * g.FanIn, planes * g.FanIn), planes,
                                        ReadOnlySpan(parameters, g.Bias.Offset + first * positions, planes * positions),
                                        Span(lane.Out, first * positions * lanes, planes * positions * lanes))
                | _ ->
                    LaneBatch.Dense(ReadOnlySpan input, g.FanIn, ReadOnlySpan(parameters, g.Weight.Offset, g.Weight.Length), g.Units,
                                    ReadOnlySpan(parameters, g.Bias.Offset, g.Units), Span lane.Out)
                Layers.activationForward plan.Activation lane.Out (g.Units * lanes)
                input <- lane.Out
            LaneBatch.FromLanes(ReadOnlySpan input, outUnits, n, Span(ws.Outputs.[last], start * outUnits, n * outUnits))
            start <- start + n

    /// Runs `count` examples through the network, without dropout (evaluation and inference): several
    /// examples on the 16-lane path where the workspace has it, otherwise layer by layer through im2col
    /// GEMMs (which also fills every layer's outputs).
    let run backend net parameters (ws: Workspace) x xOffset count =
        if count > 1 && ws.Lanes.Length > 0 then runLanes net parameters ws x xOffset count
        else runWith backend net parameters ws x xOffset count -1

    /// The output layer's values of the last forward pass.
    let outputs (net: Network) (ws: Workspace) = ws.Outputs.[net.Plans.Length - 1]

module Backward =
    /// Back-propagates dOut (the loss gradient with respect to the network's outputs) for the one example
    /// of the last forward pass (run with count = 1 on the same workspace) into the sink: a gradient
    /// buffer, or the parameters themselves for a fused SGD step. `dropLayer` must be the one the
    /// forward pass used (-1 for none).
    let runInto (backend: IBackend) (net: Network) (parameters: float32 array) (ws: Workspace)
                (x: float32 array) (xOffset: int) (dOut: float32 array) (sink: GradientSink) (dropLayer: int) =
        let last = net.Plans.Length - 1
        let mutable dY = dOut
        for i in last .. -1 .. 0 do
            let plan = net.Plans.[i]
            let g = plan.Geometry
            let dPre = ws.DeltaPre.[i]
            if i = dropLayer then
                // The next layer saw mask * y: the gradient reaching y passes through the same mask.
                Elementwise.Multiply(ReadOnlySpan(dY, 0, g.Units), ReadOnlySpan ws.DropMask.[i], Span(dY, 0, g.Units))
            Layers.activationBackward plan.Activation ws.Outputs.[i] dY dPre g.Units
            let input = if i = 0 then x elif i - 1 = dropLayer then ws.Dropped.[i - 1] else ws.Outputs.[i - 1]
            let inputOffset = if i = 0 then xOffset else 0
            let needInput = i > 0
            match g.Spec with
            | Local _ -> Layers.localBackward backend plan parameters ws.ColsT.[i] dPre sink needInput ws.DeltaCols.[i] ws.DeltaIn.[i]
            | Dense _ -> Layers.denseBackward backend g parameters input inputOffset dPre sink needInput ws.DeltaIn.[i]
            dY <- ws.DeltaIn.[i]

    /// The gradient of one example into `grad` (added to it when `accumulate`).
    let runWith backend net parameters ws x xOffset dOut (grad: float32 array) (accumulate: bool) dropLayer =
        runInto backend net parameters ws x xOffset dOut (GradientSink.into grad accumulate) dropLayer

    let run backend net parameters ws x xOffset dOut grad accumulate =
        runWith backend net parameters ws x xOffset dOut grad accumulate -1
