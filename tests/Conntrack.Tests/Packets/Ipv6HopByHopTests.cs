using System.Buffers.Binary;
using Conntrack.Tests.Support;
using static Conntrack.Tests.Support.RawPackets;

namespace Conntrack.Tests.Packets;

/// <summary>
/// ipv6_parse_hopopts() and ip6_parse_tlv() (net/ipv6/exthdrs.c:114-228, 1057-1090), run by ip6_rcv_core
/// before PREROUTING (ip6_input.c:280): malformed hop-by-hop options drop the packet.
/// </summary>
public class Ipv6HopByHopTests
{
    private const string Src = "2001:db8::1", Dst = "2001:db8::2";

    private static (Verdict Verdict, PacketState State) In(byte[] packet)
    {
        using var t = new TestTable();
        var s = default(PacketState);
        var v = t.Table.In(packet, t.Now, ref s);
        return (v, s);
    }

    private static byte[] WithOptions(params byte[] options) =>
        Ipv6Udp(Src, Dst, NextHopByHop, OptionsHeader(NextUdp, options));

    private static void ShouldBeTrackedUdp(byte[] packet)
    {
        var (v, s) = In(packet);
        s.Reason.Should().Be(PacketReason.None);
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
        s.Protocol.Should().Be(IpProtocol.Udp);
    }

    private static void ShouldBeDroppedAsBadHopByHop(byte[] packet)
    {
        var (v, s) = In(packet);
        s.Reason.Should().Be(PacketReason.Ipv6BadHopByHop);
        v.Should().Be(Verdict.Drop);
    }

    [Fact]
    public void Hop_by_hop_with_padn_is_walked_to_udp()
    {
        // PadN with 4 zero bytes: 2 + 6 = 8 bytes.
        ShouldBeTrackedUdp(WithOptions(1, 4, 0, 0, 0, 0));
    }

    [Fact]
    public void Hop_by_hop_with_six_pad1_is_accepted()
    {
        ShouldBeTrackedUdp(WithOptions(0, 0, 0, 0, 0, 0));
    }

    [Fact]
    public void Packet_too_short_for_an_8_byte_hop_by_hop_header_is_dropped()
    {
        // pskb_may_pull(skb, sizeof(struct ipv6hdr) + 8) fails (exthdrs.c:1069): 40 + 6 bytes.
        var p = Ipv6(Src, Dst, NextHopByHop, [NextNone, 0, 1, 2, 0, 0], 0, []);
        ShouldBeDroppedAsBadHopByHop(p);
    }

    [Fact]
    public void Hop_by_hop_longer_than_the_packet_is_dropped()
    {
        // Hdr Ext Len 1 (16 bytes) with only 8 present: the second pskb_may_pull fails (exthdrs.c:1070).
        var p = Ipv6(Src, Dst, NextHopByHop, [NextNone, 1, 1, 4, 0, 0, 0, 0], 0, []);
        ShouldBeDroppedAsBadHopByHop(p);
    }

    [Fact]
    public void More_than_seven_bytes_of_consecutive_padding_is_dropped()
    {
        // Pad1 then PadN(6 data bytes) = 1 + 8 = 9 bytes of padding > 7 (exthdrs.c:156); 2 + 9 + 5 = 16 bytes.
        ShouldBeDroppedAsBadHopByHop(WithOptions(0, 1, 6, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0));
    }

    [Fact]
    public void Eight_pad1_in_a_row_is_dropped()
    {
        // padlen > 7 after the eighth Pad1 (exthdrs.c:138); 2 + 8 + 6 = 16 bytes.
        ShouldBeDroppedAsBadHopByHop(WithOptions(0, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0));
    }

    [Fact]
    public void Padn_with_non_zero_contents_is_dropped()
    {
        // RFC 4942 2.1.9.5 check (exthdrs.c:163).
        ShouldBeDroppedAsBadHopByHop(WithOptions(1, 4, 0, 0, 7, 0));
    }

    [Fact]
    public void Eight_options_are_accepted()
    {
        // max_hbh_opts_cnt defaults to 8: eight skippable options (type 0x1E, length 0) + PadN(4) = 16 + 6 = 22; + 2 = 24.
        var o = new List<byte>();
        for (int i = 0; i < 8; i++)
        {
            o.AddRange([0x1E, 0]);
        }

        o.AddRange([1, 4, 0, 0, 0, 0]);
        ShouldBeTrackedUdp(WithOptions([.. o]));
    }

    [Fact]
    public void Nine_options_are_dropped()
    {
        // tlv_count > max_count (exthdrs.c:169): nine options (18 bytes) + PadN(2) = 22; + 2 = 24.
        var o = new List<byte>();
        for (int i = 0; i < 9; i++)
        {
            o.AddRange([0x1E, 0]);
        }

        o.AddRange([1, 2, 0, 0]);
        ShouldBeDroppedAsBadHopByHop(WithOptions([.. o]));
    }

    [Fact]
    public void Router_alert_of_length_2_is_accepted()
    {
        // ipv6_hop_ra (exthdrs.c:900): type 5, length 2, value 0 (MLD); then PadN(0): 4 + 2 = 6 bytes.
        ShouldBeTrackedUdp(WithOptions(5, 2, 0, 0, 1, 0));
    }

    [Fact]
    public void Router_alert_of_wrong_length_is_dropped()
    {
        // type 5, length 3 + 3 bytes, then Pad1: 6 bytes.
        ShouldBeDroppedAsBadHopByHop(WithOptions(5, 3, 0, 0, 0, 0));
    }

    [Fact]
    public void Unknown_option_with_skip_bits_00_is_ignored()
    {
        // ip6_tlvopt_unknown: "case 0: /* ignore */" (exthdrs.c:80). Type 0x1E, 2 data bytes, PadN(0).
        ShouldBeTrackedUdp(WithOptions(0x1E, 2, 0xAA, 0xBB, 1, 0));
    }

    [Theory]
    [InlineData(0x5E)] // 01: discard silently
    [InlineData(0x9E)] // 10: discard, ICMP parameter problem
    [InlineData(0xDE)] // 11: discard, ICMP unless multicast
    public void Unknown_option_with_discard_bits_drops_the_packet(byte type)
    {
        // ip6_tlvopt_unknown cases 1, 2, 3 (exthdrs.c:83-96).
        ShouldBeDroppedAsBadHopByHop(WithOptions(type, 2, 0xAA, 0xBB, 1, 0));
    }

    [Fact]
    public void Option_length_beyond_the_header_is_dropped()
    {
        // "if (optlen > len) goto bad" (exthdrs.c:147): option claims 10 data bytes in a 6-byte area.
        ShouldBeDroppedAsBadHopByHop(WithOptions(0x1E, 10, 0, 0, 0, 0));
    }

    // ---- jumbo payload (ipv6_hop_jumbo, exthdrs.c:994-1029). The option sits at offset 42, so (42 & 3) == 2.

    private static byte[] Jumbo(uint jumboLength, int payloadLengthField, int dataBytes, byte optionLength = 4)
    {
        var hbh = new byte[] { 253, 0, 0xC2, optionLength, 0, 0, 0, 0 };
        BinaryPrimitives.WriteUInt32BigEndian(hbh.AsSpan(4), jumboLength);
        return Ipv6(Src, Dst, NextHopByHop, hbh, 253, new byte[dataBytes], payloadLengthField: payloadLengthField);
    }

    [Fact]
    public void Valid_jumbogram_is_accepted_and_tracked_generically()
    {
        // Payload length 0, jumbo length > 65535 and within the packet: tracked (protocol 253, generic).
        const int data = 65536;
        uint jumbo = 8 + data;
        var (v, s) = In(Jumbo(jumbo, 0, data));
        s.Reason.Should().Be(PacketReason.None);
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
        s.Protocol.Should().Be(253);
        s.Length.Should().Be((int)jumbo + 40);
    }

    [Fact]
    public void Jumbogram_is_trimmed_to_its_jumbo_length()
    {
        // pskb_trim_rcsum(skb, pkt_len + sizeof(struct ipv6hdr)) (exthdrs.c:1024): 100 bytes of padding removed.
        const int data = 65536;
        uint jumbo = 8 + data;
        var (_, s) = In(Padded(Jumbo(jumbo, 0, data), 100));
        s.Length.Should().Be((int)jumbo + 40);
    }

    [Fact]
    public void Jumbo_option_with_a_non_zero_payload_length_is_dropped()
    {
        // "if (ipv6_hdr(skb)->payload_len)" -> parameter problem (exthdrs.c:1013).
        const int data = 65536;
        ShouldBeDroppedAsBadHopByHop(Jumbo(8 + data, 8, data));
    }

    [Fact]
    public void Jumbo_length_of_at_most_65535_is_dropped()
    {
        // "if (pkt_len <= IPV6_MAXPLEN)" (exthdrs.c:1008).
        ShouldBeDroppedAsBadHopByHop(Jumbo(65535, 0, 100));
    }

    [Fact]
    public void Jumbo_length_beyond_the_packet_is_dropped()
    {
        // "if (pkt_len > skb->len - sizeof(struct ipv6hdr))" (exthdrs.c:1019).
        const int data = 65536;
        ShouldBeDroppedAsBadHopByHop(Jumbo(8 + data + 1, 0, data));
    }

    [Fact]
    public void Jumbo_option_with_wrong_length_is_dropped()
    {
        // "if (nh[optoff + 1] != 4 || (optoff & 3) != 2)" (exthdrs.c:1000): option length 3 + 1 data byte... then Pad1.
        var hbh = new byte[] { 253, 0, 0xC2, 3, 0, 1, 0, 0 };
        ShouldBeDroppedAsBadHopByHop(Ipv6(Src, Dst, NextHopByHop, hbh, 253, new byte[65536], payloadLengthField: 0));
    }

    [Fact]
    public void Jumbo_option_misaligned_is_dropped()
    {
        // Pad1 first puts the option at offset 43: (43 & 3) == 3, not 2. Header 16 bytes: Pad1, jumbo(6), PadN(5).
        var hbh = new byte[] { 253, 1, 0, 0xC2, 4, 0, 1, 0, 8, 1, 3, 0, 0, 0, 0, 0 };
        ShouldBeDroppedAsBadHopByHop(Ipv6(Src, Dst, NextHopByHop, hbh, 253, new byte[65536], payloadLengthField: 0));
    }

    [Fact]
    public void Zero_payload_length_with_hop_by_hop_but_no_jumbo_option_is_accepted_untrimmed()
    {
        // ip6_rcv_core skips the length check when pkt_len == 0 and nexthdr == HOP (ip6_input.c:268); with no jumbo
        // option nothing trims the packet, so conntrack sees all of it.
        var p = Ipv6(Src, Dst, NextHopByHop, OptionsHeader(253, 1, 4, 0, 0, 0, 0), 253, new byte[12], payloadLengthField: 0);
        var (v, s) = In(p);
        v.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
        s.Length.Should().Be(p.Length);
    }
}
