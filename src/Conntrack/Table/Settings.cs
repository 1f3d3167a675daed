namespace Conntrack.Table;

/// <summary>The options a table runs with, timeouts converted once to nanoseconds for the packet path.</summary>
internal sealed class Settings
{
    public const long NsPerSecond = 1_000_000_000L;

    public readonly int MaxEntries;
    public readonly int Buckets;
    public readonly bool Checksum;
    public readonly bool Accounting;
    public readonly bool Timestamps;
    public readonly bool Events;
    public readonly int ExpectMax;
    public readonly bool AutomaticHelpers;

    public readonly bool TcpLoose;
    public readonly bool TcpBeLiberal;
    public readonly bool TcpIgnoreInvalidRst;
    public readonly int TcpMaxRetrans;

    /// <summary>TCP timeouts indexed by <c>TcpConntrackState</c>, then max_retrans and unacknowledged.</summary>
    public readonly long[] TcpTimeouts;
    public readonly long TcpTimeoutMaxRetrans;
    public readonly long TcpTimeoutUnacknowledged;

    public readonly long UdpTimeout;
    public readonly long UdpTimeoutStream;
    public readonly long IcmpTimeout;
    public readonly long Icmpv6Timeout;
    public readonly long GenericTimeout;
    public readonly long GreTimeout;
    public readonly long GreTimeoutStream;

    /// <summary>SCTP timeouts indexed by SCTP state (CLOSED .. HEARTBEAT_SENT).</summary>
    public readonly long[] SctpTimeouts;

    public readonly bool Defragmentation;
    public readonly long Ipv4FragmentTimeout;
    public readonly long Ipv6FragmentTimeout;

    public readonly ConntrackOptions Options;

    public Settings(ConntrackOptions o)
    {
        o.Validate();
        Options = o.Clone();
        MaxEntries = o.MaxEntries;
        Buckets = o.Buckets;
        Checksum = o.Checksum;
        Accounting = o.Accounting;
        Timestamps = o.Timestamps;
        Events = o.Events;
        ExpectMax = o.EffectiveExpectMax;
        AutomaticHelpers = o.AutomaticHelperAssignment;
        TcpLoose = o.TcpLoose;
        TcpBeLiberal = o.TcpBeLiberal;
        TcpIgnoreInvalidRst = o.TcpIgnoreInvalidRst;
        TcpMaxRetrans = o.TcpMaxRetrans;
        // Order of the kernel's enum tcp_conntrack: NONE, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT,
        // CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2 (uses SYN_SENT's timeout).
        TcpTimeouts =
        [
            0, Ns(o.TcpTimeoutSynSent), Ns(o.TcpTimeoutSynRecv), Ns(o.TcpTimeoutEstablished), Ns(o.TcpTimeoutFinWait),
            Ns(o.TcpTimeoutCloseWait), Ns(o.TcpTimeoutLastAck), Ns(o.TcpTimeoutTimeWait), Ns(o.TcpTimeoutClose),
            Ns(o.TcpTimeoutSynSent),
        ];
        TcpTimeoutMaxRetrans = Ns(o.TcpTimeoutMaxRetrans);
        TcpTimeoutUnacknowledged = Ns(o.TcpTimeoutUnacknowledged);
        UdpTimeout = Ns(o.UdpTimeout);
        UdpTimeoutStream = Ns(o.UdpTimeoutStream);
        IcmpTimeout = Ns(o.IcmpTimeout);
        Icmpv6Timeout = Ns(o.Icmpv6Timeout);
        GenericTimeout = Ns(o.GenericTimeout);
        GreTimeout = Ns(o.GreTimeout);
        GreTimeoutStream = Ns(o.GreTimeoutStream);
        Defragmentation = o.Defragmentation;
        Ipv4FragmentTimeout = Ns(o.Ipv4FragmentTimeout);
        Ipv6FragmentTimeout = Ns(o.Ipv6FragmentTimeout);
        SctpTimeouts =
        [
            0, Ns(o.SctpTimeoutClosed), Ns(o.SctpTimeoutCookieWait), Ns(o.SctpTimeoutCookieEchoed),
            Ns(o.SctpTimeoutEstablished), Ns(o.SctpTimeoutShutdownSent), Ns(o.SctpTimeoutShutdownRecd),
            Ns(o.SctpTimeoutShutdownAckSent), Ns(o.SctpTimeoutHeartbeatSent),
        ];
    }

    private static long Ns(TimeSpan t) => t.Ticks * 100;
}
