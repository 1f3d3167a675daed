using Conntrack.Tests.Support;
using Conntrack.Tuples;

namespace Conntrack.Tests.Table;

/// <summary>
/// A full table: __nf_conntrack_alloc() and early_drop() (core.c:1378-1450, 1646-1667), and the collector's
/// early drop under pressure (gc_worker, core.c:1509-1605).
/// </summary>
public class EarlyDropTests
{
    private static byte[] Flow(int i, string dst = "192.0.2.1") =>
        PacketBuilder.Udp($"10.{i / 60000}.{i / 250 % 240}.{(i % 250) + 1}", dst, (ushort)(1024 + (i % 60000)), 53);

    private static byte[] Reply(int i, string dst = "192.0.2.1") =>
        PacketBuilder.Udp(dst, $"10.{i / 60000}.{i / 250 % 240}.{(i % 250) + 1}", 53, (ushort)(1024 + (i % 60000)));

    /// <summary>Makes flow i an assured UDP stream (reply, then a packet more than 2 s after creation).</summary>
    private static void Assure(TestTable t, int i)
    {
        t.Send(Reply(i));
        t.Advance(2.5);
        t.Send(Flow(i));
    }

    [Fact]
    public void Full_table_evicts_an_unassured_entry_to_admit_a_new_one()
    {
        // 32 buckets, 8 looked at (NF_CT_EVICTION_RANGE): with 32 unassured entries the window has some
        // (8 empty buckets in a row has probability about e^-8 and does not happen with this seed).
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 32, Buckets = 32, HashSeed = 5 });
        for (int i = 0; i < 32; i++)
        {
            t.Send(Flow(i));
            t.LastVerdict.Should().Be(Verdict.Accept);
        }

        var s = t.Send(Flow(1000));
        t.LastVerdict.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.New);
        var st = t.Table.Statistics;
        st.EarlyDrop.Should().BeGreaterThan(0);
        t.Table.Count.Should().BeLessThanOrEqualTo(32);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Early_drop_removes_every_unassured_entry_of_the_first_bucket_that_has_one()
    {
        // early_drop_list kills all unassured entries of one chain (core.c:1386-1417). Buckets = 1: all of them.
        // (At most 4 connections = 8 nodes in the chain, so the chain-length cap never interferes.)
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 4, Buckets = 1, HashSeed = 5 });
        for (int i = 0; i < 4; i++)
        {
            t.Send(Flow(i));
            t.LastVerdict.Should().Be(Verdict.Accept, "precondition: flow {0} inserted", i);
        }

        t.Send(Flow(100));
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Table.Statistics.EarlyDrop.Should().Be(4);
        t.Table.Count.Should().Be(1);
    }

    [Fact]
    public void Early_drop_spares_assured_entries()
    {
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 4, Buckets = 1, HashSeed = 5 });
        for (int i = 0; i < 4; i++)
        {
            t.Send(Flow(i));
            t.LastVerdict.Should().Be(Verdict.Accept, "precondition: flow {0} inserted", i);
        }

        Assure(t, 0);
        Assure(t, 1);
        t.Send(Flow(100));
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Table.Statistics.EarlyDrop.Should().Be(2);
        var left = t.Connections().Select(c => c.Original.SourcePort).ToList();
        left.Should().BeEquivalentTo(new ushort[] { 1024, 1025, 1124 });
    }

    [Fact]
    public void Full_table_of_assured_entries_drops_the_new_packet()
    {
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 4, Buckets = 1, HashSeed = 5 });
        for (int i = 0; i < 4; i++)
        {
            t.Send(Flow(i));
            Assure(t, i);
        }

        var s = t.Send(Flow(50));
        t.LastVerdict.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.TableFull);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        var st = t.Table.Statistics;
        st.Drop.Should().Be(1, "nf_conntrack_in counts drop once for a failed allocation (core.c:2045)");
        st.EarlyDrop.Should().Be(0);
        t.Table.Count.Should().Be(4);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Packets_of_existing_connections_pass_when_the_table_is_full()
    {
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 4, Buckets = 1, HashSeed = 5 });
        for (int i = 0; i < 4; i++)
        {
            t.Send(Flow(i));
            Assure(t, i);
        }

        t.Send(Reply(2)).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.LastVerdict.Should().Be(Verdict.Accept);
    }

    [Fact]
    public void Unconfirmed_entries_count_against_the_limit()
    {
        // cnet->count is incremented at allocation (core.c:1657), before confirmation.
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 3, Buckets = 1, HashSeed = 5 });
        var states = new PacketState[3];
        for (int i = 0; i < 3; i++)
        {
            t.Table.In(Flow(i), t.Now, ref states[i]).Should().Be(Verdict.Accept);
        }

        var extra = default(PacketState);
        t.Table.In(Flow(9), t.Now, ref extra).Should().Be(Verdict.Drop, "nothing confirmed can be evicted");
        extra.Reason.Should().Be(PacketReason.TableFull);
        for (int i = 0; i < 3; i++)
        {
            t.Table.Release(ref states[i]);
        }

        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Full_table_of_unassured_entries_keeps_admitting_new_flows_without_a_collector_run()
    {
        // The kernel's early_drop always finds an unassured entry in the 8-bucket window here (16 buckets,
        // about 2 per bucket), and the slab allocation after it never fails, so no packet is ever dropped
        // (core.c:1657-1673). The engine retires each evicted entry to its dying list; with no CollectGarbage
        // call, the store runs out of free slots after about MaxEntries/16 + 64 evictions.
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 32, Buckets = 16, HashSeed = 5 });
        var drops = new List<string>();
        for (int i = 0; i < 400; i++)
        {
            var s = t.Send(Flow(i));
            if (t.LastVerdict != Verdict.Accept)
            {
                drops.Add($"{i}:{s.Reason}");
            }
        }

        drops.Should().BeEmpty("the kernel admits every new flow into a table full of unassured entries; dropped: [{0}]",
            string.Join(", ", drops));
        t.Table.Statistics.Drop.Should().Be(0);
    }

    // ---- the collector's early drop under pressure

    private static (int SourcePort, int Bucket) FindFlowWithEmptyWindow(ConntrackTable table, int start)
    {
        // Picks (for the scenario only) a flow whose 8-bucket early-drop window holds no entry, so that early
        // drop fails and sets the collector's early-drop flag, as "table full, dropping packet" does.
        for (int i = start; i < start + 100000; i++)
        {
            var raw = Flow(i);
            var tuple = ConntrackTuple.ForPorts(InetAddress.FromIpv4(raw.AsSpan(12)), InetAddress.FromIpv4(raw.AsSpan(16)),
                IpProtocol.Udp, (ushort)(1024 + (i % 60000)), 53, false);
            int b = table.BucketOf(table.Hasher.Hash(in tuple, 0));
            bool empty = true;
            for (int k = 0; k < 8; k++)
            {
                if (table.Buckets[(b + k) % table.Buckets.Length] >= 0)
                {
                    empty = false;
                    break;
                }
            }

            if (empty)
            {
                return (i, b);
            }
        }

        throw new InvalidOperationException("no flow with an empty eviction window");
    }

    [Fact]
    public void Collector_evicts_unassured_entries_after_the_table_was_found_full()
    {
        // MaxEntries 200 -> nf_conntrack_max95 = 200 / 100 * 95 = 190; 200 entries >= 190.
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 200, Buckets = 4096, HashSeed = 5 });
        for (int i = 0; i < 200; i++)
        {
            t.Send(Flow(i));
        }

        t.Table.Count.Should().Be(200);
        var (probe, _) = FindFlowWithEmptyWindow(t.Table, 10000);
        t.Send(Flow(probe));
        t.LastVerdict.Should().Be(Verdict.Drop, "precondition: early drop found nothing in the window");
        t.Table.CollectGarbage(t.Now, 4096).Should().BeGreaterThan(0);
        t.Table.Count.Should().BeLessThan(200);
    }

    [Fact]
    public void Collector_does_not_evict_under_pressure_when_the_95_percent_mark_rounds_to_zero()
    {
        // gc_worker: nf_conntrack_max95 = nf_conntrack_max / 100u * 95u (core.c:1510) is 0 for a limit below
        // 100, and "if (nf_conntrack_max95 == 0) continue;" (core.c:1572) then skips eviction entirely.
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 20, Buckets = 4096, HashSeed = 5 });
        for (int i = 0; i < 20; i++)
        {
            t.Send(Flow(i));
        }

        var (probe, _) = FindFlowWithEmptyWindow(t.Table, 10000);
        t.Send(Flow(probe));
        t.LastVerdict.Should().Be(Verdict.Drop, "precondition: early drop found nothing in the window");
        int removed = t.Table.CollectGarbage(t.Now, 4096);
        removed.Should().Be(0, "with nf_conntrack_max < 100 the kernel's collector never evicts live entries");
        t.Table.Count.Should().Be(20);
    }
}
