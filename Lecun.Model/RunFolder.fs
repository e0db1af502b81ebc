/// A run's output folder (`train`, `ladder`): written into a hidden folder beside its target and
/// renamed into place at the end. `--force` replaces a folder only when it holds a finished run of
/// this program and nothing else, and never the working folder or a folder that contains it.
namespace Lecun.Model

open System
open System.IO
open System.Text.Json

/// A run's output folder while it is being written: `Staging` is a hidden folder beside `Target`,
/// renamed to the target by `RunFolder.commit` once every file is in it.
type RunFolder =
    { Target: string
      Staging: string
      /// Replace a target that holds a finished run (--force).
      Force: bool
      /// A default name: when taken, the next free `name-2`, `name-3`, ... is used instead.
      Unique: bool }

module RunFolder =
    /// The file a run writes into its folder when it is complete: the list of the run's files, so
    /// that `--force` can tell a finished run from any other folder.
    let markerName = ".lecun-run"

    /// Entries a run folder can hold: 1,000 runs (`--seeds`) of a folder and six files each, and a
    /// few more. A folder with more is not a run (and is not walked further).
    let private maxEntries = 8192

    /// A marker lists at most `maxEntries` paths of a few dozen bytes; a run's JSON summary with
    /// 1,000 runs is a few hundred KB.
    let private maxJsonBytes = 4L * 1024L * 1024L

    /// The files `train` writes for one run, and `ladder`'s: how a run folder written before the
    /// marker existed is recognised.
    let private trainFiles = set [ "model.safetensors"; "metrics.csv"; "metrics.json"; "curves.png"; "errors.png"; "distortions.png" ]
    let private ladderFiles = set [ "ladder.json"; "ladder.csv"; "ladder.png" ]

    let private isEmpty (dir: string) = Directory.EnumerateFileSystemEntries dir |> Seq.isEmpty

    let private someEntries (dir: string) =
        let names = Directory.EnumerateFileSystemEntries dir |> Seq.truncate 4 |> Seq.map Path.GetFileName |> List.ofSeq
        String.Join(", ", names |> List.truncate 3) + (if names.Length > 3 then ", ..." else "")

    /// An entry of a folder: its path relative to the folder ('/'-separated), and what it is.
    type private Entry =
        | File of string
        | Folder of string
        | Link of string

    /// Every entry under `dir` without following links, or an error once there are more than
    /// `maxEntries` (hidden entries included).
    let private entriesUnder (dir: string) : Result<Entry list, string> =
        let options = EnumerationOptions(AttributesToSkip = FileAttributes.None, IgnoreInaccessible = false)
        let relative (path: string) = Path.GetRelativePath(dir, path).Replace(Path.DirectorySeparatorChar, '/')
        let found = Collections.Generic.List<Entry>()
        let pending = Collections.Generic.Stack<string>([ dir ])
        while pending.Count > 0 && found.Count <= maxEntries do
            for info in DirectoryInfo(pending.Pop()).EnumerateFileSystemInfos("*", options) |> Seq.truncate (maxEntries + 1 - found.Count) do
                if not (isNull info.LinkTarget) then found.Add(Link(relative info.FullName))
                elif info :? DirectoryInfo then
                    found.Add(Folder(relative info.FullName))
                    pending.Push info.FullName
                else found.Add(File(relative info.FullName))
        if found.Count > maxEntries then Error $"more than {maxEntries} entries" else Ok(List.ofSeq found)

    /// A JSON object read from a file of at most `maxJsonBytes`, or None.
    let private jsonObject (path: string) : JsonElement option =
        try
            if FileInfo(path).Length > maxJsonBytes then None
            else
                use doc = JsonDocument.Parse(File.ReadAllBytes path)
                if doc.RootElement.ValueKind = JsonValueKind.Object then Some(doc.RootElement.Clone()) else None
        with _ -> None

    let private hasProperties (names: string list) (json: JsonElement option) =
        json |> Option.exists (fun o -> names |> List.forall (fun n -> fst (o.TryGetProperty n)))

    /// The paths a marker lists, or None when the marker is not one this program writes.
    let private markedFiles (path: string) : Set<string> option =
        jsonObject path
        |> Option.bind (fun o ->
            match o.TryGetProperty "files" with
            | true, files when files.ValueKind = JsonValueKind.Array
                               && files.EnumerateArray() |> Seq.forall (fun f -> f.ValueKind = JsonValueKind.String) ->
                Some(files.EnumerateArray() |> Seq.map (fun f -> f.GetString()) |> Set.ofSeq)
            | _ -> None)

    let private pathOf (entry: Entry) = match entry with File p | Folder p | Link p -> p

    /// The entries under `folder` (a path relative to the same folder), relative to it.
    let private within (folder: string) (entries: Entry list) =
        let prefix = folder + "/"
        entries |> List.choose (fun e ->
            let p = pathOf e
            if not (p.StartsWith(prefix, StringComparison.Ordinal)) then None
            else
                let rest = p.Substring prefix.Length
                Some(match e with File _ -> File rest | Folder _ -> Folder rest | Link _ -> Link rest))

    /// Why `entries` are not the files of a run whose marker lists `files`, if they are not.
    let private onlyListed (files: Set<string>) (entries: Entry list) : Result<unit, string> =
        let folders =
            files |> Seq.collect (fun f ->
                let parts = f.Split '/'
                [ for k in 1 .. parts.Length - 1 -> String.Join("/", parts[.. k - 1]) ])
            |> Set.ofSeq
        let foreign =
            entries |> List.tryPick (function
                | File f when not (files.Contains f) && f <> markerName -> Some $"'{f}' is not a file of the run"
                | Folder d when not (folders.Contains d) -> Some $"'{d}/' is not a folder of the run"
                | Link l -> Some $"'{l}' is a link, which no run writes"
                | _ -> None)
        match foreign with
        | Some why -> Error why
        | None -> Ok()

    /// A single run's folder as `train` has always written it: only its files, a model file this
    /// program reads and its metrics.
    let private isLegacyTrain (dir: string) (entries: Entry list) =
        entries |> List.forall (function File f -> trainFiles.Contains f | _ -> false)
        && (match ModelFile.load (Path.Combine(dir, "model.safetensors")) with
            | Ok model -> model.Metadata.ContainsKey "recipe"
            | Error _ -> false)
        && jsonObject (Path.Combine(dir, "metrics.json")) |> hasProperties [ "recipe"; "passes" ]

    /// A run folder written before runs were marked: one `train` run, a `train --seeds` run
    /// (seeds.json and a `seed-N` folder per seed, each a single run), or a ladder.
    let private isLegacyRun (dir: string) (entries: Entry list) =
        let top = entries |> List.filter (fun e -> not ((pathOf e).Contains '/'))
        let has name = top |> List.contains (File name)
        let isSeedFolder (name: string) = name.StartsWith "seed-" && fst (Int32.TryParse(name.Substring 5))
        if has "ladder.json" then
            entries |> List.forall (function File f -> ladderFiles.Contains f | _ -> false)
            && jsonObject (Path.Combine(dir, "ladder.json")) |> hasProperties [ "data_set"; "steps" ]
        elif has "seeds.json" then
            top |> List.forall (function File "seeds.json" -> true | Folder d -> isSeedFolder d | _ -> false)
            && jsonObject (Path.Combine(dir, "seeds.json")) |> hasProperties [ "recipe"; "runs" ]
            && top |> List.forall (function Folder d -> isLegacyTrain (Path.Combine(dir, d)) (within d entries) | _ -> true)
        else has "model.safetensors" && isLegacyTrain dir entries

    /// Ok when `dir` holds a finished run of this program and nothing else (its marker lists every
    /// file in it; or, for a run written before the marker, its files are a run's and read as one);
    /// otherwise why not.
    let finishedRun (dir: string) : Result<unit, string> =
        try
            match entriesUnder dir with
            | Error e -> Error e
            | Ok entries ->
                let marker = Path.Combine(dir, markerName)
                if List.contains (File markerName) entries then
                    match markedFiles marker with
                    | Some files -> onlyListed files entries
                    | None -> Error $"its {markerName} is not one this program writes"
                elif isLegacyRun dir entries then Ok()
                else
                    let runNames = trainFiles + ladderFiles + set [ "seeds.json" ]
                    match entries |> List.tryFind (fun e -> not ((pathOf e).Contains '/' || runNames.Contains(pathOf e))) with
                    | Some e -> Error $"'{pathOf e}' is not a file a run writes"
                    | None -> Error $"its files do not read as a run's and it has no {markerName}"
        with e -> Error $"cannot read it: {e.Message}"

    /// A path with every symbolic link along it resolved, as far as it exists (links nest at most 40 deep).
    let rec private physical (depth: int) (path: string) : string =
        let full = Path.GetFullPath path
        let root = Path.GetPathRoot full
        full.Substring(root.Length).Split([| Path.DirectorySeparatorChar; Path.AltDirectorySeparatorChar |], StringSplitOptions.RemoveEmptyEntries)
        |> Array.fold (fun dir part ->
            let next = Path.Combine(dir, part)
            match (try FileInfo(next).LinkTarget with _ -> null) with
            | null -> next
            | link when depth < 40 -> physical (depth + 1) (Path.Combine(dir, link))
            | _ -> next) root
        |> Path.TrimEndingDirectorySeparator

    /// True when `dir` is the working folder or a folder that contains it (links resolved).
    let private holdsWorkingFolder (dir: string) =
        let target = physical 0 dir
        let working = physical 0 Environment.CurrentDirectory
        working = target || working.StartsWith(target + string Path.DirectorySeparatorChar, StringComparison.Ordinal)

    /// Checks the target and creates the staging folder. The working folder and a folder that
    /// contains it are refused; so is a target that holds files, unless `force` and they are a
    /// finished run of this program (a default name never is: it moves on to a free one at the end).
    let stage (target: string) (force: bool) (unique: bool) : Result<RunFolder, string> =
        let full = Path.GetFullPath target
        let name = Path.GetFileName(Path.TrimEndingDirectorySeparator full)
        let parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator full)
        let occupied = Directory.Exists full && not unique && not (isEmpty full)
        if String.IsNullOrEmpty name || isNull parent then Error $"output folder '{target}' is a file system root; give a folder below it"
        elif File.Exists full then Error $"output folder '{target}' is a file"
        elif holdsWorkingFolder full then
            Error $"output folder '{target}' is the working folder or contains it; a run never replaces it, even with --force: give a new folder"
        elif occupied && not force then
            match finishedRun full with
            | Ok () -> Error $"output folder '{target}' already holds a finished run ({someEntries full}); add --force to replace it, or choose another folder"
            | Error _ -> Error $"output folder '{target}' already holds files ({someEntries full}); choose another folder (--force replaces only a finished run of this program)"
        else
            match (if occupied then finishedRun full else Ok()) with
            | Error why ->
                Error $"output folder '{target}' does not hold a finished run of this program ({why}); --force replaces only such a folder: choose another folder"
            | Ok () ->
                try
                    Directory.CreateDirectory parent |> ignore
                    let staging = Path.Combine(parent, $".{name}.{Guid.NewGuid():N}.partial")
                    Unfinished.create staging (fun () -> Directory.CreateDirectory staging |> ignore)
                    Ok { Target = full; Staging = staging; Force = force; Unique = unique }
                with e -> Error $"cannot write to output folder '{target}': {e.Message}"

    /// Writes the marker of a complete run into its staging folder: every file in it.
    let private mark (staging: string) =
        let files =
            Directory.EnumerateFiles(staging, "*", EnumerationOptions(RecurseSubdirectories = true, AttributesToSkip = FileAttributes.None))
            |> Seq.map (fun f -> Path.GetRelativePath(staging, f).Replace(Path.DirectorySeparatorChar, '/'))
            |> Seq.sort |> Array.ofSeq
        let json = Nodes.JsonObject(dict [ "written_by", Nodes.JsonValue.Create "lecun" :> Nodes.JsonNode
                                           "files", Nodes.JsonArray(files |> Array.map (fun f -> Nodes.JsonValue.Create f :> Nodes.JsonNode)) ])
        AtomicFile.writeText (Path.Combine(staging, markerName)) (json.ToJsonString(JsonSerializerOptions(WriteIndented = true)) + "\n")

    /// Marks the run finished and renames the staging folder into place; returns the final folder.
    /// With `Force` an existing target is checked again (it must still hold a finished run), moved
    /// aside and removed after; the check and both renames happen while no interruption can come
    /// between them.
    let commit (run: RunFolder) : Result<string, string> =
        let target =
            if not run.Unique then run.Target
            else
                Seq.append [ run.Target ] (Seq.initInfinite (fun k -> $"{run.Target}-{k + 2}"))
                |> Seq.find (fun t -> not (Directory.Exists t || File.Exists t))
        try
            mark run.Staging
            let old =
                Unfinished.finish run.Staging (fun () ->
                    let old =
                        if Directory.Exists target && isEmpty target then
                            Directory.Delete target
                            None
                        elif Directory.Exists target && run.Force then
                            match finishedRun target with
                            | Error why -> failwith $"it no longer holds a finished run of this program ({why}), so it is left as it is"
                            | Ok () ->
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

    /// The folder of a new run, staged: `out` when given (refused when it holds files, unless a
    /// finished run and `force`), or a new folder under runs/ named by `defaultName` (a free `-2`,
    /// `-3`, ... when two runs start in the same second).
    let stageRun (out: string option) (force: bool) (defaultName: unit -> string) : Result<RunFolder, string> =
        match out with
        | Some dir -> stage dir force false
        | None -> stage (Path.Combine("runs", defaultName ())) false true

    /// Writes a run into its staged folder and renames it into place; a run that fails or is
    /// interrupted leaves nothing (no folder, no file of it). Returns what `writeFiles` returned and
    /// the final folder (relative to the working folder when inside it).
    let write (run: RunFolder) (writeFiles: string -> 'a) : Result<'a * string, string> =
        try
            let result = writeFiles run.Staging
            commit run
            |> Result.map (fun final ->
                let relative = Path.GetRelativePath(Environment.CurrentDirectory, final)
                result, (if relative.StartsWith ".." then final else relative))
        finally
            discard run
