// Trains the paper's network for a few passes on the embedded USPS digits, prints the comparison
// with LeCun et al. 1989, saves the model, reads it back and predicts one test digit.
using Lecun.Model;

var passes = args.Length > 0 ? int.Parse(args[0]) : 3;
var data = DigitData.Load("usps");   // no data folder needed: the digits are embedded
Console.WriteLine($"{data.Source}: {data.Train.Count} training and {data.Test.Count} test digits");

var options = new TrainOptions
{
    Recipe = "lecun1989",
    Passes = passes,
    PassCompleted = m => Console.WriteLine(
        $"pass {m.Pass,2}  train error {m.Train.Error,5:F2}%  test error {m.Test.Error,5:F2}%"),
    Progress = new QuarterLines(),
};
var run = Trainer.Train(data, options);

var last = run.Final;
Console.WriteLine();
Console.WriteLine($"{"",-26} {"train",9} {"misses",7} | {"test",9} {"misses",7}");
Console.WriteLine($"{"LeCun et al. 1989",-26} {Paper1989.TrainError,8:F2}% {Paper1989.TrainMisses,7} | {Paper1989.TestError,8:F2}% {Paper1989.TestMisses,7}");
Console.WriteLine($"{$"this run (pass {last.Pass})",-26} {last.Train.Error,8:F2}% {last.Train.Misses,7} | {last.Test.Error,8:F2}% {last.Test.Misses,7}");

var path = Path.Combine(Path.GetTempPath(), $"lecun-example-{Guid.NewGuid():N}.safetensors");
run.Model.Save(path);
var model = TrainedModel.Load(path);
File.Delete(path);

var pixels = data.Test.Image(0).ToArray();   // 256 values in [-1, 1], row-major 16x16
var prediction = model.Predict(pixels);
Console.WriteLine();
Console.WriteLine($"test digit 0: label {data.Test.Labels[0]}, predicted {prediction.Digit} " +
                  $"(scores {string.Join(" ", prediction.Scores.Select(s => s.ToString("F2")))})");
foreach (var layer in model.Inspect(pixels))
    Console.WriteLine($"  {layer.Name,-4} [{string.Join(",", layer.Shape)}] {layer.Values.Length} values");

// Reports arrive on the training thread every few hundred digits; this prints one line per quarter
// of the run. (System.Progress<T> would post them to the thread pool, out of order with the pass lines.)
sealed class QuarterLines : IProgress<TrainProgress>
{
    private int _shown;
    public void Report(TrainProgress p)
    {
        var quarter = (int)(p.Fraction * 4);
        if (quarter > _shown) { _shown = quarter; Console.WriteLine($"  {25 * quarter}% of the run"); }
    }
}
