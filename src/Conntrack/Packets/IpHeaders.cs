using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Conntrack.Packets;

/// <summary>
/// What the IP layer found in a packet: the part of <c>ip_rcv_core</c>/<c>ip6_rcv_core</c> that runs before
/// netfilter's PREROUTING hooks, and conntrack's <c>get_l4proto</c>.
/// </summary>
internal struct L3Info
{
    /// <summary>The packet's length after trimming link-layer padding to the IP length.</summary>
    public int Length;

    /// <summary>Offset of the layer-4 header (the kernel's <c>dataoff</c>); may equal or, for IPv6, exceed <see cref="Length"/>.</summary>
    public int L4Offset;

    /// <summary>The layer-4 protocol after extension headers.</summary>
    public byte Protocol;

    /// <summary>True for IPv6.</summary>
    public bool IsIpv6;

    /// <summary>IPv4: MF set or fragment offset non-zero. IPv6: a fragment header was found (non-atomic).</summary>
    public bool IsFragment;

    /// <summary>Offset of the IPv6 fragment header, or -1.</summary>
    public int Ipv6FragmentHeaderOffset;
}

/// <summary>Parsing and validation of IPv4 and IPv6 headers over spans.</summary>
internal static class IpHeaders
{
    /// <summary>
    /// A big-endian 16-bit field at <paramref name="offset"/> from <paramref name="start"/>, without a bounds check:
    /// for header fields inside a length the caller has already checked.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ushort ReadBigEndian16(ref byte start, int offset) =>
        BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref start, offset)));

    /// <summary>
    /// Applies the IP input checks the kernel makes before conntrack sees a packet. On success
    /// <paramref name="info"/> has the trimmed length; on failure the reason says why the kernel would drop
    /// it. <paramref name="expectedVersion"/> is 4 or 6 when the link layer said which (EtherType), 0 to go
    /// by the version nibble.
    /// </summary>
    public static PacketReason CheckInput(ReadOnlySpan<byte> packet, int expectedVersion, out L3Info info)
    {
        info = default;
        info.Ipv6FragmentHeaderOffset = -1;
        if (packet.IsEmpty)
        {
            return PacketReason.IpHeaderTruncated;
        }

        int version = expectedVersion != 0 ? expectedVersion : packet[0] >> 4;
        return version switch
        {
            4 => CheckIpv4(packet, ref info),
            6 => CheckIpv6(packet, ref info),
            _ => PacketReason.IpBadVersion,
        };
    }

    private static PacketReason CheckIpv4(ReadOnlySpan<byte> p, ref L3Info info)
    {
        // ip_rcv_core(): header present, ihl >= 5, version 4, whole header present, checksum, length.
        if (p.Length < 20)
        {
            return PacketReason.IpHeaderTruncated;
        }

        // The fixed header is known to be there: read it without a bounds check per field (every packet comes
        // through here).
        ref byte h = ref MemoryMarshal.GetReference(p);
        int first = h;
        int ihl = (first & 0x0F) * 4;
        if (ihl < 20 || (first >> 4) != 4)
        {
            return (first >> 4) != 4 ? PacketReason.IpBadVersion : PacketReason.IpBadHeaderLength;
        }

        if (p.Length < ihl)
        {
            return PacketReason.IpHeaderTruncated;
        }

        if (!InternetChecksum.Ipv4HeaderValid(p, ihl))
        {
            return PacketReason.IpBadChecksum;
        }

        int total = ReadBigEndian16(ref h, 2);
        if (p.Length < total)
        {
            return PacketReason.IpLengthExceedsPacket;
        }

        if (total < ihl)
        {
            return PacketReason.IpBadHeaderLength;
        }

        int frag = ReadBigEndian16(ref h, 6);
        info.Length = total;
        info.IsIpv6 = false;
        info.Protocol = Unsafe.Add(ref h, 9);
        info.IsFragment = (frag & 0x3FFF) != 0;
        // Conntrack "defragments packets, we might still see fragments inside ICMP packets though": a non-first
        // fragment has no layer-4 header to look at.
        info.L4Offset = (frag & 0x1FFF) != 0 ? -1 : ihl;
        return PacketReason.None;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsLoopback(ReadOnlySpan<byte> a) =>
        BinaryPrimitives.ReadUInt64BigEndian(a) == 0 && BinaryPrimitives.ReadUInt64BigEndian(a[8..]) == 1;

    private static PacketReason CheckIpv6(ReadOnlySpan<byte> p, ref L3Info info)
    {
        if (p.Length < 40)
        {
            return PacketReason.IpHeaderTruncated;
        }

        if ((p[0] >> 4) != 6)
        {
            return PacketReason.IpBadVersion;
        }

        ReadOnlySpan<byte> src = p.Slice(8, 16);
        ReadOnlySpan<byte> dst = p.Slice(24, 16);

        // RFC 4291 2.5.3: loopback addresses never arrive from outside.
        if (IsLoopback(src) || IsLoopback(dst))
        {
            return PacketReason.Ipv6Loopback;
        }

        // RFC 4291 errata 3480 and 2.7: interface-local (1) and reserved (0) multicast scopes.
        if (dst[0] == 0xFF && (dst[1] & 0x0F) is 0 or 1)
        {
            return PacketReason.Ipv6BadMulticastScope;
        }

        if (src[0] == 0xFF)
        {
            return PacketReason.Ipv6MulticastSource;
        }

        int payload = BinaryPrimitives.ReadUInt16BigEndian(p[4..]);
        byte next = p[6];
        int length = p.Length;
        if (payload != 0 || next != IpProtocol.HopByHop)
        {
            if (payload + 40 > p.Length)
            {
                return PacketReason.IpLengthExceedsPacket;
            }

            length = payload + 40;
        }

        if (next == IpProtocol.HopByHop)
        {
            PacketReason r = CheckHopByHop(p[..length], payload, ref length);
            if (r != PacketReason.None)
            {
                return r;
            }
        }

        info.Length = length;
        info.IsIpv6 = true;
        LocateLayer4(p[..length], ref info);
        return PacketReason.None;
    }

    /// <summary>
    /// ipv6_parse_hopopts() and ip6_parse_tlv(): the hop-by-hop header must be complete, its options well
    /// formed (at most 7 bytes of padding in a row, zero PadN contents, at most 8 non-padding options), the
    /// router-alert and jumbo options of the right size, and unknown options whose top bits say "discard"
    /// discard the packet.
    /// </summary>
    private static PacketReason CheckHopByHop(ReadOnlySpan<byte> p, int payload, ref int length)
    {
        const int MaxOptions = 8; // net.ipv6.max_hbh_opts_number
        if (p.Length < 48)
        {
            return PacketReason.Ipv6BadHopByHop;
        }

        int extlen = (p[41] + 1) << 3;
        if (p.Length < 40 + extlen)
        {
            return PacketReason.Ipv6BadHopByHop;
        }

        int off = 42;
        int len = extlen - 2;
        int padlen = 0;
        int count = 0;
        while (len > 0)
        {
            byte type = p[off];
            if (type == 0)
            {
                // Pad1
                if (++padlen > 7)
                {
                    return PacketReason.Ipv6BadHopByHop;
                }

                off++;
                len--;
                continue;
            }

            if (len < 2)
            {
                return PacketReason.Ipv6BadHopByHop;
            }

            int optlen = p[off + 1] + 2;
            if (optlen > len)
            {
                return PacketReason.Ipv6BadHopByHop;
            }

            if (type == 1)
            {
                // PadN: RFC 4942 2.1.9.5 - at most 7 bytes, contents zero.
                padlen += optlen;
                if (padlen > 7)
                {
                    return PacketReason.Ipv6BadHopByHop;
                }

                for (int i = 2; i < optlen; i++)
                {
                    if (p[off + i] != 0)
                    {
                        return PacketReason.Ipv6BadHopByHop;
                    }
                }
            }
            else
            {
                if (++count > MaxOptions)
                {
                    return PacketReason.Ipv6BadHopByHop;
                }

                switch (type)
                {
                    case 0x05: // router alert
                        if (p[off + 1] != 2)
                        {
                            return PacketReason.Ipv6BadHopByHop;
                        }

                        break;
                    case 0x31: // IOAM: alignment, then ignored (IOAM is off by default)
                        if ((off & 3) != 0)
                        {
                            return PacketReason.Ipv6BadHopByHop;
                        }

                        break;
                    case 0xC2: // jumbo payload
                    {
                        if (p[off + 1] != 4 || (off & 3) != 2)
                        {
                            return PacketReason.Ipv6BadHopByHop;
                        }

                        uint jumbo = BinaryPrimitives.ReadUInt32BigEndian(p[(off + 2)..]);
                        if (jumbo <= 65535 || payload != 0 || jumbo > (uint)(p.Length - 40))
                        {
                            return PacketReason.Ipv6BadHopByHop;
                        }

                        length = (int)jumbo + 40;
                        break;
                    }

                    case 0x07: // CALIPSO: length sanity (the DOI checks need NetLabel policy we do not have)
                        if (p[off + 1] < 8 || p[off + 6] * 4 + 8 > p[off + 1])
                        {
                            return PacketReason.Ipv6BadHopByHop;
                        }

                        break;
                    default:
                        // Top two bits: 00 skip, anything else discard (01 silently, 10/11 with an ICMP error).
                        if ((type & 0xC0) != 0)
                        {
                            return PacketReason.Ipv6BadHopByHop;
                        }

                        break;
                }

                padlen = 0;
            }

            off += optlen;
            len -= optlen;
        }

        return len == 0 ? PacketReason.None : PacketReason.Ipv6BadHopByHop;
    }

    /// <summary>
    /// ipv6_get_l4proto(): the layer-4 header after the extension headers. A non-first fragment or a walk that
    /// fails leaves <see cref="L3Info.L4Offset"/> at -1 (conntrack then has nothing to track).
    /// </summary>
    public static void LocateLayer4(ReadOnlySpan<byte> p, ref L3Info info)
    {
        byte next = p[6];
        int start = SkipExtensionHeaders(p, 40, ref next, out ushort frag, out int fragHeader);
        info.Ipv6FragmentHeaderOffset = fragHeader;
        info.IsFragment = fragHeader >= 0 && (frag & 0xFFF9) != 0; // offset or M set; an atomic fragment is not one
        if (start < 0 || (frag & 0xFFF8) != 0)
        {
            info.L4Offset = -1;
            return;
        }

        info.Protocol = next;
        info.L4Offset = start;
    }

    /// <summary>
    /// ipv6_skip_exthdr(): from <paramref name="start"/>, skip hop-by-hop, routing, fragment, AH and
    /// destination-options headers (ESP and anything else ends the walk). Returns the offset of the next
    /// header and leaves its type in <paramref name="next"/>, or -1 at no-next-header or a header cut short.
    /// A fragment header with a non-zero offset ends the walk at itself, with <paramref name="fragField"/>
    /// holding its offset field. Lengths are not checked against the packet beyond the two bytes read, as in
    /// the kernel: the caller's reads fail if the result points past the end.
    /// </summary>
    public static int SkipExtensionHeaders(ReadOnlySpan<byte> p, int start, ref byte next, out ushort fragField, out int fragHeader)
    {
        fragField = 0;
        fragHeader = -1;
        while (true)
        {
            switch (next)
            {
                case IpProtocol.HopByHop:
                case IpProtocol.Routing:
                case IpProtocol.DestinationOptions:
                case IpProtocol.Ah:
                case IpProtocol.Fragment:
                    break;
                case IpProtocol.NoNextHeader:
                    return -1;
                default:
                    return start;
            }

            if (start < 0 || start > p.Length - 2)
            {
                return -1;
            }

            int hdrlen;
            if (next == IpProtocol.Fragment)
            {
                // Recorded even when cut short, so that reassembly sees (and drops) it as the kernel does.
                fragHeader = start;
                if (start > p.Length - 4)
                {
                    return -1;
                }

                fragField = BinaryPrimitives.ReadUInt16BigEndian(p[(start + 2)..]);
                if ((fragField & 0xFFF8) != 0)
                {
                    return start;
                }

                hdrlen = 8;
            }
            else if (next == IpProtocol.Ah)
            {
                hdrlen = (p[start + 1] + 2) << 2;
            }
            else
            {
                hdrlen = (p[start + 1] + 1) << 3;
            }

            next = p[start];
            start += hdrlen;
        }
    }
}
