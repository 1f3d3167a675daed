using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Conntrack.Packets;
using Conntrack.Table;

namespace Conntrack.Protocols;

/// <summary>UDP and UDP-Lite (nf_conntrack_proto_udp.c).</summary>
internal static class UdpTracker
{
    /// <summary>"Still active after two seconds?": a replied flow becomes a stream 2 s after creation.</summary>
    private const long StreamAfterNs = 2 * Settings.NsPerSecond;

    /// <summary>udp_error(): length and (optionally) checksum checks. True when the packet is bad.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool UdpError(ConntrackTable table, ref PacketContext p)
    {
        ReadOnlySpan<byte> l4 = p.L4;
        if (l4.Length < 8)
        {
            p.Reason = PacketReason.Layer4Truncated;
            return true;
        }

        // The 8-byte header is there: its length and checksum words without a bounds check each.
        ref byte h = ref MemoryMarshal.GetReference(l4);
        int ulen = IpHeaders.ReadBigEndian16(ref h, 4);
        if (ulen > l4.Length || ulen < 8)
        {
            p.Reason = PacketReason.Layer4Malformed;
            return true;
        }

        if (Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref h, 6)) == 0)
        {
            return false; // no checksum
        }

        return UdpChecksumError(table, ref p, l4);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool UdpChecksumError(ConntrackTable table, ref PacketContext p, ReadOnlySpan<byte> l4)
    {
        if (table.Settings.Checksum && !InternetChecksum.Layer4Valid(p.Packet, p.L3.IsIpv6, IpProtocol.Udp, l4, l4.Length))
        {
            p.Reason = PacketReason.Layer4Checksum;
            return true;
        }

        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TrackResult Packet(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        if (UdpError(table, ref p))
        {
            return TrackResult.Invalid;
        }

        uint status = Volatile.Read(ref c.Status);
        if ((status & (uint)ConnectionStatus.Confirmed) == 0)
        {
            c.ProtoTime = p.Now + StreamAfterNs;
        }

        // "If we've seen traffic both ways, this is some kind of UDP stream. Set Assured."
        if ((status & (uint)ConnectionStatus.SeenReply) != 0)
        {
            long extra = table.Settings.UdpTimeout;
            bool stream = false;
            if (p.Now - c.ProtoTime > 0)
            {
                extra = table.Settings.UdpTimeoutStream;
                stream = (status & (uint)ConnectionStatus.Assured) == 0;
            }

            table.Refresh(ref p, ref c, status, extra);
            // Never ASSURED for a clash loser: it must time out soon.
            if ((status & (uint)ConnectionStatus.NatClash) != 0)
            {
                return TrackResult.Accept;
            }

            if (stream && c.TrySet(ConnectionStatus.Assured))
            {
                table.CacheEvent(p.Index, Events.ConntrackEventType.Assured);
            }
        }
        else
        {
            table.Refresh(ref p, ref c, status, table.Settings.UdpTimeout);
        }

        return TrackResult.Accept;
    }

    /// <summary>udplite_error(): checksum coverage rules; UDP-Lite mandates a checksum.</summary>
    private static bool UdpLiteError(ConntrackTable table, ref PacketContext p)
    {
        ReadOnlySpan<byte> l4 = p.L4;
        if (l4.Length < 8)
        {
            p.Reason = PacketReason.Layer4Truncated;
            return true;
        }

        int cscov = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
        if (cscov == 0)
        {
            cscov = l4.Length;
        }
        else if (cscov < 8 || cscov > l4.Length)
        {
            p.Reason = PacketReason.Layer4Malformed;
            return true;
        }

        if (BinaryPrimitives.ReadUInt16BigEndian(l4[6..]) == 0)
        {
            p.Reason = PacketReason.Layer4Checksum;
            return true;
        }

        // The kernel passes IPPROTO_UDP, not IPPROTO_UDPLITE, to nf_checksum_partial() here; we do the same so
        // that verdicts match with nf_conntrack_checksum=1.
        if (table.Settings.Checksum && !InternetChecksum.Layer4Valid(p.Packet, p.L3.IsIpv6, IpProtocol.Udp, l4, cscov))
        {
            p.Reason = PacketReason.Layer4Checksum;
            return true;
        }

        return false;
    }

    public static TrackResult PacketLite(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        if (UdpLiteError(table, ref p))
        {
            return TrackResult.Invalid;
        }

        if (c.Has(ConnectionStatus.SeenReply))
        {
            table.Refresh(ref p, ref c, table.Settings.UdpTimeoutStream);
            if (c.Has(ConnectionStatus.NatClash))
            {
                return TrackResult.Accept;
            }

            if (c.TrySet(ConnectionStatus.Assured))
            {
                table.CacheEvent(p.Index, Events.ConntrackEventType.Assured);
            }
        }
        else
        {
            table.Refresh(ref p, ref c, table.Settings.UdpTimeout);
        }

        return TrackResult.Accept;
    }
}
