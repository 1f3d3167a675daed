using Conntrack.Tests.Support;
using Xunit.Abstractions;

namespace Conntrack.Tests.Concurrency;

/// <summary>
/// A <see cref="ConnectionHandle"/> is a slot index plus the slot's generation. Once its connection is
/// deleted the slot is recycled for other connections; a stale handle must then resolve to nothing and
/// must never read, mark or delete the connection that now lives in its slot.
/// </summary>
[Collection(ConcurrencyCollection.Name)]
public class SlotReuseTests(ITestOutputHelper output)
{
    private static readonly TimeSpan RunFor = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private const long Now = 1000 * TestTable.Second;
    private const uint StaleMark = 0xBAD;

    private sealed class Published(ConnectionHandle handle, TestFlow flow)
    {
        public readonly ConnectionHandle Handle = handle;
        public readonly TestFlow Flow = flow;
        public volatile bool Deleted;
    }

    /// <summary>
    /// Churn threads create a connection, publish its handle, delete it (and mark it deleted) while checker
    /// threads use published handles: TryGetInfo on a live handle must return that connection (its handle and
    /// tuples), and on a handle deleted before the call it must return false; SetMark and Delete through a
    /// deleted handle must fail and must not touch the slot's new connection (the churn threads check that
    /// their fresh connections never carry the stale mark and are not deleted under them). A collector
    /// thread keeps the dying list recycling, so slots are reused while the checkers hold stale handles.
    /// </summary>
    [Fact]
    public void Stale_handles_never_resolve_mark_or_delete_the_connection_that_reuses_their_slot()
    {
        const int Churners = 3, Checkers = 3, Ring = 1024;
        using var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 41 });
        var ring = new Published?[Ring];
        long published = 0, staleChecks = 0, reusedSeen = 0, liveResolved = 0, creates = 0, tableFull = 0;

        var team = ThreadTeam.Run(Churners + Checkers + 1, (t, team) =>
        {
            var rng = new FastRandom(9000 + t);
            if (t < Churners)
            {
                var s = default(PacketState);
                for (int i = 0; !team.StopRequested; i++)
                {
                    var f = TestFlow.Udp($"10.110.{t}.{i % 250 + 1}", "10.111.0.1", (ushort)(1024 + i / 250 % 60000), 53);
                    if (table.In(f.Forward, Now, ref s) != Verdict.Accept || !s.IsUnconfirmed || table.Confirm(f.Forward, Now, ref s) != Verdict.Accept)
                    {
                        if (s.Reason == PacketReason.TableFull)
                        {
                            // Not this test's subject: dying slots wait for threads preempted inside the table
                            // (InterleavingTests.A_stalled_reader_must_not_make_the_table_refuse_new_flows_while_it_has_room).
                            Interlocked.Increment(ref tableFull);
                            continue;
                        }

                        team.Fail($"churn {t}: creating {f} failed: {s.Info}/{s.Reason}");
                        continue;
                    }

                    Interlocked.Increment(ref creates);
                    var h = s.Connection;
                    var p = new Published(h, f);
                    Volatile.Write(ref ring[Interlocked.Increment(ref published) % Ring], p);
                    CheckFresh(table, team, t, h, f, "after creation");
                    Thread.SpinWait(rng.Next(200)); // give the checkers time on the live handle
                    CheckFresh(table, team, t, h, f, "before deletion");
                    if (!table.Delete(h, Now))
                    {
                        team.Fail($"churn {t}: Delete({h}) of its own live connection {f} returned false: something else removed it");
                    }

                    p.Deleted = true;
                    if (table.TryGetInfo(h, Now, out _))
                    {
                        team.Fail($"churn {t}: {h} still resolves after Delete returned");
                    }
                }
            }
            else if (t < Churners + Checkers)
            {
                while (!team.StopRequested)
                {
                    var p = Volatile.Read(ref ring[rng.Next(Ring)]);
                    if (p is null)
                    {
                        continue;
                    }

                    bool deletedBefore = p.Deleted;
                    if (table.TryGetInfo(p.Handle, Now, out var info))
                    {
                        if (info.Handle != p.Handle || !p.Flow.MatchesExactly(info))
                        {
                            team.Fail($"TryGetInfo({p.Handle}) of {p.Flow} returned {info.Handle} with tuples {info.Original} / {info.Reply}");
                        }

                        if (deletedBefore)
                        {
                            team.Fail($"TryGetInfo({p.Handle}) resolved after the connection was deleted (slot now generation {table.Entries[p.Handle.Index].Generation})");
                        }
                        else
                        {
                            Interlocked.Increment(ref liveResolved);
                        }
                    }

                    if (deletedBefore)
                    {
                        Interlocked.Increment(ref staleChecks);
                        if (table.Entries[p.Handle.Index].Generation != p.Handle.Generation)
                        {
                            Interlocked.Increment(ref reusedSeen);
                        }

                        if (table.SetMark(p.Handle, StaleMark))
                        {
                            team.Fail($"SetMark through deleted handle {p.Handle} succeeded");
                        }

                        if (table.Delete(p.Handle, Now))
                        {
                            team.Fail($"Delete through deleted handle {p.Handle} succeeded");
                        }
                    }
                }
            }
            else
            {
                while (!team.StopRequested)
                {
                    table.CollectGarbage(Now, 64);
                    Thread.Yield();
                }
            }
        }, RunFor, Timeout, i => i < Churners ? $"churn {i}" : i < Churners + Checkers ? $"checker {i - Churners}" : "collector");

        output.WriteLine($"creates {creates} (table-full refusals {tableFull}), live handles resolved {liveResolved}, stale handle checks {staleChecks}, of which on reused slots {reusedSeen}; slots ever used {table.Store.HighWater}");
        var checks = new SoftChecks();
        checks.Run(() => team.AssertClean("slot reuse threads"));
        checks.That(creates > 20 * table.Store.HighWater, $"{creates} connections in {table.Store.HighWater} slots: too little reuse");
        checks.That(liveResolved > 1000, $"only {liveResolved} live handles resolved by the checkers");
        checks.That(reusedSeen > 1000, $"only {reusedSeen} stale handles were checked against a reused slot");
        checks.Run(() => ConcurrencyInvariants.AssertHold(table, "after slot reuse churn"));
        checks.ThrowIfAny("Stale handles");
    }

    private static void CheckFresh(ConntrackTable table, ThreadTeam team, int t, ConnectionHandle h, TestFlow f, string when)
    {
        if (!table.TryGetInfo(h, Now, out var info) || !f.MatchesExactly(info))
        {
            team.Fail($"churn {t}: its live connection {h} ({f}) does not resolve as itself {when}");
        }
        else if (info.Mark == StaleMark)
        {
            team.Fail($"churn {t}: its new connection {h} carries mark {StaleMark:X} {when}: a SetMark through a stale handle of the slot's previous connection landed on it");
        }
    }

    /// <summary>
    /// Delete(handle) may name a connection that is still unconfirmed (the API accepts it). Owners create
    /// a connection X, publish its handle, drop the packet (Release: the slot is freed at once, since nobody
    /// can have found an unconfirmed entry), then create and confirm a connection Y, which typically gets X's
    /// slot back. Deleter threads call Delete with the published handles of X, racing with the Release. A
    /// Delete that checked X's generation just before the Release and then marks the slot dying kills Y, a
    /// connection it never named: Y's Confirm fails with insert_failed, or Y disappears from the table.
    /// (An engine may also refuse Delete of another thread's unconfirmed connection altogether; the test
    /// only requires that Y is never hit.)
    /// </summary>
    [Fact]
    public void Deleting_an_unconfirmed_connection_by_handle_never_hits_the_connection_that_reuses_its_slot()
    {
        const int Owners = 2, Deleters = 4, XLifeSpins = 200;
        long tableFull = 0;
        using var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 1024, Buckets = 1024, HashSeed = 43 });
        var publishedX = new long[Owners];
        long hits = 0, racedLive = 0, rounds = 0, slotReused = 0;

        var team = ThreadTeam.Run(Owners + Deleters + 1, (t, team) =>
        {
            var rng = new FastRandom(777 + t);
            if (t < Owners)
            {
                var x = default(PacketState);
                var y = default(PacketState);
                for (int i = 0; !team.StopRequested; i++)
                {
                    Interlocked.Increment(ref rounds);
                    ushort port = (ushort)(1024 + i % 60000);
                    var fx = TestFlow.Udp($"10.120.{t}.1", "10.121.0.1", port, 53);
                    var fy = TestFlow.Udp($"10.120.{t}.2", "10.121.0.1", port, 53);
                    if (table.In(fx.Forward, Now, ref x) != Verdict.Accept || !x.IsUnconfirmed)
                    {
                        if (x.Reason == PacketReason.TableFull)
                        {
                            Interlocked.Increment(ref tableFull); // see the other test: not this test's subject
                        }
                        else
                        {
                            team.Fail($"owner {t}: In({fx}) gave {x.Info}/{x.Reason}");
                        }

                        continue;
                    }

                    var hx = x.Connection;
                    Volatile.Write(ref publishedX[t], ((long)hx.Index << 32) | (uint)hx.Generation);
                    Thread.SpinWait(rng.Next(XLifeSpins)); // the packet is looked at for a moment before it is dropped
                    table.Release(ref x);

                    if (table.In(fy.Forward, Now, ref y) != Verdict.Accept || !y.IsUnconfirmed)
                    {
                        if (y.Reason == PacketReason.TableFull)
                        {
                            Interlocked.Increment(ref tableFull);
                        }
                        else
                        {
                            team.Fail($"owner {t}: In({fy}) gave {y.Info}/{y.Reason}");
                        }

                        continue;
                    }

                    var hy = y.Connection;
                    Interlocked.Add(ref slotReused, hy.Index == hx.Index ? 1 : 0);
                    if (table.Confirm(fy.Forward, Now, ref y) != Verdict.Accept)
                    {
                        team.Fail($"owner {t}: Confirm of {fy} ({hy}) was dropped ({y.Reason}) though nothing else uses that flow: " +
                            $"its entry was marked dying{(hy.Index == hx.Index ? $" - it reuses the slot of the released {hx}, whose handle the deleters hold" : "")}");
                        continue;
                    }

                    if (!table.TryGet(fy.Original, Now, out var info) || info.Handle != hy)
                    {
                        team.Fail($"owner {t}: confirmed {fy} ({hy}) vanished{(hy.Index == hx.Index ? $" - it reuses the slot of the released {hx}, whose handle the deleters hold" : "")}");
                        continue;
                    }

                    if (!table.Delete(hy, Now))
                    {
                        team.Fail($"owner {t}: Delete({hy}) of its own {fy} returned false");
                    }
                }
            }
            else if (t < Owners + Deleters)
            {
                while (!team.StopRequested)
                {
                    long h = Volatile.Read(ref publishedX[rng.Next(Owners)]);
                    if (h == 0)
                    {
                        continue;
                    }

                    var handle = new ConnectionHandle((int)(h >> 32), (int)h);
                    // A peek (racy, for the statistics only): is X still there, unconfirmed, as the call starts?
                    ref var slot = ref table.Entries[handle.Index];
                    if (slot.Generation == handle.Generation && slot.Kind == Conntrack.Table.EntryKind.Unconfirmed)
                    {
                        Interlocked.Increment(ref racedLive);
                    }

                    if (table.Delete(handle, Now))
                    {
                        Interlocked.Increment(ref hits); // caught X still unconfirmed (if the engine lets other threads delete it)
                    }
                }
            }
            else
            {
                while (!team.StopRequested)
                {
                    table.CollectGarbage(Now, 256);
                    Thread.Yield();
                }
            }
        }, RunFor, Timeout, i => i < Owners ? $"owner {i}" : i < Owners + Deleters ? $"deleter {i - Owners}" : "collector");

        output.WriteLine($"rounds {rounds} (table-full refusals {tableFull}), Y reused X's slot {slotReused} times, " +
            $"Delete calls that started while X was unconfirmed {racedLive}, of which deleted it {hits}");
        var checks = new SoftChecks();
        checks.Run(() => team.AssertClean("unconfirmed delete threads"));
        checks.That(racedLive > 100, $"only {racedLive} Delete calls started while their X was still unconfirmed: the race was not exercised");
        // With immediate reuse of released slots (this engine), Y usually gets X's slot back: the ABA this test is
        // after. An engine that defers reuse cannot have it; either way the slots must be recycled.
        checks.That(table.Store.HighWater < rounds / 10, $"{rounds} rounds used {table.Store.HighWater} slots: slots were not recycled");
        checks.Run(() => ConcurrencyInvariants.AssertHold(table, "after the unconfirmed deletes"));
        checks.ThrowIfAny("Delete by handle of unconfirmed connections");
    }
}
