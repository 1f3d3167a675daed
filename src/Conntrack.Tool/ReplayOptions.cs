namespace Conntrack.Tool;

/// <summary>How the capture's time reaches the engine.</summary>
internal enum ClockMode
{
    /// <summary>Each packet at its capture timestamp (compare with the oracle's <c>NAME.kernel-x1.txt</c>).</summary>
    Capture,

    /// <summary>Every packet at the first packet's timestamp (compare with <c>NAME.kernel.txt</c>, recorded as fast as possible).</summary>
    Frozen,
}

/// <summary>Parsed command line of <c>conntrack-replay</c>.</summary>
internal sealed class ReplayOptions
{
    public string? File { get; init; }
    public string Format { get; init; } = "oracle";
    public ClockMode Clock { get; init; } = ClockMode.Capture;
    public bool Timeouts { get; init; }
    public bool Accounting { get; init; }
    public bool NoPad { get; init; }
    public required ConntrackOptions Engine { get; init; }

    // Synthetic traffic (no FILE).
    public long Packets { get; init; } = 2_000_000;
    public int Flows { get; init; } = 10_000;
    public int Seed { get; init; } = 1;
}
