using Lecun.Native.Mkl;

namespace Lecun.Native.Backends;

/// <summary>
/// The providers, chosen once by name: mkl (every product a CBLAS call), managed (the project's own
/// kernels only) and auto (each product where it was measured faster; the default). Without MKL the
/// default says so once on stderr and runs managed.
/// </summary>
public static class Backend
{
    public static readonly string[] Names = { "auto", "mkl", "managed" };

    static readonly Lazy<string?> MklError = new(MklLibrary.TryLoad);
    static int _warned;

    /// <summary>Why MKL is unavailable, or null when it loaded.</summary>
    public static string? MklUnavailableReason => MklError.Value;

    public static bool MklAvailable => MklError.Value is null;

    public static IBackend Managed { get; } = new ManagedBackend();

    static readonly Lazy<IBackend?> MklInstance = new(() => MklAvailable ? new MklBackend() : null);
    static readonly Lazy<IBackend?> AutoInstance = new(() => MklInstance.Value is { } mkl ? new AutoBackend(Managed, mkl) : null);

    /// <summary>The MKL provider, or null when MKL cannot be loaded.</summary>
    public static IBackend? Mkl => MklInstance.Value;

    /// <summary>The routing provider, or null when MKL cannot be loaded (then managed is the default).</summary>
    public static IBackend? Auto => AutoInstance.Value;

    /// <summary>Every provider this machine has, the default first: auto, mkl, managed (managed alone without MKL).</summary>
    public static IReadOnlyList<IBackend> Available =>
        Mkl is { } mkl ? new[] { Auto!, mkl, Managed } : new[] { Managed };

    /// <summary>
    /// The provider for a name ("auto", "mkl", "managed") or the default (null: auto when MKL loads).
    /// Asking for MKL explicitly when it is missing is an error; the default falls back with one warning.
    /// </summary>
    public static IBackend Choose(string? name, Action<string> warn)
    {
        switch (name?.ToLowerInvariant())
        {
            case null or "" or "auto":
                if (Auto is { } auto) return auto;
                if (Interlocked.Exchange(ref _warned, 1) == 0)
                    warn($"{MklUnavailableReason}. Running on the managed backend.");
                return Managed;
            case "mkl":
                return Mkl ?? throw new InvalidOperationException($"--backend mkl: {MklUnavailableReason}");
            case "managed":
                return Managed;
            default:
                throw new ArgumentException($"unknown backend '{name}' (known: {string.Join(", ", Names)})");
        }
    }
}
