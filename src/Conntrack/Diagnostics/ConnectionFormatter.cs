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

    /// <summary>A line of <c>/proc/net/nf_conntrack</c> (ct_seq_show), without the trailing newline.</summary>
    public static void WriteProcLine(TextWriter writer, in ConnectionInfo connection, GreTimeouts gre = default)
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
            writer.Write(string.Create(CultureInfo.InvariantCulture, $"timeout={gre.Timeout}, stream_timeout={gre.StreamTimeout} "));
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
