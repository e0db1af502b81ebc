/// Files written for the user appear whole or not at all: write beside the target, then rename
/// (run folders the same way: RunFolder.fs). Every temporary file and folder is recorded while it
/// exists, so an interruption (a signal that ends the process) can remove them all and nothing but
/// complete files is ever left.
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

    /// True once `interrupt` has been called: the process is ending.
    let isInterrupted () = lock gate (fun () -> interrupted)

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
