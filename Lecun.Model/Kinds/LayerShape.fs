/// What the spec side asks of a kind of layer: whether it can follow a shape, the shapes and counts
/// it implies, its connections unit by unit, and its text form. Each kind answers in its own file
/// (Kinds/LocalSpec.fs, Kinds/DenseSpec.fs); Spec, Layout, ConnectionGraph and NetworkText iterate
/// over layers and ask, the engine side is ILayerKind.
namespace Lecun.Model

open System
open System.Text.Json
open Lecun.Native.Kernels

/// A stack of equally sized 2-D feature planes (the input, or a locally-connected layer's output).
type PlaneShape = { Planes: int; Height: int; Width: int }

/// A named window of the flat parameter buffer, row-major with the given shape.
type TensorView =
    { Name: string
      Offset: int
      Shape: int list }

    member v.Length = List.fold (*) 1 v.Shape

/// Where a connection takes its value from.
type Source =
    /// A unit, by global index: input units first, then each layer's units in order.
    | FromUnit of int
    /// A padding position, which always holds the layer's pad value.
    | FromPad of float32

/// What a layer's input is: planes, or a vector of units.
type LayerInput =
    | PlaneInput of PlaneShape
    | VectorInput of int

/// The shapes and counts a layer implies given its input shape.
type LayerShape =
    { /// [planes; height; width] for planes, [units] for a vector.
      OutShape: int list
      Units: int
      /// Inputs per unit, the bias not included (padding positions are inputs too, as in the paper).
      FanIn: int
      WeightShape: int list
      BiasShape: int list }

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

/// Where a layer of the 16-lane path reads its input (see LaneLayer); empty for a layer that reads a vector.
type LaneWindows =
    { /// The input planes with their padding, [inPlanes, ph, pw, lanes], the border holding the pad value.
      Padded: float32 array
      /// Float offset in Padded of each output position's window (top-left, input plane 0).
      Origins: int array
      /// Per plane group: first plane, planes, and the float offset of each weight's input relative to
      /// a window's origin, in weight order (read plane, row, column).
      Taps: struct (int * int * int array) array }

/// How a layer that unfolds its input planes pads them: training's distortions write the digit into a
/// frame that already holds this padding and unfold the frame with `FrameUnfold`.
type InputFrame =
    { /// Added on every side of each input plane.
      Pad: int
      /// The padding's value.
      PadValue: float32
      /// The layer's windows over a frame that already holds the padding: the same windows, unpadded.
      FrameUnfold: Im2ColPlan }

type ILayerSpecKind =
    /// The layer's name (its tensors are named name + "w" and name + "b").
    abstract Name: string
    /// What the layer outputs when it follows `input`, or one line saying why it cannot.
    abstract Check: input: LayerInput -> Result<LayerInput, string>
    /// The shapes and counts of the layer on an input of shape `inShape` (checked first).
    abstract Shape: inShape: int list -> LayerShape
    /// Every unit of the layer in order: (unit within the layer, (source, index of the weight in the
    /// flat parameter buffer) per connection, index of its bias), its input units numbered from inBase.
    abstract Connections:
        inShape: int list * outShape: int list * weightOffset: int * biasOffset: int * inBase: int
        -> (int * (Source * int) array * int) seq
    /// Whether the layer reads its input as one flat vector (dropout drops the input of the first such layer).
    abstract ReadsVector: bool
    /// The layer as a JSON object's members: "kind", "name", then its own.
    abstract Write: writer: Utf8JsonWriter -> unit
    /// The engine's plan of the layer (Network.create): how it unfolds an input of shape `inShape`
    /// moved (shiftY, shiftX) pixels inside its padding, None for a layer that does not unfold.
    abstract Unfold: inShape: int list * shiftY: int * shiftX: int -> Im2ColPlan option
    /// How it pads an input of shape `inShape`, None for a layer that does not unfold its input.
    abstract Frame: inShape: int list -> InputFrame option
    /// Its plane groups (empty for a layer without planes).
    abstract Groups: PlaneGroup list
    /// Its matrix products in the order its forward and backward passes run them, as Im2ColPlan's
    /// fused products read them: (first plane, planes, first input plane, input planes, weight column) each.
    abstract Segments: int array
    /// Where it reads its input on the 16-lane path of `lanes` examples.
    abstract LaneWindows: inShape: int list * outShape: int list * lanes: int -> LaneWindows

/// Reading a JSON text's members, any problem raised as a FormatException with one line.
module JsonFields =
    let fail (what: string) : 'a = raise (FormatException what)

    let field (e: JsonElement) (name: string) =
        match e.TryGetProperty name with
        | true, v -> v
        | _ -> fail $"no '{name}'"

    let integer (e: JsonElement) (what: string) =
        match e.ValueKind, (if e.ValueKind = JsonValueKind.Number then e.TryGetInt32() else (false, 0)) with
        | JsonValueKind.Number, (true, v) -> v
        | _ -> fail $"'{what}' is not an integer"

    let str (e: JsonElement) (what: string) = if e.ValueKind = JsonValueKind.String then e.GetString() else fail $"'{what}' is not a string"

    let array (e: JsonElement) (what: string) =
        if e.ValueKind = JsonValueKind.Array then [ for x in e.EnumerateArray() -> x ] else fail $"'{what}' is not an array"
