/// Where the data files are found, and loading a named data set from there.
namespace Lecun.Model

open System
open System.IO
open System.Threading.Tasks

/// One place on the data search path.
type DataPlace =
    { /// How it was chosen: "--data", "$LECUN_DATA", "./data" or "embedded".
      Origin: string
      /// The folder, or None when the place is not set (no --data given, $LECUN_DATA unset) or is
      /// the embedded copy.
      Dir: string option }

/// The USPS files the search path found.
type UspsFiles =
    { /// Where: the folder, or "the embedded copy".
      From: string
      Train: DataFile
      Test: DataFile }

/// The MNIST IDX files found in one folder or embedded.
type MnistFiles =
    { /// Where: the folder, or "the embedded copy".
      From: string
      TestImages: DataFile
      TestLabels: DataFile
      /// The MNIST training images and labels, when both are present.
      Train: (DataFile * DataFile) option }

module DataPath =
    let envVar = "LECUN_DATA"

    /// How messages name the embedded data.
    let embeddedCopy = "the embedded copy"

    /// The search path, from its inputs (testable without touching the process environment).
    /// `--data DIR` is exclusive: a user who names a folder means that folder, and a typo must
    /// not silently fall back to other data. Without it: $LECUN_DATA, ./data, then the copy
    /// embedded in this library, so a data set is found with no data folder at all.
    let placesFrom (dataDir: string option) (env: string option) (cwd: string) : DataPlace list =
        match dataDir with
        | Some dir -> [ { Origin = "--data"; Dir = Some(Path.GetFullPath(dir, cwd)) } ]
        | None ->
            [ { Origin = "$" + envVar; Dir = env |> Option.filter (String.IsNullOrWhiteSpace >> not) |> Option.map (fun d -> Path.GetFullPath(d, cwd)) }
              { Origin = "./data"; Dir = Some(Path.GetFullPath(Path.Combine(cwd, "data"))) }
              { Origin = EmbeddedData.origin; Dir = None } ]

    /// The search path of this process.
    let places (dataDir: string option) : DataPlace list =
        placesFrom dataDir (Environment.GetEnvironmentVariable envVar |> Option.ofObj) Environment.CurrentDirectory

    /// Existing folders on the path, in search order, without repeats.
    let folders (places: DataPlace list) : string list =
        places |> List.choose (fun p -> p.Dir) |> List.filter Directory.Exists |> List.distinct

    /// Whether the embedded copy is on the path (it is unless --data names a folder).
    let usesEmbedded (places: DataPlace list) = places |> List.exists (fun p -> p.Origin = EmbeddedData.origin)

    /// Every place, for messages: `--data /x (no such folder), $LECUN_DATA (not set), ...`.
    let describe (places: DataPlace list) : string =
        places
        |> List.map (fun p ->
            match p.Dir with
            | None when p.Origin = EmbeddedData.origin -> $"{p.Origin} (built into Lecun.Model)"
            | None -> $"{p.Origin} (not set)"
            | Some d when Directory.Exists d -> $"{p.Origin} = {d}"
            | Some d when File.Exists d -> $"{p.Origin} = {d} (a file, not a folder)"
            | Some d -> $"{p.Origin} = {d} (no such folder)")
        |> String.concat ", "

    let uspsFilesIn (dir: string) : (string * string) option =
        match Fetch.splitFileIn dir "train", Fetch.splitFileIn dir "test" with
        | Some train, Some test -> Some(train, test)
        | _ -> None

    /// The USPS files the path finds: the first folder holding both splits, else the embedded copy.
    let findUsps (places: DataPlace list) : UspsFiles option =
        folders places
        |> List.tryPick (fun dir ->
            uspsFilesIn dir
            |> Option.map (fun (train, test) ->
                { From = Path.GetDirectoryName train; Train = DataFile.OnDisk train; Test = DataFile.OnDisk test }))
        |> Option.orElse (
            if usesEmbedded places then
                Some { From = embeddedCopy; Train = DataFile.Embedded EmbeddedData.uspsTrain; Test = DataFile.Embedded EmbeddedData.uspsTest }
            else None)

    let private idxFileIn (dir: string) (name: string) =
        [ Path.Combine(dir, "mnist", name + ".gz"); Path.Combine(dir, "mnist", name); Path.Combine(dir, name + ".gz"); Path.Combine(dir, name) ]
        |> List.tryFind RawFile.exists

    let mnistFilesIn (dir: string) : MnistFiles option =
        match idxFileIn dir "t10k-images-idx3-ubyte", idxFileIn dir "t10k-labels-idx1-ubyte" with
        | Some images, Some labels ->
            let train =
                match idxFileIn dir "train-images-idx3-ubyte", idxFileIn dir "train-labels-idx1-ubyte" with
                | Some ti, Some tl -> Some(DataFile.OnDisk ti, DataFile.OnDisk tl)
                | _ -> None
            Some { From = dir; TestImages = DataFile.OnDisk images; TestLabels = DataFile.OnDisk labels; Train = train }
        | _ -> None

    /// The MNIST files the path finds: the first folder holding the t10k pair, else the embedded
    /// t10k copy (MNIST's training files are not embedded).
    let findMnist (places: DataPlace list) : MnistFiles option =
        folders places
        |> List.tryPick mnistFilesIn
        |> Option.orElse (
            if usesEmbedded places then
                Some { From = embeddedCopy
                       TestImages = DataFile.Embedded EmbeddedData.mnistTestImages
                       TestLabels = DataFile.Embedded EmbeddedData.mnistTestLabels
                       Train = None }
            else None)

    let preparedFileIn (dir: string) (seed: int) : string option =
        let path = Path.Combine(dir, "mnist-sim", MnistSim.fileName seed)
        if RawFile.exists path then Some path else None

/// Loading a data set by name: `Data.load DataSetName.Usps None`.
module Data =
    /// The sets `data info` and `data verify` look for (mnist-sim-50k is mnist-sim's files too).
    let knownSets = [ DataSetName.Usps; DataSetName.MnistSim ]

    let uspsHowTo =
        $"get it with `lecun data fetch` (downloads zip.train.gz and zip.test.gz from the Elements of Statistical Learning data page, {Fetch.defaultBaseUrl}) or put usps/zip.train.gz and usps/zip.test.gz in one of these folders"

    let mnistHowTo =
        let mirrors = String.concat " or " Fetch.mnistMirrors
        $"download t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (and, for training digits drawn from MNIST's own training set, train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz) from an MNIST mirror such as {mirrors} into a mnist/ subfolder of one of these folders"

    /// Loads both USPS files, on disk or embedded (in parallel: they are independent), and checks
    /// that each is the whole split (digit and class counts), so a file cut at a line boundary is
    /// an error too.
    let loadUspsData (train: DataFile) (test: DataFile) : Result<Dataset * Dataset, string> =
        let checkedLoad split (file: DataFile) =
            Usps.loadFile file
            |> Result.bind (fun d -> Usps.checkSplit split { d with Name = file.Name } |> Result.map (fun () -> { d with Name = $"usps {split}" }))
        let testTask = Task.Run(fun () -> checkedLoad "test" test)
        let trainResult = checkedLoad "train" train
        match trainResult, testTask.Result with
        | Ok tr, Ok te -> Ok(tr, te)
        | Error e, _
        | _, Error e -> Error e

    /// Loads both USPS files from disk (see loadUspsData).
    let loadUspsFiles (trainPath: string) (testPath: string) : Result<Dataset * Dataset, string> =
        loadUspsData (DataFile.OnDisk trainPath) (DataFile.OnDisk testPath)

    let private notFound (what: string) (places: DataPlace list) (howTo: string) =
        Error $"{what} not found; looked in {DataPath.describe places}; {howTo}"

    let private loadUsps (places: DataPlace list) : Result<TrainTest, string> =
        match DataPath.findUsps places with
        | None -> notFound "usps data (zip.train.gz, zip.test.gz)" places uspsHowTo
        | Some files ->
            loadUspsData files.Train files.Test
            |> Result.map (fun (train, test) -> { Train = train; Test = test; Source = $"usps from {files.From}" })

    let private openRaw (file: DataFile) : Stream =
        match file with
        | DataFile.OnDisk path -> new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read)
        | DataFile.Embedded name ->
            EmbeddedData.tryOpen name |> Option.defaultWith (fun () -> raise (IOException $"{file.Name}: not in this build"))

    /// SHA-256 (hex) over the SHA-256 of each MNIST file as it is stored (t10k images, labels,
    /// then the training files when present): what a prepared set was built from. The embedded
    /// copy is byte for byte the distributed files, so it gives the same digest as those files
    /// on disk. A few ms for the 12 MB of compressed MNIST; a file larger than any MNIST file
    /// gives no digest.
    let sourceDigest (files: MnistFiles) : string option =
        let sources = [ files.TestImages; files.TestLabels ] @ (files.Train |> Option.map (fun (i, l) -> [ i; l ]) |> Option.defaultValue [])
        try
            use all = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256)
            let each =
                sources
                |> List.map (fun file ->
                    use stream = openRaw file
                    if stream.Length > int64 Idx.maxImageFileBytes then None
                    else Some(System.Security.Cryptography.SHA256.HashData stream))
            if each |> List.exists Option.isNone then None
            else
                for h in each do all.AppendData(Option.get h)
                Some(Convert.ToHexStringLower(all.GetHashAndReset()))
        with
        | :? IOException
        | :? UnauthorizedAccessException -> None

    /// Builds mnist-sim in memory from the IDX files of one folder or the embedded copy.
    let buildMnistSim (files: MnistFiles) (seed: int) : Result<MnistSimSet, string> =
        Idx.loadPairFiles files.TestImages files.TestLabels
        |> Result.bind (fun t10k ->
            match files.Train with
            | None -> MnistSim.build seed t10k None
            | Some (images, labels) -> Idx.loadPairFiles images labels |> Result.bind (fun train -> MnistSim.build seed t10k (Some train)))
        |> Result.map (fun set -> { set with SourceDigest = sourceDigest files })

    let private describeSim (set: MnistSimSet) =
        if set.TrainFromMnistTrain then $"seed {set.Seed}, train from MNIST training digits, test from t10k"
        else $"seed {set.Seed}, train and test drawn disjointly from t10k"

    let private toTrainTest (set: MnistSimSet) (origin: string) =
        { Train = set.Train; Test = set.Test; Source = $"mnist-sim ({describeSim set}) {origin}" }

    /// A prepared file is used when present, unless the MNIST files now found are not the ones it
    /// was built from (changed, replaced, or training files added since): then the set is built.
    let private loadMnistSim (places: DataPlace list) (seed: int) : Result<TrainTest, string> =
        let sources = DataPath.findMnist places
        let prepared = DataPath.folders places |> List.tryPick (fun d -> DataPath.preparedFileIn d seed)
        let fresh (p: MnistSimSet) =
            match sources with
            | Some files -> p.TrainFromMnistTrain = files.Train.IsSome && p.SourceDigest.IsSome && p.SourceDigest = sourceDigest files
            | None -> true
        let build (note: string) =
            match sources with
            | None -> notFound "MNIST files for mnist-sim (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)" places mnistHowTo
            | Some files -> buildMnistSim files seed |> Result.map (fun set -> toTrainTest set $"built from {files.From}{note}")
        match prepared with
        | Some path ->
            MnistSim.load path
            |> Result.bind (fun set ->
                if set.Seed <> seed then Error $"{path}: prepared with seed {set.Seed}, not {seed}; rebuild it with `lecun data prepare mnist-sim --seed {seed}`"
                elif fresh set then Ok(toTrainTest set $"prepared in {path}")
                else build (" (not from " + path + ": the MNIST files changed since it was prepared)"))
        | None -> build ""

    /// Training digits of `mnist-sim-50k`, the essay's last step ("~50,000 MNIST training digits").
    let largeTrainDigits = 50000

    /// mnist-sim's test digits with up to 50,000 training digits drawn from MNIST's own training files.
    let private loadMnistSimLarge (places: DataPlace list) (seed: int) : Result<TrainTest, string> =
        match DataPath.folders places |> List.tryPick DataPath.mnistFilesIn with
        | Some ({ Train = Some (images, labels) } as files) ->
            Idx.loadPairFiles files.TestImages files.TestLabels
            |> Result.bind (fun t10k ->
                Idx.loadPairFiles images labels
                |> Result.bind (fun (trainImages, trainLabels) ->
                    MnistSim.buildSized seed (min largeTrainDigits trainImages.Count) t10k (Some(trainImages, trainLabels))))
            |> Result.map (fun set ->
                { Train = set.Train; Test = set.Test
                  Source = $"mnist-sim-50k (seed {seed}, {set.Train.Count} training digits from MNIST's training files, test from t10k) built from {files.From}" })
        | _ ->
            notFound "the MNIST training files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz) for mnist-sim-50k" places mnistHowTo

    /// Loads a data set by name from the given search path; `seed` picks the mnist-sim draw.
    let loadFrom (places: DataPlace list) (dataSet: DataSetName) (seed: int) : Result<TrainTest, string> =
        match dataSet with
        | DataSetName.Usps -> loadUsps places
        | DataSetName.MnistSim -> loadMnistSim places seed
        | DataSetName.MnistSim50k -> loadMnistSimLarge places seed

    /// Loads `usps` or `mnist-sim` (its draw seeded by `seed`); `dataDir` is `--data`, if given.
    let loadSeeded (dataSet: DataSetName) (dataDir: string option) (seed: int) : Result<TrainTest, string> =
        loadFrom (DataPath.places dataDir) dataSet seed

    /// Loads `usps` or `mnist-sim` (default draw seed); `dataDir` is `--data`, if given.
    let load (dataSet: DataSetName) (dataDir: string option) : Result<TrainTest, string> =
        loadSeeded dataSet dataDir MnistSim.defaultSeed

    /// A content digest of a train/test pair, so two copies can be compared whatever their
    /// formatting: SHA-256 over the train split then the test split, each as its labels (int32
    /// little-endian) then its values (float32 little-endian), with -0 written as +0 (a copy
    /// that prints -0.0000 as 0.0000 holds the same digits). Lowercase hex.
    let digest (data: TrainTest) : string =
        use hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256)
        for d in [ data.Train; data.Test ] do
            let labels = Array.zeroCreate<byte> (4 * d.Labels.Length)
            d.Labels |> Array.iteri (fun i l -> System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(labels.AsSpan(4 * i), l))
            hash.AppendData labels
            let values = Array.zeroCreate<byte> (4 * d.Images.Length)
            d.Images
            |> Array.iteri (fun i v ->
                let v = if v = 0f then 0f else v
                System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(values.AsSpan(4 * i), v))
            hash.AppendData values
        Convert.ToHexStringLower(hash.GetHashAndReset())
