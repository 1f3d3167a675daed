using System.Buffers.Binary;

namespace Conntrack.Benchmarks.Infrastructure;

/// <summary>
/// Writes IPv4/IPv6 packets with TCP or UDP into caller-provided spans, with correct IPv4 header checksums and
/// layer-4 checksums, so that the benchmarks hand the engine what a NIC would. Nothing here allocates.
/// </summary>
internal static class PacketWriter
{
    public const byte FlagFin = 0x01, FlagSyn = 0x02, FlagRst = 0x04, FlagPsh = 0x08, FlagAck = 0x10;

    public const int Ipv4HeaderLength = 20;
    public const int Ipv6HeaderLength = 40;
    public const int UdpHeaderLength = 8;
    public const int TcpHeaderLength = 20;
    public const int EthernetHeaderLength = 14;

    public static int UdpLength(int payload, bool ipv6 = false) => (ipv6 ? Ipv6HeaderLength : Ipv4HeaderLength) + UdpHeaderLength + payload;

    public static int TcpLength(int payload, bool ipv6 = false) => (ipv6 ? Ipv6HeaderLength : Ipv4HeaderLength) + TcpHeaderLength + payload;

    /// <summary>An IPv4/UDP packet; returns its length. <paramref name="udpChecksum"/> false leaves the field 0 ("no checksum").</summary>
    public static int Ipv4Udp(Span<byte> dst, uint src, uint dstAddr, ushort sport, ushort dport, int payload, bool udpChecksum = true)
    {
        int len = UdpLength(payload);
        Span<byte> p = dst[..len];
        WriteIpv4Header(p, src, dstAddr, 17, len);
        Span<byte> l4 = p[Ipv4HeaderLength..];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(l4[4..], (ushort)(UdpHeaderLength + payload));
        BinaryPrimitives.WriteUInt16BigEndian(l4[6..], 0);
        FillPayload(l4[UdpHeaderLength..]);
        if (udpChecksum)
        {
            ushort c = Layer4Checksum(p.Slice(12, 8), 17, l4);
            BinaryPrimitives.WriteUInt16BigEndian(l4[6..], c == 0 ? (ushort)0xFFFF : c);
        }

        return len;
    }

    /// <summary>An IPv4/TCP packet without options; returns its length.</summary>
    public static int Ipv4Tcp(Span<byte> dst, uint src, uint dstAddr, ushort sport, ushort dport, byte flags, uint seq, uint ack,
        int payload, ushort window = 65535)
    {
        int len = TcpLength(payload);
        Span<byte> p = dst[..len];
        WriteIpv4Header(p, src, dstAddr, 6, len);
        Span<byte> l4 = p[Ipv4HeaderLength..];
        WriteTcpHeader(l4, sport, dport, flags, seq, ack, window);
        FillPayload(l4[TcpHeaderLength..]);
        BinaryPrimitives.WriteUInt16BigEndian(l4[16..], Layer4Checksum(p.Slice(12, 8), 6, l4));
        return len;
    }

    /// <summary>An IPv6/TCP packet without extension headers or options; returns its length.</summary>
    public static int Ipv6Tcp(Span<byte> dst, ReadOnlySpan<byte> src16, ReadOnlySpan<byte> dst16, ushort sport, ushort dport, byte flags,
        uint seq, uint ack, int payload, ushort window = 65535)
    {
        int len = TcpLength(payload, ipv6: true);
        Span<byte> p = dst[..len];
        p[..Ipv6HeaderLength].Clear();
        p[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(p[4..], (ushort)(len - Ipv6HeaderLength));
        p[6] = 6;
        p[7] = 64;
        src16.CopyTo(p[8..]);
        dst16.CopyTo(p[24..]);
        Span<byte> l4 = p[Ipv6HeaderLength..];
        WriteTcpHeader(l4, sport, dport, flags, seq, ack, window);
        FillPayload(l4[TcpHeaderLength..]);
        BinaryPrimitives.WriteUInt16BigEndian(l4[16..], Layer4Checksum(p.Slice(8, 32), 6, l4));
        return len;
    }

    /// <summary>Prepends an Ethernet II header (EtherType IPv4 or IPv6) in front of the packet at <paramref name="frame"/>[14..].</summary>
    public static void EthernetHeader(Span<byte> frame, bool ipv6)
    {
        ReadOnlySpan<byte> macs = [0x50, 0x54, 0x00, 0x00, 0x00, 0x0a, 0x50, 0x54, 0x00, 0x00, 0x00, 0x09];
        macs.CopyTo(frame);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], ipv6 ? (ushort)0x86DD : (ushort)0x0800);
    }

    private static void WriteIpv4Header(Span<byte> p, uint src, uint dst, byte protocol, int totalLength)
    {
        p[0] = 0x45;
        p[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p[2..], (ushort)totalLength);
        BinaryPrimitives.WriteUInt16BigEndian(p[4..], 0x1234);
        BinaryPrimitives.WriteUInt16BigEndian(p[6..], 0x4000); // DF
        p[8] = 64;
        p[9] = protocol;
        BinaryPrimitives.WriteUInt16BigEndian(p[10..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(p[12..], src);
        BinaryPrimitives.WriteUInt32BigEndian(p[16..], dst);
        BinaryPrimitives.WriteUInt16BigEndian(p[10..], (ushort)~Fold(Sum(0, p[..Ipv4HeaderLength])));
    }

    private static void WriteTcpHeader(Span<byte> l4, ushort sport, ushort dport, byte flags, uint seq, uint ack, ushort window)
    {
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(l4[8..], ack);
        l4[12] = (TcpHeaderLength / 4) << 4;
        l4[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(l4[14..], window);
        BinaryPrimitives.WriteUInt16BigEndian(l4[16..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(l4[18..], 0);
    }

    private static void FillPayload(Span<byte> payload)
    {
        for (int i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)(i * 7 + 1);
        }
    }

    private static ushort Layer4Checksum(ReadOnlySpan<byte> addresses, byte protocol, ReadOnlySpan<byte> l4)
    {
        ulong sum = Sum(0, addresses);
        sum += protocol;
        sum += (uint)l4.Length;
        sum = Sum(sum, l4);
        return (ushort)~Fold(sum);
    }

    /// <summary>RFC 1071 sum of 16-bit big-endian words (odd tail padded with zero), unfolded.</summary>
    public static ulong Sum(ulong sum, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 2 <= data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }

        if (i < data.Length)
        {
            sum += (ulong)data[i] << 8;
        }

        return sum;
    }

    public static ushort Fold(ulong sum)
    {
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)sum;
    }
}
