/// Checks of a PNG's image data that the decoder does not make, or reports as something else:
/// the zlib stream's Adler-32 checksum (a bad one reads as "truncated" from the decoder) and, in
/// a palette image, indices past the palette (an error in the PNG specification that the decoder
/// draws as some colour). The file's chunks are already known whole, each CRC right, up to IEND.
module Lecun.Model.PngData

open System
open System.Buffers.Binary
open System.IO
open System.IO.Compression
open System.Text


/// What the checks need from IHDR and PLTE, and the IDAT data joined.
type private Parts =
    { Width: int
      Height: int
      BitDepth: int
      ColourType: int
      Interlaced: bool
      PaletteEntries: int option
      ImageData: byte array }

/// The first PNG chunks up to IEND (the caller has checked that they are whole).
let private parts (bytes: byte array) : Parts option =
    let mutable pos = 8
    let mutable header = None
    let mutable palette = None
    use data = new MemoryStream()
    let mutable ended = false
    while not ended && bytes.Length - pos >= 12 do
        let length = int (BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(bytes, pos, 4)))
        if length > bytes.Length - pos - 12 then ended <- true
        else
            match Encoding.ASCII.GetString(bytes, pos + 4, 4) with
            | "IHDR" when length = 13 ->
                let at = pos + 8
                header <- Some(BinaryPrimitives.ReadInt32BigEndian(ReadOnlySpan(bytes, at, 4)),
                               BinaryPrimitives.ReadInt32BigEndian(ReadOnlySpan(bytes, at + 4, 4)),
                               int bytes[at + 8], int bytes[at + 9], bytes[at + 12] = 1uy)
            | "PLTE" -> palette <- Some(length / 3)
            | "IDAT" -> data.Write(bytes, pos + 8, length)
            | "IEND" -> ended <- true
            | _ -> ()
            pos <- pos + 12 + length
    header
    |> Option.map (fun (w, h, depth, colour, interlaced) ->
        { Width = w; Height = h; BitDepth = depth; ColourType = colour; Interlaced = interlaced
          PaletteEntries = palette; ImageData = data.ToArray() })

let private samplesPerPixel colourType =
    match colourType with
    | 0 | 3 -> Some 1
    | 2 -> Some 3
    | 4 -> Some 2
    | 6 -> Some 4
    | _ -> None

/// The reduced images (x0, y0, dx, dy) in which the scanlines are stored: one, or Adam7's seven.
let private passes (interlaced: bool) =
    if interlaced then [ 0, 0, 8, 8; 4, 0, 8, 8; 0, 4, 4, 8; 2, 0, 4, 4; 0, 2, 2, 4; 1, 0, 2, 2; 0, 1, 1, 2 ]
    else [ 0, 0, 1, 1 ]

/// Adler-32 (RFC 1950), the checksum that ends a zlib stream.
let adler32 (data: ReadOnlySpan<byte>) =
    let mutable a = 1u
    let mutable b = 0u
    for x in data do
        a <- (a + uint32 x) % 65521u
        b <- (b + a) % 65521u
    (b <<< 16) ||| a

/// Inflated image data far past what any 16x16 image needs is no image of ours.
let private maxInflatedBytes = 1 <<< 20

/// Undoes the scanline filters of one pass in place (PNG specification, section 9) and gives
/// calls `row` with the offset of each row's unfiltered bytes; an unknown filter type is an error.
let private unfilter (data: byte array) (start: int) (rows: int) (rowBytes: int) (bpp: int) (row: int -> Result<unit, string>) =
    let mutable result = Ok()
    let mutable y = 0
    while result.IsOk && y < rows do
        let at = start + y * (rowBytes + 1)
        let line = at + 1
        let prior = line - (rowBytes + 1)
        let firstRow = (y = 0)
        let up i = if firstRow then 0 else int data[prior + i]
        let left i = if i < bpp then 0 else int data[line + i - bpp]
        let upLeft i = if firstRow || i < bpp then 0 else int data[prior + i - bpp]
        let filter = data[at]
        if filter > 4uy then result <- Error $"corrupt PNG: scanline filter type {filter} does not exist"
        else
            for i in 0 .. rowBytes - 1 do
                let predicted =
                    match filter with
                    | 1uy -> left i
                    | 2uy -> up i
                    | 3uy -> (left i + up i) / 2
                    | 4uy ->
                        let a, b, c = left i, up i, upLeft i
                        let p = a + b - c
                        let pa, pb, pc = abs (p - a), abs (p - b), abs (p - c)
                        if pa <= pb && pa <= pc then a elif pb <= pc then b else c
                    | _ -> 0
                data[line + i] <- byte ((int data[line + i] + predicted) &&& 0xFF)
            result <- row line
            y <- y + 1
    result

/// Every palette index of the inflated image data is below the number of palette entries.
let private checkPaletteIndices (p: Parts) (entries: int) (scanlines: byte array) =
    let depth = p.BitDepth
    let start = ref 0
    passes p.Interlaced
    |> Results.traverse (fun (x0, y0, dx, dy) ->
        let w, h = (p.Width - x0 + dx - 1) / dx, (p.Height - y0 + dy - 1) / dy
        if w <= 0 || h <= 0 then Ok()
        else
            let rowBytes = (w * depth + 7) / 8
            let checkRow (line: int) =
                let mutable bad = -1
                for x in 0 .. w - 1 do
                    let bit = x * depth
                    let index = (int scanlines[line + bit / 8] >>> (8 - depth - bit % 8)) &&& ((1 <<< depth) - 1)
                    if bad < 0 && index >= entries then bad <- index
                if bad >= 0 then Error $"corrupt PNG: a pixel uses palette index {bad}, past the palette's {entries} entries"
                else Ok()
            let result = unfilter scanlines start.Value h rowBytes 1 checkRow
            start.Value <- start.Value + h * (rowBytes + 1)
            result)
    |> Result.map ignore

/// Checks the image data of a `side` x `side` PNG. Images of another size, colour type or bit
/// depth than a PNG can have are left to the decoder, which refuses them with its own message.
let check (side: int) (bytes: byte array) : Result<unit, string> =
    match parts bytes with
    | Some p when p.Width = side && p.Height = side && p.ImageData.Length >= 6 ->
        match samplesPerPixel p.ColourType with
        | None -> Ok()
        | Some samples ->
            let bitsPerPixel = samples * p.BitDepth
            let needed =
                passes p.Interlaced
                |> List.sumBy (fun (x0, y0, dx, dy) ->
                    let w, h = (p.Width - x0 + dx - 1) / dx, (p.Height - y0 + dy - 1) / dy
                    if w <= 0 || h <= 0 then 0 else h * (1 + (w * bitsPerPixel + 7) / 8))
            let zlib = p.ImageData
            // The zlib header (RFC 1950) is two bytes; PNG allows no preset dictionary, so the
            // deflate data follows directly and the last four bytes are the Adler-32 of the output.
            let inflated =
                try
                    use deflate = new DeflateStream(new MemoryStream(zlib, 2, zlib.Length - 6, false), CompressionMode.Decompress)
                    match RawFile.readAtMost deflate maxInflatedBytes (Some(int64 needed)) with
                    | None -> Error $"corrupt PNG: its image data inflates to more than {maxInflatedBytes} bytes; a {side}x{side} image needs {needed}"
                    | Some output -> Ok output
                with :? InvalidDataException -> Error "corrupt PNG: the compressed image data is not valid deflate data"
            inflated
            |> Result.bind (fun output ->
                if output.Length < needed then Error "truncated PNG: the image data ends before the last row"
                elif adler32 (ReadOnlySpan output) <> BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(zlib, zlib.Length - 4, 4)) then
                    Error "corrupt PNG: the image data's zlib checksum (Adler-32) does not match its data"
                else
                    match p.ColourType, p.PaletteEntries with
                    | 3, Some entries when p.BitDepth <= 8 -> checkPaletteIndices p entries output
                    | _ -> Ok())
    | _ -> Ok()
