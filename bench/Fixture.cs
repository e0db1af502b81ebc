using Lecun.Model;
using Lecun.Native.Backends;
using Microsoft.FSharp.Core;

namespace Lecun.Bench;

/// <summary>What every benchmark shares: the backends that load, the 1989 network and some digits.</summary>
public static class Fixture
{
    /// <summary>Names of the backends available here (MKL only when libmkl_rt loads).</summary>
    public static IEnumerable<string> BackendNames() => Backend.Available.Reverse().Select(b => b.Name);

    public static IBackend Get(string name) => Backend.Choose(name, _ => { });

    public static Network Net => NetworkModule.lecun1989;

    public static float[] InitialParameters() => Init.create(WeightInit.SqrtFanIn, Layout.lecun1989, 1337);

    /// <summary>The 2007 USPS test digits (images, labels), or as many random digits in [-1, 1] when the data is missing
    /// (the cost of a pass does not depend on the pixel values).</summary>
    public static (float[] Images, int[] Labels, string Source) Digits()
    {
        var loaded = Data.load(DataSetName.Usps, FSharpOption<string>.None);
        if (loaded.IsOk) return (loaded.ResultValue.Test.Images, loaded.ResultValue.Test.Labels, loaded.ResultValue.Source);
        const int count = 2007;
        var rng = new Random(1989);
        var images = new float[count * Dataset.Pixels];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 2 - 1);
        var labels = new int[count];
        for (int i = 0; i < count; i++) labels[i] = rng.Next(10);
        return (images, labels, "random digits (USPS not found: " + loaded.ErrorValue + ")");
    }
}
