using System.Globalization;
using Conntrack.Tuples;

namespace Conntrack.Diagnostics;

/// <summary>Which optional fields an oracle-format table line carries (the oracle's command-line options).</summary>
public readonly record struct OracleLineOptions(bool Helper = false, bool Accounting = false, bool Timeouts = false);

/// <summary>
/// Writes connections as the kernel shows them: <c>/proc/net/nf_conntrack</c> lines, and the normalised
/// table lines of the project's kernel oracle (<c>kernel-ct-replay</c>), which compress IPv6 addresses, move
/// <c>[UNREPLIED]</c> after the tuples and leave out the timeout and <c>use=</c>.
/// </summary>
public static class ConnectionFormatter
{
    private const long NsPerSecond = 1_000_000_000L;

    /// <summary>
    /// <c>ipv4 udp 17 - src=.. dst=.. sport=.. dport=.. src=.. dst=.. sport=.. dport=.. [UNREPLIED] [ASSURED] mark=0 zone=0</c>
    /// (then <c>helper=</c>, the counters and <c>timeout=</c> as <paramref name="options"/> asks).
    /// </summary>
    public static void WriteOracleLine(TextWriter writer, in ConnectionInfo connection, OracleLineOptions options = default)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(connection.IsIpv6 ? "ipv6 " : "ipv4 ");
        writer.Write(connection.ProtocolName);
        writer.Write(' ');
        writer.Write(connection.Protocol.ToString(CultureInfo.InvariantCulture));
        writer.Write(' ');
        writer.Write(connection.StateName ?? "-");
        writer.Write(' ');
        WriteTuple(writer, connection.Original, compressIpv6: true);
        WriteTuple(writer, connection.Reply, compressIpv6: true);
        if ((connection.Status & ConnectionStatus.SeenReply) == 0)
        {
            writer.Write("[UNREPLIED] ");
        }

        if ((connection.Status & ConnectionStatus.Assured) != 0)
        {
            writer.Write("[ASSURED] ");
        }

        writer.Write("mark=");
        writer.Write(connection.Mark.ToString(CultureInfo.InvariantCulture));
        writer.Write(" zone=");
        writer.Write(connection.Zone.ToString(CultureInfo.InvariantCulture));
        if (options.Helper && connection.HelperName is { } helper)
        {
            writer.Write(" helper=");
            writer.Write(helper);
        }

        if (options.Accounting && connection.Accounting is { } a)
        {
            writer.Write(" orig_packets=");
            writer.Write(a.OriginalPackets.ToString(CultureInfo.InvariantCulture));
            writer.Write(" orig_bytes=");
            writer.Write(a.OriginalBytes.ToString(CultureInfo.InvariantCulture));
            writer.Write(" reply_packets=");
            writer.Write(a.ReplyPackets.ToString(CultureInfo.InvariantCulture));
            writer.Write(" reply_bytes=");
            writer.Write(a.ReplyBytes.ToString(CultureInfo.InvariantCulture));
        }

        if (options.Timeouts)
        {
            writer.Write(" timeout=");
            writer.Write((connection.RemainingNs / NsPerSecond).ToString(CultureInfo.InvariantCulture));
        }
    }

    /// <summary>The oracle-format line as a string.</summary>
    public static string ToOracleLine(in ConnectionInfo connection, OracleLineOptions options = default)
    {
        var sw = new StringWriter(CultureInfo.InvariantCulture);
        WriteOracleLine(sw, connection, options);
        return sw.ToString();
    }

    /// <summary>
    /// An expectation as the oracle prints it: <c>ipv4 tcp 6 src=.. dst=.. sport=0 dport=50001 mask-src=..
    /// mask-dst=.. mask-sport=0 mask-dport=65535 master-src=.. master-dst=.. master-sport=.. master-dport=..
    /// [flags] class=0 helper=ftp</c> (<c>helper=sip/audio</c> for named policies; <c>timeout=</c> on request).
    /// </summary>
    public static void WriteOracleExpectLine(TextWriter writer, in Expectations.ExpectationInfo e, bool timeouts = false)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var t = e.Tuple;
        bool v6 = t.IsIpv6;
        writer.Write(v6 ? "ipv6 " : "ipv4 ");
        writer.Write(L4Name(t.Protocol));
        writer.Write(' ');
        writer.Write(t.Protocol.ToString(CultureInfo.InvariantCulture));
        writer.Write(' ');
        WriteTuple(writer, t, compressIpv6: true);
        writer.Write("mask-src=");
        WriteAddress(writer, e.MaskSource, v6, compress: true);
        writer.Write(" mask-dst=");
        writer.Write(v6 ? "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" : "255.255.255.255");
        writer.Write(string.Create(CultureInfo.InvariantCulture, $" mask-sport={e.MaskSourcePort} mask-dport=65535 "));
        writer.Write("master-src=");
        WriteAddress(writer, e.Master.SourceAddress, v6, compress: true);
        writer.Write(" master-dst=");
        WriteAddress(writer, e.Master.DestinationAddress, v6, compress: true);
        writer.Write(string.Create(CultureInfo.InvariantCulture, $" master-sport={e.Master.SourcePort} master-dport={e.Master.DestinationPort} "));
        if (e.Flags != Expectations.ExpectationFlags.None)
        {
            if ((e.Flags & Expectations.ExpectationFlags.Permanent) != 0)
            {
                writer.Write("[PERMANENT] ");
            }

            if ((e.Flags & Expectations.ExpectationFlags.Inactive) != 0)
            {
                writer.Write("[INACTIVE] ");
            }

            if ((e.Flags & Expectations.ExpectationFlags.Userspace) != 0)
            {
                writer.Write("[USERSPACE] ");
            }
        }

        writer.Write(string.Create(CultureInfo.InvariantCulture, $"class={e.Class} helper={e.HelperName}"));
        if (!string.IsNullOrEmpty(e.PolicyName))
        {
            writer.Write('/');
            writer.Write(e.PolicyName);
        }

        if (timeouts)
        {
            writer.Write(string.Create(CultureInfo.InvariantCulture, $" timeout={Math.Max(0, e.RemainingNs / NsPerSecond)}"));
        }
    }

    /// <summary>
    /// An event as <c>conntrack -E</c> prints it, e.g.
    /// <c>    [NEW] tcp      6 120 SYN_SENT src=.. dst=.. sport=.. dport=.. [UNREPLIED] src=.. dst=.. sport=.. dport=..</c>;
    /// expectation events as <c>[NEW]</c>/<c>[DESTROY]</c> followed by the oracle's expectation line.
    /// </summary>
    public static void WriteEventLine(TextWriter writer, in Events.ConntrackEvent e)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(("[" + e.Label + "]").PadLeft(9));
        writer.Write(' ');
        if (e.IsExpectation)
        {
            WriteOracleExpectLine(writer, e.Expectation, timeouts: true);
            return;
        }

        var c = e.Connection;
        writer.Write(c.ProtocolName.PadRight(8));
        writer.Write(' ');
        writer.Write(c.Protocol.ToString(CultureInfo.InvariantCulture));
        writer.Write(' ');
        writer.Write(Math.Max(0, c.RemainingNs / NsPerSecond).ToString(CultureInfo.InvariantCulture));
        writer.Write(' ');
        if (c.StateName is { } state)
        {
            writer.Write(state);
            writer.Write(' ');
        }

        WriteTuple(writer, c.Original, compressIpv6: true);
        if ((c.Status & ConnectionStatus.SeenReply) == 0)
        {
            writer.Write("[UNREPLIED] ");
        }

        WriteTuple(writer, c.Reply, compressIpv6: true);
        if ((c.Status & ConnectionStatus.Assured) != 0)
        {
            writer.Write("[ASSURED] ");
        }

        if (c.Mark != 0)
        {
            writer.Write(string.Create(CultureInfo.InvariantCulture, $"mark={c.Mark} "));
        }

        if (c.Zone != 0)
        {
            writer.Write(string.Create(CultureInfo.InvariantCulture, $"zone={c.Zone} "));
        }

        if (c.HelperName is { } helper)
        {
            writer.Write("helper=");
            writer.Write(helper);
        }
    }

    private static string L4Name(byte protocol) => protocol switch
    {
        IpProtocol.Icmp => "icmp",
        IpProtocol.Tcp => "tcp",
        IpProtocol.Udp => "udp",
        IpProtocol.Gre => "gre",
        IpProtocol.Sctp => "sctp",
        IpProtocol.UdpLite => "udplite",
        IpProtocol.Icmpv6 => "icmpv6",
        _ => "unknown",
    };

    /// <summary>A line of <c>/proc/net/nf_conntrack</c> (ct_seq_show), without the trailing newline.</summary>
    public static void WriteProcLine(TextWriter writer, in ConnectionInfo connection, GreTimeouts? gre = null)
    {
        ArgumentNullException.ThrowIfNull(writer);
        bool v6 = connection.IsIpv6;
        writer.Write((v6 ? "ipv6" : "ipv4").PadRight(8));
        writer.Write(v6 ? " 10 " : " 2 ");
        writer.Write(connection.ProtocolName.PadRight(8));
        writer.Write(' ');
        writer.Write(connection.Protocol.ToString(CultureInfo.InvariantCulture));
        writer.Write(' ');
        writer.Write((connection.RemainingNs / NsPerSecond).ToString(CultureInfo.InvariantCulture));
        writer.Write(' ');
        if (connection.Protocol == IpProtocol.Gre)
        {
            var g = gre ?? new GreTimeouts(30, 180);
            writer.Write(string.Create(CultureInfo.InvariantCulture, $"timeout={g.Timeout}, stream_timeout={g.StreamTimeout} "));
        }

        if (connection.StateName is { } state)
        {
            writer.Write(state);
            writer.Write(' ');
        }

        WriteTuple(writer, connection.Original, compressIpv6: false);
        if (connection.Accounting is { } a)
        {
            writer.Write(string.Create(CultureInfo.InvariantCulture, $"packets={a.OriginalPackets} bytes={a.OriginalBytes} "));
        }

        if ((connection.Status & ConnectionStatus.SeenReply) == 0)
        {
            writer.Write("[UNREPLIED] ");
        }

        WriteTuple(writer, connection.Reply, compressIpv6: false);
        if (connection.Accounting is { } r)
        {
            writer.Write(string.Create(CultureInfo.InvariantCulture, $"packets={r.ReplyPackets} bytes={r.ReplyBytes} "));
        }

        if ((connection.Status & ConnectionStatus.Assured) != 0)
        {
            writer.Write("[ASSURED] ");
        }

        writer.Write(string.Create(CultureInfo.InvariantCulture, $"mark={connection.Mark} zone={connection.Zone} "));
        if (connection.Timestamps is { } ts)
        {
            // delta-time: seconds since the connection started (relative to the snapshot's time).
            long now = connection.Deadline - connection.RemainingNs;
            long delta = Math.Max(0, now - ts.Start) / NsPerSecond;
            writer.Write(string.Create(CultureInfo.InvariantCulture, $"delta-time={delta} "));
        }

        // use=: the kernel shows the reference count, 2 for an idle entry (the table's and the reader's).
        writer.Write("use=2");
    }

    /// <summary>
    /// One tuple as the kernel's print_tuple(): <c>src= dst=</c> then <c>sport= dport=</c>, <c>type= code= id=</c> or
    /// <c>srckey=0x.. dstkey=0x..</c>; each field followed by a space.
    /// </summary>
    public static void WriteTuple(TextWriter writer, in ConntrackTuple tuple, bool compressIpv6)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write("src=");
        WriteAddress(writer, tuple.SourceAddress, tuple.IsIpv6, compressIpv6);
        writer.Write(" dst=");
        WriteAddress(writer, tuple.DestinationAddress, tuple.IsIpv6, compressIpv6);
        writer.Write(' ');
        switch (tuple.Protocol)
        {
            case IpProtocol.Tcp:
            case IpProtocol.Udp:
            case IpProtocol.UdpLite:
            case IpProtocol.Sctp:
                writer.Write(string.Create(CultureInfo.InvariantCulture, $"sport={tuple.SourcePort} dport={tuple.DestinationPort} "));
                break;
            case IpProtocol.Icmp:
            case IpProtocol.Icmpv6:
                writer.Write(string.Create(CultureInfo.InvariantCulture, $"type={tuple.IcmpType} code={tuple.IcmpCode} id={tuple.SourcePort} "));
                break;
            case IpProtocol.Gre:
                writer.Write(string.Create(CultureInfo.InvariantCulture, $"srckey=0x{tuple.SourcePort:x} dstkey=0x{tuple.DestinationPort:x} "));
                break;
        }
    }

    private static void WriteAddress(TextWriter writer, InetAddress address, bool ipv6, bool compress)
    {
        if (!ipv6 || compress)
        {
            address.WriteTo(writer, ipv6);
            return;
        }

        // %pI6: eight groups of four hex digits.
        Span<byte> b = stackalloc byte[16];
        address.CopyTo(b, true);
        Span<char> buf = stackalloc char[39];
        int n = 0;
        for (int i = 0; i < 16; i += 2)
        {
            if (i > 0)
            {
                buf[n++] = ':';
            }

            ((b[i] << 8) | b[i + 1]).TryFormat(buf[n..], out int w, "x4", CultureInfo.InvariantCulture);
            n += w;
        }

        writer.Write(buf[..n]);
    }
}

/// <summary>GRE's timeouts in seconds as /proc shows them (<c>timeout=30, stream_timeout=180</c>).</summary>
public readonly record struct GreTimeouts(int Timeout = 30, int StreamTimeout = 180);
