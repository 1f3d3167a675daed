using System.Diagnostics;
using System.Reflection;
using Conntrack.Table;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Concurrency;

/// <summary>
/// Interleavings forced deterministically: the test holds a lock the engine takes (the per-connection lock
/// of a TCP entry, or a bucket stripe) to stop a thread at a known point inside the table, does something
/// from another thread, then lets it go. Each of these turns a race the soak can only hit by luck into a
/// test that fails every time the engine mishandles it.
/// </summary>
[Collection(ConcurrencyCollection.Name)]
public class InterleavingTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A reader that found a connection and then stalled (preempted, or here: waiting for the connection's
    /// lock in the TCP tracker) holds it: after another thread deletes it, it must not be reused while the
    /// reader can still write to it — the reader's late refresh would land on someone else's connection — but
    /// everything else removed meanwhile must be reused at once, and the held entry as soon as the reader
    /// lets go. (An earlier design kept a reuse stamp in the field the late refresh writes and then jammed the
    /// whole dying list behind that entry; this checks the behaviour, whatever the mechanism.)
    /// </summary>
    [Fact]
    public void A_held_entry_is_not_reused_until_its_reader_lets_go_and_nothing_else_waits_for_it()
    {
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 9, TcpBeLiberal = true });
        var table = t.Table;
        long now = t.Now;
        var f = TestFlow.Tcp("10.60.0.1", "10.61.0.1", 40001, 443);
        var h = TestFlow.Tcp("10.60.0.3", "10.61.0.1", 40003, 443);
        var hf = Establish(t, f);
        var hh = Establish(t, h);
        using (var reader = Parked.Start(table, hf, f.ClientAck, now))
        {
            // The reader has found F and waits for F's lock. F and H are deleted meanwhile.
            table.Delete(hf, now).Should().BeTrue();
            table.Delete(hh, now).Should().BeTrue();
            table.Entries[hf.Index].Kind.Should().Be(EntryKind.Dying);
            table.Reclaim();
            table.Statistics.Dying.Should().Be(1, "only F, which the stalled reader holds, may wait");
            table.Entries[hf.Index].Kind.Should().Be(EntryKind.Dying, "F is held by the reader");
            table.Entries[hh.Index].Kind.Should().Be(EntryKind.Free, "nobody holds H: it is reusable at once");
        }

        // The reader refreshed F (harmlessly: F is dead and nobody else has it) and left.
        table.Reclaim();
        table.Statistics.Dying.Should().Be(0, "nobody holds F any more");
        table.Entries[hf.Index].Kind.Should().Be(EntryKind.Free);
        TableInvariants.AssertHold(table);
    }

    /// <summary>
    /// One thread stalls inside the table — in real life a reader preempted for a scheduling quantum in the
    /// middle of In, which on a machine with more busy threads than cores happens all the time — while
    /// another thread creates and deletes flows (about a thousand: a couple of milliseconds of work). Every
    /// deleted entry waits on the dying list for the stalled thread, the fixed slack of slots beyond
    /// nf_conntrack_max runs out, and new flows are refused as TableFull although the table holds one or
    /// two connections. The kernel never refuses a flow below nf_conntrack_max (its entries are reusable at
    /// once, SLAB_TYPESAFE_BY_RCU, and lookups revalidate what they find); the soak shows the same failure
    /// with preemption instead of a parked thread.
    /// </summary>
    [Fact]
    public void A_stalled_reader_must_not_make_the_table_refuse_new_flows_while_it_has_room()
    {
        const int MaxEntries = 256;
        const int Churn = 1000;
        using var t = new TestTable(new ConntrackOptions { MaxEntries = MaxEntries, Buckets = 256, HashSeed = 31, TcpBeLiberal = true });
        var table = t.Table;
        var g = TestFlow.Tcp("10.90.255.1", "10.91.0.1", 40009, 443);
        var hg = Establish(t, g);
        var flows = Enumerable.Range(0, Churn).Select(i => TestFlow.Udp($"10.90.{i / 250}.{i % 250 + 1}", "10.91.0.1", 1234, 53)).ToArray();
        int refused = 0, firstRefusal = -1, countAtRefusal = 0;
        long dyingAtRefusal = 0;
        using (Parked.Start(table, hg, g.ClientAck, t.Now))
        {
            for (int i = 0; i < Churn; i++)
            {
                var s = t.Send(flows[i].Forward);
                if (t.LastVerdict != Verdict.Accept)
                {
                    s.Reason.Should().Be(PacketReason.TableFull);
                    if (refused++ == 0)
                    {
                        firstRefusal = i;
                        countAtRefusal = table.Count;
                        dyingAtRefusal = table.Statistics.Dying;
                    }

                    continue;
                }

                table.Delete(s.Connection, t.Now).Should().BeTrue();
            }
        }

        refused.Should().Be(0,
            $"the table never held more than 2 connections (nf_conntrack_max {MaxEntries}), yet {refused} of {Churn} new flows were refused as TableFull; " +
            $"the first after {firstRefusal} create/delete cycles, with {countAtRefusal} connection(s) in the table and {dyingAtRefusal} dying entries " +
            $"waiting for the one stalled reader ({table.Store.Capacity} slots in all)");
    }

    /// <summary>
    /// The mechanism behind the search_restart counter: a lock-free walk that ends on another bucket's nulls
    /// marker must restart (an entry it followed was moved to another chain under it), count it, and then
    /// finish normally. Forced by making the last node of a chain point to another bucket's marker, as it
    /// would after being freed and re-inserted elsewhere, and repairing it once the restart was seen.
    /// </summary>
    [Fact]
    public void A_lookup_that_ends_on_another_buckets_nulls_marker_restarts_and_counts_it()
    {
        const int Buckets = 4;
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = Buckets, HashSeed = 21 });
        var table = t.Table;
        var flows = Enumerable.Range(0, 40).Select(i => TestFlow.Udp("10.70.0.1", "10.71.0.1", (ushort)(7000 + i), 53)).ToArray();
        foreach (var fl in flows.Take(6))
        {
            t.Send(fl.Forward);
            t.LastVerdict.Should().Be(Verdict.Accept);
        }

        int b = Enumerable.Range(0, Buckets).First(x => table.Buckets[x] >= 0);
        int last = table.Buckets[b];
        while (LinkOf(table, last) >= 0)
        {
            last = LinkOf(table, last);
        }

        var probe = flows.Skip(6).First(fl => table.BucketOf(table.Hasher.Hash(fl.Original, 0)) == b);
        uint hash = table.Hasher.Hash(probe.Original, 0);
        long before = table.Statistics.SearchRestart;
        SetLink(table, last, ConntrackTable.NullsMarker((b + 1) % Buckets));
        int result = 0;
        var reader = new Thread(() =>
        {
            var ctx = table.Enter();
            try
            {
                result = table.Find(probe.Original, 0, hash, t.Now, ctx);
            }
            finally
            {
                ConntrackTable.Exit(ctx);
            }
        }) { IsBackground = true };
        reader.Start();
        bool restarted = SpinWait.SpinUntil(() => table.Statistics.SearchRestart > before, Patience);
        SetLink(table, last, ConntrackTable.NullsMarker(b));
        reader.Join(Patience).Should().BeTrue("the lookup finishes once the chain ends in its own marker again");
        restarted.Should().BeTrue("a walk that ends on another bucket's marker must restart and count search_restart");
        result.Should().Be(-1, "the probe's tuple is not in the table");
    }

    // ------------------------------------------------------------------ helpers

    internal static ConnectionHandle Establish(TestTable t, TestFlow f)
    {
        var s = t.Send(f.Forward);
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Send(f.Backward).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(f.ClientAck).Info.Should().Be(ConntrackInfo.Established);
        t.Table.TryGetInfo(s.Connection, t.Now, out var info).Should().BeTrue();
        info.Status.Should().HaveFlag(ConnectionStatus.Assured);
        return s.Connection;
    }

    private static int LinkOf(ConntrackTable table, int node) =>
        (node & 1) == 0 ? table.Entries[node >> 1].NextOriginal : table.Entries[node >> 1].NextReply;

    private static void SetLink(ConntrackTable table, int node, int value)
    {
        ref Connection c = ref table.Entries[node >> 1];
        Volatile.Write(ref (node & 1) == 0 ? ref c.NextOriginal : ref c.NextReply, value);
    }

    /// <summary>
    /// A thread stopped inside the table: the test holds the per-connection lock of an established TCP entry
    /// and the thread sends a packet of it, so it enters the table, finds the entry and waits for the lock in
    /// the TCP tracker, before the refresh. Disposing releases the lock and waits for the thread.
    /// </summary>
    internal sealed class Parked : IDisposable
    {
        private readonly ConntrackTable _table;
        private readonly int _index;
        private readonly Thread _thread;
        private int _threadId;

        private Parked(ConntrackTable table, int index, Thread thread)
        {
            _table = table;
            _index = index;
            _thread = thread;
        }

        public Verdict Verdict { get; private set; }

        public static Parked Start(ConntrackTable table, ConnectionHandle connection, byte[] packet, long now)
        {
            SpinLockInt.Enter(ref table.Entries[connection.Index].Lock);
            Parked? p = null;
            var thread = new Thread(() =>
            {
                Volatile.Write(ref p!._threadId, Environment.CurrentManagedThreadId);
                var s = default(PacketState);
                p.Verdict = table.In(packet, now, ref s);
                table.Confirm(packet, now, ref s);
            }) { IsBackground = true, Name = "parked reader" };
            p = new Parked(table, connection.Index, thread);
            thread.Start();
            var sw = Stopwatch.StartNew();
            ThreadContext? ctx = null;
            while (sw.Elapsed < Patience)
            {
                int id = Volatile.Read(ref p._threadId);
                ctx = id == 0 ? null : table.Contexts.FirstOrDefault(c => c.ThreadId == id);
                if (ctx is not null && Volatile.Read(ref ctx.Hazard) == connection.Index)
                {
                    break;
                }

                Thread.Sleep(1);
            }

            if (ctx is null || Volatile.Read(ref ctx.Hazard) != connection.Index)
            {
                SpinLockInt.Exit(ref table.Entries[connection.Index].Lock);
                throw new Xunit.Sdk.XunitException("the parked thread never found and held the connection");
            }

            // Past the lookup (which takes no time) it can only wait for the connection's lock.
            Thread.Sleep(30);
            _ = thread.IsAlive.Should().BeTrue("the parked thread must wait for the connection lock the test holds");
            return p;
        }

        public void Dispose()
        {
            SpinLockInt.Exit(ref _table.Entries[_index].Lock);
            if (!_thread.Join(Patience))
            {
                throw new Xunit.Sdk.XunitException("the parked thread did not finish after its connection lock was released");
            }
        }
    }
}
