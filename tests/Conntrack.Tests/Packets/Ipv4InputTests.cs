using System.Buffers.Binary;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Packets;

/// <summary>
/// ip_rcv_core() (net/ipv4/ip_input.c:456-551): what the kernel's IPv4 input drops before PREROUTING, so
/// before conntrack sees the packet.
/// </summary>
public class Ipv4InputTests
{
    private static byte[] Udp() => PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1111, 53);

    private static (Verdict Verdict, PacketState State) In(byte[] packet, IpVersion version = IpVersion.Auto, ConntrackOptions? options = null)
    {
        using var t = new TestTable(options);
        var s = default(PacketState);
        var v = t.Table.In(packet, version, t.Now, ref s);
        return (v, s);
    }

    [Fact]
    public void Valid_udp_packet_passes_input_checks_and_is_new()
    {
        var (v, s) = In(Udp());
        v.Should().Be(Verdict.Accept);
        s.Reason.Should().Be(PacketReason.None);
        s.Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Empty_packet_is_dropped_as_truncated()
    {
        var (v, s) = In([]);
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpHeaderTruncated);
    }

    [Fact]
    public void Packet_shorter_than_20_bytes_is_dropped_as_truncated()
    {
        // pskb_may_pull(skb, sizeof(struct iphdr)) fails -> inhdr_error (ip_input.c:480).
        var (v, s) = In(Udp()[..19]);
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpHeaderTruncated);
    }

    [Fact]
    public void Version_nibble_other_than_4_or_6_is_dropped_as_bad_version()
    {
        var p = Udp();
        p[0] = 0x55;
        var (v, s) = In(PacketBuilder.FixIpv4Checksum(p));
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpBadVersion);
    }

    [Fact]
    public void Header_length_below_five_words_is_dropped()
    {
        // "if (iph->ihl < 5 || iph->version != 4) goto inhdr_error" (ip_input.c:496).
        var p = Udp();
        p[0] = 0x44;
        var (v, s) = In(p);
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpBadHeaderLength);
    }

    [Fact]
    public void Header_length_beyond_the_packet_is_dropped_as_truncated()
    {
        // IHL 15 = 60 bytes but only 20 + 16 present: pskb_may_pull(skb, ihl*4) fails (ip_input.c:506).
        var p = Udp()[..30];
        p[0] = 0x4F;
        var (v, s) = In(p);
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpHeaderTruncated);
    }

    [Fact]
    public void Bad_header_checksum_is_dropped()
    {
        var p = Udp();
        p[10] ^= 0x01;
        var (v, s) = In(p);
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpBadChecksum);
    }

    [Fact]
    public void Bad_header_checksum_counts_an_ip_input_drop()
    {
        using var t = new TestTable();
        var p = Udp();
        p[10] ^= 0x01;
        t.Send(p);
        t.Table.Statistics.IpInputDrop.Should().Be(1);
        t.Table.Statistics.Invalid.Should().Be(0, "the packet never reached conntrack");
    }

    [Fact]
    public void Total_length_larger_than_the_packet_is_dropped()
    {
        // "if (skb->len < len) ... goto drop" (ip_input.c:515).
        var p = Udp();
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)(p.Length + 1));
        var (v, s) = In(PacketBuilder.FixIpv4Checksum(p));
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpLengthExceedsPacket);
    }

    [Fact]
    public void Total_length_smaller_than_the_header_is_dropped()
    {
        // "else if (len < (iph->ihl*4)) goto inhdr_error" (ip_input.c:519).
        var p = Udp();
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), 19);
        var (v, s) = In(PacketBuilder.FixIpv4Checksum(p));
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpBadHeaderLength);
    }

    [Fact]
    public void Ethernet_padding_after_the_ip_packet_is_trimmed()
    {
        // pskb_trim_rcsum(skb, len) (ip_input.c:526): the UDP length check then sees the IP length, so the
        // padded packet is valid and tracked.
        var p = RawPackets.Padded(PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1111, 53, payload: 0), 18);
        var (v, s) = In(p);
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
        s.Length.Should().Be(28, "20-byte IP header + 8-byte UDP header, padding trimmed");
    }

    [Fact]
    public void Padding_bytes_do_not_count_in_the_udp_checksum()
    {
        // Non-zero padding: a checksum over the untrimmed packet would fail; the kernel checksums skb->len after the trim.
        var p = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1111, 53, payload: 1);
        var padded = RawPackets.Concat(p, [0xFF, 0xEE, 0xDD, 0xCC, 0xBB]);
        var (_, s) = In(padded);
        s.Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Version_4_link_layer_with_a_version_6_header_is_dropped()
    {
        // The kernel picks ip_rcv by EtherType; ip_rcv_core then sees version 6 and drops it (ip_input.c:496).
        var p = PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1111, 53);
        var (v, s) = In(p, IpVersion.V4);
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpBadVersion);
    }

    [Fact]
    public void Version_6_link_layer_with_a_version_4_header_is_dropped()
    {
        // ip6_rcv_core: "if (hdr->version != 6) goto err" (ip6_input.c:199). 48 bytes so that the length check passes.
        var p = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1111, 53, payload: 20);
        var (v, s) = In(p, IpVersion.V6);
        v.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.IpBadVersion);
    }

    [Fact]
    public void Auto_version_tracks_ipv4_by_its_nibble()
    {
        var (v, s) = In(Udp(), IpVersion.Auto);
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Non_first_fragment_without_reassembly_is_invalid_fragment()
    {
        // ipv4_get_l4proto: "if (iph->frag_off & htons(IP_OFFSET)) return -1" (nf_conntrack_core.c:358) -> invalid.
        var p = RawPackets.Ipv4("192.0.2.1", "198.51.100.2", IpProtocol.Udp, new byte[16], fragmentField: 0x0002);
        var (v, s) = In(p, options: new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 1, Defragmentation = false });
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Fragment);
    }

    [Fact]
    public void Non_first_fragment_counts_invalid()
    {
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 1, Defragmentation = false });
        t.Send(RawPackets.Ipv4("192.0.2.1", "198.51.100.2", IpProtocol.Udp, new byte[16], fragmentField: 0x0002));
        t.Table.Statistics.Invalid.Should().Be(1);
        t.Table.Count.Should().Be(0);
    }

    [Fact]
    public void Dont_fragment_bit_alone_is_not_a_fragment()
    {
        var l4 = RawPackets.UdpSegment(1111, 53);
        var p = RawPackets.Ipv4("192.0.2.1", "198.51.100.2", IpProtocol.Udp, l4, fragmentField: 0x4000);
        var (v, s) = In(p, options: new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 1, Checksum = false });
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
    }
}
