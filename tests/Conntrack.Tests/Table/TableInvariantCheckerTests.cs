using Conntrack.Table;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Table;

/// <summary>The invariant checker itself must notice corruption (else the invariant tests could not fail).</summary>
public class TableInvariantCheckerTests
{
    private static TestTable TableWithFlows(int n)
    {
        var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 16, HashSeed = 3 });
        for (int i = 0; i < n; i++)
        {
            t.Send(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", (ushort)(100 + i), 53));
        }

        return t;
    }

    private static int NonEmptyBucket(ConntrackTable table) =>
        Enumerable.Range(0, table.Buckets.Length).First(b => table.Buckets[b] >= 0);

    [Fact]
    public void Checker_passes_a_healthy_table()
    {
        using var t = TableWithFlows(5);
        TableInvariants.Violations(t.Table).Should().BeEmpty();
    }

    [Fact]
    public void Checker_reports_a_chain_ending_in_another_buckets_marker()
    {
        using var t = TableWithFlows(5);
        int b = NonEmptyBucket(t.Table);
        int node = t.Table.Buckets[b];
        ref Connection c = ref t.Table.Entries[node >> 1];
        ref int link = ref ((node & 1) == 0 ? ref c.NextOriginal : ref c.NextReply);
        int saved = link;
        if (link < 0)
        {
            link = ~((b + 1) % 16);
            TableInvariants.Violations(t.Table).Should().Contain(v => v.Contains("nulls marker"));
            link = saved;
        }
        else
        {
            // Cut the chain after the first node into another bucket's marker.
            link = ~((b + 1) % 16);
            TableInvariants.Violations(t.Table).Should().NotBeEmpty();
            link = saved;
        }

        TableInvariants.Violations(t.Table).Should().BeEmpty();
    }

    [Fact]
    public void Checker_reports_an_entry_unreachable_under_its_reply_tuple()
    {
        using var t = TableWithFlows(1);
        int b = NonEmptyBucket(t.Table);
        int saved = t.Table.Buckets[b];
        // Drop the whole chain of one bucket: whatever nodes were there become unreachable.
        t.Table.Buckets[b] = ~b;
        TableInvariants.Violations(t.Table).Should().Contain(v => v.Contains("unreachable"));
        t.Table.Buckets[b] = saved;
    }

    [Fact]
    public void Checker_reports_a_kind_that_does_not_match_the_list()
    {
        using var t = TableWithFlows(2);
        int idx = t.Table.Buckets[NonEmptyBucket(t.Table)] >> 1;
        t.Table.Entries[idx].Kind = EntryKind.Dying;
        TableInvariants.Violations(t.Table).Should().Contain(v => v.Contains("kind Dying"));
        t.Table.Entries[idx].Kind = EntryKind.Hashed;
    }

    [Fact]
    public void Checker_reports_a_leaked_slot()
    {
        using var t = TableWithFlows(0);
        var s = default(PacketState);
        t.Table.In(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2), t.Now, ref s);
        var ctx = t.Table.Contexts.Single(c => c.UnconfirmedCount == 1);
        int head = ctx.UnconfirmedHead;
        ctx.UnconfirmedHead = -1;
        ctx.UnconfirmedCount = 0;
        TableInvariants.Violations(t.Table).Should().Contain(v => v.Contains("leaked"));
        ctx.UnconfirmedHead = head;
        ctx.UnconfirmedCount = 1;
        t.Table.Release(ref s);
    }
}
