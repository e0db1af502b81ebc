using Lecun.Model;

namespace Lecun.Compare.Onnx;

/// <summary>A trained network as an ONNX model: each locally-connected layer a Pad (the spec's pad
/// value) and a strided Conv whose kernel holds zeros where the connection table has no connection,
/// plus its per-unit biases as one Add; each dense layer a MatMul and an Add; each layer's squashing.</summary>
static class NetworkOnnx
{
    public const string Input = "digits";
    public const string Output = "scores";
    const long Opset = 17;

    public static byte[] Write(Network net, float[] parameters)
    {
        var initializers = new List<Action<ProtoWriter>>();
        var nodes = new List<Action<ProtoWriter>>();
        var current = Input;
        var spec = net.Layout.Spec;
        bool flattened = false;

        float[] Slice(TensorView view) => parameters.AsSpan(view.Offset, view.Length).ToArray();
        long[] Dims(IEnumerable<int> shape) => shape.Select(d => (long)d).ToArray();
        string Emit(string op, string[] inputs, string output, params Action<ProtoWriter>[] attributes)
        {
            nodes.Add(Onnx.Node(op, inputs, output, attributes));
            return output;
        }

        foreach (var (plan, i) in net.Plans.Select((p, i) => (p, i)))
        {
            var g = plan.Geometry;
            var name = g.Name;
            if (g.Spec is LayerSpec.Local local)
            {
                var l = local.Item;
                var inPlanes = g.InShape.Head;
                var k = l.Kernel;
                var reads = l.Table.Head.Length;
                // The table's weights [planes, reads, k, k] spread into a dense [planes, inPlanes, k, k] kernel.
                var w = Slice(g.Weight);
                var kernel = new float[l.Planes * inPlanes * k * k];
                int plane = 0;
                foreach (var row in l.Table)
                {
                    int r = 0;
                    foreach (var source in row)
                    {
                        Array.Copy(w, ((plane * reads) + r) * k * k, kernel, ((plane * inPlanes) + source) * k * k, k * k);
                        r++;
                    }
                    plane++;
                }
                initializers.Add(Onnx.Tensor($"{name}.pads", new long[] { 8 },
                    new long[] { 0, 0, l.Padding, l.Padding, 0, 0, l.Padding, l.Padding }));
                initializers.Add(Onnx.Tensor($"{name}.pad_value", Array.Empty<long>(), new[] { l.PadValue }));
                initializers.Add(Onnx.Tensor($"{name}.kernel", new long[] { l.Planes, inPlanes, k, k }, kernel));
                initializers.Add(Onnx.Tensor($"{name}.bias", Dims(g.Bias.Shape), Slice(g.Bias)));
                current = Emit("Pad", new[] { current, $"{name}.pads", $"{name}.pad_value" }, $"{name}.padded", Onnx.Str("mode", "constant"));
                current = Emit("Conv", new[] { current, $"{name}.kernel" }, $"{name}.conv",
                    Onnx.Ints("kernel_shape", k, k), Onnx.Ints("strides", l.Stride, l.Stride));
                current = Emit("Add", new[] { current, $"{name}.bias" }, $"{name}.sum");
            }
            else
            {
                if (!flattened) { current = Emit("Flatten", new[] { current }, "flat", Onnx.Int("axis", 1)); flattened = true; }
                initializers.Add(Onnx.Tensor($"{name}.weight", Dims(g.Weight.Shape), Slice(g.Weight)));
                initializers.Add(Onnx.Tensor($"{name}.bias", Dims(g.Bias.Shape), Slice(g.Bias)));
                current = Emit("MatMul", new[] { current, $"{name}.weight" }, $"{name}.product");
                current = Emit("Add", new[] { current, $"{name}.bias" }, $"{name}.sum");
            }
            var last = i == net.Plans.Length - 1;
            string Out(string stage) => last ? Output : $"{name}.{stage}";
            var a = plan.Activation;
            if (a.IsTanh) current = Emit("Tanh", new[] { current }, Out("tanh"));
            else if (a.IsRelu) current = Emit("Relu", new[] { current }, Out("relu"));
            else if (a.IsScaledTanh)
            {
                initializers.Add(Onnx.Tensor($"{name}.two_thirds", Array.Empty<long>(), new[] { 2.0f / 3.0f }));
                initializers.Add(Onnx.Tensor($"{name}.amplitude", Array.Empty<long>(), new[] { 1.7159f }));
                current = Emit("Mul", new[] { current, $"{name}.two_thirds" }, $"{name}.scaled");
                current = Emit("Tanh", new[] { current }, $"{name}.tanh");
                current = Emit("Mul", new[] { current, $"{name}.amplitude" }, Out("scaled_tanh"));
            }
            else if (last) current = Emit("Identity", new[] { current }, Output);
        }

        var model = new ProtoWriter()
            .Int(1, 8)                                        // ir_version
            .String(2, "Lecun.Fast compare/onnx")             // producer_name
            .Message(7, graph =>                              // graph
            {
                foreach (var n in nodes) graph.Message(1, n);
                graph.String(2, "lecun1989");
                foreach (var t in initializers) graph.Message(5, t);
                graph.Message(11, Onnx.Value(Input, null, spec.Input.Planes, spec.Input.Height, spec.Input.Width));
                graph.Message(12, Onnx.Value(Output, null, net.Layout.OutputSize));
            })
            .Message(8, opset => opset.String(1, "").Int(2, Opset)); // opset_import
        return model.ToArray();
    }
}
