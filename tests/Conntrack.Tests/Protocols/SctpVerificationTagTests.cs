using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.SctpChunks;

namespace Conntrack.Tests.Protocols;

/// <summary>
/// Verification tag rules (RFC 9260 8.5, 8.5.1) and the INIT / INIT ACK tag bookkeeping. Tags: the client's A
/// (carried by server packets), the server's B (carried by client packets). Each scenario was replayed through
/// Linux 6.18.44 with the same verdicts.
/// </summary>
public class SctpVerificationTagTests
{
    private const uint A = SctpFlow.TagA, B = SctpFlow.TagB, C = 0x0C0C0C0C, X = 0x0D0D0D0D, Y = 0x0E0E0E0E;

    private static (TestTable T, SctpFlow F) Established(ushort port)
    {
        var t = new TestTable();
        var f = new SctpFlow(port);
        t.SendAll(f.Handshake()).Should().NotContain(ConntrackInfo.Invalid);
        return (t, f);
    }

    [Theory]
    [InlineData(true, A, true)] // T set: the peer's tag (the one the other direction carries)
    [InlineData(true, B, false)]
    [InlineData(false, A, false)]
    [InlineData(false, B, true)] // T clear: the sender's own expected tag
    public void Abort_tag_must_match_own_tag_or_with_t_bit_the_peers(bool tBit, uint vtag, bool valid)
    {
        var (t, f) = Established(11001);
        using (t)
        {
            t.Send(f.Orig(vtag, AbortChunk(tBit))).Info.Should().Be(valid ? ConntrackInfo.Established : ConntrackInfo.Invalid);
            t.SctpState(11001).Should().Be(valid ? "CLOSED" : "ESTABLISHED");
        }
    }

    [Theory]
    [InlineData(true, A, true)]
    [InlineData(true, B, false)]
    [InlineData(false, A, false)]
    [InlineData(false, B, true)]
    public void Shutdown_complete_tag_must_match_own_tag_or_with_t_bit_the_peers(bool tBit, uint vtag, bool valid)
    {
        var (t, f) = Established(11005);
        using (t)
        {
            t.Send(f.Orig(B, ShutdownChunk()));
            t.Send(f.Reply(A, ShutdownAckChunk()));
            t.Send(f.Orig(vtag, ShutdownCompleteChunk(tBit))).Info.Should().Be(valid ? ConntrackInfo.Established : ConntrackInfo.Invalid);
            t.SctpState(11005).Should().Be(valid ? "CLOSED" : "SHUTDOWN_ACK_SENT");
        }
    }

    [Fact]
    public void Init_with_a_nonzero_tag_cannot_start_a_connection()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11009);
        t.Send(f.Orig(5, InitChunk(A))).Info.Should().Be(ConntrackInfo.Invalid);
        t.Connections().Should().BeEmpty();
    }

    [Fact]
    public void Init_with_a_nonzero_tag_is_invalid_on_an_existing_association()
    {
        var (t, f) = Established(11010);
        using (t)
        {
            t.Send(f.Orig(5, InitChunk(X))).Info.Should().Be(ConntrackInfo.Invalid);
            t.SctpState(11010).Should().Be("ESTABLISHED");
        }
    }

    [Fact]
    public void Cookie_echo_must_carry_the_tag_from_the_init_ack()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11011);
        t.Send(f.Init());
        t.Send(f.InitAck());
        t.Send(f.Orig(X, CookieEchoChunk())).Info.Should().Be(ConntrackInfo.Invalid);
        t.SctpState(11011).Should().Be("COOKIE_WAIT");
        t.Send(f.Orig(B, CookieEchoChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.SctpState(11011).Should().Be("COOKIE_ECHOED");
    }

    [Fact]
    public void Data_must_carry_the_tag_expected_in_its_direction()
    {
        var (t, f) = Established(11012);
        using (t)
        {
            t.Send(f.Orig(X, DataChunk())).Info.Should().Be(ConntrackInfo.Invalid);
            t.Send(f.Orig(B, DataChunk())).Info.Should().Be(ConntrackInfo.Established);
            t.Send(f.Reply(A, SackChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
            t.Send(f.Reply(B, SackChunk())).Info.Should().Be(ConntrackInfo.Invalid);
            t.SctpState(11012).Should().Be("ESTABLISHED");
        }
    }

    [Fact]
    public void Init_ack_contradicting_the_recorded_tag_is_invalid_unless_an_init_was_seen_from_that_side()
    {
        var (t, f) = Established(11041);
        using (t)
        {
            // COOKIE ACK cleared both INIT flags; the reply side's recorded tag is A.
            t.Send(f.Orig(B, InitAckChunk(X))).Info.Should().Be(ConntrackInfo.Invalid);
            t.Send(f.Orig(B, InitAckChunk(A))).Info.Should().Be(ConntrackInfo.Established);
        }
    }

    [Fact]
    public void Retransmitted_init_ack_with_a_new_tag_replaces_the_tag_while_the_init_is_pending()
    {
        using var t = new TestTable();
        var f = new SctpFlow(14003);
        t.Send(f.Init());
        t.Send(f.InitAck());
        t.Send(f.Reply(A, InitAckChunk(X))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(f.Orig(B, CookieEchoChunk())).Info.Should().Be(ConntrackInfo.Invalid);
        t.Send(f.Orig(X, CookieEchoChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.SctpState(14003).Should().Be("COOKIE_ECHOED");
    }

    [Fact]
    public void Init_collision_accepts_only_the_init_ack_that_repeats_the_peers_init_tag()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11039);
        t.Send(f.Orig(0, InitChunk(A))).Info.Should().Be(ConntrackInfo.New);
        t.Send(f.Reply(0, InitChunk(B))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(f.Reply(A, InitAckChunk(X))).Info.Should().Be(ConntrackInfo.Invalid);
        t.Send(f.Reply(A, InitAckChunk(B))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(f.Orig(B, InitAckChunk(A))).Info.Should().Be(ConntrackInfo.Established);
        t.SctpState(11039).Should().Be("COOKIE_WAIT");
    }

    [Fact]
    public void Stale_init_repeating_the_known_tag_is_not_recorded_so_a_contradicting_init_ack_stays_invalid()
    {
        // "netfilter: skip recording stale or retransmitted INIT" (in 6.18.44): an INIT whose tag equals the one
        // already recorded for its sender does not mark that side as having sent an INIT.
        var (t, f) = Established(1002);
        using (t)
        {
            t.Send(f.Reply(0, InitChunk(B))).Info.Should().Be(ConntrackInfo.EstablishedReply);
            t.Send(f.Orig(B, InitAckChunk(C))).Info.Should().Be(ConntrackInfo.Invalid);
        }
    }

    [Fact]
    public void Restart_init_on_an_established_association_moves_the_tags()
    {
        var (t, f) = Established(11043);
        using (t)
        {
            t.Send(f.Orig(0, InitChunk(X))).Info.Should().Be(ConntrackInfo.Established);
            t.Send(f.Reply(A, InitAckChunk(Y))).Info.Should().Be(ConntrackInfo.Invalid, "the reply direction now expects X");
            t.Send(f.Reply(X, InitAckChunk(Y))).Info.Should().Be(ConntrackInfo.EstablishedReply);
            t.Send(f.Orig(Y, CookieEchoChunk())).Info.Should().Be(ConntrackInfo.Established);
            t.Send(f.Reply(X, CookieAckChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
            t.SctpState(11043).Should().Be("ESTABLISHED");
        }
    }

    [Fact]
    public void Out_of_the_blue_shutdown_ack_records_its_tag_for_the_shutdown_complete()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11027);
        t.Send(f.Orig(X, ShutdownAckChunk())).Info.Should().Be(ConntrackInfo.New);
        t.SctpState(11027).Should().Be("SHUTDOWN_ACK_SENT");
        t.Send(f.Reply(X, ShutdownCompleteChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.SctpState(11027).Should().Be("CLOSED");
    }

    [Fact]
    public void Other_first_chunks_do_not_record_a_reply_tag()
    {
        // Only SHUTDOWN ACK (and INIT's initiate tag) set the reply tag in sctp_new; a first HEARTBEAT ACK does not.
        using var t = new TestTable();
        var f = new SctpFlow(1001);
        t.Send(f.Orig(0x11111111, HeartbeatAckChunk())).Info.Should().Be(ConntrackInfo.New);
        t.Send(f.Reply(0x11111111, DataChunk())).Info.Should().Be(ConntrackInfo.Invalid);
        var g = new SctpFlow(1002);
        t.Send(g.Orig(0x22222222, HeartbeatAckChunk())).Info.Should().Be(ConntrackInfo.New);
        t.Send(g.Reply(0, DataChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
    }

    [Fact]
    public void First_error_chunk_must_carry_tag_zero()
    {
        using var t = new TestTable();
        var f = new SctpFlow(1003);
        t.Send(f.Orig(0x11111111, ErrorChunk())).Info.Should().Be(ConntrackInfo.Invalid);
        t.Connections().Should().BeEmpty();
    }
}
