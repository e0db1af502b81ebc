/// The figures of LeCun et al. 1989 that a run is compared with.
module Lecun.Model.Paper

/// The final train and test error (percent) and misses of the paper's network, on its 7,291 + 2,007 digits.
let trainError, trainMisses, testError, testMisses = 0.14, 10, 5.0, 102
