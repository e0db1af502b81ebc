/// What several seeds of one recipe add up to: mean and spread of the final errors, and the mean misses,
/// as `train --seeds` and the ladder report them.
namespace Lecun.Model

type SplitSummary =
    { /// Mean and sample standard deviation of the error (percent).
      Error: RunSummary
      /// Mean misclassified digits.
      Misses: float }

type SeedsSummary = { Train: SplitSummary; Test: SplitSummary; Seeds: int }

module SeedsSummary =
    /// The summary of the final passes of several runs.
    let ofFinals (finals: PassMetrics seq) : SeedsSummary =
        let finals = Array.ofSeq finals
        let split (pick: PassMetrics -> SplitMetrics) =
            { Error = Runs.summarize (finals |> Array.map (fun m -> (pick m).Error))
              Misses = finals |> Array.averageBy (fun m -> float (pick m).Misses) }
        { Train = split (fun m -> m.Train); Test = split (fun m -> m.Test); Seeds = finals.Length }
