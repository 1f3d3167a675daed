using Conntrack.Tests.Support;
using Conntrack.Tuples;

namespace Conntrack.Tests.Table;

/// <summary>Expiry (nf_ct_is_expired / nf_ct_gc_expired) and the incremental collector (gc_worker, core.c:1495).</summary>
public class GarbageCollectionTests
{
    private static ConntrackOptions Small(int max = 256, int buckets = 64) =>
        new() { MaxEntries = max, Buckets = buckets, HashSeed = 21 };

    /// <summary>Opens flows 0 .. count - 1, each accepted.</summary>
    private static void Open(TestTable t, int count)
    {
        for (int i = 0; i < count; i++)
        {
            t.Send(Flow(i));
            t.LastVerdict.Should().Be(Verdict.Accept);
        }
    }

    private static byte[] Flow(int i) => PacketBuilder.Udp($"10.0.{i / 200}.{(i % 200) + 1}", "192.0.2.1", (ushort)(2000 + i), 53);

    [Fact]
    public void Expired_entry_is_invisible_to_lookups_at_once()
    {
        using var t = new TestTable(Small());
        t.Send(Flow(1));
        t.Advance(30);
        var tuple = ConntrackTuple.ForPorts(InetAddress.Parse("10.0.0.2"), InetAddress.Parse("192.0.2.1"), IpProtocol.Udp, 2001, 53, false);
        t.Table.TryGet(tuple, t.Now, out _).Should().BeFalse();
        t.Connections().Should().BeEmpty();
    }

    [Fact]
    public void Expired_entry_stays_counted_until_collected()
    {
        using var t = new TestTable(Small());
        t.Send(Flow(1));
        t.Advance(30);
        t.Table.Count.Should().Be(1, "Count includes expired entries not yet collected");
        t.Table.CollectGarbage(t.Now, t.Table.Buckets.Length).Should().Be(1);
        t.Table.Count.Should().Be(0);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Packet_of_an_expired_flow_removes_the_old_entry_and_starts_a_new_one()
    {
        using var t = new TestTable(Small());
        var old = t.Send(Flow(1)).Connection;
        t.Advance(31);
        var fresh = t.Send(Flow(1));
        fresh.Info.Should().Be(ConntrackInfo.New);
        fresh.Connection.Should().NotBe(old);
        t.Table.Count.Should().Be(1, "the lookup killed the expired entry on its way (nf_ct_gc_expired)");
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Collector_removes_only_expired_entries()
    {
        using var t = new TestTable(Small());
        for (int i = 0; i < 20; i++)
        {
            t.Send(Flow(i));
        }

        t.Advance(20);
        for (int i = 20; i < 30; i++)
        {
            t.Send(Flow(i));
        }

        t.Advance(15); // the first 20 are 35 s old, the last 10 15 s
        t.Table.CollectGarbage(t.Now, t.Table.Buckets.Length).Should().Be(20);
        t.Table.Count.Should().Be(10);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Collector_walks_the_buckets_incrementally()
    {
        using var t = new TestTable(Small(buckets: 64));
        Open(t, 30);

        t.Advance(31);
        int removed = 0;
        for (int step = 0; step < 8; step++)
        {
            removed += t.Table.CollectGarbage(t.Now, 8);
        }

        removed.Should().Be(30, "eight steps of 8 buckets cover all 64");
        t.Table.Count.Should().Be(0);
    }

    [Fact]
    public void Collector_steps_cover_the_table_in_buckets_over_budget_steps_whatever_the_number_of_connections()
    {
        // 200 connections over 16 buckets: each step of 4 buckets scans a quarter of the slots in use, so the
        // fourth step completes the sweep and not one before it does.
        using var t = new TestTable(Small(max: 256, buckets: 16));
        Open(t, 200);

        t.Advance(31);
        int removed = 0;
        for (int step = 0; step < 3; step++)
        {
            int now = t.Table.CollectGarbage(t.Now, 4);
            now.Should().BeInRange(1, 100, "step {0} scans a share of the table", step);
            removed += now;
        }

        removed.Should().BeLessThan(200);
        removed += t.Table.CollectGarbage(t.Now, 4);
        removed.Should().Be(200, "four steps of 4 buckets cover all 16");
        t.Table.Count.Should().Be(0);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Collector_with_zero_budget_removes_nothing()
    {
        using var t = new TestTable(Small());
        t.Send(Flow(1));
        t.Advance(31);
        t.Table.CollectGarbage(t.Now, 0).Should().Be(0);
        t.Table.Count.Should().Be(1);
    }

    [Fact]
    public void Negative_budget_is_rejected()
    {
        using var t = new TestTable(Small());
        var act = () => t.Table.CollectGarbage(t.Now, -1);
        act.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Slots_are_recycled_after_the_dying_list_is_reclaimed()
    {
        using var t = new TestTable(Small(max: 64));
        for (int round = 0; round < 20; round++)
        {
            for (int i = 0; i < 50; i++)
            {
                t.Send(Flow((round * 50) + i));
            }

            t.Advance(31);
            t.Table.CollectGarbage(t.Now, t.Table.Buckets.Length);
        }

        t.Table.Store.HighWater.Should().BeLessThanOrEqualTo(64, "1000 connections in 20 generations reused at most 64 slots");
        t.Table.Statistics.Dying.Should().Be(0);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Connections_expire_on_the_caller_clock_not_wall_time()
    {
        using var t = new TestTable(Small());
        t.Send(Flow(1));
        Thread.Sleep(50);
        t.Connections().Should().HaveCount(1);
        t.Connections().Single().RemainingNs.Should().Be(30 * TestTable.Second);
    }

    [Fact]
    public void Unconfirmed_entries_are_not_collected()
    {
        using var t = new TestTable(Small());
        var p = Flow(1);
        var s = default(PacketState);
        t.Table.In(p, t.Now, ref s);
        t.Advance(100);
        t.Table.CollectGarbage(t.Now, t.Table.Buckets.Length);
        t.Table.Confirm(p, t.Now, ref s).Should().Be(Verdict.Accept);
        t.Connections().Single().RemainingNs.Should().Be(30 * TestTable.Second, "the timeout starts at confirmation");
    }
}
