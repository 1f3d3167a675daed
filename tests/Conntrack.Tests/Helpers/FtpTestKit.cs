using System.Buffers.Binary;
using System.Text;
using Conntrack.Expectations;
using Conntrack.Helpers;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Helpers;

/// <summary>TCP segments with payload bytes, and a control connection that keeps both sides' sequence numbers.</summary>
public static class FtpTestKit
{
    public const string Client = "192.0.2.10";
    public const string Server = "198.51.100.20";
    public const string Client6 = "2001:db8:1::10";
    public const string Server6 = "2001:db8:2::20";

    /// <summary>A TCP segment (20-byte header, no options) carrying <paramref name="payload"/>.</summary>
    public static byte[] TcpWithPayload(string src, string dst, ushort sport, ushort dport, byte flags, uint seq, uint ack, ReadOnlySpan<byte> payload)
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

    /// <summary>Latin-1 bytes of a string (so "\u00ff" is byte 0xFF and "\0" a NUL).</summary>
    public static byte[] Bytes(string s) => Encoding.Latin1.GetBytes(s);

    /// <summary>
    /// A table with the built-in helpers, FTP on 21 and IRC on 6667; the FTP and IRC helpers are wrapped in
    /// <see cref="Recorder"/>s so that tests can read their drop messages.
    /// </summary>
    public static TestTable NewTable(ConntrackOptions? options = null) => NewTable(out _, out _, options);

    public static TestTable NewTable(out Recorder ftp, out Recorder irc, ConntrackOptions? options = null)
    {
        var t = new TestTable(options);
        ftp = new Recorder(new FtpHelper());
        irc = new Recorder(new IrcHelper());
        t.Table.Helpers.Register(ftp);
        t.Table.Helpers.Register(irc);
        t.Table.Helpers.RegisterBuiltIns();
        t.Table.Helpers.Assign("ftp", IpProtocol.Tcp, 21);
        t.Table.Helpers.Assign("irc", IpProtocol.Tcp, 6667);
        return t;
    }

    public static List<ExpectationInfo> Pending(TestTable t) => t.Table.SnapshotExpectations(t.Now);

    /// <summary>The destination ports of the expectations, sorted.</summary>
    public static List<int> PendingPorts(TestTable t) =>
        [.. t.Table.SnapshotExpectations(t.Now).Select(e => (int)e.Tuple.DestinationPort).Order()];

    /// <summary>A helper that runs another one and remembers the last drop message.</summary>
    public sealed class Recorder(ConntrackHelper inner) : RecordingHelper(inner)
    {
    }

    /// <summary>
    /// A TCP connection from the client to the server through the table. <see cref="Handshake"/> opens it;
    /// <see cref="C(string)"/> and <see cref="S(string)"/> send data at each side's next sequence number and
    /// advance it; <see cref="CAt"/> and <see cref="SAt"/> send at an explicit one.
    /// </summary>
    public sealed class Session(TestTable t, string client = Client, string server = Server, ushort clientPort = 40100, ushort serverPort = 21)
    {
        public TestTable Table { get; } = t;

        public string ClientAddress { get; } = client;

        public string ServerAddress { get; } = server;

        public ushort ClientPort { get; } = clientPort;

        public ushort ServerPort { get; } = serverPort;

        public uint CNext { get; set; } = 1000;

        public uint SNext { get; set; } = 5000;

        /// <summary>The verdict of the last segment sent (Drop when the helper dropped it).</summary>
        public Verdict LastVerdict => Table.LastVerdict;

        public Session Handshake()
        {
            Table.Send(TcpWithPayload(ClientAddress, ServerAddress, ClientPort, ServerPort, PacketBuilder.FlagSyn, CNext, 0, []));
            CNext++;
            Table.Send(TcpWithPayload(ServerAddress, ClientAddress, ServerPort, ClientPort, PacketBuilder.FlagSyn | PacketBuilder.FlagAck, SNext, CNext, []));
            SNext++;
            Table.Send(TcpWithPayload(ClientAddress, ServerAddress, ClientPort, ServerPort, PacketBuilder.FlagAck, CNext, SNext, []));
            return this;
        }

        /// <summary>Handshake, then a greeting and a command so that both directions are at a line start.</summary>
        public Session Open()
        {
            Handshake();
            S("220 Welcome\r\n");
            C("USER anonymous\r\n");
            return this;
        }

        public PacketState C(string text) => C(Bytes(text));

        public PacketState S(string text) => S(Bytes(text));

        public PacketState C(byte[] payload)
        {
            var st = CAt(CNext, payload);
            CNext += (uint)payload.Length;
            return st;
        }

        public PacketState S(byte[] payload)
        {
            var st = SAt(SNext, payload);
            SNext += (uint)payload.Length;
            return st;
        }

        public PacketState CAt(uint seq, byte[] payload) =>
            Table.Send(TcpWithPayload(ClientAddress, ServerAddress, ClientPort, ServerPort, PacketBuilder.FlagAck | PacketBuilder.FlagPsh, seq, SNext, payload));

        public PacketState SAt(uint seq, byte[] payload) =>
            Table.Send(TcpWithPayload(ServerAddress, ClientAddress, ServerPort, ClientPort, PacketBuilder.FlagAck | PacketBuilder.FlagPsh, seq, CNext, payload));

        /// <summary>The first packet (a SYN) of a connection, e.g. a data connection.</summary>
        public PacketState Syn(string src, ushort sport, string dst, ushort dport) =>
            Table.Send(TcpWithPayload(src, dst, sport, dport, PacketBuilder.FlagSyn, 77_000, 0, []));
    }
}
