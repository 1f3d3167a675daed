using System.Buffers.Binary;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Packets;

/// <summary>ip6_rcv_core() (net/ipv6/ip6_input.c:148-300): IPv6 input drops before PREROUTING.</summary>
public class Ipv6InputTests
{
    private static (Verdict Verdict, PacketState State) In(byte[] packet)
    {
        using var t = new TestTable();
        var s = default(PacketState);
        var v = t.Table.In(packet, t.Now, ref s);
        return (v, s);
    }

    private static void ShouldDrop(byte[] packet, PacketReason reason)
    {
        var (v, s) = In(packet);
        s.Reason.Should().Be(reason);
        v.Should().Be(Verdict.Drop);
        s.Info.Should().Be(ConntrackInfo.Invalid);
    }

    [Fact]
    public void Valid_ipv6_udp_is_new()
    {
        var (v, s) = In(PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1000, 53));
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Packet_shorter_than_40_bytes_is_dropped_as_truncated()
    {
        // pskb_may_pull(skb, sizeof(*hdr)) fails (ip6_input.c:194).
        ShouldDrop(PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1000, 53)[..39], PacketReason.IpHeaderTruncated);
    }

    [Fact]
    public void Loopback_source_is_dropped()
    {
        // RFC 4291 2.5.3 (ip6_input.c:215).
        ShouldDrop(PacketBuilder.Udp("::1", "2001:db8::2", 1000, 53), PacketReason.Ipv6Loopback);
    }

    [Fact]
    public void Loopback_destination_is_dropped()
    {
        ShouldDrop(PacketBuilder.Udp("2001:db8::1", "::1", 1000, 53), PacketReason.Ipv6Loopback);
    }

    [Fact]
    public void Multicast_source_is_dropped()
    {
        // RFC 4291 2.7: "if (ipv6_addr_is_multicast(&hdr->saddr)) goto err" (ip6_input.c:259).
        ShouldDrop(PacketBuilder.Udp("ff0e::1", "2001:db8::2", 1000, 53), PacketReason.Ipv6MulticastSource);
    }

    [Fact]
    public void Multicast_destination_with_reserved_scope_0_is_dropped()
    {
        // IPV6_ADDR_MC_SCOPE == 0 (ip6_input.c:250).
        ShouldDrop(PacketBuilder.Udp("2001:db8::1", "ff00::1", 1000, 53), PacketReason.Ipv6BadMulticastScope);
    }

    [Fact]
    public void Multicast_destination_with_interface_local_scope_1_is_dropped()
    {
        // RFC 4291 errata 3480 (ip6_input.c:227).
        ShouldDrop(PacketBuilder.Udp("2001:db8::1", "ff01::1", 1000, 53), PacketReason.Ipv6BadMulticastScope);
    }

    [Fact]
    public void Multicast_destination_with_link_local_scope_2_is_accepted()
    {
        var (v, s) = In(PacketBuilder.Udp("fe80::1", "ff02::1:3", 5355, 5355));
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Payload_length_beyond_the_packet_is_dropped()
    {
        // "if (pkt_len + sizeof(struct ipv6hdr) > skb->len) ... goto drop" (ip6_input.c:269).
        var p = PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1000, 53);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), (ushort)(p.Length - 40 + 1));
        ShouldDrop(p, PacketReason.IpLengthExceedsPacket);
    }

    [Fact]
    public void Ipv6_link_layer_padding_is_trimmed_to_the_payload_length()
    {
        // pskb_trim_rcsum(skb, pkt_len + sizeof(struct ipv6hdr)) (ip6_input.c:275).
        var p = PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1000, 53, payload: 0);
        var (v, s) = In(RawPackets.Concat(p, [1, 2, 3, 4, 5, 6]));
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
        s.Length.Should().Be(48);
    }

    [Fact]
    public void Version_nibble_other_than_6_on_an_ipv6_link_is_dropped()
    {
        var p = PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1000, 53);
        p[0] = 0x70;
        var s = default(PacketState);
        using var t = new TestTable();
        t.Table.In(p, IpVersion.V6, t.Now, ref s).Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpBadVersion);
    }

    [Fact]
    public void Reasons_of_ip_input_drops_are_classified_as_ip_input_drops()
    {
        PacketReason.IpBadChecksum.IsIpInputDrop().Should().BeTrue();
        PacketReason.Ipv6BadHopByHop.IsIpInputDrop().Should().BeTrue();
        PacketReason.Ipv6Loopback.IsIpInputDrop().Should().BeTrue();
        PacketReason.Fragment.IsIpInputDrop().Should().BeFalse("a fragment reaches conntrack (INVALID, not LOST)");
        PacketReason.TableFull.IsIpInputDrop().Should().BeFalse();
    }
}
