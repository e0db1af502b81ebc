/// Weight averaging (stochastic weight averaging, Izmailov et al. 2018): the uniform average of the
/// weights at the end of each of the last passes, evaluated and saved as the run's final weights.
namespace Lecun.Model

/// The running average of the weight snapshots added so far.
type WeightAverage =
    { Average: float32 array
      mutable Count: int }

module WeightAverage =
    let create (parameters: int) = { Average = Array.zeroCreate parameters; Count = 0 }

    /// Adds one snapshot: average <- average + (w - average) / count, so after n snapshots it is their mean.
    let add (avg: WeightAverage) (weights: float32 array) =
        if weights.Length <> avg.Average.Length then invalidArg "weights" "the snapshot's size differs from the average's"
        avg.Count <- avg.Count + 1
        let a = avg.Average
        let inv = 1.0f / float32 avg.Count
        for i in 0 .. a.Length - 1 do
            a.[i] <- a.[i] + (weights.[i] - a.[i]) * inv

    /// True when the end of `pass` (1-based, of `passes`) is one of the last `last` passes averaged.
    let covers (last: int) (passes: int) (pass: int) = last > 0 && pass > passes - last
