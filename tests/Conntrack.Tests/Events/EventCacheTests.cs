using Conntrack.Events;
using Conntrack.Tests.ExpectationTests;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.EventCache;

public class EventCacheTests
{
    private static List<ConntrackEvent> Drain(ConntrackSubscription s)
    {
        var list = new List<ConntrackEvent>();
        while (s.Reader.TryRead(out var e))
        {
            list.Add(e);
        }

        return list;
    }

    private static byte[] Query(ushort sport = 5000) => PacketBuilder.Udp("192.0.2.10", "198.51.100.20", sport, 53);

    private static byte[] Answer(ushort dport = 5000) => PacketBuilder.Udp("198.51.100.20", "192.0.2.10", 53, dport);

    [Fact]
    public void Without_subscribers_no_event_cache_is_allocated()
    {
        using var t = new TestTable();
        t.Send(Query());
        t.Send(Answer());
        t.Table.Statistics.EventsLost.Should().Be(0);
        typeof(ConntrackTable).GetField("_ecache", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .GetValue(t.Table).Should().BeNull("the packet path must pay nothing for events nobody listens to");
    }

    [Fact]
    public void New_connection_is_announced_when_confirmed()
    {
        using var t = new TestTable();
        using var sub = t.Table.Subscribe();
        var state = default(PacketState);
        var q = Query();
        t.Table.In(q, t.Now, ref state);
        Drain(sub).Should().BeEmpty("an unconfirmed connection is not announced");
        t.Table.Confirm(q, t.Now, ref state);
        var events = Drain(sub);
        events.Should().ContainSingle();
        events[0].Label.Should().Be("NEW");
        events[0].Types.Should().HaveFlag(ConntrackEventType.New);
        events[0].Connection.Original.DestinationPort.Should().Be(53);
    }

    [Fact]
    public void First_reply_is_an_update_and_removal_a_destroy()
    {
        using var t = new TestTable();
        using var sub = t.Table.Subscribe();
        t.Send(Query());
        var handle = t.Send(Answer()).Connection;
        t.Table.Delete(handle, t.Now).Should().BeTrue();
        var labels = Drain(sub).Select(e => e.Label).ToList();
        labels.Should().Equal("NEW", "UPDATE", "DESTROY");
    }

    [Fact]
    public void A_subscriber_only_gets_events_in_its_mask()
    {
        using var t = new TestTable();
        using var sub = t.Table.Subscribe(ConntrackEventType.Destroy);
        var handle = t.Send(Query()).Connection;
        t.Send(Answer());
        t.Table.Delete(handle, t.Now);
        Drain(sub).Select(e => e.Label).Should().Equal("DESTROY");
    }

    [Fact]
    public void Events_a_full_channel_cannot_take_are_counted_as_lost()
    {
        using var t = new TestTable();
        using var sub = t.Table.Subscribe(ConntrackEventType.All, capacity: 1);
        t.Send(Query(5000));
        t.Send(Query(5001));
        t.Send(Query(5002));
        sub.Lost.Should().Be(2);
        t.Table.Statistics.EventsLost.Should().Be(2);
        Drain(sub).Should().HaveCount(1);
    }

    [Fact]
    public void An_undelivered_destroy_keeps_the_entry_dying_until_it_is_delivered()
    {
        using var t = new TestTable();
        using var sub = t.Table.Subscribe(ConntrackEventType.All, capacity: 1);
        var handle = t.Send(Query()).Connection;      // NEW fills the channel
        t.Table.Delete(handle, t.Now).Should().BeTrue();
        sub.Lost.Should().Be(1, "the DESTROY did not fit");
        var stats = t.Table.Statistics;
        stats.Entries.Should().Be(0);
        stats.Dying.Should().Be(1, "the entry waits for its DESTROY to be delivered");

        Drain(sub).Select(e => e.Label).Should().Equal("NEW");
        t.Table.CollectGarbage(t.Now, 16);
        Drain(sub).Select(e => e.Label).Should().Equal("DESTROY");
        t.Table.CollectGarbage(t.Now, 16);
        t.Table.Statistics.Dying.Should().Be(0);
    }

    [Fact]
    public void Expectations_announce_their_creation_and_their_use()
    {
        using var t = new TestTable();
        t.Table.Helpers.RegisterBuiltIns();
        t.Table.Helpers.Assign("tftp", IpProtocol.Udp, 69);
        using var sub = t.Table.Subscribe(ConntrackEventType.AllExpectation);
        t.Send(TftpTests.ReadRequest(50069));
        t.Send(PacketBuilder.Udp("198.51.100.20", "192.0.2.10", 50070, 50069));
        var events = Drain(sub);
        events.Select(e => e.Types).Should().Equal(ConntrackEventType.ExpectationNew, ConntrackEventType.ExpectationDestroy);
        events.Should().OnlyContain(e => e.IsExpectation && e.Expectation.HelperName == "tftp");
    }

    [Fact]
    public void Conntrack_E_line_has_the_kernel_tools_layout()
    {
        using var t = new TestTable();
        using var sub = t.Table.Subscribe();
        t.Send(Query());
        var e = Drain(sub).Single();
        var sw = new StringWriter();
        global::Conntrack.Diagnostics.ConnectionFormatter.WriteEventLine(sw, e);
        // As printed by conntrack v1.4.7 for a UDP flow (seen on this machine with conntrack -E).
        sw.ToString().TrimEnd().Should().Be(
            "    [NEW] udp      17 30 src=192.0.2.10 dst=198.51.100.20 sport=5000 dport=53 [UNREPLIED] src=198.51.100.20 dst=192.0.2.10 sport=53 dport=5000");
    }
}
