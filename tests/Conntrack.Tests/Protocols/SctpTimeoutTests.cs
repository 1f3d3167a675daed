using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.SctpChunks;

namespace Conntrack.Tests.Protocols;

/// <summary>Per-state timeouts (sctp_timeouts[]) and the packets that deliberately do not refresh them.</summary>
public class SctpTimeoutTests
{
    private const uint A = SctpFlow.TagA, B = SctpFlow.TagB, X = 0x0D0D0D0D;

    private static long Remaining(TestTable t, ushort port) => t.Sctp(port)!.Value.RemainingNs;

    [Fact]
    public void Each_state_gets_the_kernel_default_timeout()
    {
        using var t = new TestTable();
        var f = new SctpFlow(15001);
        (byte[] Packet, string State, long Seconds)[] steps =
        [
            (f.Init(), "CLOSED", 10),
            (f.InitAck(), "COOKIE_WAIT", 3),
            (f.CookieEcho(), "COOKIE_ECHOED", 3),
            (f.CookieAck(), "ESTABLISHED", 210),
            (f.Orig(B, ShutdownChunk()), "SHUTDOWN_SENT", 3),
            (f.Reply(A, ShutdownAckChunk()), "SHUTDOWN_ACK_SENT", 3),
            (f.Orig(B, ShutdownCompleteChunk()), "CLOSED", 10),
        ];
        foreach (var (packet, state, seconds) in steps)
        {
            t.Advance(0.5);
            t.Send(packet).Info.Should().NotBe(ConntrackInfo.Invalid);
            t.SctpState(15001).Should().Be(state);
            Remaining(t, 15001).Should().Be(seconds * TestTable.Second, state);
        }

        var g = new SctpFlow(15002);
        t.SendAll(g.Handshake());
        t.Send(g.Reply(A, ShutdownChunk()));
        t.SctpState(15002).Should().Be("SHUTDOWN_RECD");
        Remaining(t, 15002).Should().Be(3 * TestTable.Second);

        var h = new SctpFlow(15003);
        t.Send(h.Orig(B, HeartbeatChunk()));
        Remaining(t, 15003).Should().Be(30 * TestTable.Second);
    }

    [Fact]
    public void Configured_timeouts_are_used()
    {
        var o = new ConntrackOptions
        {
            MaxEntries = 4096, Buckets = 1024, HashSeed = 42,
            SctpTimeoutClosed = TimeSpan.FromSeconds(7), SctpTimeoutEstablished = TimeSpan.FromSeconds(60),
        };
        using var t = new TestTable(o);
        var f = new SctpFlow(15004);
        t.Send(f.Init());
        Remaining(t, 15004).Should().Be(7 * TestTable.Second);
        t.SendAll(f.Handshake().Skip(1));
        Remaining(t, 15004).Should().Be(60 * TestTable.Second);
    }

    [Fact]
    public void Retransmitted_init_in_closed_does_not_refresh()
    {
        // "don't renew timeout on init retransmit so port reuse by client or NAT middlebox cannot keep entry alive"
        using var t = new TestTable();
        var f = new SctpFlow(12001);
        var g = new SctpFlow(12003);
        t.Send(f.Init());
        t.Send(g.Init());
        t.Advance(4);
        t.Send(f.Init()).Info.Should().Be(ConntrackInfo.New);
        t.Send(g.Orig(0, InitChunk(X))).Info.Should().Be(ConntrackInfo.New, "a new tag does not refresh either");
        t.Advance(2);
        Remaining(t, 12001).Should().Be(4 * TestTable.Second);
        Remaining(t, 12003).Should().Be(4 * TestTable.Second);
    }

    [Fact]
    public void Init_in_cookie_wait_refreshes_and_an_expired_entry_is_replaced()
    {
        using var t = new TestTable();
        var f = new SctpFlow(12005);
        t.Send(f.Init());
        t.Send(f.InitAck());
        t.Advance(1);
        t.Send(f.Init()).Info.Should().Be(ConntrackInfo.Established);
        Remaining(t, 12005).Should().Be(3 * TestTable.Second);
        t.Advance(3.5);
        t.Sctp(12005).Should().BeNull();
        t.Send(f.Init()).Info.Should().Be(ConntrackInfo.New);
        t.SctpState(12005).Should().Be("CLOSED");
    }

    [Fact]
    public void Data_refreshes_the_established_timeout()
    {
        using var t = new TestTable();
        var f = new SctpFlow(15005);
        t.SendAll(f.Handshake());
        t.Advance(100);
        Remaining(t, 15005).Should().Be(110 * TestTable.Second);
        t.Send(f.Orig(B, DataChunk()));
        Remaining(t, 15005).Should().Be(210 * TestTable.Second);
    }

    [Fact]
    public void Invalid_packet_does_not_refresh()
    {
        using var t = new TestTable();
        var f = new SctpFlow(15006);
        t.SendAll(f.Handshake());
        t.Advance(10);
        t.Send(f.Orig(A, DataChunk())).Info.Should().Be(ConntrackInfo.Invalid);
        Remaining(t, 15006).Should().Be(200 * TestTable.Second);
    }
}
