namespace Lecun.Model

/// Loss, error rate (percent) and misclassified count of one split.
type SplitMetrics = { Loss: float; Error: float; Misses: int; Count: int }

/// What the paper reports after each pass.
type PassMetrics = { Pass: int; Train: SplitMetrics; Test: SplitMetrics; Seconds: float }
