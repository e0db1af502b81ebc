/// A data file on disk or one of the copies of the default data embedded in this library, so
/// that the program and the library work with no data folder at all.
namespace Lecun.Model

open System.IO
open System.Reflection

/// A data file to read: a path, or the name of an embedded copy (see EmbeddedData.names).
[<RequireQualifiedAccess>]
type DataFile =
    | OnDisk of path: string
    | Embedded of name: string

    /// How messages name the file: its path, or `embedded usps/zip.train.gz`.
    member f.Name =
        match f with
        | OnDisk path -> path
        | Embedded name -> $"embedded {name}"

/// The default data built into Lecun.Model as resources: the USPS zip-code digits (the paper's
/// data) and the MNIST t10k files mnist-sim is drawn from. Their source and digests are in
/// Lecun.Model/Data/README.md.
module EmbeddedData =
    /// How the search path and messages name the embedded copy.
    let origin = "embedded"

    let uspsTrain = "usps/zip.train.gz"
    let uspsTest = "usps/zip.test.gz"
    let mnistTestImages = "mnist/t10k-images-idx3-ubyte.gz"
    let mnistTestLabels = "mnist/t10k-labels-idx1-ubyte.gz"
    let names = [ uspsTrain; uspsTest; mnistTestImages; mnistTestLabels ]

    let private assembly = typeof<DataFile>.Assembly

    /// Opens an embedded file (the resource's logical name is `data/` + its name); None when this
    /// build does not hold it.
    let tryOpen (name: string) : Stream option =
        assembly.GetManifestResourceStream("data/" + name) |> Option.ofObj

    /// The bytes of an embedded file as distributed (still gzip-compressed).
    let bytes (name: string) : byte array option =
        tryOpen name
        |> Option.map (fun stream ->
            use stream = stream
            use copy = new MemoryStream(int stream.Length)
            stream.CopyTo copy
            copy.ToArray())
