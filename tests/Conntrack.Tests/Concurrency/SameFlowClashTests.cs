using System.Diagnostics;
using Conntrack.Table;
using Conntrack.Tests.Support;
using Xunit.Abstractions;

namespace Conntrack.Tests.Concurrency;

/// <summary>
/// Many threads send the first packet of the same new flow at the same moment. Each In misses (the flow is
/// not confirmed yet) and creates its own unconfirmed entry; at Confirm the first one in wins and the others
/// find it under the bucket lock: the kernel's clash resolution (nf_ct_resolve_clash) merges UDP losers into
/// the winner and drops TCP/ICMP losers with insert_failed.
/// </summary>
/// <remarks>
/// Even rounds are lock-step: every thread's In happens before any thread's Confirm (a second barrier), so
/// every thread creates an entry and all but one must clash: exact counts. Odd rounds run free, so a late
/// thread may find the confirmed entry already; then only the relation between the counters is exact.
/// The <c>insert</c> counter no longer counts confirmations (kernel semantics: only ctnetlink inserts), so
/// "inserted" below is the number of entries the table gained.
/// </remarks>
[Collection(ConcurrencyCollection.Name)]
public class SameFlowClashTests(ITestOutputHelper output)
{
    private const int Threads = 8;
    private const int Rounds = 160;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(25);
    private static readonly TimeSpan BarrierPatience = TimeSpan.FromSeconds(10);
    private const long Now = 1000 * TestTable.Second;

    private sealed record RoundResult(Verdict In, Verdict Confirm, bool Created, ConnectionHandle Handle, PacketReason Reason);

    private static ConntrackTable NewTable() => new(new ConntrackOptions { MaxEntries = 8192, Buckets = 2048, HashSeed = 3 });

    /// <summary>Runs the rounds: thread t sends <paramref name="packet"/>(round, t) of the round's flow.</summary>
    private static (ThreadTeam Team, RoundResult[,] Results) Race(ConntrackTable table, Func<int, int, byte[]> packet)
    {
        var results = new RoundResult[Rounds, Threads];
        using var roundStart = new Barrier(Threads);
        using var allIn = new Barrier(Threads);
        var team = ThreadTeam.Run(Threads, (t, team) =>
        {
            for (int r = 0; r < Rounds && !team.StopRequested; r++)
            {
                if (!roundStart.SignalAndWait(BarrierPatience))
                {
                    team.Fail($"thread {t}: round {r} never started (another thread is stuck)");
                    return;
                }

                byte[] p = packet(r, t);
                var s = default(PacketState);
                var vin = table.In(p, Now, ref s);
                bool created = s.IsUnconfirmed;
                if (r % 2 == 0 && !allIn.SignalAndWait(BarrierPatience))
                {
                    team.Fail($"thread {t}: round {r}: the other threads never finished In");
                    return;
                }

                var vc = vin == Verdict.Accept ? table.Confirm(p, Now, ref s) : vin;
                results[r, t] = new RoundResult(vin, vc, created, s.Connection, s.Reason);
            }
        }, null, Timeout, i => $"clash thread {i}");
        return (team, results);
    }

    [Fact]
    public void Udp_first_packets_of_one_flow_from_many_threads_end_in_one_entry_that_every_packet_joins()
    {
        using var table = NewTable();
        var flows = Enumerable.Range(0, Rounds).Select(r => TestFlow.Udp($"10.9.{r / 200}.{r % 200 + 1}", "10.10.0.1", (ushort)(20000 + r), 53)).ToArray();
        var before = table.Statistics;
        // Every third round, the odd threads send the answer's direction: the merge must also work reversed.
        var (team, results) = Race(table, (r, t) => r % 3 == 0 && t % 2 == 1 ? flows[r].Backward : flows[r].Forward);
        team.AssertClean("UDP clash threads");
        var st = table.Statistics;

        var checks = new SoftChecks();
        int created = 0, lockstepCreated = 0;
        for (int r = 0; r < Rounds; r++)
        {
            var f = flows[r];
            bool found = table.TryGet(f.Original, Now, out var entry);
            checks.That(found && f.Matches(entry), $"round {r}: no entry for {f}");
            bool foundReply = table.TryGet(f.Reply, Now, out var byReply);
            checks.That(foundReply && byReply.Handle == entry.Handle, $"round {r}: the reply tuple finds {byReply.Handle}, the original {entry.Handle}");
            for (int t = 0; t < Threads; t++)
            {
                var x = results[r, t];
                created += x.Created ? 1 : 0;
                lockstepCreated += r % 2 == 0 && x.Created ? 1 : 0;
                checks.That(x.In == Verdict.Accept && x.Confirm == Verdict.Accept,
                    $"round {r} thread {t}: In {x.In}, Confirm {x.Confirm} ({x.Reason}): UDP clash losers must be merged, not dropped");
                checks.That(x.Handle == entry.Handle,
                    $"round {r} thread {t}: the packet ended on connection {x.Handle}, the table holds {entry.Handle}");
            }
        }

        long inserted = table.Count;
        long newEntries = st.New - before.New, clashes = st.ClashResolve - before.ClashResolve;
        output.WriteLine($"created {created} (lock-step rounds {lockstepCreated}), inserted {inserted}, clash_resolve {clashes}, insert_failed {st.InsertFailed}, drop {st.Drop}");
        checks.That(inserted == Rounds, $"{inserted} entries for {Rounds} flows");
        checks.That(newEntries == created, $"new {newEntries} but {created} In calls reported a new (unconfirmed) connection");
        checks.That(clashes + inserted == created, $"clash_resolve {clashes} + inserted {inserted} != {created} In calls that created an entry");
        checks.That(st.InsertFailed == before.InsertFailed && st.Drop == before.Drop, $"insert_failed {st.InsertFailed}, drop {st.Drop}: no UDP packet may be dropped");
        checks.That(lockstepCreated == (Rounds + 1) / 2 * Threads, $"in lock-step rounds only {lockstepCreated} of {(Rounds + 1) / 2 * Threads} In calls created an entry");
        checks.That(clashes >= (Rounds + 1) / 2 * (Threads - 1), $"clash_resolve {clashes}: the lock-step rounds alone must resolve {(Rounds + 1) / 2 * (Threads - 1)} clashes");
        checks.Run(() => ConcurrencyInvariants.AssertHold(table, "after the UDP clash rounds"));
        checks.ThrowIfAny("UDP same-flow clash");
    }

    [Fact]
    public void Tcp_syns_of_one_flow_from_many_threads_end_in_one_entry_and_the_losers_are_dropped()
    {
        using var table = NewTable();
        var flows = Enumerable.Range(0, Rounds).Select(r => TestFlow.Tcp($"10.11.{r / 200}.{r % 200 + 1}", "10.12.0.1", (ushort)(20000 + r), 80)).ToArray();
        var before = table.Statistics;
        var (team, results) = Race(table, (r, _) => flows[r].Forward);
        team.AssertClean("TCP clash threads");
        var st = table.Statistics;

        var checks = new SoftChecks();
        int created = 0, dropped = 0;
        for (int r = 0; r < Rounds; r++)
        {
            var f = flows[r];
            bool found = table.TryGet(f.Original, Now, out var entry);
            checks.That(found && f.MatchesExactly(entry), $"round {r}: no entry for {f}");
            int winners = 0;
            for (int t = 0; t < Threads; t++)
            {
                var x = results[r, t];
                created += x.Created ? 1 : 0;
                if (x.Confirm == Verdict.Accept)
                {
                    checks.That(x.Handle == entry.Handle, $"round {r} thread {t}: accepted on connection {x.Handle}, the table holds {entry.Handle}");
                    winners += x.Created ? 1 : 0;
                }
                else
                {
                    dropped++;
                    checks.That(x.Created && x.Reason == PacketReason.InsertFailed,
                        $"round {r} thread {t}: dropped with reason {x.Reason} (created an entry: {x.Created}); only clash losers may be dropped, with insert_failed");
                }
            }

            checks.That(winners == 1, $"round {r}: {winners} threads inserted the SYN's connection");
            if (r % 2 == 0)
            {
                checks.That(Enumerable.Range(0, Threads).All(t => results[r, t].Created), $"lock-step round {r}: some In found a connection that nobody had confirmed yet");
            }
        }

        long inserted = table.Count;
        long failed = st.InsertFailed - before.InsertFailed;
        output.WriteLine($"created {created}, inserted {inserted}, insert_failed {failed}, drop {st.Drop - before.Drop}, clash_resolve {st.ClashResolve}");
        checks.That(inserted == Rounds, $"{inserted} entries for {Rounds} flows");
        checks.That(st.New - before.New == created, $"new {st.New - before.New} but {created} In calls created an entry");
        checks.That(failed == created - inserted && failed == dropped, $"insert_failed {failed}, dropped packets {dropped}, created {created}, inserted {inserted}");
        checks.That(st.Drop - before.Drop == failed, $"drop {st.Drop - before.Drop} != insert_failed {failed}");
        checks.That(st.ClashResolve == before.ClashResolve, "TCP clashes must not be resolved by merging");
        checks.That(failed >= (Rounds + 1) / 2 * (Threads - 1), $"insert_failed {failed}: the lock-step rounds alone must fail {(Rounds + 1) / 2 * (Threads - 1)} inserts");
        checks.Run(() => ConcurrencyInvariants.AssertHold(table, "after the TCP clash rounds"));
        checks.ThrowIfAny("TCP same-flow clash");
    }

    /// <summary>
    /// The clash winner is being deleted (its DYING bit is set, it is still in its chain) when a loser of
    /// the same UDP flow confirms. The kernel's __nf_ct_resolve_clash refuses a dying winner
    /// (<c>if (nf_ct_is_dying(ct)) return NF_DROP</c>, then the reply direction still clashes, so the packet
    /// is dropped with insert_failed). Merging into it instead hands the packet a connection that is gone a
    /// moment later: Confirm says Accept, yet neither the handle nor the flow is in the table.
    /// </summary>
    /// <remarks>
    /// The test holds the winner's bucket stripes: the deleting thread marks the winner dying and waits for
    /// them; the confirming thread takes the loser off its unconfirmed list and waits for them too; then they
    /// are released and whichever thread gets them first decides the trial. Trials where the deletion wins
    /// are fine whatever the engine does (the loser is inserted); trials where the confirmation wins are the
    /// race under test (recognised by the confirmation finishing first, or by a clash being counted). A
    /// correct engine either drops the packet (the kernel: insert_failed) or inserts the loser as a new
    /// connection next to the dying one; it must not accept the packet into the dying connection.
    /// </remarks>
    [Fact]
    public void A_udp_loser_must_not_merge_into_a_winner_that_is_being_deleted()
    {
        const int Trials = 40;
        using var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 1024, Buckets = 256, HashSeed = 5 });
        var checks = new SoftChecks();
        int raced = 0, deleteFirst = 0;
        for (int i = 0; i < Trials; i++)
        {
            var f = TestFlow.Udp("10.20.0.1", "10.21.0.1", (ushort)(30000 + i), 53);
            var s1 = default(PacketState);
            var s2 = default(PacketState);
            table.In(f.Forward, Now, ref s1).Should().Be(Verdict.Accept);
            table.In(f.Forward, Now, ref s2).Should().Be(Verdict.Accept);
            s2.IsUnconfirmed.Should().BeTrue();
            table.Confirm(f.Forward, Now, ref s1).Should().Be(Verdict.Accept);
            var winner = s1.Connection;
            int loser = s2.Connection.Index;
            int b0 = table.BucketOf(table.Hasher.Hash(f.Original, 0));
            int b1 = table.BucketOf(table.Hasher.Hash(f.Reply, 0));
            var before = table.Statistics;

            table.LockPair(b0, b1);
            bool deleted = false;
            Verdict v2 = default;
            int order = 0, killerDone = 0, confirmerDone = 0;
            var killer = new Thread(() =>
            {
                deleted = table.Delete(winner, Now);
                killerDone = Interlocked.Increment(ref order);
            }) { IsBackground = true };
            var confirmer = new Thread(() =>
            {
                v2 = table.Confirm(f.Forward, Now, ref s2);
                confirmerDone = Interlocked.Increment(ref order);
            }) { IsBackground = true };
            try
            {
                killer.Start();
                SpinWait.SpinUntil(() => (Volatile.Read(ref table.Entries[winner.Index].Status) & (uint)ConnectionStatus.Dying) != 0, TimeSpan.FromSeconds(5))
                    .Should().BeTrue("the deleting thread marks the winner dying before it takes the bucket locks");
                Thread.Sleep(1 + i % 4); // let the deleter's spinning back off
                confirmer.Start();
                SpinWait.SpinUntil(() => Volatile.Read(ref table.Entries[loser].NextOriginal) == ConntrackTable.UnhashedMarker, TimeSpan.FromSeconds(5))
                    .Should().BeTrue("the confirming thread takes the loser off its unconfirmed list before it takes the bucket locks");
            }
            finally
            {
                table.UnlockPair(b0, b1);
            }

            killer.Join(TimeSpan.FromSeconds(5)).Should().BeTrue();
            confirmer.Join(TimeSpan.FromSeconds(5)).Should().BeTrue();
            deleted.Should().BeTrue();
            var after = table.Statistics;
            bool clashed = after.ClashResolve + after.InsertFailed > before.ClashResolve + before.InsertFailed;
            // The confirmation got the locks first (and so ran while the winner was dying and still linked) when
            // it finished first, or when it found the winner at all.
            bool confirmFirst = clashed || confirmerDone < killerDone;
            raced += confirmFirst ? 1 : 0;
            deleteFirst += confirmFirst ? 0 : 1;
            if (v2 == Verdict.Accept)
            {
                bool live = table.TryGetInfo(s2.Connection, Now, out _);
                bool present = table.TryGet(f.Original, Now, out var entry);
                checks.That(live && present && entry.Handle == s2.Connection,
                    $"trial {i}: Confirm accepted the packet on connection {s2.Connection} ({(s2.Connection == winner ? "the winner being deleted" : "its own entry")}), " +
                    $"but that connection resolves={live} and the flow is in the table={present}" +
                    (clashed ? $" (clash_resolve +{after.ClashResolve - before.ClashResolve}: merged into a dying winner)" : ""));
            }
            else
            {
                checks.That(s2.Reason == PacketReason.InsertFailed, $"trial {i}: dropped with {s2.Reason}");
            }

            table.Delete(f.Original, Now);
        }

        checks.That(raced > 0, $"in none of {Trials} trials did the confirmation get the bucket locks while the winner was dying (delete went first {deleteFirst} times): the race was not exercised");
        checks.ThrowIfAny($"Clash with a dying winner ({raced} raced trials, {deleteFirst} delete-first trials)");
    }
}
