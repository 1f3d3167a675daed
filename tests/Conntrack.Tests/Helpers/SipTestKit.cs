using System.Buffers.Binary;
using System.Text;
using Conntrack.Diagnostics;
using Conntrack.Expectations;
using Conntrack.Helpers;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Helpers;

/// <summary>
/// SIP messages, SDP bodies and UDP/TCP packets carrying them, and a table with the SIP helpers assigned to
/// UDP and TCP port 5060 (wrapped so that tests can read the drop messages).
/// </summary>
public static class SipTestKit
{
    public const string Client = "192.0.2.10";
    public const string Server = "198.51.100.20";
    public const string Client6 = "2001:db8:1::10";
    public const string Server6 = "2001:db8:2::20";
    public const long Second = TestTable.Second;

    /// <summary>A table with the built-in helpers and SIP on UDP and TCP 5060; the two SIP helpers are recorded.</summary>
    public static TestTable NewTable(out SipRecorder udp, out SipRecorder tcp, ConntrackOptions? options = null)
    {
        var t = new TestTable(options);
        udp = new SipRecorder(new SipHelper(IpProtocol.Udp));
        tcp = new SipRecorder(new SipHelper(IpProtocol.Tcp));
        t.Table.Helpers.Register(udp);
        t.Table.Helpers.Register(tcp);
        t.Table.Helpers.RegisterBuiltIns();
        t.Table.Helpers.Assign("sip", IpProtocol.Udp, 5060);
        t.Table.Helpers.Assign("sip", IpProtocol.Tcp, 5060);
        return t;
    }

    public static TestTable NewTable(out SipRecorder udp) => NewTable(out udp, out _);

    /// <summary>Latin-1 bytes ("\u00ff" is 0xFF, "\0" a NUL).</summary>
    public static byte[] Bytes(string s) => Encoding.Latin1.GetBytes(s);

    /// <summary>Line breaks written as "\n" become CRLF.</summary>
    public static string Crlf(string s) => s.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", "\r\n", StringComparison.Ordinal);

    /// <summary>An SDP body: session connection address (unless <paramref name="sessionAddress"/> is false) and media lines.</summary>
    public static string Sdp(string address, bool sessionAddress, params string[] media)
    {
        string family = address.Contains(':', StringComparison.Ordinal) ? "IP6" : "IP4";
        var sb = new StringBuilder();
        sb.Append("v=0\n").Append("o=- 2890844526 2890844526 IN ").Append(family).Append(' ').Append(address).Append('\n').Append("s=-\n");
        if (sessionAddress)
        {
            sb.Append("c=IN ").Append(family).Append(' ').Append(address).Append('\n');
        }

        sb.Append("t=0 0\n");
        foreach (var m in media)
        {
            sb.Append(m).Append('\n');
        }

        return Crlf(sb.ToString());
    }

    public static string Sdp(string address, params string[] media) => Sdp(address, true, media);

    /// <summary>A message: first line, headers, Content-Length (unless null) and body.</summary>
    public static string Message(string firstLine, IEnumerable<string> headers, string body = "", bool contentLength = true)
    {
        var sb = new StringBuilder(firstLine).Append('\n');
        foreach (var h in headers)
        {
            sb.Append(h).Append('\n');
        }

        if (contentLength)
        {
            sb.Append("Content-Length: ").Append(Encoding.Latin1.GetByteCount(body)).Append('\n');
        }

        return Crlf(sb.Append('\n').ToString()) + body;
    }

    private static string Host(string a) => a.Contains(':', StringComparison.Ordinal) ? "[" + a + "]" : a;

    /// <summary>A request from <paramref name="from"/> to <paramref name="to"/> with the usual headers.</summary>
    public static string Request(string method, string from, string to, uint cseq, string body = "", params string[] extra)
    {
        var headers = new List<string>
        {
            $"Via: SIP/2.0/UDP {Host(from)}:5060;branch=z9hG4bK{cseq}",
            "Max-Forwards: 70",
            $"From: <sip:alice@{Host(from)}>;tag=1928301774",
            $"To: <sip:bob@{Host(to)}>",
            $"Call-ID: a84b4c76e66710@{Host(from)}",
            $"CSeq: {cseq} {method}",
        };
        headers.AddRange(extra);
        if (body.Length > 0)
        {
            headers.Add("Content-Type: application/sdp");
        }

        return Message($"{method} sip:bob@{Host(to)} SIP/2.0", headers, body);
    }

    /// <summary>A response to <paramref name="method"/> number <paramref name="cseq"/>.</summary>
    public static string Response(int code, string reason, string method, uint cseq, string body = "", params string[] extra)
    {
        var headers = new List<string>
        {
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1",
            "From: <sip:alice@192.0.2.10>;tag=1928301774",
            "To: <sip:bob@198.51.100.20>;tag=a6c85cf",
            "Call-ID: a84b4c76e66710@192.0.2.10",
            $"CSeq: {cseq} {method}",
        };
        headers.AddRange(extra);
        if (body.Length > 0)
        {
            headers.Add("Content-Type: application/sdp");
        }

        return Message($"SIP/2.0 {code} {reason}", headers, body);
    }

    public static byte[] Udp(string src, string dst, ushort sport, ushort dport, string payload) => Udp(src, dst, sport, dport, Bytes(payload));

    public static byte[] Udp(string src, string dst, ushort sport, ushort dport, ReadOnlySpan<byte> payload)
    {
        var l4 = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)l4.Length);
        payload.CopyTo(l4.AsSpan(8));
        return PacketBuilder.Ip(src, dst, IpProtocol.Udp, l4, checksum: true);
    }

    /// <summary>A SIP datagram between port 5060 and 5060.</summary>
    public static byte[] Sip(string src, string dst, string payload) => Udp(src, dst, 5060, 5060, payload);

    public static byte[] Tcp(string src, string dst, ushort sport, ushort dport, byte flags, uint seq, uint ack, ReadOnlySpan<byte> payload)
    {
        var l4 = new byte[20 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(8), ack);
        l4[12] = 5 << 4;
        l4[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(14), 65535);
        payload.CopyTo(l4.AsSpan(20));
        return PacketBuilder.Ip(src, dst, IpProtocol.Tcp, l4, checksum: true);
    }

    public static List<ExpectationInfo> Expectations(this TestTable t) => t.Table.SnapshotExpectations(t.Now);

    /// <summary>The expectations as the kernel oracle prints them, sorted.</summary>
    public static List<string> ExpectLines(this TestTable t)
    {
        var lines = new List<string>();
        foreach (var e in t.Table.SnapshotExpectations(t.Now))
        {
            using var w = new StringWriter();
            ConnectionFormatter.WriteOracleExpectLine(w, e);
            lines.Add(w.ToString().TrimEnd('\n'));
        }

        lines.Sort(StringComparer.Ordinal);
        return lines;
    }

    /// <summary>"class:port" of every expectation, sorted by port.</summary>
    public static List<string> Expected(this TestTable t) =>
        [.. t.Table.SnapshotExpectations(t.Now).OrderBy(e => e.Tuple.DestinationPort).ThenBy(e => e.Class)
            .Select(e => $"{e.PolicyName}:{e.Tuple.DestinationPort}")];

    /// <summary>The table as the oracle prints it with helpers, sorted.</summary>
    public static List<string> TableLines(this TestTable t) =>
        [.. t.Table.Snapshot(t.Now).Select(c => ConnectionFormatter.ToOracleLine(c, new OracleLineOptions(Helper: true))).Order(StringComparer.Ordinal)];

    /// <summary>A helper that runs another one and remembers the last drop message.</summary>
    public sealed class SipRecorder(ConntrackHelper inner) : RecordingHelper(inner)
    {
    }

    /// <summary>A SIP/TCP connection through the table keeping both sides' sequence numbers.</summary>
    public sealed class TcpSession(TestTable t, string client = Client, string server = Server, ushort clientPort = 40100, ushort serverPort = 5060)
    {
        public uint CNext { get; private set; } = 1000;

        public uint SNext { get; private set; } = 5000;

        public Verdict LastVerdict => t.LastVerdict;

        public TcpSession Handshake()
        {
            t.Send(Tcp(client, server, clientPort, serverPort, PacketBuilder.FlagSyn, CNext, 0, []));
            CNext++;
            t.Send(Tcp(server, client, serverPort, clientPort, PacketBuilder.FlagSyn | PacketBuilder.FlagAck, SNext, CNext, []));
            SNext++;
            t.Send(Tcp(client, server, clientPort, serverPort, PacketBuilder.FlagAck, CNext, SNext, []));
            return this;
        }

        public PacketState C(string text)
        {
            var payload = Bytes(text);
            var st = t.Send(Tcp(client, server, clientPort, serverPort, PacketBuilder.FlagAck | PacketBuilder.FlagPsh, CNext, SNext, payload));
            CNext += (uint)payload.Length;
            return st;
        }

        public PacketState S(string text)
        {
            var payload = Bytes(text);
            var st = t.Send(Tcp(server, client, serverPort, clientPort, PacketBuilder.FlagAck | PacketBuilder.FlagPsh, SNext, CNext, payload));
            SNext += (uint)payload.Length;
            return st;
        }
    }
}
