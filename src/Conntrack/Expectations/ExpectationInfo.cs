using Conntrack.Tuples;

namespace Conntrack.Expectations;

/// <summary>A snapshot of one expectation (a line of <c>/proc/net/nf_conntrack_expect</c> / <c>conntrack -L expect</c>).</summary>
public readonly struct ExpectationInfo
{
    /// <summary>The expected connection's original tuple; wildcarded fields are zero.</summary>
    public ConntrackTuple Tuple { get; init; }

    /// <summary>Mask of the source address: all ones to match exactly, zero for any.</summary>
    public InetAddress MaskSource { get; init; }

    /// <summary>Mask of the source port: 65535 to match exactly, 0 for any.</summary>
    public ushort MaskSourcePort { get; init; }

    /// <summary>The original tuple of the connection that created it.</summary>
    public ConntrackTuple Master { get; init; }

    /// <summary>Flags.</summary>
    public ExpectationFlags Flags { get; init; }

    /// <summary>The helper's expectation class.</summary>
    public int Class { get; init; }

    /// <summary>The master's helper.</summary>
    public string HelperName { get; init; }

    /// <summary>The class's policy name, if any (<c>audio</c> for SIP).</summary>
    public string? PolicyName { get; init; }

    /// <summary>Nanoseconds left at the snapshot's time.</summary>
    public long RemainingNs { get; init; }

    /// <summary>The zone.</summary>
    public ushort Zone { get; init; }
}
