using System.Diagnostics;
using Conntrack.Tests.Support;
using Conntrack.Tuples;
using Xunit.Abstractions;

namespace Conntrack.Tests.Concurrency;

/// <summary>
/// Lock-free readers against writers that create and delete flows in the very same chains (a table of 4
/// buckets), and a collector that expires them and recycles their slots.
/// </summary>
[Collection(ConcurrencyCollection.Name)]
public class ReadersDuringChurnTests(ITestOutputHelper output)
{
    private const int Readers = 3;
    private const int Writers = 2;
    private static readonly TimeSpan RunFor = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private const int Seed = 4242;

    private const int Buckets = 4;
    private const int MaxEntries = 128;
    private const int StableFlows = 4;
    private const int ChurnFlowsPerWriter = 64;
    private const int MaxLivePerWriter = 3;
    private const int MaxAbandonedPerWriter = 2;
    private const int AbandonPercent = 15;
    private const int MinHitsAndMisses = 10_000;
    private const double SimSecondsPerWallSecond = 50;
    private const long Second = TestTable.Second;
    private const long Start = 1000 * Second;

    private static ConntrackOptions Options() => new()
    {
        MaxEntries = MaxEntries,
        Buckets = Buckets,
        HashSeed = 13,
        TcpBeLiberal = true,
        // Churn flows (UDP, never answered) expire after 2 table seconds, 40 wall milliseconds.
        UdpTimeout = TimeSpan.FromSeconds(2),
        TcpTimeoutMaxRetrans = TimeSpan.FromHours(2),
        TcpTimeoutUnacknowledged = TimeSpan.FromHours(2),
    };

    private sealed class Tally
    {
        public long Lookups, Hits, StablePackets, Creates, Deletes, Abandoned, TableFull, ChainTooLong, Passes, Yielded;
    }

    private static (TestFlow[] Stable, TestFlow[][] Churn) Flows()
    {
        var stable = Enumerable.Range(0, StableFlows).Select(i => TestFlow.Tcp($"10.80.0.{i + 1}", "10.81.0.1", (ushort)(5000 + i), 22)).ToArray();
        var churn = Enumerable.Range(0, Writers)
            .Select(w => Enumerable.Range(0, ChurnFlowsPerWriter).Select(i => TestFlow.Udp($"10.82.{w}.{i + 1}", "10.83.0.1", (ushort)(6000 + i), 53)).ToArray())
            .ToArray();
        return (stable, churn);
    }

    /// <summary>
    /// Creates and deletes its own flows, a few alive at a time (the table's 4 chains stay short enough for
    /// inserts), and abandons some to the collector, which expires them.
    /// </summary>
    private static void Writer(int w, ThreadTeam team, ConntrackTable table, SharedClock clock, TestFlow[] mine, Tally n)
    {
        var rng = new FastRandom(Seed + 101 * w);
        var live = new List<TestFlow>();
        var abandonedAt = new Queue<long>();
        long timeout = (long)Options().UdpTimeout.TotalSeconds * Second;
        var state = default(PacketState);
        while (!team.StopRequested)
        {
            long now = clock.Now;
            while (abandonedAt.Count > 0 && now - abandonedAt.Peek() > timeout)
            {
                abandonedAt.Dequeue();
            }

            if (live.Count < MaxLivePerWriter && (live.Count == 0 || rng.Chance(55)))
            {
                var f = mine[rng.Next(mine.Length)];
                if (live.Contains(f) || table.TryGet(f.Original, now, out _))
                {
                    continue; // alive, or abandoned and not expired yet: In would refresh it, not create it
                }

                var v = table.In(f.Forward, now, ref state);
                if (v == Verdict.Accept)
                {
                    v = table.Confirm(f.Forward, now, ref state);
                }

                if (v == Verdict.Accept)
                {
                    n.Creates++;
                    live.Add(f);
                }
                else if (state.Reason == PacketReason.TableFull)
                {
                    // Not this test's subject: slots wait for readers preempted inside the table (see
                    // InterleavingTests.A_stalled_reader_must_not_make_the_table_refuse_new_flows_while_it_has_room).
                    n.TableFull++;
                }
                else if (state.Reason == PacketReason.ChainTooLong)
                {
                    n.ChainTooLong++; // four buckets: chains over 8 + rand(64) nodes are refused, as in the kernel
                }
                else
                {
                    team.Fail($"writer {w}: creating {f} got {v} ({state.Reason})");
                }
            }
            else if (live.Count > 0)
            {
                int i = rng.Next(live.Count);
                var f = live[i];
                live.RemoveAt(i);
                if (abandonedAt.Count < MaxAbandonedPerWriter && rng.Chance(AbandonPercent))
                {
                    n.Abandoned++; // left for the collector to expire
                    abandonedAt.Enqueue(now);
                }
                else
                {
                    n.Deletes += table.Delete(rng.Chance(50) ? f.Original : f.Reply, now) ? 1 : 0;
                }
            }
        }

        table.Release(ref state);
    }

    private static void Collector(ThreadTeam team, ConntrackTable table, SharedClock clock, ref long removed)
    {
        var wall = Stopwatch.StartNew();
        while (!team.StopRequested)
        {
            long now = Start + (long)(wall.Elapsed.TotalSeconds * SimSecondsPerWallSecond * Second);
            clock.Set(now);
            removed += table.CollectGarbage(now, Buckets);
            Thread.Yield();
        }
    }

    /// <summary>
    /// Readers look flows up (TryGet) and push packets of established flows (In) while writers create and
    /// delete flows in the same four chains and the collector expires them: a reader must never get a
    /// connection other than the one it asked for, and the established flows must always be found as
    /// themselves.
    /// </summary>
    /// <remarks>
    /// search_restart counts lock-free walks that ended on another bucket's nulls marker. The engine reuses
    /// a removed entry as soon as no thread holds it (hazard pointers), like the kernel's
    /// SLAB_TYPESAFE_BY_RCU: a reader walking a chain through a node that is freed and re-inserted elsewhere
    /// follows it into another chain, ends on that chain's marker and restarts. So under this churn restarts
    /// must happen (the test reports how many) and, whatever the walk did, a reader must never be handed a
    /// connection with another tuple: every match is protected and checked again.
    /// </remarks>
    [Fact]
    public void Readers_never_see_a_wrong_connection_while_writers_and_the_collector_churn_the_same_buckets()
    {
        using var tt = new TestTable(Options()) { Now = Start };
        var table = tt.Table;
        var (stable, churn) = Flows();
        var stableHandles = stable.Select(f => InterleavingTests.Establish(tt, f)).ToArray();
        var clock = new SharedClock(Start);
        var tallies = Enumerable.Range(0, Readers + Writers).Select(_ => new Tally()).ToArray();
        long removed = 0;
        var before = table.Statistics;

        var team = ThreadTeam.Run(Readers + Writers + 1, (t, team) =>
        {
            if (t < Readers)
            {
                Reader(t, team, table, clock, stable, stableHandles, churn, tallies[t]);
            }
            else if (t < Readers + Writers)
            {
                Writer(t - Readers, team, table, clock, churn[t - Readers], tallies[t]);
            }
            else
            {
                Collector(team, table, clock, ref removed);
            }
        }, RunFor, Timeout, i => i < Readers ? $"reader {i}" : i < Readers + Writers ? $"writer {i - Readers}" : "collector");

        var st = table.Statistics;
        var r = tallies.Take(Readers).ToArray();
        var w = tallies.Skip(Readers).ToArray();
        long restarts = st.SearchRestart - before.SearchRestart;
        output.WriteLine($"readers: lookups {r.Sum(x => x.Lookups)} (hits {r.Sum(x => x.Hits)}), stable packets {r.Sum(x => x.StablePackets)}; " +
            $"writers: creates {w.Sum(x => x.Creates)}, deletes {w.Sum(x => x.Deletes)}, abandoned {w.Sum(x => x.Abandoned)}, table-full {w.Sum(x => x.TableFull)}, chain-too-long {w.Sum(x => x.ChainTooLong)}; " +
            $"collector removed {removed}; search_restart {restarts}");
        output.WriteLine(st.ToString().Replace('\n', ';'));

        var checks = new SoftChecks();
        checks.Run(() => team.AssertClean("reader/writer threads"));
        long lookups = r.Sum(x => x.Lookups), hits = r.Sum(x => x.Hits);
        checks.That(hits > MinHitsAndMisses && lookups - hits > MinHitsAndMisses,
            $"churn lookups {lookups}, hits {hits}: readers must both find and miss churning flows many times for the test to mean anything");
        checks.That(w.Sum(x => x.Creates) > 1000 && w.Sum(x => x.Deletes) > 300, $"too little churn: {w.Sum(x => x.Creates)} creates, {w.Sum(x => x.Deletes)} deletes");
        checks.That(removed > 0, "the collector expired nothing");
        checks.That(restarts > 0,
            $"search_restart {restarts}: with four buckets and entries reused at once, some walks must have been sent to another chain and restarted; none did, so the restart path went unexercised");
        for (int i = 0; i < StableFlows; i++)
        {
            checks.That(table.TryGet(stable[i].Original, clock.Now, out var info) && info.Handle == stableHandles[i], $"stable {stable[i]} is gone at the end");
        }

        checks.Run(() => ConcurrencyInvariants.AssertHold(table, "after the churn"));
        checks.ThrowIfAny("Readers during churn");
    }

    private static void Reader(int id, ThreadTeam team, ConntrackTable table, SharedClock clock, TestFlow[] stable, ConnectionHandle[] stableHandles,
        TestFlow[][] churn, Tally n)
    {
        var rng = new FastRandom(Seed + 7 * id);
        var state = default(PacketState);
        while (!team.StopRequested)
        {
            long now = clock.Now;
            int dice = rng.Next(100);
            if (dice < 55)
            {
                var f = churn[rng.Next(Writers)][rng.Next(ChurnFlowsPerWriter)];
                bool byReply = rng.Chance(50);
                ConntrackTuple asked = byReply ? f.Reply : f.Original;
                n.Lookups++;
                if (table.TryGet(asked, now, out var info))
                {
                    n.Hits++;
                    if (!f.MatchesExactly(info))
                    {
                        team.Fail($"reader {id}: TryGet({asked}) returned {info.Handle} with tuples {info.Original} / {info.Reply}");
                    }
                }
            }
            else
            {
                int i = rng.Next(StableFlows);
                var f = stable[i];
                if (dice < 85)
                {
                    bool server = rng.Chance(50);
                    byte[] p = server ? f.ServerAck : f.ClientAck;
                    n.StablePackets++;
                    var v = table.In(p, now, ref state);
                    var expected = server ? ConntrackInfo.EstablishedReply : ConntrackInfo.Established;
                    if (v != Verdict.Accept || state.Info != expected || state.Connection != stableHandles[i])
                    {
                        team.Fail($"reader {id}: a packet of established {f} got {v}/{state.Info}/{state.Reason} on {state.Connection}, expected {expected} on {stableHandles[i]}");
                    }

                    table.Confirm(p, now, ref state);
                }
                else if (!table.TryGet(rng.Chance(50) ? f.Reply : f.Original, now, out var info) || info.Handle != stableHandles[i] || !f.MatchesExactly(info))
                {
                    team.Fail($"reader {id}: established {f} not found as itself ({info.Handle}: {info.Original} / {info.Reply})");
                }
            }
        }

        table.Release(ref state);
    }

    /// <summary>
    /// Enumeration (GetConnections / Snapshot, the <c>conntrack -L</c> path) during the same churn. The
    /// documented guarantee: "each connection appears at most once per pass unless it is re-created during
    /// it". A re-created connection has a new handle, so within one pass no handle may appear twice, and
    /// every connection yielded must be one of the flows the test creates, with consistent tuples.
    /// </summary>
    [Fact]
    public void Enumeration_during_churn_yields_each_connection_at_most_once_per_pass()
    {
        const int Enumerators = 2;
        const int PerYieldSpin = 30;
        using var tt = new TestTable(Options()) { Now = Start };
        var table = tt.Table;
        var (stable, churn) = Flows();
        foreach (var f in stable)
        {
            InterleavingTests.Establish(tt, f);
        }

        var known = stable.Concat(churn.SelectMany(x => x)).ToDictionary(f => f.Original);
        var clock = new SharedClock(Start);
        var tallies = Enumerable.Range(0, Writers + Enumerators).Select(_ => new Tally()).ToArray();
        long removed = 0;
        long duplicatePasses = 0, foreignYields = 0;
        var firstProblems = new System.Collections.Concurrent.ConcurrentQueue<string>();

        var team = ThreadTeam.Run(Writers + Enumerators + 1, (t, team) =>
        {
            if (t < Writers)
            {
                Writer(t, team, table, clock, churn[t], tallies[t]);
                return;
            }

            if (t == Writers + Enumerators)
            {
                Collector(team, table, clock, ref removed);
                return;
            }

            var n = tallies[t];
            var seen = new HashSet<ConnectionHandle>();
            while (!team.StopRequested)
            {
                seen.Clear();
                n.Passes++;
                int yielded = 0;
                bool duplicate = false;
                foreach (var ci in table.GetConnections(clock.Now))
                {
                    yielded++;
                    Thread.SpinWait(PerYieldSpin); // a consumer doing a little work per connection, as conntrack -L does
                    if (!seen.Add(ci.Handle) && !duplicate)
                    {
                        duplicate = true;
                        Interlocked.Increment(ref duplicatePasses);
                        if (firstProblems.Count < 5)
                        {
                            firstProblems.Enqueue($"pass {n.Passes}: {ci.Handle} ({ci.Original}) yielded twice; {yielded} yields so far, {table.Count} connections in the table");
                        }
                    }

                    if (!known.TryGetValue(ci.Original, out var f) || !f.MatchesExactly(ci))
                    {
                        Interlocked.Increment(ref foreignYields);
                        if (firstProblems.Count < 5)
                        {
                            firstProblems.Enqueue($"pass {n.Passes}: yielded {ci.Handle} with tuples {ci.Original} / {ci.Reply}, not a flow of the test");
                        }
                    }

                    if (yielded > 10 * MaxEntries)
                    {
                        team.Fail($"enumerator {t - Writers}: one pass yielded more than {10 * MaxEntries} connections from a table of at most {MaxEntries}: the walk is lost");
                        break;
                    }
                }

                n.Yielded += yielded;
            }
        }, RunFor, Timeout, i => i < Writers ? $"writer {i}" : i < Writers + Enumerators ? $"enumerator {i - Writers}" : "collector");

        var e = tallies.Skip(Writers).ToArray();
        output.WriteLine($"passes {e.Sum(x => x.Passes)}, yielded {e.Sum(x => x.Yielded)}, passes with a duplicate {duplicatePasses}, foreign yields {foreignYields}; " +
            $"creates {tallies.Take(Writers).Sum(x => x.Creates)}, deletes {tallies.Take(Writers).Sum(x => x.Deletes)}, collector removed {removed}");

        var checks = new SoftChecks();
        checks.Run(() => team.AssertClean("enumeration threads"));
        checks.That(e.Sum(x => x.Passes) > 1000, "too few enumeration passes");
        checks.That(tallies.Take(Writers).Sum(x => x.Creates) > 5000, "too little churn under the enumerators");
        checks.That(duplicatePasses == 0 && foreignYields == 0,
            $"{duplicatePasses} of {e.Sum(x => x.Passes)} passes yielded a connection twice and {foreignYields} yields were not connections of the test:\n    " +
            string.Join("\n    ", firstProblems));
        checks.Run(() => ConcurrencyInvariants.AssertHold(table, "after the enumeration churn"));
        checks.ThrowIfAny("Enumeration during churn");
    }
}
