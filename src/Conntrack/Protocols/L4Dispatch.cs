using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack.Protocols;

/// <summary>
/// The layer-4 protocol registry's hot half: tuple extraction, inversion and the per-packet function of
/// each protocol, chosen by a switch on the protocol number (no virtual call for built-ins).
/// </summary>
internal static class L4Dispatch
{
    /// <summary>
    /// nf_ct_get_tuple(): the addresses of the IP header at <paramref name="nhoff"/> and the protocol's own
    /// fields at <paramref name="dataoff"/>. False when a needed header is not in the packet.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryBuildTuple(ConntrackTable table, ReadOnlySpan<byte> packet, int nhoff, bool ipv6, byte protocol,
        int dataoff, out ConntrackTuple tuple)
    {
        tuple = default;
        // Each length is checked once; the fields inside it are read without a bounds check each (every packet
        // comes through here). The header test is in 64 bits so that it also refuses a negative offset.
        ref byte h = ref MemoryMarshal.GetReference(packet);
        byte version;
        if (ipv6)
        {
            if ((ulong)(uint)nhoff + 40 > (uint)packet.Length)
            {
                return false;
            }

            ref byte a = ref Unsafe.Add(ref h, nhoff + 8);
            tuple.Source = new InetAddress(Unsafe.ReadUnaligned<ulong>(ref a), Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref a, 8)));
            tuple.Destination = new InetAddress(Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref a, 16)),
                Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref a, 24)));
            version = 6;
        }
        else
        {
            if ((ulong)(uint)nhoff + 20 > (uint)packet.Length)
            {
                return false;
            }

            tuple.Source = new InetAddress(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref h, nhoff + 12)), 0);
            tuple.Destination = new InetAddress(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref h, nhoff + 16)), 0);
            version = 4;
        }

        tuple.IpVersionField = version;
        tuple.ProtocolField = protocol;
        ReadOnlySpan<byte> l4 = (uint)dataoff <= (uint)packet.Length ? packet[dataoff..] : default;
        switch (protocol)
        {
            case IpProtocol.Tcp:
            case IpProtocol.Udp:
            case IpProtocol.UdpLite:
            case IpProtocol.Sctp:
                // nf_ct_get_tuple_ports(): only the first four bytes are needed.
                if (l4.Length < 4)
                {
                    return false;
                }

                // Ports, IP version, protocol and the reserved bytes make the tuple's last 64-bit word: one store.
                // Both ports in one load: byte-swapping the word and turning it by 16 bits puts each port in host
                // order in its own half, source in the low one.
                uint ports = BitOperations.RotateRight(
                    BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ref MemoryMarshal.GetReference(l4))), 16);
                Unsafe.As<ushort, ulong>(ref tuple.SourceId) = ports | (ulong)version << 32 | (ulong)protocol << 40;
                return true;
            case IpProtocol.Icmp:
            case IpProtocol.Icmpv6:
                // icmp_pkt_to_tuple() / icmpv6_pkt_to_tuple(): the 8-byte header; the identifier is read
                // whatever the type.
                if (l4.Length < 8)
                {
                    return false;
                }

                tuple.DestinationId = (ushort)((l4[0] << 8) | l4[1]);
                tuple.SourceId = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
                return true;
            case IpProtocol.Gre:
                return TryGreTuple(l4, ref tuple);
            default:
                if (table.Protocols.Find(protocol) is { } user)
                {
                    return user.TryReadIds(l4, out tuple.SourceId, out tuple.DestinationId);
                }

                return true;
        }
    }

    /// <summary>
    /// gre_pkt_to_tuple(): only enhanced GRE (version 1, PPTP) carries a key, the call id, as the destination
    /// key; the source key would come from the PPTP helper's keymap (0 without it). Other versions "behave
    /// like the generic tracker": keys 0.
    /// </summary>
    private static bool TryGreTuple(ReadOnlySpan<byte> l4, ref ConntrackTuple tuple)
    {
        if (l4.Length < 4 || (BinaryPrimitives.ReadUInt16BigEndian(l4) & 0x7) != 1)
        {
            return true;
        }

        if (l4.Length < 8)
        {
            return true;
        }

        if (BinaryPrimitives.ReadUInt16BigEndian(l4[2..]) != 0x880B)
        {
            return false; // enhanced GRE must carry PPP
        }

        tuple.DestinationId = BinaryPrimitives.ReadUInt16BigEndian(l4[6..]);
        tuple.SourceId = 0;
        return true;
    }

    /// <summary>nf_ct_invert_tuple(): swap addresses and ports; ICMP maps a query type to its reply type.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryInvert(ConntrackTable table, in ConntrackTuple orig, out ConntrackTuple inverse)
    {
        inverse = orig;
        inverse.Source = orig.Destination;
        inverse.Destination = orig.Source;
        switch (orig.ProtocolField)
        {
            case IpProtocol.Icmp:
            {
                if (!IcmpTracker.TryInvertV4(orig.IcmpType, out byte t))
                {
                    return false;
                }

                inverse.DestinationId = (ushort)((t << 8) | orig.IcmpCode);
                return true;
            }

            case IpProtocol.Icmpv6:
            {
                if (!IcmpTracker.TryInvertV6(orig.IcmpType, out byte t))
                {
                    return false;
                }

                inverse.DestinationId = (ushort)((t << 8) | orig.IcmpCode);
                return true;
            }

            case IpProtocol.Tcp:
            case IpProtocol.Udp:
            case IpProtocol.UdpLite:
            case IpProtocol.Sctp:
            case IpProtocol.Gre:
                inverse.SourceId = orig.DestinationId;
                inverse.DestinationId = orig.SourceId;
                return true;
            default:
                if (table.Protocols.Find(orig.ProtocolField) is { } user)
                {
                    return user.TryInvertIds(orig.SourceId, orig.DestinationId, out inverse.SourceId, out inverse.DestinationId);
                }

                inverse.SourceId = orig.DestinationId;
                inverse.DestinationId = orig.SourceId;
                return true;
        }
    }

    /// <summary>nf_conntrack_handle_packet(): the protocol's packet function.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TrackResult Packet(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        switch (c.Protocol)
        {
            case IpProtocol.Tcp:
                return TcpTracker.Packet(table, ref p, ref c);
            case IpProtocol.Udp:
                return UdpTracker.Packet(table, ref p, ref c);
            case IpProtocol.Icmp:
                return IcmpTracker.PacketV4(table, ref p, ref c);
            case IpProtocol.Icmpv6:
                return IcmpTracker.PacketV6(table, ref p, ref c);
            case IpProtocol.UdpLite:
                return UdpTracker.PacketLite(table, ref p, ref c);
            case IpProtocol.Sctp:
                return SctpTracker.Packet(table, ref p, ref c);
            case IpProtocol.Gre:
                return GenericTracker.PacketGre(table, ref p, ref c);
            default:
                return PacketOther(table, ref p, ref c);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static TrackResult PacketOther(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        if (table.Protocols.Find(c.Protocol) is { } user)
        {
            if ((c.Status & (uint)ConnectionStatus.Confirmed) == 0)
            {
                table.Proto[p.Index] = default;
            }

            var view = new TrackedPacket(table, ref p, ref c);
            if (user.Packet(ref view))
            {
                return TrackResult.Accept;
            }

            p.Reason = PacketReason.TrackerRejected;
            return TrackResult.Invalid;
        }

        return GenericTracker.Packet(table, ref p, ref c);
    }

    /// <summary>The l4proto's allow_clash: UDP, UDP-Lite, GRE and generic protocols may merge a lost insert race.</summary>
    public static bool AllowClash(ConntrackTable table, byte protocol) => protocol switch
    {
        IpProtocol.Tcp or IpProtocol.Sctp or IpProtocol.Icmp or IpProtocol.Icmpv6 => false,
        IpProtocol.Udp or IpProtocol.UdpLite or IpProtocol.Gre => true,
        _ => table.Protocols.Find(protocol)?.AllowClash ?? true,
    };

    /// <summary>The l4proto's can_early_drop, consulted for assured entries when the garbage collector evicts under pressure.</summary>
    public static bool CanEarlyDrop(ref Connection c) => c.Protocol switch
    {
        IpProtocol.Tcp => TcpTracker.CanEarlyDrop(c.ProtoState),
        IpProtocol.Sctp => SctpTracker.CanEarlyDrop(c.ProtoState),
        _ => false,
    };

    /// <summary>The protocol state as /proc prints it, or null for protocols without one.</summary>
    public static string? StateName(ConntrackTable table, byte protocol, byte state) => protocol switch
    {
        IpProtocol.Tcp => TcpTracker.StateName(state),
        IpProtocol.Sctp => SctpTracker.StateName(state),
        IpProtocol.Icmp or IpProtocol.Icmpv6 or IpProtocol.Udp or IpProtocol.UdpLite or IpProtocol.Gre => null,
        _ => table.Protocols.Find(protocol)?.StateName(state),
    };
}
