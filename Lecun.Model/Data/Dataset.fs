namespace Lecun.Model

/// Digits ready for the network: 16x16 images, row-major, values in [-1, 1], labels 0..9.
type Dataset =
    { Name: string
      /// Count * 256 floats, image i at [i*256 .. i*256+255].
      Images: float32 array
      Labels: int array }

    member d.Count = d.Labels.Length
    member d.Image(i: int) = System.ReadOnlySpan<float32>(d.Images, i * Dataset.Pixels, Dataset.Pixels)
    /// `count` digits from `start`, clipped to the digits there are.
    member d.Slice(start: int, count: int) =
        let start = min (max start 0) d.Count
        let count = min (max count 0) (d.Count - start)
        { d with Images = Array.sub d.Images (start * Dataset.Pixels) (count * Dataset.Pixels); Labels = Array.sub d.Labels start count }
    /// The first n digits (all of them when there are fewer).
    member d.Take(n: int) = d.Slice(0, n)

    static member Side = 16
    static member Pixels = 256

/// A training and a test split, and where they came from (for messages and checkpoint metadata).
type TrainTest =
    { Train: Dataset
      Test: Dataset
      /// Human-readable origin, e.g. "usps from the embedded copy" or "usps from /home/me/data/usps".
      Source: string }

    /// Trains on all but the last n training digits and evaluates on those n in place of the test set,
    /// so that settings can be chosen without looking at the test set.
    member d.HoldOut(n: int) =
        let keep = d.Train.Count - n
        { Train = d.Train.Take keep
          Test = { d.Train.Slice(keep, n) with Name = "held-out" }
          Source = $"{d.Source}, its last {n} training digits held out as the test split" }
