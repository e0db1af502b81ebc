/// The figures of LeCun et al. 1989 that a run is compared with.
module Lecun.Model.Paper

/// The final train and test error (percent) and misses of the paper's network, on its 7,291 + 2,007 digits.
let trainError, trainMisses, testError, testMisses = 0.14, 10, 5.0, 102

/// Reference levels of test error (percent) on the USPS test set that `refined` is measured against.
module UspsReferences =
    /// Human readers on the same 2,007 test digits (Bromley & Saeckinger 1991).
    let human = 2.5
    /// The best published result of any method (tangent-distance kernel densities with distorted training and
    /// test digits, Keysers et al. 2000).
    let bestPublished = 2.2
    /// The levels with the labels plots give them.
    let levels = [ human, "human readers (2.5%)"; bestPublished, "best published, any method (2.2%)" ]

/// The paper's machine and its speed (LeCun et al. 1989, section 6; see the README, "Speed").
module Workstation =
    /// The DSP board's peak multiply-accumulates per second.
    let peakMacsPerSecond = 12.5e6
    /// 23 passes over 7291 digits (167,693 presentations) in 3 days.
    let presentations = 167_693
    let trainingSeconds = 3.0 * 86_400.0
    let trainPresentationsPerSecond = float presentations / trainingSeconds
    /// Recognition of already normalized digits (what this engine does: USPS digits are normalized 16x16).
    let normalizedDigitsPerSecond = 30.0
    /// Recognition including the normalization of the raw digit: 10 to 12 digits/s; ratios use 12.
    let fullRecognitionDigitsPerSecond = 12.0
