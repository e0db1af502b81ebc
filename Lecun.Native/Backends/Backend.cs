using Lecun.Native.Mkl;

namespace Lecun.Native.Backends;

/// <summary>Picks the provider once: MKL when it loads, otherwise managed (saying so once on stderr).</summary>
public static class Backend
{
    public static readonly string[] Names = { "mkl", "managed" };

    static readonly Lazy<string?> MklError = new(MklLibrary.TryLoad);
    static int _warned;

    /// <summary>Why MKL is unavailable, or null when it loaded.</summary>
    public static string? MklUnavailableReason => MklError.Value;

    public static bool MklAvailable => MklError.Value is null;

    public static IBackend Managed { get; } = new ManagedBackend();

    static readonly Lazy<IBackend?> MklInstance = new(() => MklAvailable ? new MklBackend() : null);

    /// <summary>The MKL provider, or null when MKL cannot be loaded.</summary>
    public static IBackend? Mkl => MklInstance.Value;

    /// <summary>Every provider this machine has: managed always, MKL when libmkl_rt loads.</summary>
    public static IReadOnlyList<IBackend> Available =>
        Mkl is { } mkl ? new[] { Managed, mkl } : new[] { Managed };

    /// <summary>
    /// The provider for a name ("mkl", "managed") or the default (null: MKL when available).
    /// Asking for MKL explicitly when it is missing is an error; the default falls back with one warning.
    /// </summary>
    public static IBackend Choose(string? name, Action<string> warn)
    {
        switch (name?.ToLowerInvariant())
        {
            case null or "" or "auto":
                if (Mkl is { } mkl) return mkl;
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
