using System.Globalization;

namespace Conntrack;

/// <summary>
/// Settings of a <see cref="ConntrackTable"/>: what the kernel exposes as <c>net.netfilter.nf_conntrack_*</c>
/// sysctls (and the <c>net.ipv4.ipfrag_*</c> ones that govern reassembly), with the kernel's defaults.
/// Set properties directly, or by kernel name with <see cref="SetSysctl(string, string)"/>. The table
/// copies the options when it is created.
/// </summary>
public sealed class ConntrackOptions
{
    /// <summary><c>nf_conntrack_max</c>: most connections (unconfirmed included) before early drop. Default 262144.</summary>
    public int MaxEntries { get; set; } = 262144;

    /// <summary><c>nf_conntrack_buckets</c>: hash buckets. Default 262144.</summary>
    public int Buckets { get; set; } = 262144;

    /// <summary><c>nf_conntrack_checksum</c>: verify layer-4 checksums of incoming packets. Default true.</summary>
    public bool Checksum { get; set; } = true;

    /// <summary><c>nf_conntrack_acct</c>: count packets and bytes per direction (the accounting extension). Default false.</summary>
    public bool Accounting { get; set; }

    /// <summary><c>nf_conntrack_timestamp</c>: record start and stop times (the timestamp extension). Default false.</summary>
    public bool Timestamps { get; set; }

    /// <summary><c>nf_conntrack_events</c>: generate events for subscribers. Default true (events cost nothing while nobody subscribes).</summary>
    public bool Events { get; set; } = true;

    /// <summary><c>nf_conntrack_expect_max</c>: most expectations. Default: 4 per 256 buckets (4096 with the default buckets).</summary>
    public int ExpectMax { get; set; } = -1;

    /// <summary><c>nf_conntrack_helper</c>: assign helpers automatically by port (the pre-6.0 behaviour). Default false.</summary>
    public bool AutomaticHelperAssignment { get; set; }

    /// <summary><c>nf_conntrack_tcp_loose</c>: pick up TCP connections in the middle. Default true.</summary>
    public bool TcpLoose { get; set; } = true;

    /// <summary><c>nf_conntrack_tcp_be_liberal</c>: only mark out-of-window RSTs invalid. Default false.</summary>
    public bool TcpBeLiberal { get; set; }

    /// <summary><c>nf_conntrack_tcp_ignore_invalid_rst</c>: don't mark out-of-window RSTs invalid. Default false.</summary>
    public bool TcpIgnoreInvalidRst { get; set; }

    /// <summary><c>nf_conntrack_tcp_max_retrans</c>: retransmissions before the retransmission timeout applies. Default 3.</summary>
    public int TcpMaxRetrans { get; set; } = 3;

    /// <summary><c>nf_conntrack_tcp_timeout_syn_sent</c>. Default 120 s.</summary>
    public TimeSpan TcpTimeoutSynSent { get; set; } = TimeSpan.FromSeconds(120);
    /// <summary><c>nf_conntrack_tcp_timeout_syn_recv</c>. Default 60 s.</summary>
    public TimeSpan TcpTimeoutSynRecv { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary><c>nf_conntrack_tcp_timeout_established</c>. Default 5 days.</summary>
    public TimeSpan TcpTimeoutEstablished { get; set; } = TimeSpan.FromSeconds(432000);
    /// <summary><c>nf_conntrack_tcp_timeout_fin_wait</c>. Default 120 s.</summary>
    public TimeSpan TcpTimeoutFinWait { get; set; } = TimeSpan.FromSeconds(120);
    /// <summary><c>nf_conntrack_tcp_timeout_close_wait</c>. Default 60 s.</summary>
    public TimeSpan TcpTimeoutCloseWait { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary><c>nf_conntrack_tcp_timeout_last_ack</c>. Default 30 s.</summary>
    public TimeSpan TcpTimeoutLastAck { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary><c>nf_conntrack_tcp_timeout_time_wait</c>. Default 120 s.</summary>
    public TimeSpan TcpTimeoutTimeWait { get; set; } = TimeSpan.FromSeconds(120);
    /// <summary><c>nf_conntrack_tcp_timeout_close</c>. Default 10 s.</summary>
    public TimeSpan TcpTimeoutClose { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary><c>nf_conntrack_tcp_timeout_max_retrans</c>. Default 300 s.</summary>
    public TimeSpan TcpTimeoutMaxRetrans { get; set; } = TimeSpan.FromSeconds(300);
    /// <summary><c>nf_conntrack_tcp_timeout_unacknowledged</c>. Default 300 s.</summary>
    public TimeSpan TcpTimeoutUnacknowledged { get; set; } = TimeSpan.FromSeconds(300);

    /// <summary><c>nf_conntrack_udp_timeout</c>: UDP before a reply, or a reply within 2 s of creation. Default 30 s.</summary>
    public TimeSpan UdpTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary><c>nf_conntrack_udp_timeout_stream</c>: UDP that saw replies and lived past 2 s. Default 120 s.</summary>
    public TimeSpan UdpTimeoutStream { get; set; } = TimeSpan.FromSeconds(120);
    /// <summary><c>nf_conntrack_icmp_timeout</c>. Default 30 s.</summary>
    public TimeSpan IcmpTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary><c>nf_conntrack_icmpv6_timeout</c>. Default 30 s.</summary>
    public TimeSpan Icmpv6Timeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary><c>nf_conntrack_generic_timeout</c>: protocols without a tracker of their own. Default 600 s.</summary>
    public TimeSpan GenericTimeout { get; set; } = TimeSpan.FromSeconds(600);
    /// <summary><c>nf_conntrack_gre_timeout</c>. Default 30 s.</summary>
    public TimeSpan GreTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary><c>nf_conntrack_gre_timeout_stream</c>. Default 180 s.</summary>
    public TimeSpan GreTimeoutStream { get; set; } = TimeSpan.FromSeconds(180);

    /// <summary><c>nf_conntrack_sctp_timeout_closed</c>. Default 10 s.</summary>
    public TimeSpan SctpTimeoutClosed { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary><c>nf_conntrack_sctp_timeout_cookie_wait</c>. Default 3 s.</summary>
    public TimeSpan SctpTimeoutCookieWait { get; set; } = TimeSpan.FromSeconds(3);
    /// <summary><c>nf_conntrack_sctp_timeout_cookie_echoed</c>. Default 3 s.</summary>
    public TimeSpan SctpTimeoutCookieEchoed { get; set; } = TimeSpan.FromSeconds(3);
    /// <summary><c>nf_conntrack_sctp_timeout_established</c>. Default 210 s.</summary>
    public TimeSpan SctpTimeoutEstablished { get; set; } = TimeSpan.FromSeconds(210);
    /// <summary><c>nf_conntrack_sctp_timeout_shutdown_sent</c>. Default 3 s.</summary>
    public TimeSpan SctpTimeoutShutdownSent { get; set; } = TimeSpan.FromSeconds(3);
    /// <summary><c>nf_conntrack_sctp_timeout_shutdown_recd</c>. Default 3 s.</summary>
    public TimeSpan SctpTimeoutShutdownRecd { get; set; } = TimeSpan.FromSeconds(3);
    /// <summary><c>nf_conntrack_sctp_timeout_shutdown_ack_sent</c>. Default 3 s.</summary>
    public TimeSpan SctpTimeoutShutdownAckSent { get; set; } = TimeSpan.FromSeconds(3);
    /// <summary><c>nf_conntrack_sctp_timeout_heartbeat_sent</c>. Default 30 s.</summary>
    public TimeSpan SctpTimeoutHeartbeatSent { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Reassemble IPv4 and IPv6 fragments before tracking, as the kernel's <c>nf_defrag_ipv4</c> and
    /// <c>nf_defrag_ipv6</c> always do for conntrack. Default true. When false, a non-first fragment is
    /// invalid (it has no layer-4 header) and a first fragment is tracked by its own headers.
    /// </summary>
    public bool Defragmentation { get; set; } = true;

    /// <summary><c>net.ipv4.ipfrag_time</c>: how long an incomplete IPv4 datagram is held. Default 30 s.</summary>
    public TimeSpan Ipv4FragmentTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary><c>net.ipv4.ipfrag_high_thresh</c>: bytes of IPv4 fragments held before new ones are refused. Default 4 MiB.</summary>
    public int Ipv4FragmentHighThreshold { get; set; } = 4 * 1024 * 1024;

    /// <summary><c>net.ipv4.ipfrag_low_thresh</c>. Default 3 MiB.</summary>
    public int Ipv4FragmentLowThreshold { get; set; } = 3 * 1024 * 1024;

    /// <summary>
    /// <c>net.ipv4.ipfrag_max_dist</c>: a datagram whose source sent more than this many other fragments
    /// since its last one is restarted (0 disables the check). Default 64.
    /// </summary>
    public int Ipv4FragmentMaxDistance { get; set; } = 64;

    /// <summary><c>nf_conntrack_frag6_timeout</c>: how long an incomplete IPv6 datagram is held. Default 60 s.</summary>
    public TimeSpan Ipv6FragmentTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary><c>nf_conntrack_frag6_high_thresh</c>. Default 4 MiB.</summary>
    public int Ipv6FragmentHighThreshold { get; set; } = 4 * 1024 * 1024;

    /// <summary><c>nf_conntrack_frag6_low_thresh</c>. Default 3 MiB.</summary>
    public int Ipv6FragmentLowThreshold { get; set; } = 3 * 1024 * 1024;

    /// <summary>
    /// Fixed hash key for reproducible runs (tests, benchmarks). Null (the default) draws a random key per
    /// table, which is what keeps remote hosts from aiming flows at one bucket.
    /// </summary>
    public ulong? HashSeed { get; set; }

    /// <summary>Creates a copy.</summary>
    public ConntrackOptions Clone() => (ConntrackOptions)MemberwiseClone();

    /// <summary>
    /// Sets an option by its kernel sysctl name (<c>nf_conntrack_udp_timeout</c>, with or without a
    /// <c>net.netfilter.</c> prefix). Timeouts are in seconds, booleans 0/1, as in <c>/proc/sys</c>.
    /// </summary>
    /// <exception cref="ArgumentException">Unknown name or a value the kernel would refuse.</exception>
    public void SetSysctl(string name, string value)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);
        string key = name.Trim();
        if (key.StartsWith("net.netfilter.", StringComparison.Ordinal))
        {
            key = key["net.netfilter.".Length..];
        }
        else if (key.StartsWith("net.ipv4.ipfrag_", StringComparison.Ordinal))
        {
            key = key["net.ipv4.".Length..];
        }

        if (!Sysctls.TryGetValue(key, out var setter))
        {
            throw new ArgumentException($"Unknown conntrack sysctl '{name}'. Known: {string.Join(", ", Sysctls.Keys.Order(StringComparer.Ordinal))}.", nameof(name));
        }

        if (!long.TryParse(value.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) || v < 0 || v > int.MaxValue)
        {
            throw new ArgumentException($"Sysctl {key} wants a non-negative integer, got '{value}'.", nameof(value));
        }

        setter(this, v);
    }

    /// <summary>Every sysctl name <see cref="SetSysctl"/> accepts, with its current value (seconds for timeouts).</summary>
    public IEnumerable<KeyValuePair<string, long>> GetSysctls()
    {
        foreach (var (k, _) in Sysctls.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            yield return new KeyValuePair<string, long>(k, Getters[k](this));
        }
    }

    private static long Secs(TimeSpan t) => (long)t.TotalSeconds;

    private static TimeSpan S(long v) => TimeSpan.FromSeconds(v);

    private static readonly Dictionary<string, Action<ConntrackOptions, long>> Sysctls = new(StringComparer.Ordinal)
    {
        ["nf_conntrack_max"] = (o, v) => o.MaxEntries = (int)v,
        ["nf_conntrack_buckets"] = (o, v) => o.Buckets = (int)v,
        ["nf_conntrack_checksum"] = (o, v) => o.Checksum = v != 0,
        ["nf_conntrack_acct"] = (o, v) => o.Accounting = v != 0,
        ["nf_conntrack_timestamp"] = (o, v) => o.Timestamps = v != 0,
        ["nf_conntrack_events"] = (o, v) => o.Events = v != 0,
        ["nf_conntrack_expect_max"] = (o, v) => o.ExpectMax = (int)v,
        ["nf_conntrack_helper"] = (o, v) => o.AutomaticHelperAssignment = v != 0,
        // Logging of invalid packets is the caller's business here; accepted so kernel command lines carry over.
        ["nf_conntrack_log_invalid"] = (_, _) => { },
        ["nf_conntrack_tcp_loose"] = (o, v) => o.TcpLoose = v != 0,
        ["nf_conntrack_tcp_be_liberal"] = (o, v) => o.TcpBeLiberal = v != 0,
        ["nf_conntrack_tcp_ignore_invalid_rst"] = (o, v) => o.TcpIgnoreInvalidRst = v != 0,
        ["nf_conntrack_tcp_max_retrans"] = (o, v) => o.TcpMaxRetrans = (int)v,
        ["nf_conntrack_tcp_timeout_syn_sent"] = (o, v) => o.TcpTimeoutSynSent = S(v),
        ["nf_conntrack_tcp_timeout_syn_recv"] = (o, v) => o.TcpTimeoutSynRecv = S(v),
        ["nf_conntrack_tcp_timeout_established"] = (o, v) => o.TcpTimeoutEstablished = S(v),
        ["nf_conntrack_tcp_timeout_fin_wait"] = (o, v) => o.TcpTimeoutFinWait = S(v),
        ["nf_conntrack_tcp_timeout_close_wait"] = (o, v) => o.TcpTimeoutCloseWait = S(v),
        ["nf_conntrack_tcp_timeout_last_ack"] = (o, v) => o.TcpTimeoutLastAck = S(v),
        ["nf_conntrack_tcp_timeout_time_wait"] = (o, v) => o.TcpTimeoutTimeWait = S(v),
        ["nf_conntrack_tcp_timeout_close"] = (o, v) => o.TcpTimeoutClose = S(v),
        ["nf_conntrack_tcp_timeout_max_retrans"] = (o, v) => o.TcpTimeoutMaxRetrans = S(v),
        ["nf_conntrack_tcp_timeout_unacknowledged"] = (o, v) => o.TcpTimeoutUnacknowledged = S(v),
        ["nf_conntrack_udp_timeout"] = (o, v) => o.UdpTimeout = S(v),
        ["nf_conntrack_udp_timeout_stream"] = (o, v) => o.UdpTimeoutStream = S(v),
        ["nf_conntrack_icmp_timeout"] = (o, v) => o.IcmpTimeout = S(v),
        ["nf_conntrack_icmpv6_timeout"] = (o, v) => o.Icmpv6Timeout = S(v),
        ["nf_conntrack_generic_timeout"] = (o, v) => o.GenericTimeout = S(v),
        ["nf_conntrack_gre_timeout"] = (o, v) => o.GreTimeout = S(v),
        ["nf_conntrack_gre_timeout_stream"] = (o, v) => o.GreTimeoutStream = S(v),
        ["nf_conntrack_sctp_timeout_closed"] = (o, v) => o.SctpTimeoutClosed = S(v),
        ["nf_conntrack_sctp_timeout_cookie_wait"] = (o, v) => o.SctpTimeoutCookieWait = S(v),
        ["nf_conntrack_sctp_timeout_cookie_echoed"] = (o, v) => o.SctpTimeoutCookieEchoed = S(v),
        ["nf_conntrack_sctp_timeout_established"] = (o, v) => o.SctpTimeoutEstablished = S(v),
        ["nf_conntrack_sctp_timeout_shutdown_sent"] = (o, v) => o.SctpTimeoutShutdownSent = S(v),
        ["nf_conntrack_sctp_timeout_shutdown_recd"] = (o, v) => o.SctpTimeoutShutdownRecd = S(v),
        ["nf_conntrack_sctp_timeout_shutdown_ack_sent"] = (o, v) => o.SctpTimeoutShutdownAckSent = S(v),
        ["nf_conntrack_sctp_timeout_heartbeat_sent"] = (o, v) => o.SctpTimeoutHeartbeatSent = S(v),
        ["nf_conntrack_frag6_timeout"] = (o, v) => o.Ipv6FragmentTimeout = S(v),
        ["nf_conntrack_frag6_high_thresh"] = (o, v) => o.Ipv6FragmentHighThreshold = (int)v,
        ["nf_conntrack_frag6_low_thresh"] = (o, v) => o.Ipv6FragmentLowThreshold = (int)v,
        ["ipfrag_time"] = (o, v) => o.Ipv4FragmentTimeout = S(v),
        ["ipfrag_high_thresh"] = (o, v) => o.Ipv4FragmentHighThreshold = (int)v,
        ["ipfrag_low_thresh"] = (o, v) => o.Ipv4FragmentLowThreshold = (int)v,
        ["ipfrag_max_dist"] = (o, v) => o.Ipv4FragmentMaxDistance = (int)v,
    };

    private static readonly Dictionary<string, Func<ConntrackOptions, long>> Getters = new(StringComparer.Ordinal)
    {
        ["nf_conntrack_max"] = o => o.MaxEntries,
        ["nf_conntrack_buckets"] = o => o.Buckets,
        ["nf_conntrack_checksum"] = o => o.Checksum ? 1 : 0,
        ["nf_conntrack_acct"] = o => o.Accounting ? 1 : 0,
        ["nf_conntrack_timestamp"] = o => o.Timestamps ? 1 : 0,
        ["nf_conntrack_events"] = o => o.Events ? 1 : 0,
        ["nf_conntrack_expect_max"] = o => o.EffectiveExpectMax,
        ["nf_conntrack_helper"] = o => o.AutomaticHelperAssignment ? 1 : 0,
        ["nf_conntrack_log_invalid"] = _ => 0,
        ["nf_conntrack_tcp_loose"] = o => o.TcpLoose ? 1 : 0,
        ["nf_conntrack_tcp_be_liberal"] = o => o.TcpBeLiberal ? 1 : 0,
        ["nf_conntrack_tcp_ignore_invalid_rst"] = o => o.TcpIgnoreInvalidRst ? 1 : 0,
        ["nf_conntrack_tcp_max_retrans"] = o => o.TcpMaxRetrans,
        ["nf_conntrack_tcp_timeout_syn_sent"] = o => Secs(o.TcpTimeoutSynSent),
        ["nf_conntrack_tcp_timeout_syn_recv"] = o => Secs(o.TcpTimeoutSynRecv),
        ["nf_conntrack_tcp_timeout_established"] = o => Secs(o.TcpTimeoutEstablished),
        ["nf_conntrack_tcp_timeout_fin_wait"] = o => Secs(o.TcpTimeoutFinWait),
        ["nf_conntrack_tcp_timeout_close_wait"] = o => Secs(o.TcpTimeoutCloseWait),
        ["nf_conntrack_tcp_timeout_last_ack"] = o => Secs(o.TcpTimeoutLastAck),
        ["nf_conntrack_tcp_timeout_time_wait"] = o => Secs(o.TcpTimeoutTimeWait),
        ["nf_conntrack_tcp_timeout_close"] = o => Secs(o.TcpTimeoutClose),
        ["nf_conntrack_tcp_timeout_max_retrans"] = o => Secs(o.TcpTimeoutMaxRetrans),
        ["nf_conntrack_tcp_timeout_unacknowledged"] = o => Secs(o.TcpTimeoutUnacknowledged),
        ["nf_conntrack_udp_timeout"] = o => Secs(o.UdpTimeout),
        ["nf_conntrack_udp_timeout_stream"] = o => Secs(o.UdpTimeoutStream),
        ["nf_conntrack_icmp_timeout"] = o => Secs(o.IcmpTimeout),
        ["nf_conntrack_icmpv6_timeout"] = o => Secs(o.Icmpv6Timeout),
        ["nf_conntrack_generic_timeout"] = o => Secs(o.GenericTimeout),
        ["nf_conntrack_gre_timeout"] = o => Secs(o.GreTimeout),
        ["nf_conntrack_gre_timeout_stream"] = o => Secs(o.GreTimeoutStream),
        ["nf_conntrack_sctp_timeout_closed"] = o => Secs(o.SctpTimeoutClosed),
        ["nf_conntrack_sctp_timeout_cookie_wait"] = o => Secs(o.SctpTimeoutCookieWait),
        ["nf_conntrack_sctp_timeout_cookie_echoed"] = o => Secs(o.SctpTimeoutCookieEchoed),
        ["nf_conntrack_sctp_timeout_established"] = o => Secs(o.SctpTimeoutEstablished),
        ["nf_conntrack_sctp_timeout_shutdown_sent"] = o => Secs(o.SctpTimeoutShutdownSent),
        ["nf_conntrack_sctp_timeout_shutdown_recd"] = o => Secs(o.SctpTimeoutShutdownRecd),
        ["nf_conntrack_sctp_timeout_shutdown_ack_sent"] = o => Secs(o.SctpTimeoutShutdownAckSent),
        ["nf_conntrack_sctp_timeout_heartbeat_sent"] = o => Secs(o.SctpTimeoutHeartbeatSent),
        ["nf_conntrack_frag6_timeout"] = o => Secs(o.Ipv6FragmentTimeout),
        ["nf_conntrack_frag6_high_thresh"] = o => o.Ipv6FragmentHighThreshold,
        ["nf_conntrack_frag6_low_thresh"] = o => o.Ipv6FragmentLowThreshold,
        ["ipfrag_time"] = o => Secs(o.Ipv4FragmentTimeout),
        ["ipfrag_high_thresh"] = o => o.Ipv4FragmentHighThreshold,
        ["ipfrag_low_thresh"] = o => o.Ipv4FragmentLowThreshold,
        ["ipfrag_max_dist"] = o => o.Ipv4FragmentMaxDistance,
    };

    /// <summary>The expectation limit in force: <see cref="ExpectMax"/>, or the kernel's default of 4 per 256 buckets.</summary>
    public int EffectiveExpectMax => ExpectMax >= 0 ? ExpectMax : Math.Max(1, Buckets / 256) * 4;

    internal void Validate()
    {
        if (MaxEntries < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxEntries), MaxEntries, "nf_conntrack_max must be at least 1 (the engine needs a bound to preallocate).");
        }

        if (MaxEntries > (1 << 28))
        {
            throw new ArgumentOutOfRangeException(nameof(MaxEntries), MaxEntries, "At most 268435456 entries per table.");
        }

        if (Buckets < 1 || Buckets > (1 << 28))
        {
            throw new ArgumentOutOfRangeException(nameof(Buckets), Buckets, "nf_conntrack_buckets must be between 1 and 268435456.");
        }

        if (Ipv4FragmentLowThreshold > Ipv4FragmentHighThreshold || Ipv6FragmentLowThreshold > Ipv6FragmentHighThreshold)
        {
            throw new ArgumentException("A fragment low threshold may not exceed its high threshold.");
        }

        if (TcpMaxRetrans < 0 || TcpMaxRetrans > 255)
        {
            throw new ArgumentOutOfRangeException(nameof(TcpMaxRetrans), TcpMaxRetrans, "Between 0 and 255.");
        }
    }
}
