using System.Numerics.Tensors;

namespace Lecun.Native.Backends;

/// <summary>
/// Pure managed provider, always available: every inner loop is a contiguous AXPY or dot product,
/// which TensorPrimitives runs with the widest SIMD the CPU has (Vector512 on AVX-512).
/// </summary>
public sealed class ManagedBackend : IBackend
{
    public string Name => "managed";

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        Check.Matrix("A", a.Length, transA, m, k, lda);
        Check.Matrix("B", b.Length, transB, k, n, ldb);
        Check.Matrix("C", c.Length, false, m, n, ldc);
        for (int i = 0; i < m; i++)
        {
            var ci = c.Slice(i * ldc, n);
            if (!transB)
            {
                // C[i,:] = beta C[i,:] + sum_p (alpha op(A)[i,p]) B[p,:]: row AXPYs, no horizontal sums.
                if (beta == 0f) ci.Clear(); else if (beta != 1f) TensorPrimitives.Multiply(ci, beta, ci);
                for (int p = 0; p < k; p++)
                {
                    float aip = alpha * (transA ? a[p * lda + i] : a[i * lda + p]);
                    if (aip != 0f) TensorPrimitives.MultiplyAdd(b.Slice(p * ldb, n), aip, ci, ci);
                }
            }
            else if (!transA)
            {
                // B transposed: C[i,j] is the dot product of two contiguous rows.
                var ai = a.Slice(i * lda, k);
                for (int j = 0; j < n; j++)
                {
                    float dot = alpha * TensorPrimitives.Dot(ai, b.Slice(j * ldb, k));
                    ci[j] = beta == 0f ? dot : dot + beta * ci[j];
                }
            }
            else
            {
                for (int j = 0; j < n; j++)
                {
                    float sum = 0f;
                    for (int p = 0; p < k; p++) sum += a[p * lda + i] * b[j * ldb + p];
                    ci[j] = beta == 0f ? alpha * sum : alpha * sum + beta * ci[j];
                }
            }
        }
    }

    public void Gemv(bool transA, int m, int n, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> x, float beta, Span<float> y)
    {
        Check.Matrix("A", a.Length, false, m, n, lda);
        Check.Vector("x", x.Length, transA ? m : n);
        Check.Vector("y", y.Length, transA ? n : m);
        if (!transA)
        {
            for (int i = 0; i < m; i++)
            {
                float dot = alpha * TensorPrimitives.Dot(a.Slice(i * lda, n), x.Slice(0, n));
                y[i] = beta == 0f ? dot : dot + beta * y[i];
            }
        }
        else
        {
            var yn = y.Slice(0, n);
            if (beta == 0f) yn.Clear(); else if (beta != 1f) TensorPrimitives.Multiply(yn, beta, yn);
            for (int i = 0; i < m; i++)
            {
                float xi = alpha * x[i];
                if (xi != 0f) TensorPrimitives.MultiplyAdd(a.Slice(i * lda, n), xi, yn, yn);
            }
        }
    }

    public void Tanh(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Tanh(x, y.Slice(0, x.Length));
}
