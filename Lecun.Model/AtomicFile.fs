/// Files written for the user appear whole or not at all: write beside the target, then rename.
namespace Lecun.Model

open System.IO

module AtomicFile =
    /// Writes through a temporary file in the target's folder and renames it over the target,
    /// so an interrupted or failed write never leaves a half-written file behind.
    let write (path: string) (writeTo: Stream -> unit) =
        let full = Path.GetFullPath path
        let dir = Path.GetDirectoryName full
        Directory.CreateDirectory dir |> ignore
        let temp = Path.Combine(dir, $".{Path.GetFileName full}.{System.Guid.NewGuid():N}.tmp")
        try
            using (new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None)) (fun stream ->
                writeTo stream
                stream.Flush true)
            File.Move(temp, full, true)
        with _ ->
            (try File.Delete temp with _ -> ())
            reraise ()

    let writeText (path: string) (text: string) =
        write path (fun s ->
            let bytes = System.Text.UTF8Encoding(false).GetBytes text
            s.Write(bytes, 0, bytes.Length))

    let writeBytes (path: string) (bytes: byte array) = write path (fun s -> s.Write(bytes, 0, bytes.Length))
