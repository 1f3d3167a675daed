using Conntrack.Table;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Table;

/// <summary>Structural invariants of the table after traffic, deletes, flushes, expiry and collection.</summary>
public class TableInvariantTests
{
    private static ConntrackOptions Small(int max = 512, int buckets = 64) =>
        new() { MaxEntries = max, Buckets = buckets, HashSeed = 11 };

    /// <summary>Random UDP/ICMP/generic traffic among a few hosts and ports, both directions, some dropped before Confirm.</summary>
    private static void RandomTraffic(TestTable t, Random rng, int packets, double dropBeforeConfirm = 0.1)
    {
        var state = default(PacketState);
        for (int i = 0; i < packets; i++)
        {
            int a = rng.Next(1, 20), b = rng.Next(1, 20);
            ushort pa = (ushort)(1000 + rng.Next(30)), pb = (ushort)(50 + rng.Next(3));
            bool reverse = rng.Next(3) == 0;
            string sa = $"10.0.0.{a}", sb = $"10.1.0.{b}";
            byte[] p = rng.Next(10) switch
            {
                < 6 => reverse ? PacketBuilder.Udp(sb, sa, pb, pa) : PacketBuilder.Udp(sa, sb, pa, pb),
                < 8 => PacketBuilder.IcmpEcho(reverse ? sb : sa, reverse ? sa : sb, pa, 1, reply: reverse),
                < 9 => PacketBuilder.Raw(reverse ? sb : sa, reverse ? sa : sb, IpProtocol.Esp, new byte[8]),
                _ => PacketBuilder.Udp($"2001:db8::{a:x}", $"2001:db8:1::{b:x}", pa, pb),
            };
            var v = t.Table.In(p, t.Now, ref state, (ushort)(rng.Next(8) == 0 ? 1 : 0));
            if (v == Verdict.Accept && rng.NextDouble() >= dropBeforeConfirm)
            {
                t.Table.Confirm(p, t.Now, ref state);
            }

            t.Now += rng.Next(0, 200_000_000);
            if (rng.Next(500) == 0)
            {
                t.Table.CollectGarbage(t.Now, rng.Next(1, 64));
            }
        }

        t.Table.Release(ref state);
    }

    [Fact]
    public void Empty_table_satisfies_the_invariants()
    {
        using var t = new TestTable(Small());
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Random_traffic_keeps_every_entry_reachable_under_both_tuples()
    {
        using var t = new TestTable(Small());
        RandomTraffic(t, new Random(1), 5000);
        TableInvariants.AssertHold(t.Table);
        t.Table.Count.Should().BeGreaterThan(10, "the scenario must actually fill the table");
    }

    [Fact]
    public void Every_chain_ends_with_the_nulls_marker_of_its_own_bucket()
    {
        using var t = new TestTable(Small(buckets: 7));
        RandomTraffic(t, new Random(2), 2000, dropBeforeConfirm: 0);
        for (int b = 0; b < t.Table.Buckets.Length; b++)
        {
            int node = t.Table.Buckets[b];
            while (node >= 0)
            {
                ref Connection c = ref t.Table.Entries[node >> 1];
                node = (node & 1) == 0 ? c.NextOriginal : c.NextReply;
            }

            node.Should().Be(~b, $"bucket {b} must end in its own marker");
        }
    }

    [Fact]
    public void Invariants_hold_after_expiry_and_a_full_collection()
    {
        using var t = new TestTable(Small());
        RandomTraffic(t, new Random(3), 3000);
        t.Advance(700);
        t.Table.CollectGarbage(t.Now, t.Table.Buckets.Length);
        TableInvariants.AssertHold(t.Table);
        t.Table.Count.Should().Be(0, "every connection (600 s at most) has expired");
        t.Table.Statistics.Dying.Should().Be(0, "no reader is inside the table, so the dying list is reclaimed");
    }

    [Fact]
    public void Invariants_hold_after_deleting_half_the_connections()
    {
        using var t = new TestTable(Small());
        RandomTraffic(t, new Random(4), 3000, dropBeforeConfirm: 0);
        var all = t.Connections();
        // Count includes entries that have expired but are not collected yet; Connections() does not.
        int countBefore = t.Table.Count;
        int deleted = 0;
        foreach (var c in all.Where((_, i) => i % 2 == 0))
        {
            t.Table.Delete(c.Handle, t.Now).Should().BeTrue();
            deleted++;
        }

        TableInvariants.AssertHold(t.Table);
        t.Table.Count.Should().Be(countBefore - deleted);
    }

    [Fact]
    public void Invariants_hold_after_flush()
    {
        using var t = new TestTable(Small());
        RandomTraffic(t, new Random(5), 3000);
        int before = t.Table.Count;
        t.Table.Flush(t.Now).Should().Be(before);
        TableInvariants.AssertHold(t.Table);
        t.Table.Count.Should().Be(0);
        t.Connections().Should().BeEmpty();
    }

    [Fact]
    public void Slots_returned_to_the_free_list_by_reclaim_are_marked_free()
    {
        // EntryKind documents "exactly one list at any time": Free means "on the free list". Store.Free sets it;
        // the batch path used by Reclaim (ConnectionStore.FreeChain) must too.
        using var t = new TestTable(Small());
        var h = t.Send(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2)).Connection;
        t.Table.Delete(h, t.Now).Should().BeTrue();
        t.Table.Entries[h.Index].Kind.Should().Be(EntryKind.Dying, "precondition: a deleted entry waits on the dying list");
        t.Table.CollectGarbage(t.Now, 1); // no reader inside: Reclaim moves it to the free list
        t.Table.Statistics.Dying.Should().Be(0, "precondition: reclaimed");
        t.Table.Store.FreeCount.Should().Be(1);
        t.Table.Entries[h.Index].Kind.Should().Be(EntryKind.Free, "a slot on the free list must say Free (ConnectionStore.FreeChain leaves Dying)");
    }

    [Fact]
    public void Release_frees_the_unconfirmed_entry()
    {
        using var t = new TestTable(Small());
        var s = default(PacketState);
        t.Table.In(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2), t.Now, ref s);
        s.IsUnconfirmed.Should().BeTrue();
        t.Table.Statistics.Unconfirmed.Should().Be(1);
        t.Table.Release(ref s);
        s.IsUnconfirmed.Should().BeFalse();
        t.Table.Statistics.Unconfirmed.Should().Be(0);
        t.Table.Count.Should().Be(0);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void In_again_with_the_same_state_frees_the_previous_unconfirmed_entry()
    {
        using var t = new TestTable(Small());
        var s = default(PacketState);
        for (int i = 0; i < 100; i++)
        {
            t.Table.In(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", (ushort)(1000 + i), 2), t.Now, ref s);
        }

        t.Table.Statistics.Unconfirmed.Should().Be(1, "each In released the previous packet's new entry");
        t.Table.Release(ref s);
        TableInvariants.AssertHold(t.Table);
        t.Table.Store.HighWater.Should().BeLessThan(5, "released slots are reused at once");
    }

    [Fact]
    public void Release_twice_is_harmless()
    {
        using var t = new TestTable(Small());
        var s = default(PacketState);
        t.Table.In(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2), t.Now, ref s);
        t.Table.Release(ref s);
        t.Table.Release(ref s);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Confirm_after_release_does_nothing()
    {
        using var t = new TestTable(Small());
        var p = PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2);
        var s = default(PacketState);
        t.Table.In(p, t.Now, ref s);
        t.Table.Release(ref s);
        t.Table.Confirm(p, t.Now, ref s).Should().Be(Verdict.Accept);
        t.Table.Count.Should().Be(0);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Unconfirmed_entry_is_never_found_by_another_packet()
    {
        // Lookups only match IPS_CONFIRMED entries (nf_ct_key_equal): a second packet of a flow whose first
        // packet was not confirmed yet creates its own entry.
        using var t = new TestTable(Small());
        var q = PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2);
        var r = PacketBuilder.Udp("10.0.0.2", "10.0.0.1", 2, 1);
        var s1 = default(PacketState);
        var s2 = default(PacketState);
        var s3 = default(PacketState);
        t.Table.In(q, t.Now, ref s1);
        t.Table.In(q, t.Now, ref s2);
        t.Table.In(r, t.Now, ref s3);
        s2.Info.Should().Be(ConntrackInfo.New);
        s2.Connection.Should().NotBe(s1.Connection);
        s3.Info.Should().Be(ConntrackInfo.New, "the reply does not see the unconfirmed entry either");
        s3.Connection.Should().NotBe(s1.Connection);
        t.Table.Statistics.Unconfirmed.Should().Be(3);
        t.Table.Count.Should().Be(0);
        t.Table.TryGet(t.Table.Entries[s1.Connection.Index].Original, t.Now, out _).Should().BeFalse();
        t.Table.Release(ref s1);
        t.Table.Release(ref s2);
        t.Table.Release(ref s3);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Delete_by_handle_removes_the_connection()
    {
        using var t = new TestTable(Small());
        var s = t.Send(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2));
        t.Table.Delete(s.Connection, t.Now).Should().BeTrue();
        t.Table.Count.Should().Be(0);
        t.Table.TryGetInfo(s.Connection, t.Now, out _).Should().BeFalse();
        t.Info(PacketBuilder.Udp("10.0.0.2", "10.0.0.1", 2, 1)).Should().Be(ConntrackInfo.New, "the reply no longer matches");
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Delete_twice_returns_false_the_second_time()
    {
        using var t = new TestTable(Small());
        var s = t.Send(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2));
        t.Table.Delete(s.Connection, t.Now).Should().BeTrue();
        t.Table.Delete(s.Connection, t.Now).Should().BeFalse();
    }

    [Fact]
    public void Delete_by_reply_tuple_removes_the_connection()
    {
        using var t = new TestTable(Small());
        var s = t.Send(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2));
        t.Table.TryGetInfo(s.Connection, t.Now, out var info).Should().BeTrue();
        t.Table.Delete(info.Reply, t.Now).Should().BeTrue();
        t.Table.Count.Should().Be(0);
        t.Table.Delete(info.Original, t.Now).Should().BeFalse();
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Default_handle_is_not_valid_and_resolves_to_nothing()
    {
        using var t = new TestTable(Small());
        default(ConnectionHandle).IsValid.Should().BeFalse();
        t.Table.TryGetInfo(default, t.Now, out _).Should().BeFalse();
        t.Table.Delete(default(ConnectionHandle), t.Now).Should().BeFalse();
    }

    [Fact]
    public void Handle_goes_stale_after_delete_even_when_its_slot_is_reused()
    {
        using var t = new TestTable(Small());
        var first = t.Send(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2)).Connection;
        t.Table.Delete(first, t.Now).Should().BeTrue();
        t.Table.CollectGarbage(t.Now, t.Table.Buckets.Length); // reclaims the dying list
        var second = t.Send(PacketBuilder.Udp("10.0.0.3", "10.0.0.4", 3, 4)).Connection;
        second.Index.Should().Be(first.Index, "precondition: the freed slot is handed out again");
        second.Should().NotBe(first);
        t.Table.TryGetInfo(first, t.Now, out _).Should().BeFalse();
        t.Table.Delete(first, t.Now).Should().BeFalse("a stale handle must not delete the slot's new connection");
        t.Table.TryGetInfo(second, t.Now, out var info).Should().BeTrue();
        info.Original.SourcePort.Should().Be(3);
    }

    [Fact]
    public void Handle_goes_stale_after_expiry_and_collection()
    {
        using var t = new TestTable(Small());
        var h = t.Send(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2)).Connection;
        t.Advance(31);
        t.Table.TryGetInfo(h, t.Now, out _).Should().BeFalse("expired entries are invisible at once");
        t.Table.CollectGarbage(t.Now, t.Table.Buckets.Length).Should().Be(1);
        t.Table.TryGetInfo(h, t.Now, out _).Should().BeFalse();
    }

    [Fact]
    public void Flush_fails_the_confirmation_of_an_unconfirmed_entry()
    {
        // nf_ct_iterate_cleanup marks unconfirmed entries dying; __nf_conntrack_confirm then counts
        // insert_failed and drops (core.c:1232-1235).
        using var t = new TestTable(Small());
        var p = PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2);
        var s = default(PacketState);
        t.Table.In(p, t.Now, ref s);
        t.Table.Flush(t.Now);
        t.Table.Confirm(p, t.Now, ref s).Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.InsertFailed);
        t.Table.Statistics.InsertFailed.Should().Be(1);
        t.Table.Count.Should().Be(0);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Delete_of_an_unconfirmed_entry_fails_its_confirmation()
    {
        using var t = new TestTable(Small());
        var p = PacketBuilder.Udp("10.0.0.1", "10.0.0.2", 1, 2);
        var s = default(PacketState);
        t.Table.In(p, t.Now, ref s);
        t.Table.Delete(s.Connection, t.Now).Should().BeTrue();
        t.Table.Confirm(p, t.Now, ref s).Should().Be(Verdict.Drop);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Snapshot_lists_each_connection_once()
    {
        using var t = new TestTable(Small(buckets: 64));
        for (int i = 0; i < 50; i++)
        {
            t.Send(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", (ushort)(100 + i), 53));
            t.LastVerdict.Should().Be(Verdict.Accept);
        }

        var list = t.Connections();
        list.Should().HaveCount(50);
        list.Select(c => c.Handle).Should().OnlyHaveUniqueItems();
    }

    [Fact]
    public void Statistics_entries_unconfirmed_and_dying_agree_with_the_lists()
    {
        using var t = new TestTable(Small());
        for (int i = 0; i < 10; i++)
        {
            t.Send(PacketBuilder.Udp("10.0.0.1", "10.0.0.2", (ushort)(100 + i), 53));
        }

        var pending = default(PacketState);
        t.Table.In(PacketBuilder.Udp("10.0.0.9", "10.0.0.2", 9, 53), t.Now, ref pending);
        var first = t.Connections()[0];
        t.Table.Delete(first.Handle, t.Now);
        var st = t.Table.Statistics;
        st.Entries.Should().Be(9);
        st.Unconfirmed.Should().Be(1);
        st.Dying.Should().Be(1, "a deleted entry waits on the dying list until the next reclaim");
        TableInvariants.AssertHold(t.Table);
        t.Table.Release(ref pending);
    }
}
