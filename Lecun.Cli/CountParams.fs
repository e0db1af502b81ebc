/// `count-params`: the per-layer table of the network, every figure derived from the spec.
module Lecun.Cli.CountParams

open System.Text.Json.Nodes
open Lecun.Model
open Lecun.Cli.Output

let private shapeText (shape: int list) = shape |> List.map string |> String.concat "x"

let toJson (layout: NetLayout) =
    let layer (g: LayerGeometry) =
        JsonObject(
            dict [ "name", JsonValue.Create g.Name :> JsonNode
                   "units", JsonValue.Create g.Units
                   "connections", JsonValue.Create g.Connections
                   "params", JsonValue.Create g.Params
                   "macs", JsonValue.Create g.Macs
                   "shape", JsonArray(g.OutShape |> List.map (fun d -> JsonValue.Create d :> JsonNode) |> Array.ofList) ])
        :> JsonNode
    let total =
        JsonObject(
            dict [ "units", JsonValue.Create layout.Units :> JsonNode
                   "connections", JsonValue.Create layout.Connections
                   "params", JsonValue.Create layout.ParamCount
                   "macs", JsonValue.Create layout.Macs ])
    JsonObject(dict [ "layers", JsonArray(layout.Layers |> List.map layer |> Array.ofList) :> JsonNode; "total", total ])
        .ToJsonString(jsonOptions)

let toTable (layout: NetLayout) =
    let sb = System.Text.StringBuilder()
    let line (cells: string list) =
        let widths = [ 6; 10; 8; 12; 8; 8 ]
        let cellsPadded = List.map2 (fun (c: string) w -> if w = 6 then c.PadRight w else c.PadLeft w) cells widths
        sb.AppendLine(String.concat "  " cellsPadded) |> ignore
    let input = layout.Spec.Input
    line [ "layer"; "shape"; "units"; "connections"; "params"; "MACs" ]
    line [ "input"; shapeText [ input.Planes; input.Height; input.Width ]; thousands layout.InputSize; "-"; "-"; "-" ]
    for g in layout.Layers do
        line [ g.Name; shapeText g.OutShape; thousands g.Units; thousands g.Connections; thousands g.Params; thousands g.Macs ]
    line [ "total"; ""; thousands layout.Units; thousands layout.Connections; thousands layout.ParamCount; thousands layout.Macs ]
    sb.ToString()

/// The table of the 1989 network, or of the network a file holds (`--network`).
let run (json: bool) (networkFile: string option) =
    let layout =
        match networkFile with
        | Some file -> NetworkText.readFile file |> Result.map (fun n -> Layout.create n.Spec) |> orFail
        | None -> ModelFile.layout
    if json then printfn "%s" (toJson layout) else printf "%s" (toTable layout)
    0
