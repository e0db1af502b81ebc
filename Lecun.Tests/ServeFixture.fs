/// A trained model shared by the `show` and `serve` tests: lecun1989 for 2 passes on all USPS
/// training digits (about 7% test error), saved as a checkpoint in a temporary folder.
module Lecun.Tests.ServeFixture

open System
open System.IO
open Lecun.Native.Backends
open Lecun.Model
open Lecun.Cli

let private trained =
    lazy
        (let data = TestSetup.usps.Force()
         let recipe = { Recipe.lecun1989 with Passes = 2 }
         let initial = Init.create recipe.WeightInit Layout.lecun1989 recipe.Seed
         let result = Train.run Backend.Managed recipe data initial (fun _ _ -> ()) ignore
         let dir = Path.Combine(Path.GetTempPath(), $"lecun-serve-tests-{Guid.NewGuid():N}")
         Directory.CreateDirectory dir |> ignore
         AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> try Directory.Delete(dir, true) with _ -> ())
         let file = Path.Combine(dir, "model.safetensors")
         ModelFile.save file recipe DataSetName.Usps None result.Parameters
         file)

/// The checkpoint's path.
let modelFile () = trained.Force()

let private view = lazy (ModelView.load (Evaluator.Engine Backend.Managed) (modelFile ()) None)

/// The checkpoint as `serve` loads it (managed backend, so the tests need no MKL).
let modelView () = view.Force()

/// What the network gives one digit, computed as `predict` does: one forward pass on a
/// one-example workspace, each layer's outputs read from it.
let expectedLayers (view: ModelView.ModelView) (image: float32 array) =
    let ws = Workspace.create view.Net 1
    Forward.run Backend.Managed view.Net view.Parameters ws image 0 1
    view.Net.Plans |> Array.mapi (fun i p -> ws.Outputs.[i].[0 .. p.Geometry.Units - 1])
