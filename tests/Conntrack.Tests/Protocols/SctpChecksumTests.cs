using System.Buffers.Binary;
using Conntrack.Protocols;
using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.SctpChunks;

namespace Conntrack.Tests.Protocols;

/// <summary>CRC32c and the nf_conntrack_checksum switch (replayed through Linux 6.18.44 with checksum 1 and 0: same verdicts).</summary>
public class SctpChecksumTests
{
    private const uint A = SctpFlow.TagA, B = SctpFlow.TagB;

    private static uint Crc(byte[] data) => ~SctpChecksum.Update(~0u, data);

    [Fact]
    public void Crc32c_matches_the_published_check_value() =>
        Crc("123456789"u8.ToArray()).Should().Be(0xE3069283);

    [Fact]
    public void Crc32c_matches_the_rfc3720_test_vectors()
    {
        Crc(new byte[32]).Should().Be(0x8A9136AA);
        Crc(Enumerable.Repeat((byte)0xFF, 32).ToArray()).Should().Be(0x62A8AB43);
        Crc(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()).Should().Be(0x46DD794E);
        Crc(Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray()).Should().Be(0x113FDB5C);
    }

    [Fact]
    public void Table_and_instruction_paths_agree_at_every_length_and_alignment()
    {
        var rnd = new Random(7);
        var buf = new byte[300];
        rnd.NextBytes(buf);
        for (int start = 0; start < 8; start++)
        {
            for (int len = 0; len < 260; len++)
            {
                var span = buf.AsSpan(start, len);
                SctpChecksum.Update(0x12345678, span).Should().Be(SctpChecksum.UpdateSoftware(0x12345678, span));
            }
        }
    }

    [Fact]
    public void Packet_checksum_is_computed_over_the_header_with_the_field_zeroed()
    {
        var f = new SctpFlow(13000);
        byte[] ip = f.Init();
        var l4 = ip.AsSpan(20);
        SctpChecksum.Compute(l4).Should().Be(BinaryPrimitives.ReadUInt32LittleEndian(l4[8..]));
        SctpChecksum.Valid(l4).Should().BeTrue();
        SctpChecksum.Valid(SctpFlow.CorruptChecksum(ip).AsSpan(20)).Should().BeFalse();
    }

    [Fact]
    public void Bad_crc_is_invalid_when_checksum_checking_is_on()
    {
        using var t = new TestTable(); // nf_conntrack_checksum defaults to 1
        var f = new SctpFlow(13001);
        var g = new SctpFlow(13002);
        t.Send(f.Init()).Info.Should().Be(ConntrackInfo.New);
        var bad = t.Send(SctpFlow.CorruptChecksum(g.Init()));
        bad.Info.Should().Be(ConntrackInfo.Invalid);
        bad.Reason.Should().Be(PacketReason.Layer4Checksum);
        t.Send(f.InitAck()).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(SctpFlow.CorruptChecksum(f.CookieEcho())).Info.Should().Be(ConntrackInfo.Invalid);
        t.Send(f.CookieEcho()).Info.Should().Be(ConntrackInfo.Established);
        t.Send(f.CookieAck()).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(SctpFlow.CorruptChecksum(f.Orig(B, DataChunk()))).Info.Should().Be(ConntrackInfo.Invalid);
        t.Send(f.Orig(B, DataChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.Sctp(13002).Should().BeNull();
        t.SctpState(13001).Should().Be("ESTABLISHED");
    }

    [Fact]
    public void Bad_crc_over_ipv6_is_invalid_when_checksum_checking_is_on()
    {
        using var t = new TestTable();
        var f = new SctpFlow(13003, ipv6: true);
        t.Send(f.Init()).Info.Should().Be(ConntrackInfo.New);
        t.Send(SctpFlow.CorruptChecksum(f.InitAck())).Info.Should().Be(ConntrackInfo.Invalid);
        t.Send(f.InitAck()).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.SctpState(13003).Should().Be("COOKIE_WAIT");
    }

    [Fact]
    public void Bad_crc_is_accepted_when_checksum_checking_is_off()
    {
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 4096, Buckets = 1024, HashSeed = 42, Checksum = false });
        var f = new SctpFlow(13001);
        t.Send(SctpFlow.CorruptChecksum(f.Init())).Info.Should().Be(ConntrackInfo.New);
        t.Send(SctpFlow.CorruptChecksum(f.InitAck())).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.SctpState(13001).Should().Be("COOKIE_WAIT");
    }

    [Fact]
    public void Short_packet_is_invalid_before_any_checksum_is_looked_at()
    {
        using var t = new TestTable();
        var l4 = new byte[11];
        BinaryPrimitives.WriteUInt16BigEndian(l4, 13004);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), 2000);
        var s = t.Send(PacketBuilder.Raw(SctpFlow.ClientV4, SctpFlow.ServerV4, IpProtocol.Sctp, l4));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Truncated);
    }
}
