using BenchmarkDotNet.Attributes;
using Lecun.Model;
using Lecun.Native.Backends;

namespace Lecun.Bench;

/// <summary>
/// One example at a time, the paper's training loop taken apart: forward, backward, the SGD update,
/// and one whole presentation (forward + loss gradient + backward + update). Nothing here may allocate.
/// </summary>
[MemoryDiagnoser]
public class PerExample
{
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "managed";

    public static IEnumerable<string> Backends() => Fixture.BackendNames();

    IBackend _backend = null!;
    Network _net = null!;
    float[] _parameters = null!, _grad = null!, _dOut = null!, _images = null!;
    int[] _labels = null!;
    Workspace _ws = null!;
    int _next;

    [GlobalSetup]
    public void Setup()
    {
        _backend = Fixture.Get(Backend);
        _net = Fixture.Net;
        _parameters = Fixture.InitialParameters();
        (_images, _labels, _) = Fixture.Digits();
        _ws = WorkspaceModule.create(_net, 1);
        _grad = new float[_net.Layout.ParamCount];
        _dOut = new float[_net.Layout.OutputSize];
        // Backward reads the state of the last forward pass: leave one in the workspace.
        Forward.run(_backend, _net, _parameters, _ws, _images, 0, 1);
        LossModule.gradient(Loss.Mse, Forward.outputs(_net, _ws), 0, _net.Layout.OutputSize, _labels[0], _dOut);
    }

    /// <summary>One digit through the network (63,660 MACs).</summary>
    [Benchmark]
    public void Forward1() => Forward.run(_backend, _net, _parameters, _ws, _images, 0, 1);

    /// <summary>Back-propagation of one digit into the gradient (weight and input gradients, 108,120 MACs).</summary>
    [Benchmark]
    public void Backward1() => Backward.run(_backend, _net, _parameters, _ws, _images, 0, _dOut, _grad, false);

    /// <summary>p -= lr * g over the 9,760 parameters (a tiny rate keeps the weights where they are).</summary>
    [Benchmark]
    public void SgdUpdate() => Optimizer.sgdStep(1e-9f, _parameters, _grad);

    /// <summary>
    /// One training presentation of the paper's recipe as training runs it, cycling through the digits:
    /// forward, loss gradient, and the backward pass with the SGD step fused into it (GradientSink.sgd).
    /// </summary>
    [Benchmark]
    public void Presentation()
    {
        int i = _next;
        _next = i + 1 == _labels.Length ? 0 : i + 1;
        int offset = i * Dataset.Pixels, outputs = _net.Layout.OutputSize;
        Forward.run(_backend, _net, _parameters, _ws, _images, offset, 1);
        LossModule.gradient(Loss.Mse, Forward.outputs(_net, _ws), 0, outputs, _labels[i], _dOut);
        Backward.runInto(_backend, _net, _parameters, _ws, _images, offset, _dOut, GradientSinkModule.sgd(_parameters, 0.03f), -1);
    }
}

/// <summary>
/// Forward passes of a batch of digits: one example per vector lane, 16 at a time (LaneBatch) on
/// AVX-512, otherwise one im2col GEMM per layer over the batch; see the per-digit columns.
/// </summary>
[MemoryDiagnoser]
public class BatchedForward
{
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "managed";

    public static IEnumerable<string> Backends() => Fixture.BackendNames();

    [Params(1, 32, 256, 2007)]
    public int BatchSize { get; set; }

    IBackend _backend = null!;
    Network _net = null!;
    float[] _parameters = null!, _images = null!;
    Workspace _ws = null!;

    [GlobalSetup]
    public void Setup()
    {
        _backend = Fixture.Get(Backend);
        _net = Fixture.Net;
        _parameters = Fixture.InitialParameters();
        (_images, _, _) = Fixture.Digits();
        if (_images.Length < BatchSize * Dataset.Pixels)
            throw new InvalidOperationException($"{BatchSize} digits needed, {_images.Length / Dataset.Pixels} loaded");
        _ws = WorkspaceModule.create(_net, BatchSize);
    }

    [Benchmark]
    public void Forward() => Lecun.Model.Forward.run(_backend, _net, _parameters, _ws, _images, 0, BatchSize);
}
