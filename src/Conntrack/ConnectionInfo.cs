using Conntrack.Extensions;
using Conntrack.Tuples;

namespace Conntrack;

/// <summary>
/// A snapshot of one connection, taken without locks (fields may be from slightly different moments when
/// packets of the connection are being processed concurrently). Format it with
/// <see cref="Diagnostics.ConnectionFormatter"/>.
/// </summary>
public readonly struct ConnectionInfo
{
    /// <summary>The connection's handle.</summary>
    public ConnectionHandle Handle { get; init; }

    /// <summary>The original direction's tuple (the first packet's).</summary>
    public ConntrackTuple Original { get; init; }

    /// <summary>The reply direction's tuple.</summary>
    public ConntrackTuple Reply { get; init; }

    /// <summary>Status bits.</summary>
    public ConnectionStatus Status { get; init; }

    /// <summary>The raw protocol state value (TCP or SCTP state), 0 for protocols without one.</summary>
    public byte ProtocolState { get; init; }

    /// <summary>The protocol state's name as <c>/proc/net/nf_conntrack</c> prints it (<c>ESTABLISHED</c>), or null.</summary>
    public string? StateName { get; init; }

    /// <summary>The protocol's name (<c>tcp</c>, <c>udp</c>, ..., <c>unknown</c>).</summary>
    public string ProtocolName { get; init; }

    /// <summary>The zone.</summary>
    public ushort Zone { get; init; }

    /// <summary>The connection mark.</summary>
    public uint Mark { get; init; }

    /// <summary>Absolute deadline on the caller's clock (nanoseconds); for an unconfirmed entry, its relative timeout.</summary>
    public long Deadline { get; init; }

    /// <summary>Nanoseconds left until the deadline at the snapshot's time (0 if past).</summary>
    public long RemainingNs { get; init; }

    /// <summary>Packet and byte counters, when the table has accounting on.</summary>
    public AccountingCounters? Accounting { get; init; }

    /// <summary>Start and stop times, when the table has timestamps on.</summary>
    public ConnectionTimestamps? Timestamps { get; init; }

    /// <summary>The name of the helper attached to the connection, or null.</summary>
    public string? HelperName { get; init; }

    /// <summary>True when the connection is in the table (not merely created by <c>In</c>).</summary>
    public bool IsConfirmed => (Status & ConnectionStatus.Confirmed) != 0;

    /// <summary>True for IPv6 connections.</summary>
    public bool IsIpv6 => Original.IsIpv6;

    /// <summary>The layer-4 protocol number.</summary>
    public byte Protocol => Original.Protocol;
}
