/// `eval` and `predict`: a saved checkpoint measured on a split, or applied to digits in files.
module Lecun.Cli.EvalCommand

open System
open System.Text.Json
open System.Text.Json.Nodes
open Argu
open Lecun.Model
open Lecun.Cli.Output

type EvalArgs =
    | [<Mandatory>] Model of file: string
    | Data_Set of name: string
    | Data of dir: string
    | Split of name: string
    | Backend of name: string
    | Json
    | Misses

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Misses -> "also list the misclassified digits' indices (true -> predicted), for `show --digit`."
            | Model _ -> "checkpoint (model.safetensors) to evaluate."
            | Data_Set _ -> "usps (default) or mnist-sim."
            | Data _ -> "folder holding the data sets."
            | Split _ -> "test (default) or train."
            | Backend _ -> Providers.evaluatorUsage
            | Json -> "print the result as JSON."

type PredictArgs =
    | [<Mandatory>] Model of file: string
    | Backend of name: string
    | Json
    | [<MainCommand; Last>] Inputs of files: string list

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "checkpoint (model.safetensors) to apply."
            | Backend _ -> Providers.evaluatorUsage
            | Json -> "print the result as JSON."
            | Inputs _ -> "digit files: 16x16 PGM or PNG, or text with rows of 256 values in [-1,1] (a leading label is allowed)."

let confusionMatrix (labels: int array) (predictions: int array) =
    let m = Array2D.zeroCreate 10 10
    Array.iter2 (fun t p -> m.[t, p] <- m.[t, p] + 1) labels predictions
    m

let private confusionText (m: int[,]) =
    let header = "true\\pred" + String.Join("", [ for p in 0..9 -> $"{p,6}" ])
    let rows = [ for t in 0..9 -> $"{t,9}" + String.Join("", [ for p in 0..9 -> (if m.[t, p] = 0 then "     ." else $"{m.[t, p],6}") ]) ]
    String.Join("\n", header :: rows)

let runEval (args: ParseResults<EvalArgs>) =
    let file = args.GetResult EvalArgs.Model
    let split = args.GetResult(Split, "test")
    if split <> "test" && split <> "train" then fail $"--split must be train or test, got '{split}'"
    let model = ModelFile.load file |> orFail
    let evaluator = Providers.chooseEvaluator (args.TryGetResult EvalArgs.Backend)
    let dataSet = args.GetResult(EvalArgs.Data_Set, "usps") |> DataSetName.parse |> orFail
    let data = Data.load dataSet (args.TryGetResult EvalArgs.Data) |> orFail
    let digits = if split = "test" then data.Test else data.Train
    let result = Evaluator.evaluate evaluator model digits |> orFail
    let m = confusionMatrix digits.Labels result.Predictions
    let metrics = result.Metrics
    let missed = [| for i in 0 .. digits.Count - 1 do if result.Predictions.[i] <> digits.Labels.[i] then i |]
    if args.Contains EvalArgs.Json then
        let matrix = JsonArray([| for t in 0..9 -> JsonArray([| for p in 0..9 -> JsonValue.Create m.[t, p] :> JsonNode |]) :> JsonNode |])
        let json =
            JsonObject(
                dict [ "model", JsonValue.Create file :> JsonNode
                       "data_set", JsonValue.Create(DataSetName.name dataSet)
                       "split", JsonValue.Create split
                       "count", JsonValue.Create digits.Count
                       "loss", JsonValue.Create metrics.Loss
                       "error", JsonValue.Create metrics.Error
                       "misses", JsonValue.Create metrics.Misses
                       "confusion", matrix ])
        if args.Contains Misses then
            let miss (i: int) =
                JsonObject(dict [ "index", JsonValue.Create i :> JsonNode; "label", JsonValue.Create digits.Labels.[i]; "predicted", JsonValue.Create result.Predictions.[i] ]) :> JsonNode
            json.Add("missed", JsonArray(missed |> Array.map miss))
        printfn "%s" (json.ToJsonString jsonOptions)
    else
        printfn "%s %s (%d digits): loss %s error %.2f%% misses %d" (DataSetName.name dataSet) split digits.Count (formatLoss metrics.Loss) metrics.Error metrics.Misses
        printfn ""
        printfn "%s" (confusionText m)
        if args.Contains Misses then
            printfn ""
            printfn "misclassified %s digits (index: true -> predicted):" split
            for line in missed |> Array.map (fun i -> $"{i}: {digits.Labels.[i]} -> {result.Predictions.[i]}") |> Array.chunkBySize 8 do
                printfn "  %s" (String.Join("   ", line))
    0

let runPredict (args: ParseResults<PredictArgs>) =
    let file = args.GetResult PredictArgs.Model
    let inputs = args.GetResult(Inputs, [])
    if inputs.IsEmpty then fail "predict needs at least one digit file"
    let model = ModelFile.load file |> orFail
    let evaluator = Providers.chooseEvaluator (args.TryGetResult PredictArgs.Backend)
    let ws = Workspace.create model.Network 1
    // Each file's predictions are written before the next file is read, so memory holds one file's
    // results however many files there are; a file refused stops the command after the files before it.
    // JSON goes through a buffer that is emptied to stdout after each file.
    let buffer = new IO.MemoryStream()
    let json = if args.Contains PredictArgs.Json then Some(new Utf8JsonWriter(buffer, JsonWriterOptions(Indented = true))) else None
    let writeOut (writer: Utf8JsonWriter) =
        writer.Flush()
        Console.Out.Write(Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, int buffer.Length))
        buffer.SetLength 0L
    json |> Option.iter (fun w -> w.WriteStartArray())
    for input in inputs do
        // Each digit is classified as it is read; the file's results (ten scores a digit) are written
        // once the whole file has been read.
        let results = ResizeArray<Result<float32 array, string> * int option>()
        DigitFiles.readEach input (fun (image, label) ->
            // Named as its line below, unless it is a file's first digit, whose name waits for the count.
            let name = if results.Count = 0 then input else $"{input}:{results.Count + 1}"
            results.Add((Evaluator.scores evaluator model ws image name, label)))
        |> orFail |> ignore
        for i, (scored, label) in Seq.indexed results do
            let name = if results.Count = 1 then input else $"{input}:{i + 1}"
            let y = scored |> orFail
            let cls = Loss.argmax y 0 y.Length
            match json with
            | Some writer ->
                JsonObject(
                    dict [ "input", JsonValue.Create name :> JsonNode
                           "class", JsonValue.Create cls
                           "scores", JsonArray(y |> Array.map (fun v -> JsonValue.Create(float v) :> JsonNode))
                           "label", (match label with Some l -> JsonValue.Create l :> JsonNode | None -> null) ])
                    .WriteTo(writer, jsonOptions)
            | None ->
                let scores = y |> Array.map (fun v -> v.ToString("+0.000;-0.000", Globalization.CultureInfo.InvariantCulture)) |> String.concat " "
                let known = match label with Some l -> $"  (label {l})" | None -> ""
                printfn "%s: class %d  scores [%s]%s" name cls scores known
        json |> Option.iter writeOut
    match json with
    | Some writer ->
        writer.WriteEndArray()
        writeOut writer
        printfn ""
    | None -> ()
    0
