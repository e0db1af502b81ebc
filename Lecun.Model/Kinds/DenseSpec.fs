/// A dense (fully connected) layer on the spec side: its checks, shapes, connections and text form.
namespace Lecun.Model

open System.Text.Json

type DenseSpec =
    { Name: string
      Units: int }

    interface ILayerSpecKind with
        member d.Name = d.Name
        member d.ReadsVector = true

        member d.Check _ =
            if d.Units <= 0 then Error $"layer {d.Name}: needs at least one unit, got {d.Units}"
            else Ok(VectorInput d.Units)

        member d.Shape inShape =
            let fanIn = List.fold (*) 1 inShape
            // Input-major, y = x @ W + b, as the PyTorch reproduction stores it.
            { OutShape = [ d.Units ]; Units = d.Units; FanIn = fanIn; WeightShape = [ fanIn; d.Units ]; BiasShape = [ d.Units ] }

        member d.Connections(inShape, _, weightOffset, biasOffset, inBase) =
            let fanIn = List.fold (*) 1 inShape
            seq {
                for u in 0 .. d.Units - 1 ->
                    u, [| for i in 0 .. fanIn - 1 -> FromUnit(inBase + i), weightOffset + i * d.Units + u |], biasOffset + u }

        member d.Write w =
            w.WriteString("kind", DenseSpec.KindName)
            w.WriteString("name", d.Name)
            w.WriteNumber("units", d.Units)

        member _.Unfold(_, _, _) = None
        member _.Frame _ = None
        member _.Groups = []
        member _.Segments = Array.empty
        member _.LaneWindows(_, _, _) = { Padded = Array.empty; Origins = Array.empty; Taps = Array.empty }

    /// The kind's name in a model file's network text.
    static member KindName = "dense"

    /// The layer a network text's object describes (JsonFields' errors for a malformed one).
    static member Read (e: JsonElement) (name: string) =
        { Name = name; Units = JsonFields.integer (JsonFields.field e "units") "units" }
