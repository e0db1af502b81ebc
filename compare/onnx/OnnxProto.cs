using System.Text;

namespace Lecun.Compare.Onnx;

/// <summary>Writes protobuf wire format: the few ONNX messages the 1989 network needs (ModelProto,
/// GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto), by field number as onnx.proto
/// defines them, without generated classes.</summary>
sealed class ProtoWriter
{
    readonly MemoryStream buffer = new();

    public byte[] ToArray() => buffer.ToArray();

    void Key(int field, int wireType) => Raw((ulong)((field << 3) | wireType));

    void Raw(ulong value)
    {
        while (value >= 0x80) { buffer.WriteByte((byte)(value | 0x80)); value >>= 7; }
        buffer.WriteByte((byte)value);
    }

    public ProtoWriter Int(int field, long value) { Key(field, 0); Raw((ulong)value); return this; }

    public ProtoWriter Float(int field, float value)
    {
        Key(field, 5);
        Span<byte> bytes = stackalloc byte[4];
        BitConverter.TryWriteBytes(bytes, value);
        if (!BitConverter.IsLittleEndian) bytes.Reverse();
        buffer.Write(bytes);
        return this;
    }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value) { Key(field, 2); Raw((ulong)value.Length); buffer.Write(value); return this; }

    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtoWriter Message(int field, Action<ProtoWriter> write)
    {
        var inner = new ProtoWriter();
        write(inner);
        return Bytes(field, inner.ToArray());
    }
}

/// <summary>ONNX's messages as writers of their fields (onnx.proto field numbers).</summary>
static class Onnx
{
    public const int Float32 = 1;   // TensorProto.DataType.FLOAT
    public const int Int64 = 7;     // TensorProto.DataType.INT64

    /// <summary>A TensorProto with its values as little-endian raw_data.</summary>
    public static Action<ProtoWriter> Tensor(string name, long[] dims, float[] values) => w =>
    {
        foreach (var d in dims) w.Int(1, d);
        w.Int(2, Float32).String(8, name).Bytes(9, LittleEndian(values, sizeof(float), (v, s) => BitConverter.TryWriteBytes(s, v)));
    };

    public static Action<ProtoWriter> Tensor(string name, long[] dims, long[] values) => w =>
    {
        foreach (var d in dims) w.Int(1, d);
        w.Int(2, Int64).String(8, name).Bytes(9, LittleEndian(values, sizeof(long), (v, s) => BitConverter.TryWriteBytes(s, v)));
    };

    delegate bool WriteValue<T>(T value, Span<byte> destination);

    static byte[] LittleEndian<T>(T[] values, int size, WriteValue<T> write)
    {
        var bytes = new byte[values.Length * size];
        for (int i = 0; i < values.Length; i++)
        {
            var slot = bytes.AsSpan(i * size, size);
            write(values[i], slot);
            if (!BitConverter.IsLittleEndian) slot.Reverse();
        }
        return bytes;
    }

    /// <summary>A NodeProto: inputs, outputs, name, op_type and attributes.</summary>
    public static Action<ProtoWriter> Node(string op, string[] inputs, string output, params Action<ProtoWriter>[] attributes) => w =>
    {
        foreach (var i in inputs) w.String(1, i);
        w.String(2, output).String(3, output).String(4, op);
        foreach (var a in attributes) w.Message(5, a);
    };

    /// <summary>An INTS attribute (AttributeProto.type 7).</summary>
    public static Action<ProtoWriter> Ints(string name, params long[] values) => w =>
    {
        w.String(1, name);
        foreach (var v in values) w.Int(8, v);
        w.Int(20, 7);
    };

    /// <summary>An INT attribute (AttributeProto.type 2).</summary>
    public static Action<ProtoWriter> Int(string name, long value) => w => w.String(1, name).Int(3, value).Int(20, 2);

    /// <summary>A STRING attribute (AttributeProto.type 3).</summary>
    public static Action<ProtoWriter> Str(string name, string value) => w => w.String(1, name).String(4, value).Int(20, 3);

    /// <summary>A float32 ValueInfoProto; a null dimension is the symbolic batch size "N".</summary>
    public static Action<ProtoWriter> Value(string name, params long?[] dims) => w =>
        w.String(1, name).Message(2, type => type.Message(1, tensor =>
            tensor.Int(1, Float32).Message(2, shape =>
            {
                foreach (var d in dims)
                    shape.Message(1, dim => { if (d is long n) dim.Int(1, n); else dim.String(2, "N"); });
            })));
}
