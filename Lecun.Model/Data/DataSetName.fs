/// The data sets this program trains on, by the names the command line, model files and reports use.
namespace Lecun.Model

[<RequireQualifiedAccess>]
type DataSetName =
    /// The paper's USPS zip-code digits.
    | Usps
    /// The essay's simulated 1989 set: MNIST digits drawn and resampled to 16x16.
    | MnistSim
    /// mnist-sim's test digits with ~50,000 training digits from MNIST's own training files (ladder step 5).
    | MnistSim50k

module DataSetName =
    let names = [ DataSetName.Usps, "usps"; DataSetName.MnistSim, "mnist-sim"; DataSetName.MnistSim50k, "mnist-sim-50k" ]
    let name (d: DataSetName) = NameTable.name names d
    /// Case and surrounding spaces do not matter: " USPS " is usps.
    let parse (text: string) = NameTable.parse "data set" names (text.Trim().ToLowerInvariant())
    /// How a run's files and tables name the set it trained on: with --holdout, which digits were held out.
    let describe (d: DataSetName) (heldOut: int option) =
        match heldOut with
        | None -> name d
        | Some n -> $"{name d}, last {n} training digits held out"
