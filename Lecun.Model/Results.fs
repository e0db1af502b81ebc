/// Small helpers for Result, so validation code reads as a sequence of refusals.
module Lecun.Model.Results

/// Applies f to every item in order, stopping at the first Error. A loop, not a recursion: the
/// stack stays flat however many items the input holds.
let traverse (f: 'a -> Result<'b, 'e>) (items: 'a seq) : Result<'b list, 'e> =
    let results = ResizeArray<'b>()
    let mutable error = None
    use e = items.GetEnumerator()
    while error.IsNone && e.MoveNext() do
        match f e.Current with
        | Ok y -> results.Add y
        | Error x -> error <- Some x
    match error with
    | Some x -> Error x
    | None -> Ok(List.ofSeq results)
