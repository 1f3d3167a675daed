using System.Buffers.Binary;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Protocols;

/// <summary>SCTP chunk builders (RFC 9260 section 3.3). Each returns one chunk, padded to a multiple of 4.</summary>
public static class SctpChunks
{
    public const byte Data = 0, Init = 1, InitAck = 2, Sack = 3, Heartbeat = 4, HeartbeatAck = 5, Abort = 6, Shutdown = 7,
        ShutdownAck = 8, Error = 9, CookieEcho = 10, CookieAck = 11, ShutdownComplete = 14;

    /// <summary>The T bit of ABORT and SHUTDOWN COMPLETE.</summary>
    public const byte FlagT = 0x01;

    /// <summary>A chunk: type, flags, length (the real one unless <paramref name="length"/> says otherwise), body, padding.</summary>
    public static byte[] Chunk(byte type, byte flags = 0, byte[]? body = null, int? length = null)
    {
        body ??= [];
        int real = 4 + body.Length;
        var c = new byte[(real + 3) & ~3];
        c[0] = type;
        c[1] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(2), (ushort)(length ?? real));
        body.CopyTo(c, 4);
        return c;
    }

    /// <summary>The 16-byte INIT / INIT ACK header: initiate tag, a_rwnd, streams, initial TSN.</summary>
    public static byte[] InitHeader(uint initTag)
    {
        var h = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(h, initTag);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), 65535);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(8), 1);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(10), 1);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(12), 1);
        return h;
    }

    public static byte[] InitChunk(uint initTag) => Chunk(Init, 0, InitHeader(initTag));

    public static byte[] InitAckChunk(uint initTag) => Chunk(InitAck, 0, [.. InitHeader(initTag), .. CookieParameter()]);

    public static byte[] DataChunk(uint tsn = 1)
    {
        var b = new byte[12 + 4];
        BinaryPrimitives.WriteUInt32BigEndian(b, tsn);
        "abcd"u8.CopyTo(b.AsSpan(12));
        return Chunk(Data, 0x03, b);
    }

    public static byte[] SackChunk()
    {
        var b = new byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(b, 1);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), 65535);
        return Chunk(Sack, 0, b);
    }

    public static byte[] HeartbeatChunk() => Chunk(Heartbeat, 0, [0, 1, 0, 8, 1, 2, 3, 4]);

    public static byte[] HeartbeatAckChunk() => Chunk(HeartbeatAck, 0, [0, 1, 0, 8, 1, 2, 3, 4]);

    public static byte[] AbortChunk(bool t = false) => Chunk(Abort, t ? FlagT : (byte)0);

    public static byte[] ShutdownChunk() => Chunk(Shutdown, 0, [0, 0, 0, 1]);

    public static byte[] ShutdownAckChunk() => Chunk(ShutdownAck);

    public static byte[] ShutdownCompleteChunk(bool t = false) => Chunk(ShutdownComplete, t ? FlagT : (byte)0);

    public static byte[] ErrorChunk() => Chunk(Error);

    public static byte[] CookieEchoChunk() => Chunk(CookieEcho, 0, "cookie!!"u8.ToArray());

    public static byte[] CookieAckChunk() => Chunk(CookieAck);

    /// <summary>The chunk for a state-table row name (INIT, INIT_ACK, ...) with the given tag for INIT and INIT ACK.</summary>
    public static byte[] ByName(string name, uint initTag = 0) => name switch
    {
        "INIT" => InitChunk(initTag),
        "INIT_ACK" => InitAckChunk(initTag),
        "ABORT" => AbortChunk(),
        "SHUTDOWN" => ShutdownChunk(),
        "SHUTDOWN_ACK" => ShutdownAckChunk(),
        "ERROR" => ErrorChunk(),
        "COOKIE_ECHO" => CookieEchoChunk(),
        "COOKIE_ACK" => CookieAckChunk(),
        "SHUTDOWN_COMPLETE" => ShutdownCompleteChunk(),
        "HEARTBEAT" => HeartbeatChunk(),
        "HEARTBEAT_ACK" => HeartbeatAckChunk(),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    private static byte[] CookieParameter() => [0, 7, 0, 12, .. "cookie!!"u8];
}

/// <summary>
/// One SCTP association's packets between 192.0.2.10 (or 2001:db8::10) and 198.51.100.20 (2001:db8:1::20):
/// the common header with the given verification tag, the chunks, and a correct CRC32c.
/// </summary>
public sealed class SctpFlow(ushort clientPort, ushort serverPort = 2000, bool ipv6 = false)
{
    public const string ClientV4 = "192.0.2.10", ServerV4 = "198.51.100.20", ClientV6 = "2001:db8::10", ServerV6 = "2001:db8:1::20";

    /// <summary>The tags used by the association helpers: the client's (A) and the server's (B) initiate tags.</summary>
    public const uint TagA = 0x0A0A0A0A, TagB = 0x0B0B0B0B;

    public ushort ClientPort { get; } = clientPort;

    public string Client => ipv6 ? ClientV6 : ClientV4;

    public string Server => ipv6 ? ServerV6 : ServerV4;

    /// <summary>Client to server (the original direction when the client starts).</summary>
    public byte[] Orig(uint vtag, params byte[][] chunks) => Packet(Client, Server, ClientPort, serverPort, vtag, chunks);

    /// <summary>Server to client.</summary>
    public byte[] Reply(uint vtag, params byte[][] chunks) => Packet(Server, Client, serverPort, ClientPort, vtag, chunks);

    /// <summary>Client to server with raw bytes after the common header.</summary>
    public byte[] OrigRaw(uint vtag, byte[] afterHeader) => PacketRaw(Client, Server, ClientPort, serverPort, vtag, afterHeader);

    public byte[] ReplyRaw(uint vtag, byte[] afterHeader) => PacketRaw(Server, Client, serverPort, ClientPort, vtag, afterHeader);

    public static byte[] Packet(string src, string dst, ushort sport, ushort dport, uint vtag, byte[][] chunks) =>
        PacketRaw(src, dst, sport, dport, vtag, [.. chunks.SelectMany(c => c)]);

    public static byte[] PacketRaw(string src, string dst, ushort sport, ushort dport, uint vtag, byte[] afterHeader)
    {
        var l4 = new byte[12 + afterHeader.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), vtag);
        afterHeader.CopyTo(l4, 12);
        BinaryPrimitives.WriteUInt32LittleEndian(l4.AsSpan(8), Crc32c(l4));
        return PacketBuilder.Ip(src, dst, IpProtocol.Sctp, l4, checksum: false);
    }

    /// <summary>Flips a bit of the SCTP checksum field of an IP packet built here.</summary>
    public static byte[] CorruptChecksum(byte[] ipPacket)
    {
        int l4 = (ipPacket[0] >> 4) == 6 ? 40 : 20;
        var copy = (byte[])ipPacket.Clone();
        copy[l4 + 8] ^= 0x01;
        return copy;
    }

    /// <summary>
    /// CRC32c, bit by bit (independent of the engine's table/instruction version): reflected polynomial
    /// 0x82F63B78, initial ~0, final complement, over the packet with the checksum field as zero.
    /// </summary>
    public static uint Crc32c(ReadOnlySpan<byte> sctp)
    {
        uint crc = 0xFFFFFFFF;
        for (int i = 0; i < sctp.Length; i++)
        {
            crc ^= i is >= 8 and < 12 ? 0u : sctp[i];
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
            }
        }

        return ~crc;
    }

    // ---- the usual handshake and teardown, with tags A (client) and B (server) ----

    public byte[] Init() => Orig(0, SctpChunks.InitChunk(TagA));

    public byte[] InitAck() => Reply(TagA, SctpChunks.InitAckChunk(TagB));

    public byte[] CookieEcho() => Orig(TagB, SctpChunks.CookieEchoChunk());

    public byte[] CookieAck() => Reply(TagA, SctpChunks.CookieAckChunk());

    /// <summary>The four packets of the handshake, in order.</summary>
    public IEnumerable<byte[]> Handshake() => [Init(), InitAck(), CookieEcho(), CookieAck()];
}

/// <summary>Test-side helpers on the table.</summary>
public static class SctpTestTableExtensions
{
    /// <summary>The connection whose original source port is <paramref name="port"/>, if any.</summary>
    public static ConnectionInfo? Sctp(this TestTable t, ushort port)
    {
        foreach (var c in t.Connections())
        {
            if (c.Protocol == IpProtocol.Sctp && c.Original.SourcePort == port)
            {
                return c;
            }
        }

        return null;
    }

    public static string? SctpState(this TestTable t, ushort port) => t.Sctp(port)?.StateName;

    /// <summary>Sends every packet; returns each one's ctinfo.</summary>
    public static ConntrackInfo[] SendAll(this TestTable t, IEnumerable<byte[]> packets) => packets.Select(p => t.Send(p).Info).ToArray();
}
