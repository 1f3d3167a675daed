using System.Buffers.Binary;
using System.Net;

namespace Conntrack.Tests.Support;

/// <summary>Builds IPv4/IPv6 packets with correct header checksums (and layer-4 checksums) for tests.</summary>
public static class PacketBuilder
{
    /// <summary>Lays packets back to back in one buffer, as the burst calls take them.</summary>
    public static (byte[] Buffer, PacketSegment[] Segments) Burst(IReadOnlyList<byte[]> packets)
    {
        int total = 0;
        foreach (var p in packets)
        {
            total += p.Length;
        }

        var buffer = new byte[total];
        var segments = new PacketSegment[packets.Count];
        int offset = 0;
        for (int i = 0; i < packets.Count; i++)
        {
            packets[i].CopyTo(buffer, offset);
            segments[i] = new PacketSegment(offset, packets[i].Length);
            offset += packets[i].Length;
        }

        return (buffer, segments);
    }

    public const byte FlagFin = 0x01, FlagSyn = 0x02, FlagRst = 0x04, FlagPsh = 0x08, FlagAck = 0x10, FlagUrg = 0x20;

    public static byte[] Udp(string src, string dst, ushort sport, ushort dport, int payload = 8, bool checksum = true, byte ttl = 64) =>
        Ip(src, dst, IpProtocol.Udp, UdpHeader(sport, dport, payload), checksum, ttl);

    public static byte[] UdpLite(string src, string dst, ushort sport, ushort dport, ushort coverage, bool checksum = true, int payload = 8) =>
        Ip(src, dst, IpProtocol.UdpLite, UdpHeader(sport, dport, payload, lengthField: coverage), checksum);

    public static byte[] IcmpEcho(string src, string dst, ushort id, ushort seq, bool reply = false) =>
        Icmp(src, dst, (byte)(IsV6(src) ? (reply ? 129 : 128) : (reply ? 0 : 8)), 0, id, seq, []);

    /// <summary>An ICMP/ICMPv6 message: 8-byte header (rest-of-header = id, seq) then <paramref name="body"/>.</summary>
    public static byte[] Icmp(string src, string dst, byte type, byte code, ushort id, ushort seq, byte[] body)
    {
        var l4 = new byte[8 + body.Length];
        l4[0] = type;
        l4[1] = code;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(6), seq);
        body.CopyTo(l4, 8);
        return Ip(src, dst, IsV6(src) ? IpProtocol.Icmpv6 : IpProtocol.Icmp, l4, true);
    }

    /// <summary>An ICMP error (type/code) quoting <paramref name="quoted"/> (header + first 8 bytes, or all for IPv6).</summary>
    public static byte[] IcmpError(string src, string dst, byte type, byte code, byte[] quoted)
    {
        int keep = IsV6(src) ? quoted.Length : Math.Min(quoted.Length, (quoted[0] & 0x0F) * 4 + 8);
        return Icmp(src, dst, type, code, 0, 0, quoted[..keep]);
    }

    public static byte[] Tcp(string src, string dst, ushort sport, ushort dport, byte flags, uint seq, uint ack,
        ushort window = 65535, byte[]? options = null, int payload = 0, bool checksum = true)
    {
        options ??= [];
        int optLen = (options.Length + 3) & ~3;
        var l4 = new byte[20 + optLen + payload];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(8), ack);
        l4[12] = (byte)(((20 + optLen) / 4) << 4);
        l4[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(14), window);
        options.CopyTo(l4, 20);
        for (int i = 20 + options.Length; i < 20 + optLen; i++)
        {
            l4[i] = 1; // NOP padding
        }

        return Ip(src, dst, IpProtocol.Tcp, l4, checksum);
    }

    /// <summary>Any protocol's payload in an IP header.</summary>
    public static byte[] Raw(string src, string dst, byte protocol, byte[] l4) => Ip(src, dst, protocol, l4, false);

    public static bool IsV6(string address) => address.Contains(':', StringComparison.Ordinal);

    private static byte[] UdpHeader(ushort sport, ushort dport, int payload, int lengthField = -1)
    {
        var l4 = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)(lengthField >= 0 ? lengthField : 8 + payload));
        for (int i = 8; i < l4.Length; i++)
        {
            l4[i] = (byte)i;
        }

        return l4;
    }

    /// <summary>Wraps a layer-4 segment in an IPv4 or IPv6 header; fills the layer-4 checksum field when asked.</summary>
    public static byte[] Ip(string src, string dst, byte protocol, byte[] l4, bool checksum, byte ttl = 64)
    {
        var s = IPAddress.Parse(src).GetAddressBytes();
        var d = IPAddress.Parse(dst).GetAddressBytes();
        bool v6 = s.Length == 16;
        int hl = v6 ? 40 : 20;
        var p = new byte[hl + l4.Length];
        if (v6)
        {
            p[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), (ushort)l4.Length);
            p[6] = protocol;
            p[7] = ttl;
            s.CopyTo(p, 8);
            d.CopyTo(p, 24);
        }
        else
        {
            p[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), 0x1234);
            p[8] = ttl;
            p[9] = protocol;
            s.CopyTo(p, 12);
            d.CopyTo(p, 16);
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum(p.AsSpan(0, 20), 0));
        }

        l4.CopyTo(p, hl);
        int ckOff = protocol switch
        {
            IpProtocol.Tcp => 16,
            IpProtocol.Udp or IpProtocol.UdpLite => 6,
            IpProtocol.Icmp or IpProtocol.Icmpv6 => 2,
            _ => -1,
        };
        if (checksum && ckOff >= 0 && l4.Length >= ckOff + 2)
        {
            var seg = p.AsSpan(hl);
            seg.Slice(ckOff, 2).Clear();
            ulong sum = 0;
            if (protocol != IpProtocol.Icmp)
            {
                sum = Add(sum, p.AsSpan(v6 ? 8 : 12, v6 ? 32 : 8));
                // UDP-Lite's pseudo-header protocol as the kernel checks it (see UdpTracker).
                sum += protocol == IpProtocol.UdpLite ? IpProtocol.Udp : protocol;
                sum += (uint)seg.Length;
            }

            int covered = seg.Length;
            if (protocol == IpProtocol.UdpLite)
            {
                int cov = BinaryPrimitives.ReadUInt16BigEndian(seg[4..]);
                covered = cov == 0 ? seg.Length : Math.Min(cov, seg.Length);
            }

            ushort ck = Checksum(seg[..covered], sum);
            if (ck == 0 && protocol is IpProtocol.Udp)
            {
                ck = 0xFFFF;
            }

            BinaryPrimitives.WriteUInt16BigEndian(seg[ckOff..], ck);
        }

        return p;
    }

    private static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        for (int i = 0; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }

        if ((data.Length & 1) != 0)
        {
            sum += (ulong)data[^1] << 8;
        }

        return sum;
    }

    public static ushort Checksum(ReadOnlySpan<byte> data, ulong initial)
    {
        ulong sum = Add(initial, data);
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    /// <summary>Recomputes the IPv4 header checksum after a test changed header bytes.</summary>
    public static byte[] FixIpv4Checksum(byte[] p)
    {
        int ihl = (p[0] & 0x0F) * 4;
        p[10] = 0;
        p[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum(p.AsSpan(0, ihl), 0));
        return p;
    }
}
