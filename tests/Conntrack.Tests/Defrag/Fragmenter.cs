using System.Buffers.Binary;
using Conntrack.Defrag;
using Conntrack.Packets;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Defrag;

/// <summary>Cuts whole packets (from <see cref="PacketBuilder"/>) into IPv4/IPv6 fragments for tests.</summary>
internal static class Fragmenter
{
    /// <summary>
    /// An IPv4 fragment of <paramref name="packet"/>: its header (options included) with the fragment
    /// fields set, and <paramref name="length"/> bytes of its payload from <paramref name="offset"/>.
    /// </summary>
    public static byte[] V4(byte[] packet, int offset, int length, bool more, ushort id = 0x1234,
        byte? tos = null, bool dontFragment = false, int? fragmentOffset = null)
    {
        int ihl = (packet[0] & 0x0F) * 4;
        var f = new byte[ihl + length];
        packet.AsSpan(0, ihl).CopyTo(f);
        packet.AsSpan(ihl + offset, length).CopyTo(f.AsSpan(ihl));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(2), (ushort)f.Length);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(4), id);
        int field = ((fragmentOffset ?? offset) >> 3) | (more ? 0x2000 : 0) | (dontFragment ? 0x4000 : 0);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(6), (ushort)field);
        if (tos is byte t)
        {
            f[1] = t;
        }

        return PacketBuilder.FixIpv4Checksum(f);
    }

    /// <summary>An IPv4 fragment carrying arbitrary bytes at an arbitrary offset.</summary>
    public static byte[] V4Raw(string src, string dst, byte protocol, ushort id, int offset, bool more, int length, byte fill = 0xAB)
    {
        var body = new byte[length];
        Array.Fill(body, fill);
        var p = PacketBuilder.Raw(src, dst, protocol, body);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(6), (ushort)((offset >> 3) | (more ? 0x2000 : 0)));
        return PacketBuilder.FixIpv4Checksum(p);
    }

    /// <summary>
    /// An IPv6 fragment of <paramref name="packet"/>: its first <paramref name="unfragmentable"/> bytes
    /// (IPv6 header and any extension headers to keep in front), a fragment header, then
    /// <paramref name="length"/> bytes of the rest from <paramref name="offset"/>. <paramref name="nhOffset"/>
    /// is where the next-header byte of the last unfragmentable header is.
    /// </summary>
    public static byte[] V6(byte[] packet, int offset, int length, bool more, uint id = 0xC0FFEE,
        int unfragmentable = 40, int nhOffset = 6, byte? trafficClass = null, int? fragmentOffset = null)
    {
        var f = new byte[unfragmentable + 8 + length];
        packet.AsSpan(0, unfragmentable).CopyTo(f);
        f[unfragmentable] = packet[nhOffset];
        f[nhOffset] = IpProtocol.Fragment;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(unfragmentable + 2), (ushort)((fragmentOffset ?? offset) & 0xFFF8 | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(unfragmentable + 4), id);
        packet.AsSpan(unfragmentable + offset, length).CopyTo(f.AsSpan(unfragmentable + 8));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(4), (ushort)(f.Length - 40));
        if (trafficClass is byte tc)
        {
            f[0] = (byte)(0x60 | (tc >> 4));
            f[1] = (byte)((f[1] & 0x0F) | (tc << 4));
        }

        return f;
    }

    /// <summary>Splits a packet's payload into fragments of <paramref name="size"/> bytes (a multiple of 8).</summary>
    public static List<byte[]> Split(byte[] packet, int size, ushort id = 0x1234)
    {
        bool v6 = packet[0] >> 4 == 6;
        int header = v6 ? 40 : (packet[0] & 0x0F) * 4;
        int payload = packet.Length - header;
        var list = new List<byte[]>();
        for (int off = 0; off < payload; off += size)
        {
            int n = Math.Min(size, payload - off);
            bool more = off + n < payload;
            list.Add(v6 ? V6(packet, off, n, more, id) : V4(packet, off, n, more, id));
        }

        return list;
    }

    /// <summary>IPv6 UDP packet with an 8-byte hop-by-hop header (PadN) in front of the UDP header.</summary>
    public static byte[] Udp6WithHopByHop(string src, string dst, ushort sport, ushort dport, int payload)
    {
        byte[] udp = PacketBuilder.Udp(src, dst, sport, dport, payload);
        var ext = new byte[8 + udp.Length - 40];
        ext[0] = IpProtocol.Udp;
        ext[1] = 0;
        ext[2] = 1; // PadN
        ext[3] = 4;
        udp.AsSpan(40).CopyTo(ext.AsSpan(8));
        return PacketBuilder.Raw(src, dst, IpProtocol.HopByHop, ext);
    }

    /// <summary>Runs the IP input checks and offers the packet to <paramref name="d"/>, as the engine does.</summary>
    public static DefragResult Offer(this Defragmenter d, byte[] packet, long now, byte[] output, out int length, ushort zone = 0)
    {
        IpHeaders.CheckInput(packet, 0, out L3Info l3).Should().Be(PacketReason.None);
        return d.Gather(packet.AsSpan(0, l3.Length), in l3, zone, now, output, out length);
    }

    /// <summary><see cref="Offer"/>, ignoring the output length.</summary>
    public static DefragResult Offer(this Defragmenter d, byte[] packet, long now, byte[] output, ushort zone = 0) =>
        d.Offer(packet, now, output, out _, zone);
}
