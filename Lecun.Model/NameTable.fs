/// The command-line names of a small union's cases (activations, losses, weight initializations):
/// one table per union, looked up both ways here.
module Lecun.Model.NameTable

/// The name `value` has in `table`.
let name (table: ('T * string) list) (value: 'T) = table |> List.find (fst >> (=) value) |> snd

/// The case called `text`, or an error naming `what` was asked for and every known name.
let parse (what: string) (table: ('T * string) list) (text: string) : Result<'T, string> =
    match table |> List.tryFind (snd >> (=) text) with
    | Some (value, _) -> Ok value
    | None -> Error $"""unknown {what} '{text}' (known: {table |> List.map snd |> String.concat ", "})"""
