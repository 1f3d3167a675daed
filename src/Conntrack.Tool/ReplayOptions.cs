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

    /// <summary>--helper NAME[:PROTO:PORT[-PORT]] entries, in order.</summary>
    public IReadOnlyList<string> Helpers { get; init; } = [];

    /// <summary>--helpers: every built-in helper on its standard port(s).</summary>
    public bool AllHelpers { get; init; }

    /// <summary>--expect: print the expectation table even without helpers.</summary>
    public bool Expect { get; init; }

    /// <summary>--events: print the event stream (conntrack -E) instead of the report.</summary>
    public bool Events { get; init; }

    public bool ShowHelpers => Helpers.Count > 0 || AllHelpers;

    public bool ShowExpect => ShowHelpers || Expect;
    public required ConntrackOptions Engine { get; init; }

    // Synthetic traffic (no FILE).
    public long Packets { get; init; } = 2_000_000;
    public int Flows { get; init; } = 10_000;
    public int Seed { get; init; } = 1;
}
