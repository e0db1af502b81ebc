// Recognition throughput of Lecun.Fast against ONNX Runtime on the same trained network and the same
// USPS test digits, in one process and one thread, in alternating rounds. The network is written as an
// ONNX model here; ONNX Runtime's outputs are first checked against Lecun.Fast's on every test digit.
using System.Diagnostics;
using System.Text.Json;
using Lecun.Compare.Onnx;
using Lecun.Model;
using Lecun.Native.Backends;
using Microsoft.ML.OnnxRuntime;

const float Tolerance = 1e-5f;
const string Usage = "usage: compare-onnx [--model FILE.safetensors] [--rounds N] [--min-seconds S] [--onnx-out FILE.onnx] [--backend auto|mkl|managed] [--json] [--verbose]";

var verbose = args.Contains("--verbose");
try { return Run(args); }
catch (Exception e) when (!verbose)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

static int Run(string[] args)
{
    string? modelPath = null, onnxOut = null, backendName = null;
    int rounds = 7;
    double minSeconds = 0.25;
    bool json = false;
    for (int i = 0; i < args.Length; i++)
    {
        string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value; {Usage}");
        switch (args[i])
        {
            case "--model": modelPath = Value(); break;
            case "--onnx-out": onnxOut = Value(); break;
            case "--backend": backendName = Value(); break;
            case "--rounds":
                var text = Value();
                if (!int.TryParse(text, out rounds) || rounds < 1 || rounds > 1000)
                    throw new ArgumentException($"--rounds must be a whole number from 1 to 1000, got '{text}'");
                break;
            case "--min-seconds":
                var seconds = Value();
                if (!double.TryParse(seconds, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out minSeconds)
                    || !(minSeconds >= 0 && minSeconds <= 60))
                    throw new ArgumentException($"--min-seconds must be a number of seconds from 0 to 60, got '{seconds}'");
                break;
            case "--json": json = true; break;
            case "--verbose": break;
            case "-h" or "--help": Console.WriteLine(Usage); return 0;
            default: throw new ArgumentException($"unknown argument '{args[i]}'; {Usage}");
        }
    }

    var backend = Backend.Choose(backendName, message => Console.Error.WriteLine($"warning: {message}"));
    var data = DigitData.EmbeddedUsps();
    var (model, modelName) = LoadOrTrain(modelPath, data);
    var net = model.Network;
    var test = data.Test;
    int n = test.Count, pixels = Dataset.Pixels, outputs = net.Layout.OutputSize;

    var onnx = NetworkOnnx.Write(net, model.Parameters);

    using var options = new SessionOptions
    {
        IntraOpNumThreads = 1,
        InterOpNumThreads = 1,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
    };
    using var session = new InferenceSession(onnx, options);
    using var runOptions = new RunOptions();

    // ONNX Runtime's inputs and outputs, made once per batch size: the timed loop only runs the session.
    var ortBatches = new[] { 1, 64, n }.Distinct().Select(b => new OrtBatches(test, b, net.Layout.Spec.Input, outputs)).ToList();
    var inputNames = new[] { NetworkOnnx.Input };
    var outputNames = new[] { NetworkOnnx.Output };
    void RunOrt(OrtBatches batches)
    {
        foreach (var (input, output) in batches.Values)
            session.Run(runOptions, inputNames, input, outputNames, output);
    }

    // Lecun.Fast: its evaluation path (batches of Evaluate.batch, 16 lanes on AVX-512), and one digit at a time.
    var laneWs = WorkspaceModule.create(net, Evaluate.batch);
    var oneWs = WorkspaceModule.create(net, 1);
    var one = new float[n * outputs];
    void RunLecunOne()
    {
        for (int d = 0; d < n; d++)
            Forward.run(backend, net, model.Parameters, oneWs, test.Images, d * pixels, 1);
    }
    SplitEvaluation RunLecunLanes() => Evaluate.split(backend, net, model.Loss, model.Parameters, laneWs, test);

    // Agreement: ONNX Runtime (every batch size) against Lecun.Fast's outputs, one digit at a time and
    // in the evaluation's batches, on every digit.
    var lanes = new float[n * outputs];
    for (int d = 0; d < n; d++)
    {
        Forward.run(backend, net, model.Parameters, oneWs, test.Images, d * pixels, 1);
        Array.Copy(Forward.outputs(net, oneWs), 0, one, d * outputs, outputs);
    }
    for (int start = 0; start < n; start += laneWs.Capacity)
    {
        int count = Math.Min(laneWs.Capacity, n - start);
        Forward.run(backend, net, model.Parameters, laneWs, test.Images, start * pixels, count);
        Array.Copy(Forward.outputs(net, laneWs), 0, lanes, start * outputs, count * outputs);
    }
    var lanePredictions = RunLecunLanes().Predictions;
    float worst = 0;
    int classDisagreements = 0;
    foreach (var batches in ortBatches)
    {
        RunOrt(batches);
        var ort = batches.Outputs();
        for (int d = 0; d < n; d++)
        {
            for (int o = 0; o < outputs; o++)
            {
                var difference = MathF.Max(MathF.Abs(ort[d * outputs + o] - one[d * outputs + o]),
                                           MathF.Abs(ort[d * outputs + o] - lanes[d * outputs + o]));
                // A NaN on either side is a disagreement, never a difference that compares as small.
                worst = float.IsNaN(difference) ? float.PositiveInfinity : MathF.Max(worst, difference);
            }
            var ortClass = Argmax(ort, d * outputs, outputs);
            if (ortClass != Argmax(one, d * outputs, outputs) || ortClass != lanePredictions[d]) classDisagreements++;
        }
    }
    var agreement = $"ONNX Runtime (batches {string.Join(", ", ortBatches.Select(b => b.Size))}) against Lecun.Fast (one digit, batches of {laneWs.Capacity}) on {n} test digits: " +
                    $"largest output difference {worst:E2} (limit {Tolerance:E0}), {classDisagreements} class disagreements";
    if (worst > Tolerance || classDisagreements > 0)
    {
        Console.Error.WriteLine($"error: the outputs disagree: {agreement}");
        return 1;
    }
    if (!json) Console.WriteLine($"agreement: {agreement}");
    if (onnxOut is not null) AtomicFile.writeBytes(onnxOut, onnx);

    var contestants = new List<(string Name, Action Run)>
    {
        ("Lecun.Fast, one digit at a time", RunLecunOne),
        ($"Lecun.Fast, evaluation batches of {Evaluate.batch}", () => RunLecunLanes()),
    };
    contestants.AddRange(ortBatches.Select(b => ($"ONNX Runtime, batch {b.Size}", (Action)(() => RunOrt(b)))));

    // One untimed pass each, then rounds; odd rounds run the contestants in reverse order. In a round,
    // each contestant recognises all the test digits, again and again until minSeconds have passed.
    foreach (var c in contestants) c.Run();
    var rates = contestants.ToDictionary(c => c.Name, _ => new List<double>());
    for (int r = 0; r < rounds; r++)
    {
        var order = r % 2 == 0 ? contestants : Enumerable.Reverse(contestants).ToList();
        foreach (var c in order)
        {
            var clock = Stopwatch.StartNew();
            int passes = 0;
            do { c.Run(); passes++; } while (clock.Elapsed.TotalSeconds < minSeconds);
            rates[c.Name].Add((double)passes * n / clock.Elapsed.TotalSeconds);
        }
    }

    // Each comparison's ratio is taken per round (both measured in the same round), then its median.
    var oneName = contestants[0].Name;
    var lanesName = contestants[1].Name;
    var comparisons = ortBatches.Select(b =>
    {
        var ortName = $"ONNX Runtime, batch {b.Size}";
        var lecunName = b.Size == 1 ? oneName : lanesName;
        var ratios = Enumerable.Range(0, rounds).Select(r => rates[lecunName][r] / rates[ortName][r]).ToList();
        return new { lecun = lecunName, onnxRuntime = ortName, medianRatio = Median(ratios) };
    }).ToList();

    var cpu = CpuName();
    if (json)
    {
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            model = modelName,
            cpu,
            cores = Environment.ProcessorCount,
            onnxRuntime = typeof(InferenceSession).Assembly.GetName().Version?.ToString(),
            backend = backend.Name,
            digits = n,
            rounds,
            minSecondsPerRound = minSeconds,
            agreement = new { largestDifference = worst, tolerance = Tolerance, classDisagreements },
            digitsPerSecond = contestants.Select(c => new { name = c.Name, median = Median(rates[c.Name]), min = rates[c.Name].Min(), max = rates[c.Name].Max() }),
            comparisons,
        }, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }
    Console.WriteLine($"model: {modelName}; {n} USPS test digits; one thread; {rounds} rounds of at least {minSeconds} s each; backend {backend.Name}; CPU {cpu}");
    Console.WriteLine();
    Console.WriteLine($"| {"recognition",-42} | {"digits/s (median)",17} | {"min",10} | {"max",10} |");
    Console.WriteLine($"| {new string('-', 42)} | {new string('-', 16)}: | {new string('-', 9)}: | {new string('-', 9)}: |");
    foreach (var c in contestants)
        Console.WriteLine($"| {c.Name,-42} | {Median(rates[c.Name]),17:N0} | {rates[c.Name].Min(),10:N0} | {rates[c.Name].Max(),10:N0} |");
    Console.WriteLine();
    foreach (var c in comparisons)
        Console.WriteLine($"{c.lecun} / {c.onnxRuntime}: {c.medianRatio:F2}x (median of per-round ratios)");
    return 0;
}

static (ModelFile Model, string Name) LoadOrTrain(string? path, TrainTest data)
{
    if (path is null)
    {
        // The default recipe as `lecun train` runs it, saved and read back as any model file is.
        Console.Error.WriteLine("no --model: training lecun1989 (23 passes, seed 1337) on the embedded USPS digits...");
        var run = Trainer.Train(data, new TrainOptions());
        var folder = Directory.CreateTempSubdirectory("compare-onnx-");
        try
        {
            var file = Path.Combine(folder.FullName, "lecun1989.safetensors");
            run.Model.Save(file);
            return (Load(file), "lecun1989 trained in this process (23 passes, seed 1337)");
        }
        finally { folder.Delete(recursive: true); }
    }
    return (Load(path), path);

    static ModelFile Load(string file)
    {
        var loaded = ModelFileModule.load(file);
        if (loaded.IsError) throw new InvalidDataException(loaded.ErrorValue);
        return loaded.ResultValue;
    }
}

static int Argmax(float[] values, int offset, int count)
{
    int best = 0;
    for (int i = 1; i < count; i++) if (values[offset + i] > values[offset + best]) best = i;
    return best;
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.OrderBy(v => v).ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}

static string CpuName()
{
    try
    {
        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"));
        return line?.Split(':', 2)[1].Trim() ?? "unknown";
    }
    catch (IOException) { return "unknown"; }
}

/// <summary>The test digits cut into batches of one size, each with its ONNX Runtime input and output
/// tensors over arrays of its own.</summary>
sealed class OrtBatches
{
    public int Size { get; }
    public List<(OrtValue[] Input, OrtValue[] Output)> Values { get; } = new();
    readonly List<float[]> outputs = new();

    public OrtBatches(Dataset test, int size, PlaneShape input, int outputCount)
    {
        Size = size;
        for (int start = 0; start < test.Count; start += size)
        {
            int count = Math.Min(size, test.Count - start);
            var images = test.Images.AsSpan(start * Dataset.Pixels, count * Dataset.Pixels).ToArray();
            var scores = new float[count * outputCount];
            outputs.Add(scores);
            Values.Add((new[] { OrtValue.CreateTensorValueFromMemory(images, new long[] { count, input.Planes, input.Height, input.Width }) },
                        new[] { OrtValue.CreateTensorValueFromMemory(scores, new long[] { count, outputCount }) }));
        }
    }

    /// <summary>The last run's outputs of every digit, [digits, outputs].</summary>
    public float[] Outputs() => outputs.SelectMany(o => o).ToArray();
}
