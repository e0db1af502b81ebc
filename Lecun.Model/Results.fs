/// Small helpers for Result, so validation code reads as a sequence of refusals.
module Lecun.Model.Results

/// Applies f to every item, stopping at the first Error.
let rec traverse (f: 'a -> Result<'b, 'e>) (items: 'a list) : Result<'b list, 'e> =
    match items with
    | [] -> Ok []
    | x :: rest ->
        match f x with
        | Error e -> Error e
        | Ok y -> traverse f rest |> Result.map (fun ys -> y :: ys)
