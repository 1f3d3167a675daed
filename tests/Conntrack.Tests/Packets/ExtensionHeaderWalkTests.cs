using Conntrack.Tests.Support;
using static Conntrack.Tests.Support.RawPackets;

namespace Conntrack.Tests.Packets;

/// <summary>
/// ipv6_get_l4proto() (nf_conntrack_core.c:374-399) over ipv6_skip_exthdr() (exthdrs_core.c:72-113): which
/// header conntrack tracks behind IPv6 extension headers.
/// </summary>
public class ExtensionHeaderWalkTests
{
    private const string Src = "2001:db8::1", Dst = "2001:db8::2";

    private static TestTable NewTable(bool defrag = true) =>
        new(new ConntrackOptions { MaxEntries = 256, Buckets = 256, HashSeed = 7, Defragmentation = defrag });

    private static (Verdict Verdict, PacketState State, TestTable Table) In(byte[] packet, bool defrag = true)
    {
        var t = NewTable(defrag);
        var s = t.Send(packet);
        return (t.LastVerdict, s, t);
    }

    private static void ShouldTrackUdpPorts(byte[] packet, ushort sport, ushort dport)
    {
        var (v, s, t) = In(packet);
        using (t)
        {
            s.Reason.Should().Be(PacketReason.None);
            v.Should().Be(Verdict.Accept);
            s.Info.Should().Be(ConntrackInfo.New);
            s.Protocol.Should().Be(IpProtocol.Udp);
            var c = t.Connections().Should().ContainSingle().Subject;
            c.Original.SourcePort.Should().Be(sport);
            c.Original.DestinationPort.Should().Be(dport);
        }
    }

    [Fact]
    public void Udp_behind_hop_by_hop_is_tracked_with_its_ports()
    {
        ShouldTrackUdpPorts(Ipv6Udp(Src, Dst, NextHopByHop, OptionsHeader(NextUdp, 1, 4, 0, 0, 0, 0), 4001, 53), 4001, 53);
    }

    [Fact]
    public void Udp_behind_a_routing_header_is_tracked_with_its_ports()
    {
        // A 24-byte routing header: (2 + 1) * 8 (ipv6_optlen).
        ShouldTrackUdpPorts(Ipv6Udp(Src, Dst, NextRouting, RoutingHeader(NextUdp, 2), 4002, 53), 4002, 53);
    }

    [Fact]
    public void Udp_behind_destination_options_is_tracked_with_its_ports()
    {
        ShouldTrackUdpPorts(Ipv6Udp(Src, Dst, NextDestOpts, OptionsHeader(NextUdp, 1, 4, 0, 0, 0, 0), 4003, 53), 4003, 53);
    }

    [Fact]
    public void Udp_behind_an_authentication_header_uses_4_byte_length_units()
    {
        // ipv6_authlen(): (hdrlen + 2) << 2. A 24-byte AH carries Payload Len 4; read in 8-byte units it would
        // wrongly be 40 bytes long.
        ShouldTrackUdpPorts(Ipv6Udp(Src, Dst, NextAh, AuthenticationHeader(NextUdp, 24), 4004, 53), 4004, 53);
    }

    [Fact]
    public void Udp_behind_an_authentication_header_of_12_bytes_is_tracked()
    {
        // Payload Len 1 = (1 + 2) * 4 = 12 bytes (no ICV). ipv6_authlen does not require a multiple of 8.
        ShouldTrackUdpPorts(Ipv6Udp(Src, Dst, NextAh, AuthenticationHeader(NextUdp, 12), 4005, 53), 4005, 53);
    }

    [Fact]
    public void Udp_behind_a_chain_of_four_extension_headers_is_tracked()
    {
        var ext = Concat(
            OptionsHeader(NextDestOpts, 1, 4, 0, 0, 0, 0),
            OptionsHeader(NextRouting, 1, 4, 0, 0, 0, 0),
            RoutingHeader(NextAh, 0),
            AuthenticationHeader(NextUdp, 16));
        ShouldTrackUdpPorts(Ipv6Udp(Src, Dst, NextHopByHop, ext, 4006, 53), 4006, 53);
    }

    [Fact]
    public void Esp_ends_the_walk_and_is_tracked_generically()
    {
        // ESP is not an ipv6_ext_hdr(): the walk stops and protocol 50 is tracked by the generic tracker.
        var esp = new byte[] { 0, 0, 0x10, 0x01, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9 };
        var p = Ipv6(Src, Dst, NextDestOpts, OptionsHeader(NextEsp, 1, 4, 0, 0, 0, 0), NextEsp, esp);
        var (v, s, t) = In(p);
        using (t)
        {
            v.Should().Be(Verdict.Accept);
            s.Info.Should().Be(ConntrackInfo.New);
            s.Protocol.Should().Be(IpProtocol.Esp);
            t.Connections().Should().ContainSingle().Which.ProtocolName.Should().Be("unknown");
        }
    }

    [Fact]
    public void No_next_header_gives_no_layer4_and_is_invalid()
    {
        // ipv6_skip_exthdr returns -1 at NEXTHDR_NONE (exthdrs_core.c:83) -> invalid (nf_conntrack_core.c:2023).
        var p = Ipv6(Src, Dst, NextDestOpts, OptionsHeader(NextNone, 1, 4, 0, 0, 0, 0), NextNone, []);
        var (v, s, t) = In(p);
        using (t)
        {
            v.Should().Be(Verdict.Accept);
            s.Info.Should().Be(ConntrackInfo.Invalid);
            s.Reason.Should().Be(PacketReason.NoLayer4);
            t.Table.Statistics.Invalid.Should().Be(1);
        }
    }

    [Fact]
    public void No_next_header_directly_after_the_fixed_header_is_invalid()
    {
        var p = Ipv6(Src, Dst, NextNone, [], NextNone, [1, 2, 3, 4]);
        var (_, s, t) = In(p);
        using (t)
        {
            s.Info.Should().Be(ConntrackInfo.Invalid);
            s.Reason.Should().Be(PacketReason.NoLayer4);
        }
    }

    [Fact]
    public void Extension_header_cut_short_gives_no_layer4()
    {
        // Hop-by-hop names destination options next, but the packet ends: skb_header_pointer fails (exthdrs_core.c:85).
        var p = Ipv6(Src, Dst, NextHopByHop, OptionsHeader(NextDestOpts, 1, 4, 0, 0, 0, 0), 0, []);
        var (v, s, t) = In(p);
        using (t)
        {
            v.Should().Be(Verdict.Accept);
            s.Info.Should().Be(ConntrackInfo.Invalid);
            s.Reason.Should().Be(PacketReason.NoLayer4);
        }
    }

    [Fact]
    public void Non_first_ipv6_fragment_is_invalid_fragment()
    {
        // frag_off & htons(~0x7) != 0 -> -1 (nf_conntrack_core.c:392).
        var p = Ipv6(Src, Dst, NextFragment, FragmentHeader(NextUdp, offsetUnits: 2, more: false), 0, new byte[16]);
        var (v, s, t) = In(p, defrag: false);
        using (t)
        {
            v.Should().Be(Verdict.Accept);
            s.Info.Should().Be(ConntrackInfo.Invalid);
            s.Reason.Should().Be(PacketReason.Fragment);
            t.Table.Count.Should().Be(0);
        }
    }

    [Fact]
    public void Non_first_fragment_behind_hop_by_hop_is_invalid_fragment()
    {
        var ext = Concat(OptionsHeader(NextFragment, 1, 4, 0, 0, 0, 0), FragmentHeader(NextUdp, 5, true));
        var p = Ipv6(Src, Dst, NextHopByHop, ext, 0, new byte[16]);
        var (_, s, t) = In(p, defrag: false);
        using (t)
        {
            s.Reason.Should().Be(PacketReason.Fragment);
        }
    }

    [Fact]
    public void Atomic_fragment_is_tracked_as_its_upper_layer()
    {
        // Offset 0 and M clear (RFC 6946): ipv6_skip_exthdr steps over it (exthdrs_core.c:99-101).
        var p = Ipv6Udp(Src, Dst, NextFragment, FragmentHeader(NextUdp, 0, false), 4007, 53);
        ShouldTrackUdpPorts(p, 4007, 53);
    }

    [Fact]
    public void Extension_header_length_pointing_past_the_packet_leaves_layer4_truncated()
    {
        // Destination options claiming 2048 bytes: the walk ends past the packet; nf_ct_get_tuple_ports then
        // cannot read the ports -> invalid.
        var dest = new byte[8];
        dest[0] = NextUdp;
        dest[1] = 255;
        dest[2] = 1;
        dest[3] = 4;
        var p = Ipv6(Src, Dst, NextDestOpts, dest, 0, new byte[8]);
        var (v, s, t) = In(p);
        using (t)
        {
            v.Should().Be(Verdict.Accept);
            s.Info.Should().Be(ConntrackInfo.Invalid);
            s.Reason.Should().Be(PacketReason.Layer4Truncated);
        }
    }
}
