module Lecun.Tests.SpecTests

open Expecto
open FsCheck
open FsCheck.FSharp
open Lecun.Model

let private lenet = Layout.lecun1989

let private layer name = lenet.Layers |> List.find (fun g -> g.Name = name)

/// A random valid spec: random input size, local layers with random planes, kernel, stride,
/// padding and connection tables, then one or two dense layers.
let genSpec =
    gen {
        let! inPlanes = Gen.choose (1, 3)
        let! side = Gen.choose (3, 14)
        let! nLocal = Gen.choose (0, 2)
        let rec locals n (planes, h, w) acc =
            gen {
                if n = 0 then return List.rev acc, (planes, h, w)
                else
                    let! pad = Gen.choose (0, 2)
                    let! kernel = Gen.choose (1, min 5 (min h w + 2 * pad))
                    let! stride = Gen.choose (1, 3)
                    let! outPlanes = Gen.choose (1, 4)
                    let! reads = Gen.choose (1, planes)
                    let! table =
                        Gen.listOfLength outPlanes (Gen.shuffle [| 0 .. planes - 1 |] |> Gen.map (fun a -> a |> Array.take reads |> Array.sort |> List.ofArray))
                    let! padValue = Gen.elements [ -1.0f; 0.0f; 0.5f ]
                    let spec =
                        { Name = $"L{n}"; Planes = outPlanes; Kernel = kernel; Stride = stride; Padding = pad; PadValue = padValue; Table = table }
                    let oh = Spec.outputSide h kernel stride pad
                    let ow = Spec.outputSide w kernel stride pad
                    return! locals (n - 1) (outPlanes, oh, ow) (Local spec :: acc)
            }
        let! localLayers, _ = locals nLocal (inPlanes, side, side) []
        let! dense = Gen.listOfLength 2 (Gen.choose (1, 6))
        let! nDense = Gen.choose (1, 2)
        let denseLayers = dense |> List.take nDense |> List.mapi (fun i u -> Dense { Name = $"D{i}"; Units = u })
        return { Input = { Planes = inPlanes; Height = side; Width = side }; Layers = localLayers @ denseLayers }
    }

type SpecGen =
    static member Spec() = Arb.fromGen genSpec

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<SpecGen> ]; maxTest = 200 }

let private isError = function Error _ -> true | Ok _ -> false

[<Tests>]
let tests =
    testList "spec" [
        testList "the 1989 network" [
            test "totals are the paper's" {
                Expect.equal lenet.Units 1256 "units"
                Expect.equal lenet.Connections 64660 "connections"
                Expect.equal lenet.ParamCount 9760 "free parameters"
                Expect.equal lenet.Macs 63660 "multiply-accumulates"
            }
            test "each layer has the paper's figures" {
                let expected =
                    [ "H1", [ 12; 8; 8 ], 768, 19968, 1068
                      "H2", [ 12; 4; 4 ], 192, 38592, 2592
                      "H3", [ 30 ], 30, 5790, 5790
                      "out", [ 10 ], 10, 310, 310 ]
                for name, shape, units, connections, parameters in expected do
                    let g = layer name
                    Expect.equal g.OutShape shape $"{name} shape"
                    Expect.equal g.Units units $"{name} units"
                    Expect.equal g.Connections connections $"{name} connections"
                    Expect.equal g.Params parameters $"{name} params"
            }
            test "tensor names and shapes follow the checkpoint layout" {
                let views = lenet.Views |> List.map (fun v -> v.Name, v.Shape)
                Expect.equal views
                    [ "H1w", [ 12; 1; 5; 5 ]; "H1b", [ 12; 8; 8 ]; "H2w", [ 12; 8; 5; 5 ]; "H2b", [ 12; 4; 4 ]
                      "H3w", [ 192; 30 ]; "H3b", [ 30 ]; "outw", [ 30; 10 ]; "outb", [ 10 ] ] "views"
            }
            test "H2 reads the block table" {
                match Spec.lecun1989.Layers.[1] with
                | Local h2 ->
                    Expect.equal h2.Table.[0] [ 0..7 ] "plane 0"
                    Expect.equal h2.Table.[5] [ 4..11 ] "plane 5"
                    Expect.equal h2.Table.[11] [ 0; 1; 2; 3; 8; 9; 10; 11 ] "plane 11"
                | _ -> failtest "H2 should be locally connected"
            }
            test "the explicit graph has the paper's counts" {
                let graph = ConnectionGraph.build lenet
                Expect.equal graph.Length 1000 "non-input units"
                Expect.equal (graph |> Array.sumBy (fun u -> u.Inputs.Length + 1)) 64660 "connections"
            }
        ]
        testList "derived counts" [
            testPropertyWithConfig config "equal a brute-force enumeration of the connection graph" <| fun (spec: NetSpec) ->
                let layout = Layout.create spec
                let graph = ConnectionGraph.build layout
                for li, g in List.indexed layout.Layers do
                    let units = graph |> Array.filter (fun u -> u.Layer = li)
                    let connections = units |> Array.sumBy (fun u -> u.Inputs.Length + 1)
                    let parameters =
                        units |> Array.collect (fun u -> Array.append (Array.map snd u.Inputs) [| u.Bias |]) |> Array.distinct
                    Expect.equal units.Length g.Units $"{g.Name} units"
                    Expect.equal connections g.Connections $"{g.Name} connections"
                    Expect.equal parameters.Length g.Params $"{g.Name} params"
                    Expect.equal (connections - units.Length) g.Macs $"{g.Name} MACs"
                    // Every parameter the graph uses lies inside the layer's own views.
                    for p in parameters do
                        let inside (v: TensorView) = p >= v.Offset && p < v.Offset + v.Length
                        Expect.isTrue (inside g.Weight || inside g.Bias) $"{g.Name} parameter {p} outside its views"
            testPropertyWithConfig config "output sides follow (n + 2p - k) / s + 1" <| fun (spec: NetSpec) ->
                let layout = Layout.create spec
                for g in layout.Layers do
                    match g.Spec, g.InShape, g.OutShape with
                    | Local l, [ _; ih; iw ], [ p; oh; ow ] ->
                        // the last window fits inside the padded input, and one more stride would not
                        for inSide, outSide in [ ih, oh; iw, ow ] do
                            Expect.isTrue ((outSide - 1) * l.Stride + l.Kernel <= inSide + 2 * l.Padding) "last window fits"
                            Expect.isTrue (outSide * l.Stride + l.Kernel > inSide + 2 * l.Padding) "no room for another"
                        Expect.equal p l.Planes "planes"
                    | Dense d, _, [ u ] -> Expect.equal u d.Units "units"
                    | _ -> failtest "unexpected shape"
            testPropertyWithConfig config "the parameter layout covers the buffer exactly once" <| fun (spec: NetSpec) ->
                let layout = Layout.create spec
                let cover = Array.zeroCreate<int> layout.ParamCount
                for v in layout.Views do
                    for i in v.Offset .. v.Offset + v.Length - 1 do
                        cover.[i] <- cover.[i] + 1
                Expect.allEqual cover 1 "each float belongs to exactly one view"
        ]
        testList "invalid specs are errors" [
            let h1 = match Spec.lecun1989.Layers.[0] with Local l -> l | _ -> failwith "H1"
            let withH1 (f: LocalSpec -> LocalSpec) =
                { Spec.lecun1989 with Layers = Local(f h1) :: List.tail Spec.lecun1989.Layers }
            let cases =
                [ "kernel larger than the padded input", withH1 (fun l -> { l with Kernel = 21 }), "does not fit"
                  "a table naming a plane that does not exist", withH1 (fun l -> { l with Table = List.replicate 12 [ 3 ] }), "input plane(s) 3"
                  "an empty table row", withH1 (fun l -> { l with Table = [] :: List.replicate 11 [ 0 ] }), "empty row"
                  "a table with too few rows", withH1 (fun l -> { l with Table = [ [ 0 ] ] }), "1 rows for 12 planes"
                  "zero planes", withH1 (fun l -> { l with Planes = 0; Table = [] }), "at least one plane"
                  "zero stride", withH1 (fun l -> { l with Stride = 0 }), "stride must be positive"
                  "negative stride", withH1 (fun l -> { l with Stride = -2 }), "stride must be positive"
                  "zero dense units", { Spec.lecun1989 with Layers = Spec.lecun1989.Layers @ [ Dense { Name = "x"; Units = 0 } ] }, "at least one unit"
                  "local after dense", { Spec.lecun1989 with Layers = Spec.lecun1989.Layers @ [ Local { h1 with Name = "late" } ] }, "follows a dense layer"
                  "no layers", { Spec.lecun1989 with Layers = [] }, "no layers" ]
            for name, spec, fragment in cases ->
                test name {
                    match Layout.tryCreate spec with
                    | Error message -> Expect.stringContains message fragment "the error says what is wrong"
                    | Ok _ -> failtest "an invalid spec was accepted"
                }
        ]
    ]
