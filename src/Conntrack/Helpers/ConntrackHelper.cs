using Conntrack.Expectations;
using Conntrack.Tuples;

namespace Conntrack.Helpers;

/// <summary>
/// How many expectations of one class a master may have at once, for how long they live, and the name
/// printed after the helper's (<c>helper=sip/audio</c>): the kernel's <c>nf_conntrack_expect_policy</c>.
/// </summary>
public readonly record struct ExpectPolicy(string? Name, int MaxExpected, TimeSpan Timeout);

/// <summary>A helper's answer for a packet.</summary>
public enum HelperVerdict : byte
{
    /// <summary>Let the packet through.</summary>
    Accept = 0,
    /// <summary>Drop it (a new connection is then not confirmed).</summary>
    Drop = 1,
}

/// <summary>
/// A connection-tracking helper (ALG), the analogue of <c>struct nf_conntrack_helper</c>: it reads the
/// payload of the connections it is assigned to and creates expectations, so that the data connections
/// those payloads announce arrive as RELATED. Register instances with <see cref="HelperRegistry.Register"/>;
/// built-in helpers are FTP, TFTP, SIP and IRC. A helper runs at <c>Confirm</c> for every packet of its
/// connection except ICMP errors in the reply direction.
/// </summary>
public abstract class ConntrackHelper
{
    /// <summary>Creates a helper.</summary>
    /// <param name="name">The kernel's helper name (<c>ftp</c>); matched case-insensitively.</param>
    /// <param name="protocol">TCP or UDP.</param>
    /// <param name="defaultPort">The standard port (<c>--helpers</c> assigns it there).</param>
    /// <param name="ipv6">Whether the helper also serves IPv6 connections (IRC, for one, does not).</param>
    /// <param name="policies">One policy per expectation class (at most 4).</param>
    protected ConntrackHelper(string name, byte protocol, ushort defaultPort, bool ipv6, params ExpectPolicy[] policies)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(policies);
        if (policies.Length is < 1 or > 4)
        {
            throw new ArgumentException("A helper has between 1 and 4 expectation classes.", nameof(policies));
        }

        Name = name;
        Protocol = protocol;
        DefaultPort = defaultPort;
        SupportsIpv6 = ipv6;
        Policies = policies;
    }

    /// <summary>The helper's name.</summary>
    public string Name { get; }

    /// <summary>The layer-4 protocol of the connections it helps.</summary>
    public byte Protocol { get; }

    /// <summary>Its standard port.</summary>
    public ushort DefaultPort { get; }

    /// <summary>True when it serves IPv6 as well as IPv4.</summary>
    public bool SupportsIpv6 { get; }

    /// <summary>Expectation policies by class.</summary>
    public IReadOnlyList<ExpectPolicy> Policies { get; }

    /// <summary>Inspects one packet of a helped connection.</summary>
    public abstract HelperVerdict Help(ref HelperContext context);

    internal int Id { get; set; }
}

/// <summary>Who owns an expectation that <see cref="HelperContext.FindExpectation"/> found.</summary>
/// <param name="IsMine">It belongs to the connection asking.</param>
/// <param name="SameHelper">Its master has the same helper as the connection asking.</param>
/// <param name="ExpectClass">Its class.</param>
public readonly record struct ExpectationOwner(bool IsMine, bool SameHelper, int ExpectClass);

/// <summary>One packet of a helped connection, as a helper sees it, and what it may do.</summary>
public ref struct HelperContext
{
    private readonly ConntrackTable _table;
    private readonly int _index;

    internal HelperContext(ConntrackTable table, int index, ReadOnlySpan<byte> packet, int layer4Offset, ConntrackInfo info,
        long timestamp, Span<byte> privateData, in ConntrackTuple original, in ConntrackTuple reply)
    {
        _table = table;
        _index = index;
        Packet = packet;
        Layer4Offset = layer4Offset;
        Info = info;
        Timestamp = timestamp;
        PrivateData = privateData;
        Original = original;
        Reply = reply;
    }

    /// <summary>The IP packet (the reassembled datagram for fragments).</summary>
    public ReadOnlySpan<byte> Packet { get; }

    /// <summary>Where the TCP/UDP header starts in <see cref="Packet"/>.</summary>
    public int Layer4Offset { get; }

    /// <summary>The packet's relation to the connection.</summary>
    public ConntrackInfo Info { get; }

    /// <summary>True when the packet travels in the reply direction.</summary>
    public readonly bool IsReply => Info.IsReply();

    /// <summary>The caller's timestamp of the packet (nanoseconds).</summary>
    public long Timestamp { get; }

    /// <summary>40 bytes of per-connection state owned by the helper (zero on a new connection).</summary>
    public Span<byte> PrivateData { get; }

    /// <summary>The connection's original tuple.</summary>
    public ConntrackTuple Original { get; }

    /// <summary>The connection's reply tuple.</summary>
    public ConntrackTuple Reply { get; }

    /// <summary>The tuple of the packet's own direction.</summary>
    public readonly ConntrackTuple PacketTuple => IsReply ? Reply : Original;

    /// <summary>Why the helper dropped the packet, for diagnostics (the kernel's nf_ct_helper_log message).</summary>
    public string? DropMessage { get; set; }

    /// <summary>
    /// Expects a connection whose first packet goes from <paramref name="source"/> (null: any address) port
    /// <paramref name="sourcePort"/> (null: any) to <paramref name="destination"/>:<paramref name="destinationPort"/>
    /// over <paramref name="protocol"/> (nf_ct_expect_init + nf_ct_expect_related).
    /// </summary>
    /// <param name="expectClass">The helper's expectation class (its policy index).</param>
    /// <param name="source">The expected source address, or null for any.</param>
    /// <param name="sourcePort">The expected source port, or null for any.</param>
    /// <param name="destination">The expected destination address.</param>
    /// <param name="destinationPort">The expected destination port.</param>
    /// <param name="protocol">The expected protocol (TCP or UDP).</param>
    /// <param name="flags">Permanent, inactive, ...</param>
    /// <param name="skipMaster">
    /// NF_CT_EXP_F_SKIP_MASTER: an identical expectation of any master counts as the same one (so another
    /// master's or class's gives <see cref="ExpectResult.AlreadyExists"/> instead of a clash).
    /// </param>
    /// <param name="assignHelper">Give the expected connection this helper (the kernel's <c>exp->assign_helper</c>).</param>
    public readonly ExpectResult Expect(int expectClass, InetAddress? source, ushort? sourcePort, InetAddress destination,
        ushort destinationPort, byte protocol, ExpectationFlags flags = ExpectationFlags.None, bool skipMaster = false,
        bool assignHelper = false) =>
        _table.CreateExpectation(_index, expectClass, source, sourcePort, destination, destinationPort, protocol, flags, Timestamp,
            skipMaster, assignHelper);

    /// <summary>
    /// __nf_ct_expect_find(): the first live expectation that a connection from <paramref name="source"/> (any
    /// port) to <paramref name="destination"/>:<paramref name="destinationPort"/> would match, and whose it is.
    /// </summary>
    /// <returns>False when none matches.</returns>
    public readonly bool FindExpectation(InetAddress source, InetAddress destination, ushort destinationPort, byte protocol,
        out ExpectationOwner owner) =>
        _table.FindExpectation(_index, source, destination, destinationPort, protocol, Timestamp, out owner);

    /// <summary>
    /// Sets this connection's expectation of <paramref name="expectClass"/> to that destination to expire
    /// <paramref name="timeout"/> from now and activates it (refresh_signalling_expectation).
    /// </summary>
    /// <returns>False when this connection has no such live expectation.</returns>
    public readonly bool RefreshExpectation(int expectClass, InetAddress destination, ushort destinationPort, byte protocol, TimeSpan timeout) =>
        _table.RefreshExpectation(_index, expectClass, destination, destinationPort, protocol, Timestamp, timeout);

    /// <summary>Removes this connection's expectation of that class and destination (nf_ct_unexpect_related).</summary>
    public readonly bool RemoveExpectation(int expectClass, InetAddress destination, ushort destinationPort, byte protocol) =>
        _table.RemoveExpectation(_index, expectClass, destination, destinationPort, protocol, Timestamp);

    /// <summary>
    /// Sets the connection's timeout to <paramref name="timeout"/> from this packet, without counting the packet
    /// (nf_ct_refresh), unless its timeout is fixed.
    /// </summary>
    public readonly void RefreshTimeout(TimeSpan timeout) => _table.RefreshTimeout(_index, Timestamp, timeout.Ticks * 100);

    /// <summary>True when the connection was created from an expectation (IPS_EXPECTED).</summary>
    public readonly bool IsExpected => _table.IsExpected(_index);

    /// <summary>Removes this connection's expectations of one class (or all with -1), e.g. when a SIP call ends.</summary>
    public readonly int RemoveExpectations(int expectClass = -1) => _table.RemoveExpectationsOf(_index, expectClass, Timestamp);

    /// <summary>Whether this connection has an expectation of the class with the given destination port.</summary>
    public readonly bool HasExpectation(int expectClass, ushort destinationPort) =>
        _table.HasExpectation(_index, expectClass, destinationPort);
}
