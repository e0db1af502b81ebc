using System.Reflection;
using System.Runtime.InteropServices;

namespace Lecun.Native.Mkl;

/// <summary>CBLAS enums, with the values of Intel's mkl_cblas.h.</summary>
public enum CblasLayout { RowMajor = 101, ColMajor = 102 }
public enum CblasTranspose { NoTrans = 111, Trans = 112 }

/// <summary>
/// Thin bindings to Intel MKL's single dynamic library (libmkl_rt), named as in the C API.
/// Blittable arguments only, so calls cost no marshaling; the Span overloads are the MKL provider
/// (<see cref="Backends.MklBackend"/>) and <see cref="Vml"/>.
/// </summary>
public static unsafe partial class MklNative
{
    public const string Library = "mkl_rt";

    [LibraryImport(Library)]
    public static partial void cblas_sgemm(CblasLayout layout, CblasTranspose transA, CblasTranspose transB,
        int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    [LibraryImport(Library)]
    public static partial void cblas_sgemv(CblasLayout layout, CblasTranspose trans,
        int m, int n, float alpha, float* a, int lda, float* x, int incX, float beta, float* y, int incY);

    [LibraryImport(Library)]
    public static partial void vsTanh(int n, float* a, float* r);

    /// <summary>MKL_THREADING_INTEL = 0, SEQUENTIAL = 1, PGI = 2, GNU = 3, TBB = 4 (mkl_service.h).</summary>
    [LibraryImport(Library, EntryPoint = "MKL_Set_Threading_Layer")]
    public static partial int MKL_Set_Threading_Layer(int code);

    public const int ThreadingSequential = 1;
    public const int ThreadingGnu = 3;

    /// <summary>MKL's thread count for calls made from this thread (0 = back to the global setting); returns the previous one.</summary>
    [LibraryImport(Library, EntryPoint = "MKL_Set_Num_Threads_Local")]
    public static partial int MKL_Set_Num_Threads_Local(int threads);

    [LibraryImport(Library, EntryPoint = "MKL_Set_Num_Threads")]
    public static partial void MKL_Set_Num_Threads(int threads);
}

/// <summary>Finds libmkl_rt on Linux and loads it once; failure is reported, never thrown.</summary>
public static class MklLibrary
{
    static readonly string[] Candidates =
    {
        "libmkl_rt.so", "libmkl_rt.so.1", "libmkl_rt.so.2",
        "/usr/lib/x86_64-linux-gnu/libmkl_rt.so", "/opt/intel/mkl/lib/intel64/libmkl_rt.so",
        "/opt/intel/oneapi/mkl/latest/lib/intel64/libmkl_rt.so", "/opt/intel/oneapi/mkl/latest/lib/libmkl_rt.so",
    };

    static readonly Lazy<(IntPtr Handle, string? Error)> Loaded = new(Load);

    /// <summary>Debian's package that provides libmkl_rt (in the non-free component).</summary>
    public const string DebianPackage = "libmkl-rt";

    static (IntPtr, string?) Load()
    {
        // MKL reads these from the C environment when it initializes, so they must be set before the load.
        // The GNU OpenMP layer, run on one thread unless asked for more (MklLibrary.Threads): measured
        // as fast as the sequential layer on one thread (see README, "Engine"), and it lets a batched
        // run use both cores. STRICT CBWR keeps the bits fixed for a given thread count.
        SetNativeEnvironmentDefault("MKL_THREADING_LAYER", "gnu");
        // MKL 2020 picks its slow generic code path on AMD CPUs unless told the CPU type (5 = AVX2).
        SetNativeEnvironmentDefault("MKL_DEBUG_CPU_TYPE", "5");
        // Without a fixed code branch MKL's GEMM sums in an order that depends on how the GC happened to
        // align the arrays, so the same seed could train to different weights. STRICT pins it.
        SetNativeEnvironmentDefault("MKL_CBWR", "AVX2,STRICT");
        var root = Environment.GetEnvironmentVariable("MKLROOT");
        var candidates = root is null ? Candidates : Candidates.Prepend(Path.Combine(root, "lib", "intel64", "libmkl_rt.so"));
        foreach (var path in candidates)
        {
            if (NativeLibrary.TryLoad(path, out var handle))
                return (handle, null);
        }
        return (IntPtr.Zero, $"Intel MKL (libmkl_rt.so) was not found; install the Debian package '{DebianPackage}' (non-free component)");
    }

    [DllImport("libc", EntryPoint = "setenv")]
    static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    static void SetNativeEnvironmentDefault(string name, string value)
    {
        // .NET keeps its own copy of the environment on Unix; native code only sees libc's.
        if (Environment.GetEnvironmentVariable(name) is null)
        {
            try { setenv(name, value, 0); } catch (Exception) { /* not fatal: MKL falls back to its defaults */ }
        }
    }

    static int _resolverInstalled;

    /// <summary>Whether MKL runs its threaded (GNU OpenMP) layer, so that <see cref="SetThreadsOnThisThread"/> can give it more than one thread.</summary>
    public static bool Threaded { get; private set; }

    /// <summary>
    /// The threads MKL may use for calls from the calling thread (1 by default). Returns the previous
    /// setting (0: the global one, 1 thread). Needs the threaded layer for more than one.
    /// </summary>
    public static int SetThreadsOnThisThread(int threads)
    {
        if (threads > 1 && !Threaded) throw new InvalidOperationException("MKL runs its sequential layer (MKL_THREADING_LAYER); it cannot use more than one thread");
        return MklNative.MKL_Set_Num_Threads_Local(threads);
    }

    /// <summary>Loads MKL if possible. Returns null on success, or why it could not be loaded.</summary>
    public static string? TryLoad()
    {
        if (Interlocked.Exchange(ref _resolverInstalled, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(MklLibrary).Assembly, (name, _, _) =>
                name == MklNative.Library && Loaded.Value.Handle != IntPtr.Zero ? Loaded.Value.Handle : IntPtr.Zero);
        }
        var (handle, error) = Loaded.Value;
        if (handle == IntPtr.Zero) return error;
        try
        {
            var layer = Environment.GetEnvironmentVariable("MKL_THREADING_LAYER")?.ToLowerInvariant();
            Threaded = layer is null or "gnu";
            MklNative.MKL_Set_Threading_Layer(Threaded ? MklNative.ThreadingGnu : MklNative.ThreadingSequential);
            if (Threaded) MklNative.MKL_Set_Num_Threads(1);
            return null;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return $"libmkl_rt.so was found but could not be used ({e.Message})";
        }
    }

}

/// <summary>Span overloads of the MKL vector-math bindings.</summary>
public static unsafe class Vml
{
    /// <summary>r = tanh(a), by MKL's vsTanh.</summary>
    public static void Tanh(ReadOnlySpan<float> a, Span<float> r)
    {
        if (r.Length < a.Length) throw new ArgumentException("vsTanh: output span too small");
        if (a.Length == 0) return;
        fixed (float* pa = a, pr = r) MklNative.vsTanh(a.Length, pa, pr);
    }
}
