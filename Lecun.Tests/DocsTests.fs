/// The README and the pages under docs/: every relative link names a file of the repository, and the
/// README stays a front page.
module Lecun.Tests.DocsTests

open System
open System.IO
open System.Text.RegularExpressions
open Expecto
open Lecun.Model
open Lecun.Tests.TestKit
open Lecun.Tests.TestSetup

/// The front page's budget: past it, text belongs in docs/.
let readmeMaxLines = 250

/// One relative link in a markdown file: the line it is on and its target as written.
type MarkdownLink = { Line: int; Target: string }

let private fence = Regex(@"^\s*(```|~~~)")
let private codeSpan = Regex(@"`+[^`]*`+")
/// `[text](target)` and `![alt](target)`, the target optionally in <...> and followed by a "title".
let private linkPattern = Regex(@"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+""[^""]*"")?\s*\)")
/// A scheme (https:, mailto:) or a protocol-relative //host: not a file of the repository.
let private external = Regex(@"^([a-zA-Z][a-zA-Z0-9+.-]*:|//)")

/// The relative links of a markdown text, outside fenced code blocks and code spans (where `[a](b)`
/// is text, not a link). Links to a place on the same page (`#anchor`) and external links are left out.
let relativeLinks (markdown: string) : MarkdownLink list =
    let lines = markdown.Replace("\r\n", "\n").Split('\n')
    let mutable inFence = false
    [ for i in 0 .. lines.Length - 1 do
          if fence.IsMatch lines[i] then inFence <- not inFence
          elif not inFence then
              let prose = codeSpan.Replace(lines[i], "")
              for m in linkPattern.Matches prose do
                  let target = m.Groups[1].Value
                  if not (target.StartsWith "#" || external.IsMatch target) then
                      yield { Line = i + 1; Target = target } ]

/// The file a link names: its #anchor and ?query dropped, %-escapes decoded, relative to the linking
/// file's folder (or to the repository root when it starts with /).
let linkedPath (root: string) (fromFile: string) (target: string) : string =
    let path = target.Split([| '#'; '?' |]).[0] |> Uri.UnescapeDataString
    if path.StartsWith "/" then Path.GetFullPath(Path.Combine(root, path.TrimStart '/'))
    else Path.GetFullPath(Path.Combine(Path.GetDirectoryName(fromFile: string), path))

/// Every link of `file` whose target is missing or outside the repository, as `file:line: target (why)`.
let brokenLinks (root: string) (file: string) : string list =
    let rootFull = Path.GetFullPath root
    let inRepository (p: string) =
        p = rootFull || p.StartsWith(rootFull.TrimEnd(Path.DirectorySeparatorChar) + string Path.DirectorySeparatorChar)
    let shown = Path.GetRelativePath(rootFull, file)
    relativeLinks (File.ReadAllText file)
    |> List.choose (fun link ->
        let path = linkedPath rootFull file link.Target
        if not (inRepository path) then Some $"{shown}:{link.Line}: {link.Target} (outside the repository)"
        elif File.Exists path || Directory.Exists path then None
        else Some $"{shown}:{link.Line}: {link.Target} (no such file)")

/// README.md and every docs/*.md of the repository at `root`.
let markdownFiles (root: string) : string list =
    let docs = Path.Combine(root, "docs")
    [ yield Path.Combine(root, "README.md")
      if Directory.Exists docs then
          yield! Directory.GetFiles(docs, "*.md") |> Array.sort ]
    |> List.filter File.Exists

/// The file that marks the repository's root folder.
let private repoMarker = "Lecun.Fast.sln"

/// The nearest folder at or above `start` that holds the solution file.
let private findRepoRoot (start: string) : string option =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then None
        elif File.Exists(Path.Combine(dir.FullName, repoMarker)) then Some dir.FullName
        else up dir.Parent
    up (DirectoryInfo(Path.GetFullPath start))

let private repositoryRoot () =
    [ Environment.CurrentDirectory; AppContext.BaseDirectory ]
    |> List.tryPick findRepoRoot
    |> Option.defaultWith (fun () -> failtestf "no %s above %s or %s" repoMarker Environment.CurrentDirectory AppContext.BaseDirectory)

[<Tests>]
let tests =
    testList "docs" [
        testCase "every relative link in README.md and docs/*.md names a file of the repository" <| fun () ->
            let root = repositoryRoot ()
            let files = markdownFiles root
            Expect.contains files (Path.Combine(root, "README.md")) "README.md is checked"
            Expect.isGreaterThan (files |> List.filter (fun f -> Path.GetDirectoryName f = Path.Combine(root, "docs")) |> List.length) 0 "docs/*.md pages are checked"
            let linkCount = files |> List.sumBy (File.ReadAllText >> relativeLinks >> List.length)
            Expect.isGreaterThan linkCount 0 "the pages have relative links to check"
            let broken = files |> List.collect (brokenLinks root)
            if not broken.IsEmpty then
                failtestf "%d broken relative link(s) of %d:\n%s" broken.Length linkCount (String.concat "\n" broken)

        testCase $"README.md is at most {readmeMaxLines} lines" <| fun () ->
            let lines = File.ReadAllLines(Path.Combine(repositoryRoot (), "README.md")).Length
            Expect.isLessThanOrEqual lines readmeMaxLines $"README.md has {lines} lines; move detail into docs/"

        testCase "the link check names a missing file, a link out of the repository, and nothing else" <| fun () ->
            withTempDir (fun root ->
                Directory.CreateDirectory(Path.Combine(root, "docs")) |> ignore
                File.WriteAllText(Path.Combine(root, "docs", "speed.md"), "# speed")
                File.WriteAllBytes(Path.Combine(root, "docs", "a plot.png"), [| 0uy |])
                let readme =
                    String.concat "\n" [
                        "# title"
                        "[speed](docs/speed.md#bench) and ![plot](docs/a%20plot.png \"a plot\") and [top](#title)"
                        "[gone](docs/gone.md) and ![lost](<docs/lost.png>)"
                        "[web](https://example.org/x.md), [mail](mailto:a@b.c), `[code](docs/code.md)`"
                        "```"
                        "[fenced](docs/fenced.md)"
                        "```"
                        "[out](../elsewhere/data.md) and [root](/docs/speed.md)" ]
                File.WriteAllText(Path.Combine(root, "README.md"), readme)
                let broken = markdownFiles root |> List.collect (brokenLinks root)
                Expect.equal broken
                    [ "README.md:3: docs/gone.md (no such file)"
                      "README.md:3: docs/lost.png (no such file)"
                      "README.md:8: ../elsewhere/data.md (outside the repository)" ]
                    "exactly the missing files and the link out of the repository")

        testProperty "a link to any file the check creates resolves; the same link with the file removed is reported" <| fun (name: FsCheck.NonEmptyString) ->
            let safe = name.Get |> String.filter Char.IsAsciiLetterOrDigit
            safe.Length = 0
            || withTempDir (fun root ->
                let file = Path.Combine(root, "docs", safe + ".md")
                Directory.CreateDirectory(Path.GetDirectoryName file) |> ignore
                File.WriteAllText(Path.Combine(root, "README.md"), $"see [it](docs/{safe}.md#part)")
                File.WriteAllText(file, "x")
                let whenPresent = brokenLinks root (Path.Combine(root, "README.md"))
                File.Delete file
                let whenMissing = brokenLinks root (Path.Combine(root, "README.md"))
                whenPresent.IsEmpty && whenMissing = [ $"README.md:1: docs/{safe}.md#part (no such file)" ])
    ]
