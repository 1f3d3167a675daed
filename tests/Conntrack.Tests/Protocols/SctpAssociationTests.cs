using Conntrack.Protocols;
using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.SctpChunks;

namespace Conntrack.Tests.Protocols;

/// <summary>Whole associations; every expectation here was replayed through Linux 6.18.44 (kernel-ct-replay) with the same result.</summary>
public class SctpAssociationTests
{
    private const uint A = SctpFlow.TagA, B = SctpFlow.TagB, X = 0x0D0D0D0D;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Full_association_from_init_to_shutdown_complete_ends_closed_and_assured(bool ipv6)
    {
        using var t = new TestTable();
        var f = new SctpFlow(14001, ipv6: ipv6);
        (byte[] Packet, ConntrackInfo Info, string State)[] steps =
        [
            (f.Init(), ConntrackInfo.New, "CLOSED"),
            (f.InitAck(), ConntrackInfo.EstablishedReply, "COOKIE_WAIT"),
            (f.CookieEcho(), ConntrackInfo.Established, "COOKIE_ECHOED"),
            (f.CookieAck(), ConntrackInfo.EstablishedReply, "ESTABLISHED"),
            (f.Orig(B, DataChunk()), ConntrackInfo.Established, "ESTABLISHED"),
            (f.Reply(A, SackChunk()), ConntrackInfo.EstablishedReply, "ESTABLISHED"),
            (f.Reply(A, DataChunk()), ConntrackInfo.EstablishedReply, "ESTABLISHED"),
            (f.Orig(B, SackChunk()), ConntrackInfo.Established, "ESTABLISHED"),
            (f.Reply(A, HeartbeatChunk()), ConntrackInfo.EstablishedReply, "ESTABLISHED"),
            (f.Orig(B, HeartbeatAckChunk()), ConntrackInfo.Established, "ESTABLISHED"),
            (f.Orig(B, ShutdownChunk()), ConntrackInfo.Established, "SHUTDOWN_SENT"),
            (f.Reply(A, ShutdownAckChunk()), ConntrackInfo.EstablishedReply, "SHUTDOWN_ACK_SENT"),
            (f.Orig(B, ShutdownCompleteChunk()), ConntrackInfo.Established, "CLOSED"),
        ];
        foreach (var (packet, info, state) in steps)
        {
            t.Send(packet).Info.Should().Be(info);
            t.SctpState(14001).Should().Be(state);
        }

        string l3 = ipv6 ? "ipv6" : "ipv4";
        t.OracleLines().Should().Equal(
            $"{l3} sctp 132 CLOSED src={f.Client} dst={f.Server} sport=14001 dport=2000 src={f.Server} dst={f.Client} sport=2000 dport=14001 [ASSURED] mark=0 zone=0");
    }

    [Fact]
    public void Init_alone_leaves_a_closed_unreplied_entry()
    {
        // The oracle's self-test other_protocols: "sctp 132 CLOSED ... [UNREPLIED]".
        using var t = new TestTable();
        var f = new SctpFlow(5000);
        t.Send(f.Init()).Info.Should().Be(ConntrackInfo.New);
        t.OracleLines().Should().Equal(
            "ipv4 sctp 132 CLOSED src=192.0.2.10 dst=198.51.100.20 sport=5000 dport=2000 src=198.51.100.20 dst=192.0.2.10 sport=2000 dport=5000 [UNREPLIED] mark=0 zone=0");
    }

    [Fact]
    public void Shutdown_started_by_the_server_goes_through_shutdown_recd()
    {
        using var t = new TestTable();
        var f = new SctpFlow(14005);
        t.SendAll(f.Handshake());
        t.Send(f.Reply(A, ShutdownChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.SctpState(14005).Should().Be("SHUTDOWN_RECD");
        t.Send(f.Orig(B, ShutdownAckChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.SctpState(14005).Should().Be("SHUTDOWN_ACK_SENT");
        t.Send(f.Reply(A, ShutdownCompleteChunk())).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.SctpState(14005).Should().Be("CLOSED");
    }

    [Fact]
    public void Abort_closes_an_established_association_but_keeps_it_assured()
    {
        using var t = new TestTable();
        var f = new SctpFlow(14006);
        t.SendAll(f.Handshake());
        t.Send(f.Reply(B, AbortChunk(t: true))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        var c = t.Sctp(14006)!.Value;
        c.StateName.Should().Be("CLOSED");
        c.Status.HasFlag(ConnectionStatus.Assured).Should().BeTrue();
    }

    [Fact]
    public void Closed_association_accepts_data_and_a_new_handshake_on_the_same_entry()
    {
        using var t = new TestTable();
        var f = new SctpFlow(14007);
        t.SendAll(f.Handshake());
        t.Send(f.Orig(B, AbortChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.Send(f.Orig(B, DataChunk())).Info.Should().Be(ConntrackInfo.Established);
        t.SctpState(14007).Should().Be("CLOSED");
        t.Send(f.Orig(0, InitChunk(X))).Info.Should().Be(ConntrackInfo.Established);
        t.Send(f.Reply(X, InitAckChunk(B))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.SctpState(14007).Should().Be("COOKIE_WAIT");
    }

    [Fact]
    public void Heartbeat_sent_first_creates_a_heartbeat_sent_entry()
    {
        using var t = new TestTable();
        var f = new SctpFlow(14008);
        t.Send(f.Orig(B, HeartbeatChunk())).Info.Should().Be(ConntrackInfo.New);
        t.OracleLines().Should().Equal(
            "ipv4 sctp 132 HEARTBEAT_SENT src=192.0.2.10 dst=198.51.100.20 sport=14008 dport=2000 src=198.51.100.20 dst=192.0.2.10 sport=2000 dport=14008 [UNREPLIED] mark=0 zone=0");
    }

    [Theory]
    [InlineData(SctpConntrack.None, "NONE")]
    [InlineData(SctpConntrack.Closed, "CLOSED")]
    [InlineData(SctpConntrack.CookieWait, "COOKIE_WAIT")]
    [InlineData(SctpConntrack.CookieEchoed, "COOKIE_ECHOED")]
    [InlineData(SctpConntrack.Established, "ESTABLISHED")]
    [InlineData(SctpConntrack.ShutdownSent, "SHUTDOWN_SENT")]
    [InlineData(SctpConntrack.ShutdownRecd, "SHUTDOWN_RECD")]
    [InlineData(SctpConntrack.ShutdownAckSent, "SHUTDOWN_ACK_SENT")]
    [InlineData(SctpConntrack.HeartbeatSent, "HEARTBEAT_SENT")]
    public void State_names_are_the_kernel_proc_names(byte state, string name) =>
        SctpTracker.StateName(state).Should().Be(name);

    [Fact]
    public void Only_shutdown_states_can_be_dropped_early()
    {
        for (byte s = 0; s < SctpConntrack.Max; s++)
        {
            SctpTracker.CanEarlyDrop(s).Should().Be(
                s is SctpConntrack.ShutdownSent or SctpConntrack.ShutdownRecd or SctpConntrack.ShutdownAckSent, $"state {s}");
        }
    }
}
