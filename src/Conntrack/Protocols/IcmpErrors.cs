using System.Buffers.Binary;
using Conntrack.Packets;
using Conntrack.Tuples;

namespace Conntrack.Protocols;

/// <summary>Outcome of conntrack's ICMP/ICMPv6 error handler.</summary>
internal enum IcmpErrorResult : byte
{
    /// <summary>Not an error message: track it as an ICMP query (NF_ACCEPT, no connection attached).</summary>
    NotAnError,
    /// <summary>An error about a tracked connection: RELATED (or RELATED+REPLY); <c>node</c> says which.</summary>
    Related,
    /// <summary>Rejected (-NF_ACCEPT): INVALID, counted as an error.</summary>
    Invalid,
    /// <summary>Neighbour discovery, router solicitation/advertisement or MLD: not tracked.</summary>
    Untracked,
}

/// <summary>
/// nf_conntrack_icmpv4_error(), nf_conntrack_icmpv6_error() and nf_conntrack_inet_error(): an ICMP error
/// is related to the connection of the packet it quotes, found by inverting the quoted tuple.
/// </summary>
internal static class IcmpErrors
{
    /// <summary>Highest ICMP type the kernel knows (NR_ICMP_TYPES); anything above is discarded (RFC 1122 3.2.2).</summary>
    private const int MaxIcmpType = 18;

    public static IcmpErrorResult HandleV4(ConntrackTable table, ref PacketContext p, ushort zone, out int node)
    {
        node = -1;
        ReadOnlySpan<byte> l4 = p.L4;
        if (l4.Length < 8)
        {
            p.Reason = PacketReason.Layer4Truncated;
            return IcmpErrorResult.Invalid;
        }

        if (table.Settings.Checksum && !InternetChecksum.PlainValid(l4))
        {
            p.Reason = PacketReason.Layer4Checksum;
            return IcmpErrorResult.Invalid;
        }

        byte type = l4[0];
        if (type > MaxIcmpType)
        {
            p.Reason = PacketReason.IcmpUnknownType;
            return IcmpErrorResult.Invalid;
        }

        // icmp_is_err(): destination unreachable, source quench, redirect, time exceeded, parameter problem.
        if (type is not (3 or 4 or 5 or 11 or 12))
        {
            return IcmpErrorResult.NotAnError;
        }

        var outerDestination = InetAddress.FromIpv4(p.Packet[16..]);
        return InetError(table, ref p, p.L3.L4Offset + 8, outerDestination, zone, out node);
    }

    public static IcmpErrorResult HandleV6(ConntrackTable table, ref PacketContext p, ushort zone, out int node)
    {
        node = -1;
        ReadOnlySpan<byte> l4 = p.L4;
        if (l4.Length < 8)
        {
            p.Reason = PacketReason.Layer4Truncated;
            return IcmpErrorResult.Invalid;
        }

        if (table.Settings.Checksum && !InternetChecksum.Layer4Valid(p.Packet, true, IpProtocol.Icmpv6, l4, l4.Length))
        {
            p.Reason = PacketReason.Layer4Checksum;
            return IcmpErrorResult.Invalid;
        }

        byte type = l4[0];
        // noct_valid_new: MLD query/report/done (130-132), RS, RA, NS, NA (133-136), MLDv2 report (143),
        // multicast router advertisement/solicitation (151, 152).
        if (type is >= 130 and <= 136 or 143 or 151 or 152)
        {
            p.Reason = PacketReason.UntrackedIcmpv6;
            return IcmpErrorResult.Untracked;
        }

        if (type == 137)
        {
            return Redirect(table, ref p, zone, out node);
        }

        if (type >= 128)
        {
            return IcmpErrorResult.NotAnError;
        }

        var outerDestination = InetAddress.FromIpv6(p.Packet[24..]);
        return InetError(table, ref p, p.L3.L4Offset + 8, outerDestination, zone, out node);
    }

    /// <summary>nf_conntrack_icmpv6_redirect(): a redirect quotes the redirected packet in an option.</summary>
    private static IcmpErrorResult Redirect(ConntrackTable table, ref PacketContext p, ushort zone, out int node)
    {
        node = -1;
        ReadOnlySpan<byte> l4 = p.L4;
        if (l4.Length < 40)
        {
            p.Reason = PacketReason.Layer4Truncated;
            return IcmpErrorResult.Invalid;
        }

        if (l4[1] != 0)
        {
            return IcmpErrorResult.NotAnError;
        }

        // Hop limit 255 and a link-local source (fe80::/10), as RFC 4861 requires.
        ReadOnlySpan<byte> src = p.Packet.Slice(8, 16);
        if (p.Packet[7] != 255 || src[0] != 0xFE || (src[1] & 0xC0) != 0x80)
        {
            p.Reason = PacketReason.Layer4Malformed;
            return IcmpErrorResult.Invalid;
        }

        int opt = p.L3.L4Offset + 40;
        if (opt + 2 > p.Packet.Length || p.Packet[opt + 1] == 0)
        {
            p.Reason = PacketReason.Layer4Malformed;
            return IcmpErrorResult.Invalid;
        }

        if (p.Packet[opt] != 4)
        {
            return IcmpErrorResult.NotAnError; // not the redirected-header option
        }

        var outerDestination = InetAddress.FromIpv6(p.Packet[24..]);
        return InetError(table, ref p, opt + 8, outerDestination, zone, out node);
    }

    /// <summary>
    /// nf_conntrack_inet_error(): parse the quoted packet's tuple, invert it (the quoted packet went the other
    /// way), look the connection up, and check that the error is addressed to that connection's endpoint in
    /// the direction found ("conntrack[dir].dst == outer dst"), so a forged error cannot open a path to a
    /// third host.
    /// </summary>
    private static IcmpErrorResult InetError(ConntrackTable table, ref PacketContext p, int innerOffset,
        InetAddress outerDestination, ushort zone, out int node)
    {
        node = -1;
        ReadOnlySpan<byte> pkt = p.Packet;
        bool ipv6 = p.L3.IsIpv6;
        if (!TryLocateInner(pkt, innerOffset, ipv6, out byte innerProtocol, out int innerL4)
            || !L4Dispatch.TryBuildTuple(table, pkt, innerOffset, ipv6, innerProtocol, innerL4, out ConntrackTuple quoted)
            || !L4Dispatch.TryInvert(table, in quoted, out ConntrackTuple inner))
        {
            p.Reason = PacketReason.IcmpErrorNoConnection;
            return IcmpErrorResult.Invalid;
        }

        uint hash = table.Hasher.Hash(in inner, zone);
        int found = table.Find(in inner, zone, hash, p.Now, p.Ctx);
        if (found < 0)
        {
            p.Reason = PacketReason.IcmpErrorNoConnection;
            return IcmpErrorResult.Invalid;
        }

        ref Table.Connection c = ref table.Entries[found >> 1];
        InetAddress connectionDestination = (found & 1) == 0 ? c.Original.Destination : c.Reply.Destination;
        if (connectionDestination != outerDestination)
        {
            p.Reason = PacketReason.IcmpErrorAddressMismatch;
            return IcmpErrorResult.Invalid;
        }

        node = found;
        return IcmpErrorResult.Related;
    }

    /// <summary>get_l4proto() on the quoted header (parsed as the outer family, whatever its version nibble says).</summary>
    private static bool TryLocateInner(ReadOnlySpan<byte> pkt, int nhoff, bool ipv6, out byte protocol, out int l4)
    {
        protocol = 0;
        l4 = -1;
        if (!ipv6)
        {
            if (nhoff + 20 > pkt.Length)
            {
                return false;
            }

            // Fragments "inside ICMP packets": a non-first fragment has no layer-4 header.
            if ((BinaryPrimitives.ReadUInt16BigEndian(pkt[(nhoff + 6)..]) & 0x1FFF) != 0)
            {
                return false;
            }

            l4 = nhoff + ((pkt[nhoff] & 0x0F) << 2);
            protocol = pkt[nhoff + 9];
            return l4 <= pkt.Length && l4 > 0;
        }

        if (nhoff + 7 > pkt.Length)
        {
            return false;
        }

        // ipv6_skip_exthdr() from the quoted header; the addresses are checked by the tuple builder.
        byte next = pkt[nhoff + 6];
        int start = IpHeaders.SkipExtensionHeaders(pkt, nhoff + 40, ref next, out ushort frag, out _);
        if (start <= 0 || (frag & 0xFFF8) != 0)
        {
            return false;
        }

        protocol = next;
        l4 = start;
        return true;
    }
}
