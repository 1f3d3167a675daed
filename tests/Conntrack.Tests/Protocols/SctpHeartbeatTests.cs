using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.SctpChunks;

namespace Conntrack.Tests.Protocols;

/// <summary>
/// HEARTBEAT handling: a secondary path (multi-homing) picked up from a HEARTBEAT, and the vtag-failed memory
/// that lets a HEARTBEAT / HEARTBEAT ACK exchange with new tags (a restarted association) through. Each
/// scenario was replayed through Linux 6.18.44 with the same verdicts.
/// </summary>
public class SctpHeartbeatTests
{
    private const uint A = SctpFlow.TagA, B = SctpFlow.TagB, X = 0x0D0D0D0D, Y = 0x0E0E0E0E;

    private static (TestTable T, SctpFlow F) Established(ushort port)
    {
        var t = new TestTable();
        var f = new SctpFlow(port);
        t.SendAll(f.Handshake()).Should().NotContain(ConntrackInfo.Invalid);
        return (t, f);
    }

    [Fact]
    public void Secondary_path_is_learnt_from_heartbeat_and_its_ack()
    {
        using var t = new TestTable();
        var f = new SctpFlow(11032);
        t.Send(f.Orig(B, HeartbeatChunk())).Info.Should().Be(ConntrackInfo.New);
        t.SctpState(11032).Should().Be("HEARTBEAT_SENT");
        t.Send(f.Reply(A, HeartbeatAckChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
        var c = t.Sctp(11032)!.Value;
        c.StateName.Should().Be("ESTABLISHED");
        c.Status.HasFlag(ConnectionStatus.Assured).Should().BeTrue();

        t.Send(f.Orig(B, DataChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.Send(f.Reply(A, SackChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(f.Reply(X, SackChunk())).Info.Should().Be(ConntrackInfo.Invalid, "the reply tag A was learnt from the HEARTBEAT ACK");
    }

    [Fact]
    public void Heartbeat_with_a_new_tag_then_its_ack_switches_to_the_new_tags()
    {
        var (t, f) = Established(11033);
        using (t)
        {
            // Accepted but ignored: no state change, no refresh.
            t.Send(f.Orig(X, HeartbeatChunk())).Info.Should().Be(ConntrackInfo.Established);
            // The answer from the other side adopts its tag and forgets the original direction's.
            t.Send(f.Reply(Y, HeartbeatAckChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
            t.Send(f.Orig(X, DataChunk())).Info.Should().Be(ConntrackInfo.Invalid, "the original tag is now 0");
            t.Send(f.Orig(X, HeartbeatChunk())).Info.Should().Be(ConntrackInfo.Established, "a HEARTBEAT learns a zero tag");
            t.Send(f.Orig(X, DataChunk())).Info.Should().Be(ConntrackInfo.Established);
            t.Send(f.Reply(Y, SackChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
            t.SctpState(11033).Should().Be("ESTABLISHED");
        }
    }

    [Fact]
    public void Heartbeat_ack_with_an_unknown_tag_and_no_failed_heartbeat_is_invalid()
    {
        var (t, f) = Established(11034);
        using (t)
        {
            t.Send(f.Reply(Y, HeartbeatAckChunk())).Info.Should().Be(ConntrackInfo.Invalid);
        }
    }

    [Fact]
    public void Heartbeat_with_an_unknown_tag_bundled_with_data_is_invalid()
    {
        var (t, f) = Established(11035);
        using (t)
        {
            t.Send(f.Orig(X, HeartbeatChunk(), DataChunk())).Info.Should().Be(ConntrackInfo.Invalid);
        }
    }

    [Fact]
    public void Second_heartbeat_with_an_unknown_tag_in_one_packet_is_invalid()
    {
        var (t, f) = Established(11036);
        using (t)
        {
            t.Send(f.Orig(X, HeartbeatChunk(), HeartbeatChunk())).Info.Should().Be(ConntrackInfo.Invalid);
        }
    }

    [Fact]
    public void Heartbeat_ack_must_come_from_the_other_side_than_the_failed_heartbeat()
    {
        var (t, f) = Established(11037);
        using (t)
        {
            t.Send(f.Orig(X, HeartbeatChunk())).Info.Should().Be(ConntrackInfo.Established);
            t.Send(f.Orig(Y, HeartbeatAckChunk())).Info.Should().Be(ConntrackInfo.Invalid);
            t.Send(f.Reply(Y, HeartbeatAckChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
        }
    }

    [Fact]
    public void Heartbeat_with_the_right_tag_clears_the_failure_memory()
    {
        var (t, f) = Established(11038);
        using (t)
        {
            t.Send(f.Orig(X, HeartbeatChunk())).Info.Should().Be(ConntrackInfo.Established);
            t.Send(f.Orig(B, HeartbeatChunk())).Info.Should().Be(ConntrackInfo.Established);
            t.Send(f.Reply(Y, HeartbeatAckChunk())).Info.Should().Be(ConntrackInfo.Invalid);
        }
    }

    [Fact]
    public void Ignored_heartbeat_does_not_refresh_the_timeout()
    {
        var (t, f) = Established(12002);
        using (t)
        {
            t.Advance(5);
            t.Send(f.Orig(X, HeartbeatChunk())).Info.Should().Be(ConntrackInfo.Established);
            t.Advance(1);
            t.Sctp(12002)!.Value.RemainingNs.Should().Be(204 * TestTable.Second);
        }
    }

    [Fact]
    public void Heartbeat_in_heartbeat_sent_refreshes_the_timeout()
    {
        using var t = new TestTable();
        var f = new SctpFlow(12004);
        t.Send(f.Orig(B, HeartbeatChunk()));
        t.Advance(4);
        t.Send(f.Orig(B, HeartbeatChunk())).Info.Should().Be(ConntrackInfo.New);
        t.Advance(2);
        t.Sctp(12004)!.Value.RemainingNs.Should().Be(28 * TestTable.Second);
    }
}
