using Conntrack.Diagnostics;
using Conntrack.Tests.Support;
using Xunit.Abstractions;

namespace Conntrack.Tests.Concurrency;

/// <summary>
/// The counters are kept per thread without atomics and summed when read: after a known number of
/// operations from several threads the sums must be exact (no increment lost to a race), and each
/// thread's own counters must be exactly what that thread did.
/// </summary>
[Collection(ConcurrencyCollection.Name)]
public class StatisticsConcurrencyTests(ITestOutputHelper output)
{
    private const int Threads = 6;
    private const int Iterations = 1500;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private const long Now = 1000 * TestTable.Second;

    /// <summary>A 10-byte "IPv4 packet": IP input drops it (ip_input_drop).</summary>
    private static readonly byte[] Truncated = [0x45, 0, 0, 10, 0, 0, 0, 0, 64, 17];

    /// <summary>
    /// Thread <paramref name="t"/>'s script: every iteration a new UDP flow (new) and its answer, an invalid
    /// packet on it (bad checksum: invalid), a truncated packet (ip_input_drop), a same-thread UDP clash
    /// (2 new, 1 clash_resolve); every 4th a same-thread TCP SYN clash (2 new, 1 insert_failed, 1 drop);
    /// every 5th a new flow given up before Confirm (1 new).
    /// </summary>
    private static void Script(ConntrackTable table, int t, Action<string> fail)
    {
        for (int i = 0; i < Iterations; i++)
        {
            var f = TestFlow.Udp($"10.{100 + t}.{i / 250}.{i % 250 + 1}", "10.99.0.1", 5353, 53);
            var s = default(PacketState);
            Expect(table.In(f.Forward, Now, ref s) == Verdict.Accept && table.Confirm(f.Forward, Now, ref s) == Verdict.Accept, "new flow", fail);
            Expect(table.In(f.Backward, Now, ref s) == Verdict.Accept && s.Info == ConntrackInfo.EstablishedReply, "answer", fail);
            Expect(table.In(f.BadChecksum, Now, ref s) == Verdict.Accept && s.Info == ConntrackInfo.Invalid, "bad checksum", fail);
            Expect(table.In(Truncated, Now, ref s) == Verdict.Drop, "truncated", fail);

            var g = TestFlow.Udp($"10.{100 + t}.{i / 250}.{i % 250 + 1}", "10.99.0.2", 5353, 53);
            var a = default(PacketState);
            var b = default(PacketState);
            table.In(g.Forward, Now, ref a);
            table.In(g.Forward, Now, ref b);
            Expect(table.Confirm(g.Forward, Now, ref a) == Verdict.Accept && table.Confirm(g.Forward, Now, ref b) == Verdict.Accept, "UDP clash", fail);

            if (i % 4 == 0)
            {
                var h = TestFlow.Tcp($"10.{100 + t}.{i / 250}.{i % 250 + 1}", "10.99.0.3", 40000, 80);
                table.In(h.Forward, Now, ref a);
                table.In(h.Forward, Now, ref b);
                Expect(table.Confirm(h.Forward, Now, ref a) == Verdict.Accept && table.Confirm(h.Forward, Now, ref b) == Verdict.Drop, "TCP clash", fail);
            }

            if (i % 5 == 0)
            {
                var k = TestFlow.Udp($"10.{100 + t}.{i / 250}.{i % 250 + 1}", "10.99.0.4", 5353, 53);
                table.In(k.Forward, Now, ref a);
                table.Release(ref a);
            }
        }
    }

    private static void Expect(bool ok, string what, Action<string> fail)
    {
        if (!ok)
        {
            fail($"unexpected result for {what}");
        }
    }

    [Fact]
    public void Counters_from_many_threads_sum_exactly_and_each_thread_keeps_its_own()
    {
        var options = new ConntrackOptions { MaxEntries = 65536, Buckets = 16384, HashSeed = 23 };

        // One thread alone: what one script adds to each counter.
        using var single = new ConntrackTable(options);
        var failures = new List<string>();
        Script(single, 0, failures.Add);
        failures.Should().BeEmpty();
        var one = single.Statistics;
        const int Tcp = (Iterations + 3) / 4, Released = (Iterations + 4) / 5;
        one.New.Should().Be(Iterations * 3 + Tcp * 2 + Released, "the script's expected new");
        one.ClashResolve.Should().Be(Iterations);
        one.InsertFailed.Should().Be(Tcp);
        one.Invalid.Should().Be(Iterations);
        one.IpInputDrop.Should().Be(Iterations);

        // Threads at once, each the same script on its own flows.
        using var table = new ConntrackTable(options);
        var threadIds = new int[Threads];
        var team = ThreadTeam.Run(Threads, (t, team) =>
        {
            threadIds[t] = Environment.CurrentManagedThreadId;
            Script(table, t, team.Fail);
        }, null, Timeout, i => $"stats thread {i}");
        team.AssertClean("statistics threads");

        var sum = table.Statistics;
        output.WriteLine($"one thread: {one.ToString().Replace('\n', ';')}");
        output.WriteLine($"{Threads} threads: {sum.ToString().Replace('\n', ';')}");
        output.WriteLine($"threads overlapped for {team.CommonTime.TotalMilliseconds:F0} ms");

        var checks = new SoftChecks();
        foreach (var (name, get) in Counters)
        {
            checks.That(get(sum) == Threads * get(one), $"{name}: {get(sum)} summed over {Threads} threads, expected {Threads} x {get(one)}");
        }

        checks.That(sum.Entries == Threads * one.Entries, $"entries {sum.Entries}, expected {Threads * one.Entries}");
        checks.That(sum.Unconfirmed == 0, $"unconfirmed {sum.Unconfirmed}: every script confirms or releases what it creates");

        // Per thread: each context holds exactly one script's worth.
        foreach (int id in threadIds)
        {
            var ctx = table.Contexts.SingleOrDefault(c => c.ThreadId == id);
            checks.That(ctx is not null, $"no context of its own for thread {id}");
            if (ctx is not null)
            {
                var mine = default(ConntrackStatistics);
                ctx.Stats.AddTo(ref mine);
                foreach (var (name, get) in Counters)
                {
                    checks.That(get(mine) == get(one), $"thread {id}: {name} {get(mine)}, expected {get(one)}");
                }
            }
        }

        checks.That(team.CommonTime > TimeSpan.Zero, "the threads never ran together");
        checks.Run(() => ConcurrencyInvariants.AssertHold(table, "after the counted operations"));
        checks.ThrowIfAny("Per-thread statistics");
    }

    private static readonly (string Name, Func<ConntrackStatistics, long> Get)[] Counters =
    [
        ("new", s => s.New),
        ("invalid", s => s.Invalid),
        ("insert", s => s.Insert),
        ("insert_failed", s => s.InsertFailed),
        ("clash_resolve", s => s.ClashResolve),
        ("drop", s => s.Drop),
        ("early_drop", s => s.EarlyDrop),
        ("error", s => s.Error),
        ("ip_input_drop", s => s.IpInputDrop),
        ("search_restart", s => s.SearchRestart),
        ("chaintoolong", s => s.ChainTooLong),
        ("untracked", s => s.Untracked),
        ("found", s => s.Found),
    ];
}
