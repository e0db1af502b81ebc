/// The library's front door for C# and F# callers: load digits (embedded or from files), pick or
/// adjust a recipe, train with progress callbacks, evaluate, predict from pixels, look inside the
/// layers, and read and write model files. Plain classes, arrays, `IProgress`/`Action` callbacks
/// and exceptions; the modules underneath (Data, Recipe, Train, ModelFile, Inspect) return Results
/// and stay available to F# callers who want them.
namespace Lecun.Model

open System
open System.IO
open System.Runtime.InteropServices
open Lecun.Native.Backends

/// <summary>The figures LeCun et al. 1989 report for their network on these digits.</summary>
[<AbstractClass; Sealed>]
type Paper1989 =
    /// <summary>Training-set error, percent (0.14%).</summary>
    static member TrainError = Paper.trainError
    /// <summary>Misclassified training digits (10 of 7,291).</summary>
    static member TrainMisses = Paper.trainMisses
    /// <summary>Test-set error, percent (5.0%).</summary>
    static member TestError = Paper.testError
    /// <summary>Misclassified test digits (102 of 2,007).</summary>
    static member TestMisses = Paper.testMisses

/// <summary>Loading the digits the network trains on.</summary>
[<AbstractClass; Sealed>]
type DigitData =
    static member private orThrow (result: Result<TrainTest, string>) =
        match result with
        | Ok data -> data
        | Error problem -> raise (InvalidDataException problem)

    /// <summary>Loads a data set by name through the data search path: <paramref name="dataDir"/> alone
    /// when given, otherwise <c>$LECUN_DATA</c>, <c>./data</c>, then the copy embedded in this library.</summary>
    /// <param name="dataSet"><c>usps</c> (the paper's digits), <c>mnist-sim</c> or <c>mnist-sim-50k</c>.</param>
    /// <param name="dataDir">A folder holding <c>usps/</c> or <c>mnist/</c>; null to search.</param>
    /// <param name="seed">The mnist-sim draw (ignored for usps).</param>
    /// <exception cref="T:System.ArgumentException">An unknown data set name.</exception>
    /// <exception cref="T:System.IO.InvalidDataException">Not found, or a file is damaged (the message names it).</exception>
    static member Load([<Optional; DefaultParameterValue("usps")>] dataSet: string,
                       [<Optional; DefaultParameterValue(null: string)>] dataDir: string,
                       [<Optional; DefaultParameterValue(1337)>] seed: int) : TrainTest =
        let name =
            match DataSetName.parse (if isNull dataSet then "" else dataSet) with
            | Ok name -> name
            | Error problem -> invalidArg (nameof dataSet) problem
        Data.loadSeeded name (Option.ofObj dataDir) seed |> DigitData.orThrow

    /// <summary>The paper's USPS digits from the copy embedded in this library (7,291 training and
    /// 2,007 test digits), whatever folders exist.</summary>
    static member EmbeddedUsps() : TrainTest =
        Data.loadFrom [ { Origin = EmbeddedData.origin; Dir = None } ] DataSetName.Usps MnistSim.defaultSeed |> DigitData.orThrow

    /// <summary>USPS digits from two files in the zip-code text format (gzip or plain), each checked
    /// to be the whole distributed split.</summary>
    /// <exception cref="T:System.IO.InvalidDataException">A missing, damaged or different file.</exception>
    static member FromUspsFiles(trainPath: string, testPath: string) : TrainTest =
        Data.loadUspsFiles trainPath testPath
        |> Result.map (fun (train, test) -> { Train = train; Test = test; Source = $"usps from {trainPath} and {testPath}" })
        |> DigitData.orThrow

/// <summary>The named recipes: the paper's (<c>lecun1989</c>, <c>newton1989</c>), Karpathy's
/// <c>modern</c> and <c>refined</c>.</summary>
[<AbstractClass; Sealed>]
type Recipes =
    /// <summary>The names, in the order the command line lists them.</summary>
    static member Names : string array = Recipe.all |> List.map (fun r -> r.Name) |> Array.ofList

    /// <summary>The paper's recipe: tanh, MSE, per-example SGD, 23 passes, seed 1337.</summary>
    static member Lecun1989 = Recipe.lecun1989

    /// <summary>A recipe by name.</summary>
    /// <exception cref="T:System.ArgumentException">An unknown name (the message lists the known ones).</exception>
    static member Get(name: string) : Recipe =
        match Recipe.tryFind (if isNull name then "" else name) with
        | Ok recipe -> recipe
        | Error problem -> invalidArg (nameof name) problem

    /// <summary>A recipe with some of its settings changed, each checked as the command line checks
    /// it (for example <c>RecipeOverride.NewPasses(5)</c>, <c>RecipeOverride.NewLearningRate(0.01)</c>).</summary>
    /// <exception cref="T:System.ArgumentException">A value out of range (the message says which).</exception>
    static member With(recipe: Recipe, [<ParamArray>] changes: RecipeOverride array) : Recipe =
        match Recipe.apply (List.ofArray changes) recipe with
        | Ok changed -> changed
        | Error problem -> invalidArg (nameof changes) problem

/// <summary>How far training has got, reported every few hundred digits.</summary>
type TrainProgress =
    { /// <summary>The pass under way, from 1.</summary>
      Pass: int
      /// <summary>The passes of the run.</summary>
      Passes: int
      /// <summary>Training digits presented so far in this pass.</summary>
      Presented: int
      /// <summary>Training digits per pass.</summary>
      PerPass: int }

    /// <summary>The fraction of the whole run done, 0 to 1.</summary>
    member p.Fraction = (float (p.Pass - 1) + float p.Presented / float (max 1 p.PerPass)) / float (max 1 p.Passes)

/// <summary>The class a model gives one digit, with the network's ten output scores.</summary>
type Prediction =
    { /// <summary>The predicted digit, 0 to 9: the highest score.</summary>
      Digit: int
      /// <summary>The ten output units' values.</summary>
      Scores: float32 array }

/// <summary>One layer's outputs for one digit.</summary>
type LayerOutput =
    { /// <summary>The layer's name: H1, H2, H3 or out.</summary>
      Name: string
      /// <summary>Its shape: [12, 8, 8], [12, 4, 4], [30] or [10].</summary>
      Shape: int array
      /// <summary>The values, row-major over the shape.</summary>
      Values: float32 array }

/// <summary>Trained weights in the 1989 network, ready to evaluate, predict and save.</summary>
[<Sealed>]
type TrainedModel internal (model: ModelFile, evaluator: Evaluator) =
    let checkPixels (pixels: float32 array) =
        if isNull pixels then nullArg (nameof pixels)
        if pixels.Length <> Dataset.Pixels then
            invalidArg (nameof pixels) $"{pixels.Length} values, expected {Dataset.Pixels} (16x16, row-major)"
        match pixels |> Array.tryFindIndex (fun v -> not (v >= -1.0f && v <= 1.0f)) with
        | Some i -> invalidArg (nameof pixels) $"pixels[{i}] = {pixels[i]} is not a number in [-1, 1]"
        | None -> ()
    let orThrow (result: Result<'a, string>) =
        match result with
        | Ok value -> value
        | Error problem -> raise (InvalidDataException problem)

    /// <summary>Reads a model file (safetensors, as <c>lecun train</c> and <see cref="M:Lecun.Model.TrainedModel.Save(System.String)"/>
    /// write it), checked against the network it names.</summary>
    /// <param name="path">The .safetensors file.</param>
    /// <param name="backend"><c>auto</c> (default: MKL when installed, else managed, with one warning on
    /// stderr), <c>mkl</c>, <c>managed</c>, or <c>reference</c> (the float64 reference: slow and exact, for checking).</param>
    /// <exception cref="T:System.ArgumentException">An unknown backend.</exception>
    /// <exception cref="T:System.IO.InvalidDataException">A missing, damaged or foreign file.</exception>
    static member Load(path: string, [<Optional; DefaultParameterValue(null: string)>] backend: string) : TrainedModel =
        let evaluator =
            if not (isNull backend) && backend.ToLowerInvariant() = Evaluator.referenceName then Evaluator.Reference
            else Evaluator.Engine(Backend.Choose(backend, fun message -> eprintfn "warning: %s" message))
        match ModelFile.load path with
        | Ok model -> TrainedModel(model, evaluator)
        | Error problem -> raise (InvalidDataException problem)

    /// <summary>The weights, in the order of the safetensors file's tensors (a copy).</summary>
    member _.Parameters = Array.copy model.Parameters
    /// <summary>The file's metadata: recipe, seed, passes, data set, activations, loss, spec.</summary>
    member _.Metadata : Collections.Generic.IReadOnlyDictionary<string, string> = model.Metadata
    /// <summary>Loss, error and misses on a split, and the predicted class of every digit.</summary>
    /// <exception cref="T:System.IO.InvalidDataException">The weights overflow float32 on these digits.</exception>
    member _.Evaluate(digits: Dataset) : SplitEvaluation = Evaluator.evaluate evaluator model digits |> orThrow

    /// <summary>The digit in a 16x16 image: 256 values in [-1, 1], row-major (-1 background, 1 ink,
    /// as the USPS files write them).</summary>
    /// <exception cref="T:System.ArgumentException">Not 256 values, or one outside [-1, 1].</exception>
    member _.Predict(pixels: float32 array) : Prediction =
        checkPixels pixels
        let scores = Evaluator.scores evaluator model (Workspace.create model.Network 1) pixels "the given pixels" |> orThrow
        { Digit = Loss.argmax scores 0 scores.Length; Scores = scores }

    /// <summary>Every layer's outputs for one 16x16 image (the pictures of <c>lecun show</c>).</summary>
    /// <exception cref="T:System.ArgumentException">Not 256 values, or one outside [-1, 1].</exception>
    member _.Inspect(pixels: float32 array) : LayerOutput array =
        checkPixels pixels
        let values = Evaluator.layers evaluator model.Network model.Parameters (Workspace.create model.Network 1) pixels
        Array.map2 (fun (p: LayerPlan) v -> { Name = p.Geometry.Name; Shape = Array.ofList p.Geometry.OutShape; Values = v }) model.Network.Plans values

    /// <summary>Writes the model file (safetensors with its metadata), atomically: a failed write
    /// leaves any file already at <paramref name="path"/> as it was.</summary>
    member _.Save(path: string) : unit = Checkpoint.save path model.Network.Layout model.Parameters model.Metadata

/// <summary>What a training run gave: the model and its per-pass figures.</summary>
type TrainingRun =
    { /// <summary>The trained weights.</summary>
      Model: TrainedModel
      /// <summary>Loss, error and misses of both splits after each pass.</summary>
      Passes: PassMetrics array
      /// <summary>Wall time of training and evaluation, seconds.</summary>
      Seconds: float }

    /// <summary>The figures after the last pass.</summary>
    member r.Final = Array.last r.Passes

/// <summary>The settings of a training run; every property has a default (the paper's run).</summary>
[<Sealed; AllowNullLiteral>]
type TrainOptions() =
    /// <summary>The recipe: <c>lecun1989</c> (default), <c>newton1989</c>, <c>modern</c> or <c>refined</c>.
    /// Ignored when a built <see cref="T:Lecun.Model.Recipe"/> is passed to the trainer.</summary>
    member val Recipe = Recipe.lecun1989.Name with get, set
    /// <summary>Passes over the training digits; null keeps the recipe's.</summary>
    member val Passes = Nullable<int>() with get, set
    /// <summary>The seed of the initial weights and of any randomness in training; null keeps the recipe's (1337).</summary>
    member val Seed = Nullable<int>() with get, set
    /// <summary>The name the model file records for the data (default <c>usps</c>).</summary>
    member val DataSet = "usps" with get, set
    /// <summary><c>auto</c> (null, the default), <c>mkl</c> or <c>managed</c>.</summary>
    member val Backend: string = null with get, set
    /// <summary>Hears how far training has got, every few hundred digits, on the training thread.</summary>
    member val Progress: IProgress<TrainProgress> = null with get, set
    /// <summary>Called after each pass with both splits' loss, error and misses.</summary>
    member val PassCompleted: Action<PassMetrics> = null with get, set

/// <summary>Training the 1989 network.</summary>
[<AbstractClass; Sealed>]
type Trainer =
    /// The options applied: the recipe with their changes, the data set's name, the provider and the callbacks.
    static member private Settings(recipe: Recipe, data: TrainTest, options: TrainOptions) =
        let options = if isNull options then TrainOptions() else options
        let dataSet =
            match DataSetName.parse (if isNull options.DataSet then "" else options.DataSet) with
            | Ok name -> name
            | Error problem -> invalidArg (nameof options) problem
        let recipe =
            Recipes.With(recipe,
                [| if options.Passes.HasValue then RecipeOverride.Passes options.Passes.Value
                   if options.Seed.HasValue then RecipeOverride.Seed options.Seed.Value |])
        let backend = Backend.Choose(options.Backend, fun message -> eprintfn "warning: %s" message)
        let progress = Option.ofObj options.Progress
        let passCompleted = Option.ofObj options.PassCompleted
        let onProgress pass presented =
            progress |> Option.iter (fun p -> p.Report { Pass = pass; Passes = recipe.Passes; Presented = presented; PerPass = data.Train.Count })
        let onPass metrics = passCompleted |> Option.iter (fun (a: Action<PassMetrics>) -> a.Invoke metrics)
        recipe, dataSet, backend, onProgress, onPass

    /// <summary>Trains a recipe on the digits, deterministically: the same recipe, seed and data give
    /// bit-identical weights (those <c>lecun train</c> writes).</summary>
    /// <param name="recipe">From <see cref="T:Lecun.Model.Recipes"/>; the options' Passes and Seed, when set, change it.</param>
    /// <param name="data">From <see cref="T:Lecun.Model.DigitData"/>.</param>
    /// <param name="options">Null for the defaults.</param>
    /// <exception cref="T:System.ArgumentException">A recipe or option out of range.</exception>
    /// <exception cref="T:Lecun.Model.TrainingDiverged">The loss or a weight stopped being finite.</exception>
    static member Train(recipe: Recipe, data: TrainTest, [<Optional; DefaultParameterValue(null: TrainOptions)>] options: TrainOptions) : TrainingRun =
        let recipe, dataSet, backend, onProgress, onPass = Trainer.Settings(recipe, data, options)
        let result = Train.run backend recipe data (Init.create recipe.WeightInit (Recipe.layout recipe) recipe.Seed) onProgress onPass
        let model =
            { Path = $"{recipe.Name} (trained in memory)"
              Parameters = result.Parameters
              Network = Recipe.network recipe
              Loss = recipe.Loss
              Metadata = ModelFile.metadata recipe dataSet None }
        { Model = TrainedModel(model, Evaluator.Engine backend); Passes = Array.ofList result.Passes; Seconds = result.Seconds }

    /// <summary>Trains the recipe the options name on the digits.</summary>
    static member Train(data: TrainTest, [<Optional; DefaultParameterValue(null: TrainOptions)>] options: TrainOptions) : TrainingRun =
        let options = if isNull options then TrainOptions() else options
        Trainer.Train(Recipes.Get options.Recipe, data, options)

    /// <summary>Trains as <c>Train</c> does and writes the run's folder as <c>lecun train --out</c> writes it
    /// (model.safetensors, metrics.csv and metrics.json; the command adds its pictures): staged beside
    /// the folder and moved into place at the end, so a run that fails leaves nothing. The options'
    /// callbacks run on the run's own thread, not the caller's.</summary>
    /// <param name="recipe">From <see cref="T:Lecun.Model.Recipes"/>; the options' Passes and Seed, when set, change it.</param>
    /// <param name="data">From <see cref="T:Lecun.Model.DigitData"/>.</param>
    /// <param name="folder">The run's folder: new or empty (one holding files is refused).</param>
    /// <param name="options">Null for the defaults.</param>
    /// <returns>The run as written: its folder, model file, files and per-pass figures.</returns>
    /// <exception cref="T:System.ArgumentException">A recipe or option out of range.</exception>
    /// <exception cref="T:System.IO.IOException">The folder holds files or cannot be written (the message says which).</exception>
    /// <exception cref="T:Lecun.Model.TrainingDiverged">The loss or a weight stopped being finite.</exception>
    static member TrainToFolder(recipe: Recipe, data: TrainTest, folder: string,
                                [<Optional; DefaultParameterValue(null: TrainOptions)>] options: TrainOptions) : WrittenRun =
        if String.IsNullOrEmpty folder then invalidArg (nameof folder) "a run needs a folder to write"
        let recipe, dataSet, backend, onProgress, onPass = Trainer.Settings(recipe, data, options)
        match Recipe.fitsTrainingSet data.Train.Count recipe with
        | Error problem -> invalidArg (nameof recipe) problem
        | Ok _ -> ()
        let request =
            { TrainRun.request recipe dataSet data (Evaluator.Engine backend) with
                Out = Some folder
                Jobs = 1
                Watch = fun _ run -> run { Progress = (fun _ pass presented -> onProgress pass presented); Pass = fun _ m -> onPass m } }
        match TrainRun.train request with
        | Ok written -> written.Runs.[0]
        | Error problem -> raise (IOException problem)
