/// Files written for the user appear whole or not at all: write beside the target, then rename.
/// Run folders the same way: written into a hidden folder beside the target, renamed into place
/// at the end. Every temporary file and folder is recorded while it exists, so an interruption
/// (Ctrl-C, SIGTERM) can remove them all and nothing but complete files is ever left.
namespace Lecun.Model

open System
open System.Collections.Generic
open System.IO

/// Temporary files and folders being written, for `interrupt` to remove.
module Unfinished =
    let private gate = obj ()
    let private paths = HashSet<string>()
    let mutable private interrupted = false

    /// Runs `action` then `record`, both while no interruption can come between, unless the
    /// process is being interrupted.
    let private unlessInterrupted (action: unit -> 'a) (record: unit -> unit) : 'a =
        lock gate (fun () ->
            if interrupted then raise (OperationCanceledException "interrupted")
            let result = action ()
            record ()
            result)

    /// Runs `make` (which creates `path`) and records the path, unless the process is being interrupted.
    let create (path: string) (make: unit -> 'a) : 'a = unlessInterrupted make (fun () -> paths.Add path |> ignore)

    /// Runs `finish` (which renames `path` into place or removes it) and forgets the path, unless
    /// the process is being interrupted (then the temporary is left for `interrupt` to remove).
    let finish (path: string) (finish: unit -> 'a) : 'a = unlessInterrupted finish (fun () -> paths.Remove path |> ignore)

    /// Forgets a path whose temporary is gone (removed after a failure).
    let forget (path: string) = lock gate (fun () -> paths.Remove path |> ignore)

    /// Stops any new temporary from being made or renamed into place, removes those there are,
    /// and returns their paths. Called by the signal handlers; the process exits after it.
    let interrupt () : string list =
        let pending =
            lock gate (fun () ->
                interrupted <- true
                List.ofSeq paths)
        for p in pending do
            try
                if Directory.Exists p then Directory.Delete(p, true)
                elif File.Exists p then File.Delete p
            with _ -> ()
        pending

module AtomicFile =
    /// Writes through a temporary file in the target's folder and renames it over the target,
    /// so an interrupted or failed write never leaves a half-written file behind.
    let write (path: string) (writeTo: Stream -> unit) =
        let full = Path.GetFullPath path
        let dir = Path.GetDirectoryName full
        Directory.CreateDirectory dir |> ignore
        let temp = Path.Combine(dir, $".{Path.GetFileName full}.{Guid.NewGuid():N}.tmp")
        try
            using (Unfinished.create temp (fun () -> new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))) (fun stream ->
                writeTo stream
                stream.Flush true)
            Unfinished.finish temp (fun () -> File.Move(temp, full, true))
        with _ ->
            (try File.Delete temp with _ -> ())
            Unfinished.forget temp
            reraise ()

    let writeText (path: string) (text: string) =
        write path (fun s ->
            let bytes = Text.UTF8Encoding(false).GetBytes text
            s.Write(bytes, 0, bytes.Length))

    let writeBytes (path: string) (bytes: byte array) = write path (fun s -> s.Write(bytes, 0, bytes.Length))

/// A run's output folder while it is being written: `Staging` is a hidden folder beside `Target`,
/// renamed to the target by `RunFolder.commit` once every file is in it.
type RunFolder =
    { Target: string
      Staging: string
      /// Replace a target that already holds files (--force).
      Force: bool
      /// A default name: when taken, the next free `name-2`, `name-3`, ... is used instead.
      Unique: bool }

module RunFolder =
    let private isEmpty (dir: string) = Directory.EnumerateFileSystemEntries dir |> Seq.isEmpty

    let private someEntries (dir: string) =
        let names = Directory.EnumerateFileSystemEntries dir |> Seq.truncate 4 |> Seq.map Path.GetFileName |> List.ofSeq
        String.Join(", ", names |> List.truncate 3) + (if names.Length > 3 then ", ..." else "")

    /// Checks the target and creates the staging folder. A target that holds files is refused
    /// unless `force` (a default name never is: it moves on to a free one at the end).
    let stage (target: string) (force: bool) (unique: bool) : Result<RunFolder, string> =
        let full = Path.GetFullPath target
        let name = Path.GetFileName(Path.TrimEndingDirectorySeparator full)
        let parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator full)
        if String.IsNullOrEmpty name || isNull parent then Error $"output folder '{target}' is a file system root; give a folder below it"
        elif File.Exists full then Error $"output folder '{target}' is a file"
        elif Directory.Exists full && not unique && not force && not (isEmpty full) then
            Error $"output folder '{target}' already holds files ({someEntries full}); add --force to replace them, or choose another folder"
        else
            try
                Directory.CreateDirectory parent |> ignore
                let staging = Path.Combine(parent, $".{name}.{Guid.NewGuid():N}.partial")
                Unfinished.create staging (fun () -> Directory.CreateDirectory staging |> ignore)
                Ok { Target = full; Staging = staging; Force = force; Unique = unique }
            with e -> Error $"cannot write to output folder '{target}': {e.Message}"

    /// Renames the staging folder into place and returns the final folder. With `Force` an
    /// existing target is moved aside first and removed after; both renames happen while no
    /// interruption can come between them.
    let commit (run: RunFolder) : Result<string, string> =
        let target =
            if not run.Unique then run.Target
            else
                Seq.append [ run.Target ] (Seq.initInfinite (fun k -> $"{run.Target}-{k + 2}"))
                |> Seq.find (fun t -> not (Directory.Exists t || File.Exists t))
        try
            let old =
                Unfinished.finish run.Staging (fun () ->
                    let old =
                        if Directory.Exists target && isEmpty target then
                            Directory.Delete target
                            None
                        elif Directory.Exists target && run.Force then
                            let aside = Path.Combine(Path.GetDirectoryName target, $".{Path.GetFileName target}.{Guid.NewGuid():N}.old")
                            Directory.Move(target, aside)
                            Some aside
                        elif Directory.Exists target then
                            failwith "it was filled by something else while this run was being written"
                        else None
                    Directory.Move(run.Staging, target)
                    old)
            old |> Option.iter (fun aside -> try Directory.Delete(aside, true) with _ -> ())
            Ok target
        with
        | :? OperationCanceledException -> reraise ()
        | e -> Error $"cannot move the finished run into '{target}': {e.Message}"

    /// Removes the staging folder of a run that failed (nothing of it is kept).
    let discard (run: RunFolder) =
        if Directory.Exists run.Staging then
            try Directory.Delete(run.Staging, true) with _ -> ()
        Unfinished.forget run.Staging
