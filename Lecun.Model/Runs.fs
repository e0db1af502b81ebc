/// Many independent training runs (seeds, ladder steps) spread over the cores. Each run owns its
/// workspaces and generator, so its result does not depend on what runs beside it.
namespace Lecun.Model

open System
open System.Threading.Tasks
open Lecun.Native.Backends

type RunJob =
    { Recipe: Recipe
      Data: TrainTest
      /// The starting weights, made when the run starts: queued runs hold none.
      Initial: unit -> float32 array }

type RunSummary =
    { Mean: float
      Sd: float }

module Runs =
    /// Runs in one command (train --seeds, ladder seeds x steps): each keeps its results (a ladder also its
    /// weights) until the end, so the count is bounded.
    let maxRuns = 1000

    /// Runs at a time asked with --jobs: 1 to maxRuns.
    let checkJobs (jobs: int) : Result<int, string> =
        if jobs < 1 || jobs > maxRuns then Error $"--jobs must be between 1 and {maxRuns}, got {jobs}" else Ok jobs

    /// Seeds asked with --seeds: at most maxRuns (Recipe.seeds checks the rest).
    let checkSeedCount (count: int) : Result<int, string> =
        if count > maxRuns then Error $"--seeds must be between 1 and {maxRuns}, got {count}" else Ok count

    /// The data a run trains and reports on: with `heldOut` = Some n, all but the last n training
    /// digits, the n reported in place of the test set (1 <= n < the training digits).
    let holdOut (heldOut: int option) (data: TrainTest) : Result<TrainTest, string> =
        match heldOut with
        | None -> Ok data
        | Some n when n >= 1 && n < data.Train.Count -> Ok(data.HoldOut n)
        | Some n -> Error $"--holdout must be between 1 and {data.Train.Count - 1} (the training digits less one), got {n}"

    /// Runs that train at once for `parallelism` asked and `jobs` to run: at least one, at most the cores.
    let workerCount (parallelism: int) (jobs: int) = max 1 (min (min parallelism jobs) Environment.ProcessorCount)

    /// Runs every job through `train` (Train.run on a provider, or ReferenceTraining.run), at most
    /// `parallelism` at a time and never more than the cores (a worker beyond them buys nothing, and
    /// each holds a run's workspaces), longest first (so the cores finish together). `finish j result`
    /// runs on the worker as run j ends, and what it returns is kept, in job order: a caller that writes
    /// a run's files there need not hold every run's weights.
    let runEachWith (train: Recipe -> TrainTest -> float32 array -> (int -> int -> unit) -> (PassMetrics -> unit) -> TrainResult)
                    (parallelism: int) (jobs: RunJob array)
                    (onProgress: int -> int -> int -> unit) (onPass: int -> PassMetrics -> unit) (finish: int -> TrainResult -> 'R) : 'R array =
        let results = Array.zeroCreate jobs.Length
        let order = jobs |> Array.mapi (fun j job -> j, job.Recipe.Passes * job.Data.Train.Count) |> Array.sortBy (fun (j, cost) -> -cost, j) |> Array.map fst
        let mutable next = -1
        let worker () =
            let mutable k = Threading.Interlocked.Increment &next
            while k < order.Length do
                let j = order.[k]
                let job = jobs.[j]
                results.[j] <- finish j (train job.Recipe job.Data (job.Initial ()) (onProgress j) (onPass j))
                k <- Threading.Interlocked.Increment &next
        let workers = Array.init (workerCount parallelism jobs.Length) (fun _ -> Task.Factory.StartNew(worker, TaskCreationOptions.LongRunning))
        Task.WaitAll workers
        results

    /// runEachWith on the engine under a provider (Train.run).
    let runEach (backend: IBackend) (parallelism: int) (jobs: RunJob array)
                (onProgress: int -> int -> int -> unit) (onPass: int -> PassMetrics -> unit) (finish: int -> TrainResult -> 'R) : 'R array =
        runEachWith (Train.run backend) parallelism jobs onProgress onPass finish

    /// runEach keeping every run's whole result.
    let run (backend: IBackend) (parallelism: int) (jobs: RunJob array) (onProgress: int -> int -> int -> unit) (onPass: int -> PassMetrics -> unit) =
        runEach backend parallelism jobs onProgress onPass (fun _ result -> result)

    /// Mean and sample standard deviation (0 for a single value).
    let summarize (values: float seq) =
        let xs = Array.ofSeq values
        let mean = Array.average xs
        let sd = if xs.Length < 2 then 0.0 else sqrt ((xs |> Array.sumBy (fun x -> (x - mean) ** 2.0)) / float (xs.Length - 1))
        { Mean = mean; Sd = sd }
