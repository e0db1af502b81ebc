/// A model file: the 1989 network's weights (a safetensors checkpoint, see Checkpoint.fs) with what
/// made them: recipe, seed, passes, data set, squashing functions, loss and the spec. `train` writes it;
/// `train --init`, `eval` and `predict` read it here, and the network it loads into is checked against
/// the spec it records.
namespace Lecun.Model

open System
open FsToolkit.ErrorHandling

type ModelFile =
    { /// The file it was read from, for messages.
      Path: string
      Parameters: float32 array
      /// The network the weights run in, with the squashing functions the file records.
      Network: Network
      /// The loss the file records (eval reports it).
      Loss: Loss
      /// Every metadata entry, as written (files from other writers may have other keys).
      Metadata: Map<string, string> }

/// What a model file's metadata says about how its weights were made, typed. A file from another
/// writer may leave any of it out; `data_set` then reads as usps, the paper's.
type ModelInfo =
    { Recipe: string option
      Seed: int option
      Passes: int option
      /// The data set's name (`data_set`).
      DataSet: string
      /// The count of its last training digits held out by --holdout (`held_out`).
      HeldOut: int option
      /// Squashing and loss as the file names them (`hidden`, `output`, `loss`).
      Hidden: string option
      Output: string option
      Loss: string option
      RecipeDetails: string option }

module ModelFile =
    /// The network this program builds, as a model file's `spec` entry names it.
    let specName = "lecun1989"

    let layout = Layout.lecun1989

    /// The metadata `train` writes: enough to rebuild the network that produced the weights (`network`:
    /// the spec and squashing as data, NetworkText; `spec`, `hidden` and `output` as files before it
    /// had them), and to say how they were trained. `data_set` names the data set; `held_out` is the
    /// count of its last training digits held out by --holdout, when `heldOut` is given.
    let metadata (recipe: Recipe) (dataSet: DataSetName) (heldOut: int option) : Map<string, string> =
        Map.ofList
            [ "recipe", recipe.Name
              "seed", string recipe.Seed
              "passes", string recipe.Passes
              "data_set", DataSetName.name dataSet
              match heldOut with
              | Some n -> "held_out", string n
              | None -> ()
              "hidden", Activation.name recipe.Hidden
              "output", Activation.name recipe.Output
              "loss", Loss.name recipe.Loss
              // The name of the 1989 network, which every file before `network` had; another network has none.
              if recipe.Network = layout.Spec then "spec", specName
              "network", NetworkText.write { NetworkText.Spec = recipe.Network; Hidden = recipe.Hidden; Output = recipe.Output }
              "recipe_details", Recipe.describe recipe ]

    /// Writes the weights a recipe trained on a data set (in the recipe's network), atomically.
    let save (path: string) (recipe: Recipe) (dataSet: DataSetName) (heldOut: int option) (parameters: float32 array) =
        Checkpoint.save path (Recipe.layout recipe) parameters (metadata recipe dataSet heldOut)

    /// The network a file's metadata records in `network`, or None (files from before it, or from
    /// other writers: the 1989 network); a `network` that is not a valid network text is one error.
    let private recordedNetwork (path: string) (metadata: Map<string, string>) =
        match metadata |> Map.tryFind "network" with
        | None -> Ok None
        | Some text -> NetworkText.read text |> Result.map Some |> Result.mapError (fun e -> $"{path}: metadata 'network': {e}")

    /// Reads a model file of any network: the network its metadata records (`network`, read back as
    /// data; in a file without it, the 1989 network by the `spec` name, with the `hidden` and `output`
    /// squashing, tanh everywhere and MSE when a file, say one written in Python, does not say), and
    /// the weights, checked against that network's layout.
    let loadAny (path: string) : Result<ModelFile, string> =
        result {
            // A header that cannot be read alone is refused as the whole file's check of the 1989 network
            // words it (a device, a truncated or foreign file: the messages files have always had).
            let! header = Checkpoint.metadata path |> Result.orElseWith (fun _ -> Checkpoint.load path layout |> Result.map snd)
            let! recorded = recordedNetwork path header
            let another = recorded |> Option.exists (fun n -> n.Spec <> layout.Spec)
            let layout = match recorded with Some n when another -> Layout.create n.Spec | _ -> layout
            let! parameters, metadata =
                Checkpoint.load path layout
                |> Result.mapError (fun e -> if another then $"{e} (checked against the network its metadata 'network' records)" else e)
            let read key fallback parse =
                parse (metadata |> Map.tryFind key |> Option.defaultValue fallback)
                |> Result.mapError (fun e -> $"{path}: metadata '{key}': {e}")
            let! loss = read "loss" "mse" Loss.parse
            let! hidden = read "hidden" "tanh" Activation.parse
            let! output = read "output" "tanh" Activation.parse
            let! hidden, output =
                match metadata |> Map.tryFind "network" with
                | None -> Ok(hidden, output)
                | Some text ->
                    match NetworkText.read text with
                    | Error e -> Error $"{path}: metadata 'network': {e}"
                    | Ok network when network.Spec <> layout.Spec ->
                        Error $"{path}: the file changed while it was read (its 'network' is not the one first read)"
                    | Ok network ->
                        // Where a file also has the older keys, they must say the same.
                        let agrees key (a: Activation) = metadata |> Map.tryFind key |> Option.forall (fun v -> v = Activation.name a)
                        if agrees "hidden" network.Hidden && agrees "output" network.Output then Ok(network.Hidden, network.Output)
                        else Error $"{path}: metadata 'hidden' or 'output' disagrees with the squashing 'network' records"
            match metadata |> Map.tryFind "spec" with
            | Some spec when spec <> specName ->
                return! Error $"{path}: metadata 'spec' is '{spec}', but this program builds the {specName} network"
            | Some _ when layout.Spec <> Spec.lecun1989 ->
                return! Error $"{path}: metadata 'spec' names the {specName} network, but 'network' records another"
            | _ ->
                return { Path = path; Parameters = parameters; Network = Network.create layout hidden output; Loss = loss; Metadata = metadata }
        }

    /// Reads a model file of the 1989 network (loadAny); a file of another network is refused in one
    /// line: only `train --teacher` reads those.
    let load (path: string) : Result<ModelFile, string> =
        loadAny path
        |> Result.bind (fun model ->
            if model.Network.Layout.Spec = layout.Spec then Ok model
            else Error $"{path}: the file holds another network than the {specName} network ({model.Network.Layout.ParamCount} parameters); only train --teacher reads such files")

    /// What the model's metadata says about how it was made. A file written before `held_out` had
    /// a key of its own named the held-out digits in `data_set` after a comma
    /// ("usps, last 1000 training digits held out"): the name is what comes before it.
    let info (model: ModelFile) : ModelInfo =
        let text key = model.Metadata |> Map.tryFind key
        let number key =
            text key |> Option.bind (fun v ->
                match Int32.TryParse(v, Globalization.NumberStyles.Integer, Globalization.CultureInfo.InvariantCulture) with
                | true, n -> Some n
                | _ -> None)
        { Recipe = text "recipe"
          Seed = number "seed"
          Passes = number "passes"
          DataSet = ((text "data_set" |> Option.defaultValue "usps").Split ',').[0].Trim()
          HeldOut = number "held_out"
          Hidden = text "hidden"
          Output = text "output"
          Loss = text "loss"
          RecipeDetails = text "recipe_details" }

    /// The info as the metadata keys name it, the ones the file has, in the order a reader shows them.
    let infoEntries (i: ModelInfo) : (string * string) list =
        [ match i.Recipe with Some v -> "recipe", v | None -> ()
          match i.Seed with Some v -> "seed", string v | None -> ()
          match i.Passes with Some v -> "passes", string v | None -> ()
          "data_set", i.DataSet
          match i.HeldOut with Some v -> "held_out", string v | None -> ()
          match i.Hidden with Some v -> "hidden", v | None -> ()
          match i.Output with Some v -> "output", v | None -> ()
          match i.Loss with Some v -> "loss", v | None -> ()
          match i.RecipeDetails with Some v -> "recipe_details", v | None -> () ]

    let private overflow (model: ModelFile) (what: string) =
        $"{model.Path}: the network's outputs are not finite on {what}: the weights are finite but too large for float32 arithmetic"

    /// Loss, error, misses and predictions of the model on a split; refused when the forward pass
    /// overflowed (a loss that is not a number is never reported as a result).
    let evaluate backend (model: ModelFile) (digits: Dataset) : Result<SplitEvaluation, string> =
        let result = Evaluate.split backend model.Network model.Loss model.Parameters (Workspace.create model.Network Evaluate.batch) digits
        if Double.IsFinite result.Metrics.Loss then Ok result
        else Error(overflow model $"{digits.Name} (loss {result.Metrics.Loss})")

    /// The output scores of one 16x16 digit (`ws` a one-digit workspace of the model's network); refused
    /// when one is not finite. `what` names the digit in the message.
    let scores backend (model: ModelFile) (ws: Workspace) (image: float32 array) (what: string) : Result<float32 array, string> =
        Forward.run backend model.Network model.Parameters ws image 0 1
        let y = (Forward.outputs model.Network ws).[0 .. model.Network.Layout.OutputSize - 1]
        if Array.forall Single.IsFinite y then Ok y else Error(overflow model what)

    /// A model file as a saved teacher of a run on `dataSet` that holds out its last `heldOut` training
    /// digits: the teacher must have been trained on the same data set, and, when the run holds digits
    /// out, without them (held out itself at least as many), or the held-out figure would not be one.
    let teacherFor (dataSet: DataSetName) (heldOut: int option) (model: ModelFile) : Result<SavedTeacher, string> =
        let i = info model
        let teacher = { Name = model.Path; Network = model.Network; Parameters = model.Parameters }
        if i.DataSet <> DataSetName.name dataSet then
            Error $"{model.Path}: the teacher was trained on {i.DataSet}, the run trains on {DataSetName.name dataSet}"
        else
            match heldOut, i.HeldOut with
            | Some n, held when held |> Option.forall (fun m -> m < n) ->
                Error $"{model.Path}: the teacher was trained on training digits this run holds out (train it with --holdout {n})"
            | _ -> Ok teacher
