using System.Buffers.Binary;
using System.Net;

namespace Conntrack.Tests.Support;

/// <summary>
/// Hand-assembled packets the shared <see cref="PacketBuilder"/> does not make: IPv6 with extension-header
/// chains, IPv4 with fragment fields, GRE, and small byte-level edits. Checksums are computed here with a
/// straightforward RFC 1071 sum (independent of the engine's InternetChecksum).
/// </summary>
public static class RawPackets
{
    public const byte NextHopByHop = 0, NextUdp = 17, NextRouting = 43, NextFragment = 44, NextEsp = 50, NextAh = 51,
        NextIcmpv6 = 58, NextNone = 59, NextDestOpts = 60;

    /// <summary>A UDP header (ports, length = 8 + payload) followed by <paramref name="payload"/> bytes; checksum left 0.</summary>
    public static byte[] UdpSegment(ushort sport, ushort dport, int payload = 8)
    {
        var l4 = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)l4.Length);
        for (int i = 8; i < l4.Length; i++)
        {
            l4[i] = (byte)(0xA0 + i);
        }

        return l4;
    }

    /// <summary>
    /// An IPv6 packet: fixed header whose next-header is <paramref name="firstNext"/>, then <paramref name="extensions"/>
    /// (already chained by the caller), then <paramref name="l4"/>. When <paramref name="l4Protocol"/> is UDP or
    /// ICMPv6 the layer-4 checksum is filled in over the pseudo-header (RFC 8200 8.1: upper-layer length and
    /// next header 17/58, addresses of the fixed header: no routing header rewrites them here).
    /// </summary>
    public static byte[] Ipv6(string src, string dst, byte firstNext, byte[] extensions, byte l4Protocol, byte[] l4,
        byte hopLimit = 64, int? payloadLengthField = null)
    {
        var p = new byte[40 + extensions.Length + l4.Length];
        p[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), (ushort)(payloadLengthField ?? (extensions.Length + l4.Length)));
        p[6] = firstNext;
        p[7] = hopLimit;
        IPAddress.Parse(src).GetAddressBytes().CopyTo(p, 8);
        IPAddress.Parse(dst).GetAddressBytes().CopyTo(p, 24);
        extensions.CopyTo(p, 40);
        int l4Off = 40 + extensions.Length;
        l4.CopyTo(p, l4Off);
        int ckOff = l4Protocol switch { NextUdp => 6, NextIcmpv6 => 2, _ => -1 };
        if (ckOff >= 0 && l4.Length >= ckOff + 2)
        {
            var seg = p.AsSpan(l4Off);
            seg.Slice(ckOff, 2).Clear();
            ulong sum = Sum(0, p.AsSpan(8, 32));
            sum += (uint)seg.Length;
            sum += l4Protocol;
            ushort ck = Finish(Sum(sum, seg));
            if (ck == 0 && l4Protocol == NextUdp)
            {
                ck = 0xFFFF;
            }

            BinaryPrimitives.WriteUInt16BigEndian(seg[ckOff..], ck);
        }

        return p;
    }

    /// <summary>IPv6 carrying UDP behind the given extension headers.</summary>
    public static byte[] Ipv6Udp(string src, string dst, byte firstNext, byte[] extensions, ushort sport = 4000, ushort dport = 53) =>
        Ipv6(src, dst, firstNext, extensions, NextUdp, UdpSegment(sport, dport));

    /// <summary>
    /// A hop-by-hop or destination-options header: next header, length in 8-octet units beyond the first, then
    /// <paramref name="options"/> which must make the whole header a multiple of 8 bytes.
    /// </summary>
    public static byte[] OptionsHeader(byte next, params byte[] options)
    {
        if ((options.Length + 2) % 8 != 0)
        {
            throw new ArgumentException($"Options of {options.Length} bytes do not make a multiple of 8 with the 2-byte header.");
        }

        var h = new byte[2 + options.Length];
        h[0] = next;
        h[1] = (byte)((h.Length / 8) - 1);
        options.CopyTo(h, 2);
        return h;
    }

    /// <summary>A routing header (type 0, segments left 0) of 8 * (1 + <paramref name="lengthUnits"/>) bytes.</summary>
    public static byte[] RoutingHeader(byte next, byte lengthUnits = 2)
    {
        var h = new byte[8 * (1 + lengthUnits)];
        h[0] = next;
        h[1] = lengthUnits;
        h[2] = 0; // routing type
        h[3] = 0; // segments left
        return h;
    }

    /// <summary>
    /// An authentication header (RFC 4302): its Payload Len is in 4-octet units minus 2, so a header of
    /// <paramref name="totalBytes"/> bytes carries <c>totalBytes / 4 - 2</c>.
    /// </summary>
    public static byte[] AuthenticationHeader(byte next, int totalBytes = 24)
    {
        var h = new byte[totalBytes];
        h[0] = next;
        h[1] = (byte)((totalBytes / 4) - 2);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), 0x1000); // SPI
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(8), 1);      // sequence
        return h;
    }

    /// <summary>An IPv6 fragment header: offset in 8-byte units, M flag, identification.</summary>
    public static byte[] FragmentHeader(byte next, int offsetUnits, bool more, uint id = 0x01020304)
    {
        var h = new byte[8];
        h[0] = next;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), (ushort)((offsetUnits << 3) | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), id);
        return h;
    }

    /// <summary>Concatenates byte arrays.</summary>
    public static byte[] Concat(params byte[][] parts)
    {
        var r = new byte[parts.Sum(p => p.Length)];
        int o = 0;
        foreach (var p in parts)
        {
            p.CopyTo(r, o);
            o += p.Length;
        }

        return r;
    }

    /// <summary>An IPv4 header (20 bytes, correct checksum) in front of <paramref name="l4"/>, with the given fragment field.</summary>
    public static byte[] Ipv4(string src, string dst, byte protocol, byte[] l4, ushort fragmentField = 0, byte ttl = 64)
    {
        var p = new byte[20 + l4.Length];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), 0x4242);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(6), fragmentField);
        p[8] = ttl;
        p[9] = protocol;
        IPAddress.Parse(src).GetAddressBytes().CopyTo(p, 12);
        IPAddress.Parse(dst).GetAddressBytes().CopyTo(p, 16);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Finish(Sum(0, p.AsSpan(0, 20))));
        l4.CopyTo(p, 20);
        return p;
    }

    /// <summary>A GRE version 0 header (RFC 2784/2890), optionally with a key, carrying <paramref name="protocolType"/>.</summary>
    public static byte[] GreV0(ushort protocolType = 0x0800, uint? key = null, int payload = 4)
    {
        var h = new byte[4 + (key is null ? 0 : 4) + payload];
        BinaryPrimitives.WriteUInt16BigEndian(h, (ushort)(key is null ? 0x0000 : 0x2000)); // K bit, version 0
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), protocolType);
        if (key is uint k)
        {
            BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), k);
        }

        return h;
    }

    /// <summary>
    /// An enhanced GRE (version 1, RFC 2637 4.1) header: flags K set, version 1, protocol PPP 0x880B, payload
    /// length, call id.
    /// </summary>
    public static byte[] GreV1(ushort callId, ushort protocolType = 0x880B, int payload = 4)
    {
        var h = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(h, 0x2001); // K bit, version 1
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), protocolType);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(4), (ushort)payload);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(6), callId);
        return h;
    }

    /// <summary>RFC 1071 sum of big-endian 16-bit words (odd byte padded with zero), not folded.</summary>
    public static ulong Sum(ulong sum, ReadOnlySpan<byte> data)
    {
        for (int i = 0; i + 1 < data.Length; i += 2)
        {
            sum += (ulong)((data[i] << 8) | data[i + 1]);
        }

        if ((data.Length & 1) != 0)
        {
            sum += (ulong)data[^1] << 8;
        }

        return sum;
    }

    /// <summary>Folds and complements.</summary>
    public static ushort Finish(ulong sum)
    {
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    /// <summary>Recomputes the ICMPv4 checksum of an IPv4 packet with a 20-byte header.</summary>
    public static byte[] FixIcmpv4Checksum(byte[] p)
    {
        int ihl = (p[0] & 0x0F) * 4;
        p[ihl + 2] = 0;
        p[ihl + 3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(ihl + 2), Finish(Sum(0, p.AsSpan(ihl))));
        return p;
    }

    /// <summary>Appends <paramref name="count"/> zero bytes (Ethernet minimum-frame padding after the IP packet).</summary>
    public static byte[] Padded(byte[] p, int count) => Concat(p, new byte[count]);
}
