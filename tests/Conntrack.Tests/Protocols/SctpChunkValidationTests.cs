using System.Buffers.Binary;
using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.SctpChunks;

namespace Conntrack.Tests.Protocols;

/// <summary>
/// sctp_error() and do_basic_checks(): header length, chunk lengths and which chunks must be alone or first;
/// and sctp_new(): which first chunks may create a connection. Each case was replayed through Linux 6.18.44
/// with the same verdict.
/// </summary>
public class SctpChunkValidationTests
{
    private const uint A = SctpFlow.TagA, B = SctpFlow.TagB;

    private static (TestTable T, SctpFlow F) Established(ushort port)
    {
        var t = new TestTable();
        var f = new SctpFlow(port);
        t.SendAll(f.Handshake()).Should().NotContain(ConntrackInfo.Invalid);
        return (t, f);
    }

    private static PacketReason Reason(TestTable t, byte[] packet)
    {
        var s = t.Send(packet);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        return s.Reason;
    }

    [Fact]
    public void Zero_length_chunk_is_invalid()
    {
        var (t, f) = Established(11013);
        using (t)
        {
            Reason(t, f.OrigRaw(B, [.. DataChunk(), .. Chunk(Sack, length: 0)])).Should().Be(PacketReason.Layer4Malformed);
            t.SctpState(11013).Should().Be("ESTABLISHED");
        }
    }

    [Fact]
    public void Init_bundled_with_another_chunk_cannot_start_a_connection()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11014);
        Reason(t, f.Orig(0, InitChunk(A), DataChunk())).Should().Be(PacketReason.Layer4Malformed);
        t.Connections().Should().BeEmpty();
    }

    [Fact]
    public void Init_after_another_chunk_is_invalid()
    {
        var (t, f) = Established(11015);
        using (t)
        {
            Reason(t, f.Orig(B, DataChunk(), InitChunk(A))).Should().Be(PacketReason.Layer4Malformed);
        }
    }

    [Fact]
    public void Cookie_echo_must_be_the_first_chunk_but_may_carry_data_after_it()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11016);
        t.Send(f.Init());
        t.Send(f.InitAck());
        Reason(t, f.Orig(B, DataChunk(), CookieEchoChunk())).Should().Be(PacketReason.Layer4Malformed);
        t.Send(f.Orig(B, CookieEchoChunk(), DataChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.SctpState(11016).Should().Be("COOKIE_ECHOED");
    }

    [Fact]
    public void Cookie_ack_must_be_the_first_chunk()
    {
        var (t, f) = Established(11019);
        using (t)
        {
            Reason(t, f.Reply(A, DataChunk(), CookieAckChunk())).Should().Be(PacketReason.Layer4Malformed);
        }
    }

    [Fact]
    public void Shutdown_complete_must_be_alone()
    {
        var (t, f) = Established(11017);
        using (t)
        {
            t.Send(f.Orig(B, ShutdownChunk()));
            t.Send(f.Reply(A, ShutdownAckChunk()));
            Reason(t, f.Orig(B, ShutdownCompleteChunk(), DataChunk())).Should().Be(PacketReason.Layer4Malformed);
            t.SctpState(11017).Should().Be("SHUTDOWN_ACK_SENT");
        }
    }

    [Fact]
    public void Chunk_walk_needs_one_whole_chunk_header_and_ignores_lengths_past_the_end()
    {
        var (t, f) = Established(11018);
        using (t)
        {
            Reason(t, f.OrigRaw(B, [])).Should().Be(PacketReason.Layer4Malformed, "no chunk at all");
            Reason(t, f.OrigRaw(B, [0, 3, 0])).Should().Be(PacketReason.Layer4Malformed, "three bytes are no chunk header");
            t.Send(f.OrigRaw(B, Chunk(Data, 3, "abcd"u8.ToArray(), length: 400))).Info.Should().Be(ConntrackInfo.Established,
                "a length beyond the packet only ends the walk");
            t.Send(f.OrigRaw(B, [.. Chunk(Data, 3, length: 1), .. SackChunk()])).Info.Should().Be(ConntrackInfo.Established,
                "a length of 1 still steps one padded word");
        }
    }

    [Fact]
    public void Chunk_walk_steps_over_the_padding_of_an_odd_length_chunk()
    {
        var (t, f) = Established(16001);
        using (t)
        {
            // A 5-byte chunk padded to 8: an unpadded step would land on the padding and read a zero length.
            t.Send(f.OrigRaw(B, [.. Chunk(Data, 3, "x"u8.ToArray()), .. DataChunk()])).Info.Should().Be(ConntrackInfo.Established);
            Reason(t, f.OrigRaw(B, [.. Chunk(Data, 3, "x"u8.ToArray()), .. CookieAckChunk()])).Should().Be(PacketReason.Layer4Malformed,
                "the padded step finds the COOKIE ACK as the second chunk");
        }
    }

    [Fact]
    public void Bundles_apply_each_chunk_in_turn()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11044);
        t.Send(f.Init());
        t.Send(f.InitAck());
        t.Send(f.Orig(B, CookieEchoChunk(), DataChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.SctpState(11044).Should().Be("COOKIE_ECHOED");
        t.Send(f.Reply(A, CookieAckChunk(), SackChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.SctpState(11044).Should().Be("ESTABLISHED");
        t.Send(f.Orig(B, SackChunk(), ShutdownChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.SctpState(11044).Should().Be("SHUTDOWN_SENT");
    }

    [Fact]
    public void Abort_after_data_in_one_packet_closes()
    {
        var (t, f) = Established(11045);
        using (t)
        {
            t.Send(f.Orig(B, DataChunk(), AbortChunk())).Info.Should().Be(ConntrackInfo.Established);
            t.SctpState(11045).Should().Be("CLOSED");
        }
    }

    [Theory]
    [InlineData((byte)200)]
    [InlineData((byte)63)]
    public void Unknown_chunk_types_pass_with_the_right_tag(byte type)
    {
        var (t, f) = Established(11020);
        using (t)
        {
            t.Send(f.OrigRaw(B, Chunk(type, 0, "abcd"u8.ToArray()))).Info.Should().Be(ConntrackInfo.Established);
            t.SctpState(11020).Should().Be("ESTABLISHED");
        }
    }

    [Theory]
    [InlineData(Data)]
    [InlineData(Sack)]
    [InlineData((byte)200)]
    public void Chunks_outside_the_table_cannot_start_a_connection(byte type)
    {
        using var t = new TestTable();
        var f = new SctpFlow(11021);
        Reason(t, f.OrigRaw(0, Chunk(type, 0, new byte[12]))).Should().Be(PacketReason.CannotCreate);
        t.Connections().Should().BeEmpty();
    }

    [Fact]
    public void Any_chunk_outside_the_table_in_the_first_packet_prevents_the_connection()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11023);
        Reason(t, f.Orig(0, ErrorChunk(), DataChunk())).Should().Be(PacketReason.CannotCreate);
        t.Connections().Should().BeEmpty();
    }

    [Theory]
    [InlineData(Abort)]
    [InlineData(ShutdownComplete)]
    [InlineData(CookieAck)]
    public void Out_of_the_blue_abort_shutdown_complete_or_cookie_ack_is_discarded(byte type)
    {
        using var t = new TestTable();
        var f = new SctpFlow(11024);
        Reason(t, f.Orig(0, Chunk(type))).Should().Be(PacketReason.CannotCreate);
        t.Connections().Should().BeEmpty();
    }

    [Fact]
    public void Packet_shorter_than_the_common_header_is_invalid()
    {
        using var t = new TestTable();
        var l4 = new byte[8];
        BinaryPrimitives.WriteUInt16BigEndian(l4, 11028);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), 2000);
        Reason(t, PacketBuilder.Raw(SctpFlow.ClientV4, SctpFlow.ServerV4, IpProtocol.Sctp, l4)).Should().Be(PacketReason.Layer4Truncated);
        Reason(t, PacketBuilder.Raw(SctpFlow.ClientV4, SctpFlow.ServerV4, IpProtocol.Sctp, [0, 1, 2])).Should().Be(PacketReason.Layer4Truncated);
        t.Connections().Should().BeEmpty();
    }

    [Fact]
    public void Init_needs_its_whole_header_in_the_packet()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11029);
        Reason(t, f.OrigRaw(0, Chunk(Init, 0, new byte[8]))).Should().Be(PacketReason.CannotCreate);
        t.Connections().Should().BeEmpty();
        var g = new SctpFlow(11030);
        t.Send(g.OrigRaw(0, Chunk(Init, 0, InitHeader(A)))).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Init_ack_needs_its_whole_header_in_the_packet()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11031);
        t.Send(f.Init());
        Reason(t, f.ReplyRaw(A, Chunk(InitAck, 0, new byte[8]))).Should().Be(PacketReason.Layer4Truncated);
        t.SctpState(11031).Should().Be("CLOSED");
    }

    [Fact]
    public void Invalid_transition_is_reported_as_sctp_invalid()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11050);
        t.Send(f.Orig(B, HeartbeatChunk()));
        Reason(t, f.Reply(0, ShutdownChunk())).Should().Be(PacketReason.SctpInvalid);
        t.SctpState(11050).Should().Be("HEARTBEAT_SENT");
    }

    [Fact]
    public void Tag_mismatch_is_reported_as_a_verification_tag_failure()
    {
        var (t, f) = Established(11051);
        using (t)
        {
            Reason(t, f.Orig(A, DataChunk())).Should().Be(PacketReason.SctpVerificationTag);
        }
    }
}
