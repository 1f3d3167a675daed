using Conntrack.Tests.Support;

namespace Conntrack.Tests.Protocols;

/// <summary>nf_conntrack_udplite_packet() and udplite_error() (nf_conntrack_proto_udp.c:141-213).</summary>
public class UdpLiteTrackerTests
{
    private const long S = TestTable.Second;

    // PacketBuilder.UdpLite: 8-byte header + 8 payload bytes = 16 bytes of UDP-Lite; checksum over the coverage
    // with the pseudo-header protocol the kernel uses (IPPROTO_UDP, proto_udp.c:168).
    private static byte[] Lite(ushort coverage, bool reply = false, bool checksum = true) => reply
        ? PacketBuilder.UdpLite("198.51.100.20", "192.0.2.10", 7000, 6000, coverage, checksum)
        : PacketBuilder.UdpLite("192.0.2.10", "198.51.100.20", 6000, 7000, coverage, checksum);

    [Fact]
    public void Coverage_zero_means_the_whole_datagram_and_is_valid()
    {
        using var t = new TestTable();
        t.Info(Lite(0)).Should().Be(ConntrackInfo.New);
        t.Connections().Should().ContainSingle().Which.ProtocolName.Should().Be("udplite");
    }

    [Theory]
    [InlineData(8)]
    [InlineData(12)]
    [InlineData(16)]
    public void Coverage_between_8_and_the_length_is_valid(int coverage)
    {
        using var t = new TestTable();
        t.Info(Lite((ushort)coverage)).Should().Be(ConntrackInfo.New);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void Coverage_below_8_is_invalid(int coverage)
    {
        // "cscov < sizeof(*hdr)" -> invalid checksum coverage (proto_udp.c:156).
        using var t = new TestTable();
        var s = t.Send(Lite((ushort)coverage));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Malformed);
    }

    [Fact]
    public void Coverage_beyond_the_datagram_is_invalid()
    {
        // "cscov > udplen" (proto_udp.c:156): 17 > 16.
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3, Checksum = false });
        var s = t.Send(Lite(17));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Malformed);
    }

    [Fact]
    public void Zero_checksum_is_invalid_because_udplite_mandates_one()
    {
        // "UDPLITE mandates checksums" (proto_udp.c:162), whatever nf_conntrack_checksum says.
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3, Checksum = false });
        var s = t.Send(Lite(0, checksum: false));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Checksum);
    }

    [Fact]
    public void Wrong_checksum_is_invalid_with_checksum_checking_on()
    {
        var p = Lite(0);
        p[^1] ^= 0x33;
        using var t = new TestTable();
        t.Send(p).Reason.Should().Be(PacketReason.Layer4Checksum);
    }

    [Fact]
    public void Bytes_outside_the_coverage_do_not_affect_the_checksum()
    {
        // Coverage 8: only the header is summed; changing payload bytes keeps the packet valid.
        var p = Lite(8);
        p[^1] ^= 0x33;
        using var t = new TestTable();
        t.Info(p).Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Unreplied_udplite_lives_30_seconds()
    {
        using var t = new TestTable();
        t.Send(Lite(0));
        t.Connections().Single().RemainingNs.Should().Be(30 * S);
    }

    [Fact]
    public void Udplite_is_assured_with_120_seconds_on_the_first_packet_after_a_reply()
    {
        // Unlike UDP there is no two-second rule: once SEEN_REPLY is set, UDP_CT_REPLIED and ASSURED (proto_udp.c:200-208).
        using var t = new TestTable();
        t.Info(Lite(0)).Should().Be(ConntrackInfo.New);
        t.Info(Lite(0, reply: true)).Should().Be(ConntrackInfo.EstablishedReply);
        var afterReply = t.Connections().Single();
        afterReply.RemainingNs.Should().Be(30 * S, "SEEN_REPLY is set after the packet function ran");
        afterReply.Status.Should().NotHaveFlag(ConnectionStatus.Assured);
        t.Advance(0.1);
        t.Info(Lite(0)).Should().Be(ConntrackInfo.Established);
        var c = t.Connections().Single();
        c.RemainingNs.Should().Be(120 * S);
        c.Status.Should().HaveFlag(ConnectionStatus.Assured);
    }
}
