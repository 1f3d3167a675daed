using Conntrack.Table;

namespace Conntrack.Protocols;

/// <summary>ICMP (nf_conntrack_proto_icmp.c) and ICMPv6 (nf_conntrack_proto_icmpv6.c) queries.</summary>
internal static class IcmpTracker
{
    /// <summary>Types that may start a connection: echo, timestamp, info and address-mask requests.</summary>
    public static bool IsValidNewV4(byte type) => type is 8 or 13 or 15 or 17;

    /// <summary>ICMPv6 types that may start a connection: echo request and node-information query.</summary>
    public static bool IsValidNewV6(byte type) => type is 128 or 139;

    /// <summary>The reply type of an ICMP query (the kernel's invmap), or false when the type has none.</summary>
    public static bool TryInvertV4(byte type, out byte inverse)
    {
        inverse = type switch
        {
            8 => 0,
            0 => 8,
            13 => 14,
            14 => 13,
            15 => 16,
            16 => 15,
            17 => 18,
            18 => 17,
            _ => 255,
        };
        return inverse != 255;
    }

    /// <summary>The ICMPv6 invmap: echo request/reply and node-information query/reply.</summary>
    public static bool TryInvertV6(byte type, out byte inverse)
    {
        inverse = type switch
        {
            128 => 129,
            129 => 128,
            139 => 140,
            140 => 139,
            _ => 0,
        };
        return inverse != 0;
    }

    /// <summary>nf_conntrack_icmp_packet().</summary>
    public static TrackResult PacketV4(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        if (p.L3.IsIpv6)
        {
            p.Reason = PacketReason.CannotCreate;
            return TrackResult.Invalid;
        }

        if (!IsValidNewV4(c.Original.IcmpType))
        {
            p.Reason = PacketReason.CannotCreate;
            return TrackResult.Invalid;
        }

        // "Do not immediately delete the connection after the first successful reply", so a duplicate
        // reply still finds it.
        table.Refresh(ref p, ref c, table.Settings.IcmpTimeout);
        return TrackResult.Accept;
    }

    /// <summary>nf_conntrack_icmpv6_packet().</summary>
    public static TrackResult PacketV6(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        if (!p.L3.IsIpv6)
        {
            p.Reason = PacketReason.CannotCreate;
            return TrackResult.Invalid;
        }

        if (!c.Has(ConnectionStatus.Confirmed) && !IsValidNewV6(c.Original.IcmpType))
        {
            p.Reason = PacketReason.CannotCreate;
            return TrackResult.Invalid;
        }

        table.Refresh(ref p, ref c, table.Settings.Icmpv6Timeout);
        return TrackResult.Accept;
    }
}

/// <summary>Protocols tracked by addresses only (nf_conntrack_proto_generic.c), and GRE (nf_conntrack_proto_gre.c).</summary>
internal static class GenericTracker
{
    public static TrackResult Packet(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        table.Refresh(ref p, ref c, table.Settings.GenericTimeout);
        return TrackResult.Accept;
    }

    /// <summary>nf_conntrack_gre_packet(): 30 s until a reply, then a 180 s stream and ASSURED.</summary>
    public static TrackResult PacketGre(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        if (c.Has(ConnectionStatus.SeenReply))
        {
            table.Refresh(ref p, ref c, table.Settings.GreTimeoutStream);
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
            table.Refresh(ref p, ref c, table.Settings.GreTimeout);
        }

        return TrackResult.Accept;
    }
}
