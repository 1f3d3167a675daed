using System.Diagnostics;
using System.Runtime.CompilerServices;
using Conntrack.Tests.Support;
using Xunit.Abstractions;

namespace Conntrack.Tests.Concurrency;

/// <summary>
/// Several threads push random traffic into one small table while another thread advances the clock,
/// collects garbage and deletes flows: then every invariant must hold, and no connection that nothing was
/// allowed to remove may have been lost or duplicated.
/// </summary>
/// <remarks>
/// <para>
/// Shared flows (UDP, TCP, ICMP) are picked at random by every thread, with a few hot flows taking a large
/// share, so that threads race on creating the same flow (clash resolution), on the same buckets, and on
/// deleting what another thread is using. Some packets pass <c>In</c> and are then dropped (Release).
/// The table is smaller than the shared pool, so it fills up and early drop evicts unassured entries.
/// </para>
/// <para>
/// Pinned flows are the oracle for "nothing lost": each thread owns a few, drives each to ASSURED (UDP: a
/// reply, then a packet more than 2 s after creation; TCP: the handshake), then publishes its handle. An
/// assured UDP or ESTABLISHED TCP entry cannot be evicted (early drop and the collector's eviction skip it),
/// nothing deletes pinned flows, and their timeouts outlast the test clock. So from publication on, every
/// packet of a pinned flow from any thread must land on that very connection, and at the end it must be
/// found under both tuples with the published handle.
/// </para>
/// </remarks>
[Collection(ConcurrencyCollection.Name)]
public class SoakTests(ITestOutputHelper output)
{
    private const int Workers = 6;
    private static readonly TimeSpan RunFor = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private const int Seed = 20240611;

    private const int MaxEntries = 256;
    private const int Buckets = 128;
    private const int SharedUdp = 192, SharedTcp = 64, SharedIcmp = 64;
    private const int HotFlows = 8;
    private const int HotPercent = 25;

    /// <summary>
    /// Flood phases alternate with calm ones. In a flood, threads also send the first packets of many more
    /// flows than the table holds (early drop runs all the time); in a calm, they keep to the first
    /// <see cref="CalmFlows"/> shared flows, so the flood's leftovers sit idle and time out (the collector's
    /// expiry runs).
    /// </summary>
    private const int FloodFlows = 1024;
    private static readonly TimeSpan PhaseLength = TimeSpan.FromMilliseconds(250);
    private const int CalmFlows = 48;
    private const int PinnedUdpPerWorker = 6, PinnedTcpPerWorker = 3;
    private const int PinnedPerWorker = PinnedUdpPerWorker + PinnedTcpPerWorker;

    /// <summary>Simulated seconds per wall-clock second: 4 s of running is 4 minutes of table time, a calm phase 15 s.</summary>
    private const double SimSecondsPerWallSecond = 60;
    private const int GcBucketBudget = 16;

    /// <summary>At most one operation in this many may be a TableFull refusal with the table less than half full.</summary>
    private const int RoomyRefusalLimit = 10;
    private const int MaintenanceDeleteEvery = 8;
    private const long Second = TestTable.Second;
    private const long Start = 1000 * Second;

    private static ConntrackOptions Options() => new()
    {
        MaxEntries = MaxEntries,
        Buckets = Buckets,
        HashSeed = 77,
        TcpBeLiberal = true,
        // Unassured UDP/ICMP expire within a fraction of a wall second, so the collector has work besides
        // early drop; pinned (assured) flows must outlive the test clock.
        UdpTimeout = TimeSpan.FromSeconds(8),
        IcmpTimeout = TimeSpan.FromSeconds(8),
        UdpTimeoutStream = TimeSpan.FromHours(1),
        TcpTimeoutMaxRetrans = TimeSpan.FromHours(2),
        TcpTimeoutUnacknowledged = TimeSpan.FromHours(2),
    };

    /// <summary>Diagnosis taken at the first TableFull refusal while the table was less than half full.</summary>
    private static string? s_firstRoomy;

    private sealed class Pinned(TestFlow flow, int index)
    {
        public readonly TestFlow Flow = flow;
        public readonly int Index = index;
        public int Stage;
        public long CreatedAt;
    }

    private sealed class Counters
    {
        public long Ops, TableFull, TableFullRoomy, Released, Confirmed, Inserted, ConfirmDrops, Lookups, LookupHits, Deletes, PinnedPackets;
    }

    [Fact]
    public void Random_traffic_from_many_threads_keeps_the_table_consistent_and_loses_nothing()
    {
        using var table = new ConntrackTable(Options());
        s_firstRoomy = null;
        var clock = new SharedClock(Start);
        var shared = new List<TestFlow>();
        for (int i = 0; i < SharedUdp; i++)
        {
            shared.Add(TestFlow.Udp($"10.1.{i / 250}.{i % 250 + 1}", "10.200.0.1", (ushort)(10000 + i), 53));
        }

        for (int i = 0; i < SharedTcp; i++)
        {
            // Interleave protocols so that hot flows include every kind.
            shared.Insert(i * 4 % shared.Count, TestFlow.Tcp($"10.2.0.{i + 1}", "10.200.0.2", (ushort)(20000 + i), 80));
        }

        for (int i = 0; i < SharedIcmp; i++)
        {
            shared.Insert((i * 4 + 2) % shared.Count, TestFlow.Icmp($"10.3.0.{i + 1}", "10.200.0.3", (ushort)(30000 + i)));
        }

        var flood = Enumerable.Range(0, FloodFlows).Select(i => TestFlow.Udp($"10.4.{i / 250}.{i % 250 + 1}", "10.200.0.4", (ushort)(50000 + i), 53)).ToArray();
        var pinned = new Pinned[Workers * PinnedPerWorker];
        for (int w = 0; w < Workers; w++)
        {
            for (int j = 0; j < PinnedPerWorker; j++)
            {
                int index = w * PinnedPerWorker + j;
                pinned[index] = new Pinned(j < PinnedUdpPerWorker
                    ? TestFlow.Udp($"10.{50 + w}.0.{j + 1}", "10.201.0.1", (ushort)(40000 + j), 4500)
                    : TestFlow.Tcp($"10.{50 + w}.1.{j + 1}", "10.201.0.2", (ushort)(41000 + j), 443), index);
            }
        }

        // Published handle of each pinned flow as (index << 32 | generation), 0 until assured.
        var published = new long[pinned.Length];
        var counters = Enumerable.Range(0, Workers).Select(_ => new Counters()).ToArray();
        long gcRemoved = 0, maintenanceSteps = 0, maintenanceDeletes = 0;
        int floodPhases = 0;
        var phase = new StrongBox<bool>(false);

        var team = ThreadTeam.Run(Workers + 1, (t, team) =>
        {
            if (t == Workers)
            {
                var rng = new FastRandom(Seed ^ 0x7777);
                var wall = Stopwatch.StartNew();
                while (!team.StopRequested)
                {
                    long now = Start + (long)(wall.Elapsed.TotalSeconds * SimSecondsPerWallSecond * Second);
                    clock.Set(now);
                    bool floodNow = (int)(wall.Elapsed / PhaseLength) % 2 == 1;
                    if (floodNow != Volatile.Read(ref phase.Value))
                    {
                        Volatile.Write(ref phase.Value, floodNow);
                        floodPhases += floodNow ? 1 : 0;
                    }

                    gcRemoved += table.CollectGarbage(now, GcBucketBudget);
                    if (++maintenanceSteps % MaintenanceDeleteEvery == 0)
                    {
                        var f = rng.Chance(50) ? shared[rng.Next(HotFlows)] : shared[rng.Next(shared.Count)];
                        if (table.Delete(rng.Chance(50) ? f.Original : f.Reply, now))
                        {
                            maintenanceDeletes++;
                        }
                    }
                }

                return;
            }

            Worker(t, team, table, clock, shared, flood, phase, pinned, published, counters[t]);
        }, RunFor, Timeout, i => i == Workers ? "maintenance" : $"worker {i}");

        var st = table.Statistics;
        int publishedCount = published.Count(p => p != 0);
        long removedHashed = counters.Sum(c => c.Inserted) - table.Count;
        output.WriteLine($"ran {team.CommonTime.TotalSeconds:F2} s together; table clock {(clock.Now - Start) / (double)Second:F0} s");
        output.WriteLine($"ops {counters.Sum(c => c.Ops)} (per worker {string.Join(", ", counters.Select(c => c.Ops))}); " +
            $"confirmed new {counters.Sum(c => c.Confirmed)} (inserted {counters.Sum(c => c.Inserted)}), confirm drops {counters.Sum(c => c.ConfirmDrops)}, released {counters.Sum(c => c.Released)}, " +
            $"table-full drops {counters.Sum(c => c.TableFull)} ({counters.Sum(c => c.TableFullRoomy)} with the table less than half full), lookups {counters.Sum(c => c.Lookups)} (hits {counters.Sum(c => c.LookupHits)}), " +
            $"worker deletes {counters.Sum(c => c.Deletes)}, maintenance deletes {maintenanceDeletes}, gc steps {maintenanceSteps}, gc removed {gcRemoved}, " +
            $"pinned packets {counters.Sum(c => c.PinnedPackets)}, pinned flows assured {publishedCount}/{pinned.Length}");
        output.WriteLine($"removed from the hash {removedHashed} (slot capacity {table.Store.Capacity}); flood phases {floodPhases}");
        output.WriteLine(st.ToString().Replace('\n', ';'));

        var checks = new SoftChecks();
        checks.Run(() => team.AssertClean("soak threads"));

        // Nothing lost: every published pinned flow is still there, under both tuples, as the same connection.
        for (int i = 0; i < pinned.Length; i++)
        {
            long h = published[i];
            if (h == 0)
            {
                continue;
            }

            var handle = new ConnectionHandle((int)(h >> 32), (int)h);
            var f = pinned[i].Flow;
            bool o = table.TryGet(f.Original, clock.Now, out var byOriginal);
            bool r = table.TryGet(f.Reply, clock.Now, out var byReply);
            checks.That(o && byOriginal.Handle == handle && f.MatchesExactly(byOriginal),
                $"pinned {f} (assured, published as {handle}) lost: by original tuple found={o} handle={(o ? byOriginal.Handle : default)}");
            checks.That(r && byReply.Handle == handle && f.MatchesExactly(byReply),
                $"pinned {f} (assured, published as {handle}) lost: by reply tuple found={r} handle={(r ? byReply.Handle : default)}");
        }

        // Not vacuous: the interesting events really happened.
        checks.That(publishedCount >= pinned.Length / 2, $"only {publishedCount} of {pinned.Length} pinned flows became assured: the lost-entry oracle covers too little");
        long roomy = counters.Sum(c => c.TableFullRoomy), ops = counters.Sum(c => c.Ops);
        // A few such refusals come from threads preempted inside the table holding back reclamation (pinned down
        // deterministically by InterleavingTests.A_stalled_reader_must_not_make_the_table_refuse_new_flows_while_it_has_room);
        // this check is after a dying list that stops draining altogether, which refuses most new flows.
        checks.That(roomy <= ops / RoomyRefusalLimit,
            $"{roomy} new flows ({100.0 * roomy / ops:F0}% of all operations) were refused as TableFull while fewer than {MaxEntries / 2} " +
            $"connections were in the table ({s_firstRoomy}): slots waiting on the dying list were not reclaimed");
        checks.That(st.ClashResolve > 0, "no clash was resolved: no two threads created the same flow at once");
        checks.That(st.InsertFailed > 0, "no insert failed: no TCP/ICMP clash happened");
        checks.That(st.EarlyDrop > 0, "early drop never fired: the table never filled");
        checks.That(gcRemoved > 0, "the collector removed nothing");
        checks.That(counters.Sum(c => c.Released) > 0, "no packet was released between In and Confirm");
        checks.That(removedHashed > table.Store.Capacity,
            $"only {removedHashed} entries left the hash, fewer than the {table.Store.Capacity} slots: the dying list was never necessarily reclaimed and reused");
        checks.That(counters.Sum(c => c.Inserted) > 10 * MaxEntries, $"only {counters.Sum(c => c.Inserted)} inserts: too little traffic");

        checks.Run(() => ConcurrencyInvariants.AssertHold(table, "after the soak"));
        checks.ThrowIfAny("Soak");
    }

    private static void Worker(int w, ThreadTeam team, ConntrackTable table, SharedClock clock, List<TestFlow> shared, TestFlow[] flood,
        StrongBox<bool> phase, Pinned[] pinned, long[] published, Counters n)
    {
        var rng = new FastRandom(Seed + w * 7919);
        var state = default(PacketState);
        while (!team.StopRequested)
        {
            n.Ops++;
            long now = clock.Now;
            int dice = rng.Next(100);
            if (dice < 18)
            {
                PinnedStep(team, table, now, pinned[w * PinnedPerWorker + rng.Next(PinnedPerWorker)], published, ref state, n);
            }
            else if (dice < 26)
            {
                int i = rng.Next(pinned.Length);
                long h = Volatile.Read(ref published[i]);
                if (h != 0)
                {
                    PinnedTraffic(team, table, now, pinned[i].Flow, new ConnectionHandle((int)(h >> 32), (int)h), rng.Chance(50), ref state, n);
                }
            }
            else if (dice < 32)
            {
                var f = PickShared(ref rng, shared);
                n.Lookups++;
                bool byReply = rng.Chance(50);
                if (table.TryGet(byReply ? f.Reply : f.Original, now, out var info))
                {
                    n.LookupHits++;
                    if (!f.Matches(info))
                    {
                        team.Fail($"TryGet({(byReply ? f.Reply : f.Original)}) returned another connection: {info.Original} / {info.Reply}");
                    }
                }
            }
            else if (dice < 35)
            {
                var f = PickShared(ref rng, shared);
                if (table.Delete(rng.Chance(50) ? f.Original : f.Reply, now))
                {
                    n.Deletes++;
                }
            }
            else
            {
                bool flooding = Volatile.Read(ref phase.Value);
                var f = flooding && rng.Chance(50) ? flood[rng.Next(flood.Length)]
                    : flooding ? PickShared(ref rng, shared) : shared[rng.Next(CalmFlows)];
                int d = rng.Next(100);
                byte[] p = d < 65 ? f.Forward : d < 90 ? f.Backward : d < 95 ? f.ClientAck : f.ClientRst;
                SharedPacket(team, table, now, f, p, rng.Chance(12), rng.Chance(10), ref state, n);
            }
        }

        table.Release(ref state);
    }

    private static TestFlow PickShared(ref FastRandom rng, List<TestFlow> shared) =>
        rng.Chance(HotPercent) ? shared[rng.Next(HotFlows)] : shared[rng.Next(shared.Count)];

    private static void SharedPacket(ThreadTeam team, ConntrackTable table, long now, TestFlow f, byte[] p, bool dropBeforeConfirm,
        bool verify, ref PacketState state, Counters n)
    {
        var v = table.In(p, now, ref state);
        if (v != Verdict.Accept)
        {
            if (state.Reason is PacketReason.TableFull)
            {
                n.TableFull++;
                if (table.Count < MaxEntries / 2)
                {
                    // Diagnose the first one while it happens (the dying list may be drained once traffic stops).
                    if (n.TableFullRoomy++ == 0 && Volatile.Read(ref s_firstRoomy) is null)
                    {
                        Interlocked.CompareExchange(ref s_firstRoomy,
                            $"at the first one: {table.Count} connections, {table.Statistics.Dying} dying, {table.Store.FreeCount} free slots of {table.Store.Capacity}; " +
                            ConcurrencyInvariants.DescribeDyingEntries(table), null);
                    }
                }
            }
            else if (state.Reason is not PacketReason.TcpReopenDying)
            {
                team.Fail($"In({f}) returned {v} with reason {state.Reason}");
            }

            return;
        }

        if (verify && state.Info.HasConnection() && table.TryGetInfo(state.Connection, now, out var info) && !f.Matches(info))
        {
            team.Fail($"In({f}) attached connection {state.Connection} whose tuples are {info.Original} / {info.Reply}");
        }

        if (dropBeforeConfirm)
        {
            n.Released += state.IsUnconfirmed ? 1 : 0;
            table.Release(ref state);
            return;
        }

        bool wasNew = state.IsUnconfirmed;
        var own = state.Connection;
        var cv = table.Confirm(p, now, ref state);
        if (cv == Verdict.Accept)
        {
            n.Confirmed += wasNew ? 1 : 0;
            n.Inserted += wasNew && state.Connection == own ? 1 : 0; // not merged into a clash winner
        }
        else if (state.Reason is PacketReason.InsertFailed or PacketReason.ChainTooLong)
        {
            n.ConfirmDrops++;
        }
        else
        {
            team.Fail($"Confirm({f}) returned {cv} with reason {state.Reason}");
        }
    }

    /// <summary>Drives one of this worker's pinned flows one step towards ASSURED, or sends traffic on it.</summary>
    private static void PinnedStep(ThreadTeam team, ConntrackTable table, long now, Pinned pf, long[] published,
        ref PacketState state, Counters n)
    {
        var f = pf.Flow;
        bool tcp = f.Protocol == TestFlow.Kind.Tcp;
        switch (pf.Stage)
        {
            case 0:
                // First packet (UDP request or SYN); an earlier incarnation may still be there.
                if (table.In(f.Forward, now, ref state) != Verdict.Accept || !state.Info.HasConnection())
                {
                    return;
                }

                bool wasNew = state.IsUnconfirmed;
                var own = state.Connection;
                if (table.Confirm(f.Forward, now, ref state) == Verdict.Accept)
                {
                    n.Inserted += wasNew && state.Connection == own ? 1 : 0;
                    pf.CreatedAt = now;
                    pf.Stage = 1;
                }

                return;
            case 1:
                // The answer (UDP reply or SYN-ACK): it must find the entry, unless that was evicted meanwhile.
                table.In(f.Backward, now, ref state);
                if (state.Info == ConntrackInfo.EstablishedReply)
                {
                    table.Confirm(f.Backward, now, ref state);
                    pf.Stage = 2;
                }
                else
                {
                    table.Release(ref state);
                    pf.Stage = 0;
                }

                return;
            case 2:
                if (!tcp && now - pf.CreatedAt <= 5 * Second / 2)
                {
                    return; // UDP becomes a stream (and ASSURED) only 2 s after creation
                }

                byte[] p = tcp ? f.ClientAck : f.Forward;
                table.In(p, now, ref state);
                if (state.Info != ConntrackInfo.Established)
                {
                    table.Release(ref state);
                    pf.Stage = 0;
                    return;
                }

                table.Confirm(p, now, ref state);
                var handle = state.Connection;
                if (table.TryGetInfo(handle, now, out var info) && (info.Status & ConnectionStatus.Assured) != 0)
                {
                    if (!f.MatchesExactly(info))
                    {
                        team.Fail($"pinned {f}: its connection {handle} has tuples {info.Original} / {info.Reply}");
                    }

                    Volatile.Write(ref published[pf.Index], ((long)handle.Index << 32) | (uint)handle.Generation);
                    pf.Stage = 3;
                }

                return;
            default:
                long h = Volatile.Read(ref published[pf.Index]);
                PinnedTraffic(team, table, now, f, new ConnectionHandle((int)(h >> 32), (int)h), (now / 1000) % 2 == 0, ref state, n);
                return;
        }
    }

    /// <summary>A packet of an assured pinned flow: it must land on the published connection.</summary>
    private static void PinnedTraffic(ThreadTeam team, ConntrackTable table, long now, TestFlow f, ConnectionHandle handle, bool fromServer,
        ref PacketState state, Counters n)
    {
        n.PinnedPackets++;
        byte[] p = fromServer ? f.ServerAck : f.ClientAck;
        var v = table.In(p, now, ref state);
        var expected = fromServer ? ConntrackInfo.EstablishedReply : ConntrackInfo.Established;
        if (v != Verdict.Accept || state.Info != expected || state.Connection != handle)
        {
            team.Fail($"pinned {f} (assured, published as {handle}) lost: a {(fromServer ? "server" : "client")} packet got {v}/{state.Info}/{state.Reason} on connection {state.Connection}");
            table.Release(ref state);
            return;
        }

        if (table.Confirm(p, now, ref state) != Verdict.Accept)
        {
            team.Fail($"pinned {f}: Confirm of an established packet dropped it ({state.Reason})");
        }
    }
}
