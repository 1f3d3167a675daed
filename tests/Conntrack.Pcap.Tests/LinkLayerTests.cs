namespace Conntrack.Pcap.Tests;

public class LinkLayerTests
{
    private const ushort Arp = 0x0806;
    private const ushort Ipv4Type = 0x0800;
    private const ushort Ipv6Type = 0x86DD;

    [Fact]
    public void Ethernet_frame_with_ipv4_ethertype_yields_ipv4_after_the_14_byte_header()
    {
        byte[] frame = Frames.Ethernet(Ipv4Type, Frames.Ipv4(8));

        LinkLayer.Decode(LinkType.Ethernet, frame, out int offset).Should().Be(FrameKind.Ipv4);
        offset.Should().Be(14);
    }

    [Fact]
    public void Ethernet_frame_with_ipv6_ethertype_yields_ipv6_after_the_14_byte_header()
    {
        LinkLayer.Decode(LinkType.Ethernet, Frames.Ethernet(Ipv6Type, Frames.Ipv6()), out int offset).Should().Be(FrameKind.Ipv6);
        offset.Should().Be(14);
    }

    [Fact]
    public void Ethernet_frame_with_one_vlan_tag_yields_ipv4_after_the_tag()
    {
        byte[] frame = Frames.Ethernet(0x8100, [0x00, 0x2A, 0x08, 0x00, .. Frames.Ipv4()]);

        LinkLayer.Decode(LinkType.Ethernet, frame, out int offset).Should().Be(FrameKind.Ipv4);
        offset.Should().Be(18);
    }

    [Fact]
    public void Ethernet_frame_with_two_vlan_tags_yields_ipv4_after_both_tags()
    {
        byte[] frame = Frames.Ethernet(0x88A8, [0x00, 0x0A, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00, .. Frames.Ipv4()]);

        LinkLayer.Decode(LinkType.Ethernet, frame, out int offset).Should().Be(FrameKind.Ipv4);
        offset.Should().Be(22);
    }

    [Fact]
    public void Ethernet_frame_with_three_stacked_tags_of_every_tpid_yields_ipv6_after_them()
    {
        byte[] frame = Frames.Ethernet(0x9100, [0, 1, 0x88, 0xA8, 0, 2, 0x81, 0x00, 0, 3, 0x86, 0xDD, .. Frames.Ipv6()]);

        LinkLayer.Decode(LinkType.Ethernet, frame, out int offset).Should().Be(FrameKind.Ipv6);
        offset.Should().Be(26);
    }

    [Fact]
    public void Ethernet_frame_ending_inside_a_vlan_tag_is_not_ip()
    {
        byte[] frame = Frames.Ethernet(0x8100, [0x00, 0x2A, 0x08]);

        LinkLayer.Decode(LinkType.Ethernet, frame, out int offset).Should().Be(FrameKind.NonIp);
        offset.Should().Be(0);
    }

    [Fact]
    public void Ethernet_frame_ending_right_after_a_vlan_tag_for_ipv4_is_ipv4_with_an_empty_packet()
    {
        byte[] frame = Frames.Ethernet(0x8100, [0x00, 0x2A, 0x08, 0x00]);

        LinkLayer.Decode(LinkType.Ethernet, frame, out int offset).Should().Be(FrameKind.Ipv4);
        offset.Should().Be(frame.Length);
    }

    [Fact]
    public void Ethernet_header_alone_with_ipv6_ethertype_is_ipv6_with_an_empty_packet()
    {
        byte[] frame = Frames.Ethernet(Ipv6Type, []);

        LinkLayer.Decode(LinkType.Ethernet, frame, out int offset).Should().Be(FrameKind.Ipv6);
        offset.Should().Be(14);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(13)]
    public void Ethernet_frame_shorter_than_its_header_is_not_ip(int length)
    {
        LinkLayer.Decode(LinkType.Ethernet, new byte[length], out _).Should().Be(FrameKind.NonIp);
    }

    [Theory]
    [InlineData(Arp)]
    [InlineData((ushort)0x88CC)]    // LLDP
    [InlineData((ushort)0x8847)]    // MPLS
    [InlineData((ushort)0x8864)]    // PPPoE session
    [InlineData((ushort)0x0042)]    // an 802.3 length field
    public void Ethernet_frame_with_a_non_ip_ethertype_is_not_ip(ushort etherType)
    {
        LinkLayer.Decode(LinkType.Ethernet, Frames.Ethernet(etherType, Frames.Ipv4()), out _).Should().Be(FrameKind.NonIp);
    }

    [Fact]
    public void Ethernet_frame_with_arp_behind_a_vlan_tag_is_not_ip()
    {
        LinkLayer.Decode(LinkType.Ethernet, Frames.Ethernet(0x8100, [0, 5, 0x08, 0x06, .. new byte[28]]), out _)
            .Should().Be(FrameKind.NonIp);
    }

    [Fact]
    public void Ethernet_ipv4_ethertype_decides_even_when_the_header_says_version_6()
    {
        LinkLayer.Decode(LinkType.Ethernet, Frames.Ethernet(Ipv4Type, Frames.Ipv6()), out int offset).Should().Be(FrameKind.Ipv4);
        offset.Should().Be(14);
    }

    [Fact]
    public void Ethernet_ipv6_ethertype_decides_even_when_the_header_says_version_4()
    {
        LinkLayer.Decode(LinkType.Ethernet, Frames.Ethernet(Ipv6Type, Frames.Ipv4()), out _).Should().Be(FrameKind.Ipv6);
    }

    [Theory]
    [InlineData(LinkType.Raw)]
    [InlineData(LinkType.RawLegacy12)]
    [InlineData(LinkType.RawLegacy14)]
    public void Raw_ip_is_decided_by_the_version_nibble(LinkType linkType)
    {
        LinkLayer.Decode(linkType, Frames.Ipv4(), out int offset4).Should().Be(FrameKind.Ipv4);
        LinkLayer.Decode(linkType, Frames.Ipv6(), out int offset6).Should().Be(FrameKind.Ipv6);
        LinkLayer.Decode(linkType, [0x45], out _).Should().Be(FrameKind.Ipv4, "one byte is enough to see the version");
        offset4.Should().Be(0);
        offset6.Should().Be(0);
    }

    [Theory]
    [InlineData(LinkType.Raw, new byte[0])]
    [InlineData(LinkType.Raw, new byte[] { 0x50, 0, 0, 0 })]
    [InlineData(LinkType.RawLegacy12, new byte[] { 0x00 })]
    [InlineData(LinkType.RawLegacy14, new byte[] { 0xF4 })]
    public void Raw_ip_with_another_version_or_no_bytes_is_not_ip(LinkType linkType, byte[] frame)
    {
        LinkLayer.Decode(linkType, frame, out _).Should().Be(FrameKind.NonIp);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0x60 })]
    [InlineData(new byte[] { 0x45, 0, 0, 20 })]
    public void Link_type_228_is_always_ipv4_at_offset_zero(byte[] frame)
    {
        LinkLayer.Decode(LinkType.Ipv4, frame, out int offset).Should().Be(FrameKind.Ipv4);
        offset.Should().Be(0);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0x45 })]
    public void Link_type_229_is_always_ipv6_at_offset_zero(byte[] frame)
    {
        LinkLayer.Decode(LinkType.Ipv6, frame, out int offset).Should().Be(FrameKind.Ipv6);
        offset.Should().Be(0);
    }

    [Fact]
    public void Linux_cooked_v1_frame_yields_ip_after_the_16_byte_header()
    {
        LinkLayer.Decode(LinkType.LinuxSll, Sll(Ipv4Type, Frames.Ipv4()), out int offset4).Should().Be(FrameKind.Ipv4);
        LinkLayer.Decode(LinkType.LinuxSll, Sll(Ipv6Type, Frames.Ipv6()), out int offset6).Should().Be(FrameKind.Ipv6);
        offset4.Should().Be(16);
        offset6.Should().Be(16);
    }

    [Fact]
    public void Linux_cooked_v1_frame_with_a_vlan_tag_yields_ip_after_the_tag()
    {
        LinkLayer.Decode(LinkType.LinuxSll, Sll(0x8100, [0, 7, 0x86, 0xDD, .. Frames.Ipv6()]), out int offset).Should().Be(FrameKind.Ipv6);
        offset.Should().Be(20);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(15)]
    public void Linux_cooked_v1_frame_shorter_than_its_header_is_not_ip(int length)
    {
        LinkLayer.Decode(LinkType.LinuxSll, Sll(Ipv4Type, [])[..length], out _).Should().Be(FrameKind.NonIp);
    }

    [Fact]
    public void Linux_cooked_v1_frame_of_header_only_is_ip_with_an_empty_packet()
    {
        LinkLayer.Decode(LinkType.LinuxSll, Sll(Ipv4Type, []), out int offset).Should().Be(FrameKind.Ipv4);
        offset.Should().Be(16);
    }

    [Fact]
    public void Linux_cooked_v1_arp_is_not_ip()
    {
        LinkLayer.Decode(LinkType.LinuxSll, Sll(Arp, new byte[28]), out _).Should().Be(FrameKind.NonIp);
    }

    [Fact]
    public void Linux_cooked_v2_frame_yields_ip_after_the_20_byte_header()
    {
        LinkLayer.Decode(LinkType.LinuxSll2, Sll2(Ipv4Type, Frames.Ipv4()), out int offset4).Should().Be(FrameKind.Ipv4);
        LinkLayer.Decode(LinkType.LinuxSll2, Sll2(Ipv6Type, Frames.Ipv6()), out int offset6).Should().Be(FrameKind.Ipv6);
        offset4.Should().Be(20);
        offset6.Should().Be(20);
    }

    [Fact]
    public void Linux_cooked_v2_frame_with_two_vlan_tags_yields_ip_after_both()
    {
        byte[] frame = Sll2(0x88A8, [0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00, .. Frames.Ipv4()]);

        LinkLayer.Decode(LinkType.LinuxSll2, frame, out int offset).Should().Be(FrameKind.Ipv4);
        offset.Should().Be(28);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(19)]
    public void Linux_cooked_v2_frame_shorter_than_its_header_is_not_ip(int length)
    {
        LinkLayer.Decode(LinkType.LinuxSll2, Sll2(Ipv4Type, [])[..length], out _).Should().Be(FrameKind.NonIp);
    }

    [Fact]
    public void Linux_cooked_v2_arp_is_not_ip()
    {
        LinkLayer.Decode(LinkType.LinuxSll2, Sll2(Arp, new byte[28]), out _).Should().Be(FrameKind.NonIp);
    }

    [Theory]
    [InlineData(LinkType.Null, new byte[] { 2, 0, 0, 0 })]       // AF_INET, little-endian host
    [InlineData(LinkType.Null, new byte[] { 0, 0, 0, 30 })]      // AF_INET6 (macOS), big-endian host: not looked at
    [InlineData(LinkType.Loop, new byte[] { 0, 0, 0, 2 })]
    [InlineData(LinkType.Loop, new byte[] { 0xFF, 0xFF, 0xFF, 0xFF })]
    public void Loopback_ignores_the_family_and_decides_by_the_version_nibble_after_it(LinkType linkType, byte[] family)
    {
        LinkLayer.Decode(linkType, [.. family, .. Frames.Ipv4()], out int offset4).Should().Be(FrameKind.Ipv4);
        LinkLayer.Decode(linkType, [.. family, .. Frames.Ipv6()], out int offset6).Should().Be(FrameKind.Ipv6);
        offset4.Should().Be(4);
        offset6.Should().Be(4);
    }

    [Theory]
    [InlineData(LinkType.Null, new byte[0])]
    [InlineData(LinkType.Null, new byte[] { 2, 0, 0, 0 })]
    [InlineData(LinkType.Loop, new byte[] { 0, 0, 0, 2, 0x55 })]
    [InlineData(LinkType.Loop, new byte[] { 0x45, 0, 0 })]
    public void Loopback_frame_without_an_ip_version_after_the_family_is_not_ip(LinkType linkType, byte[] frame)
    {
        LinkLayer.Decode(linkType, frame, out _).Should().Be(FrameKind.NonIp);
    }

    [Theory]
    [InlineData(LinkType.Null)]
    [InlineData(LinkType.Ethernet)]
    [InlineData(LinkType.RawLegacy12)]
    [InlineData(LinkType.RawLegacy14)]
    [InlineData(LinkType.Raw)]
    [InlineData(LinkType.Loop)]
    [InlineData(LinkType.LinuxSll)]
    [InlineData(LinkType.Ipv4)]
    [InlineData(LinkType.Ipv6)]
    [InlineData(LinkType.LinuxSll2)]
    public void Every_named_link_type_is_supported_and_decodes_an_empty_frame_without_throwing(LinkType linkType)
    {
        LinkLayer.IsSupported(linkType).Should().BeTrue();
        Action decode = () => LinkLayer.Decode(linkType, [], out _);
        decode.Should().NotThrow();
    }

    [Theory]
    [InlineData(105u)]     // 802.11
    [InlineData(127u)]     // radiotap
    [InlineData(147u)]     // USER0
    [InlineData(0x0FFFFFFFu)]
    public void Unsupported_link_type_throws_not_supported_naming_the_number_and_the_supported_list(uint number)
    {
        var linkType = (LinkType)number;

        LinkLayer.IsSupported(linkType).Should().BeFalse();
        Action decode = () => LinkLayer.Decode(linkType, Frames.Ipv4(), out _);
        decode.Should().Throw<NotSupportedException>()
            .WithMessage($"Link type {number} is not supported*1 Ethernet*113*276*");
    }

    private static byte[] Sll(ushort protocol, byte[] payload)
    {
        var frame = new byte[16 + payload.Length];
        frame[15] = (byte)protocol;
        frame[14] = (byte)(protocol >> 8);
        payload.CopyTo(frame, 16);
        return frame;
    }

    private static byte[] Sll2(ushort protocol, byte[] payload)
    {
        var frame = new byte[20 + payload.Length];
        frame[0] = (byte)(protocol >> 8);
        frame[1] = (byte)protocol;
        payload.CopyTo(frame, 20);
        return frame;
    }
}
