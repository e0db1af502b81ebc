namespace Lecun.Model

/// Digits ready for the network: 16x16 images, row-major, values in [-1, 1], labels 0..9.
type Dataset =
    { Name: string
      /// Count * 256 floats, image i at [i*256 .. i*256+255].
      Images: float32 array
      Labels: int array }

    member d.Count = d.Labels.Length
    member d.Image(i: int) = System.ReadOnlySpan<float32>(d.Images, i * Dataset.Pixels, Dataset.Pixels)
    /// The first n digits (all of them when there are fewer).
    member d.Take(n: int) =
        let n = min n d.Count
        { d with Images = Array.sub d.Images 0 (n * Dataset.Pixels); Labels = Array.sub d.Labels 0 n }

    static member Side = 16
    static member Pixels = 256

/// A training and a test split, and where they came from (for messages and checkpoint metadata).
type TrainTest =
    { Train: Dataset
      Test: Dataset
      /// Human-readable origin, e.g. "usps from ../shared/data/usps".
      Source: string }
