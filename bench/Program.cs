using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Lecun.Native.Backends;

namespace Lecun.Bench;

/// <summary>Time per digit and digits/s of a benchmark that handles BatchSize digits (1 when it has no such parameter).</summary>
public sealed class PerDigitColumn(bool rate) : IColumn
{
    public string Id => rate ? "DigitsPerSecond" : "PerDigit";
    public string ColumnName => rate ? "Digits/s" : "Per digit";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => rate ? 1 : 0;
    public bool IsNumeric => true;
    public UnitType UnitType => rate ? UnitType.Dimensionless : UnitType.Time;
    public string Legend => rate ? "Digits per second on one core (1 / Per digit)" : "Mean time divided by the digits a call handles (BatchSize, else 1)";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        if (stats is null) return "NA";
        var name = benchmarkCase.Descriptor.WorkloadMethod.Name;
        // Digits make sense for passes over digits, not for the parameter update.
        if (name == nameof(PerExample.SgdUpdate)) return "-";
        int digits = benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Name == nameof(BatchedForward.BatchSize))?.Value is int b ? b : 1;
        double ns = stats.Mean / digits;
        return rate
            ? (1e9 / ns).ToString("N0", CultureInfo.InvariantCulture)
            : (ns / 1000).ToString("0.000", CultureInfo.InvariantCulture) + " us";
    }
}

public static class Program
{
    public static int Main(string[] args)
    {
        if (Backend.Mkl is null)
            Console.WriteLine($"note: MKL is not available ({Backend.MklUnavailableReason}); benchmarking the managed backend only.");
        var config = DefaultConfig.Instance
            .AddColumn(new PerDigitColumn(false), new PerDigitColumn(true));
        // A short job by default (the whole suite in a few minutes); --job on the command line replaces it.
        bool jobGiven = args.Any(a => a is "--job" or "-j" || a.StartsWith("--job=", StringComparison.Ordinal));
        if (!jobGiven)
            config = config.AddJob(Job.ShortRun.WithId("Short"));
        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
        return summaries.Any(s => s.HasCriticalValidationErrors) ? 1 : 0;
    }
}
