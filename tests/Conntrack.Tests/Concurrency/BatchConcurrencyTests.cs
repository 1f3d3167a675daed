using Conntrack.Tests.Support;
using Xunit.Abstractions;

namespace Conntrack.Tests.Concurrency;

/// <summary>
/// InBatch/ConfirmBatch from several threads at once must build the same table as the same packets sent
/// one by one through In/Confirm on a single thread, for traffic in which the order between threads does
/// not matter: each thread drives its own flows (UDP, TCP handshakes and data, ICMP echo), at most one
/// packet per flow per burst, every thread's round-r burst carries the same timestamp, and some packets
/// are dropped between In and Confirm. In round 0 every thread also sends the first packet of the same
/// shared UDP flows, so the bursts clash and the losers must merge into the winners.
/// </summary>
/// <remarks>
/// Each round is: every thread InBatch, barrier, every thread ConfirmBatch, barrier. The barrier between
/// the halves makes the shared flows clash in every thread but one (exact clash_resolve count); it does not
/// change the outcome for a thread's own flows, which see one packet per round.
/// </remarks>
[Collection(ConcurrencyCollection.Name)]
public class BatchConcurrencyTests(ITestOutputHelper output)
{
    private const int Threads = 4;
    private const int Rounds = 30;
    private const int UdpPerThread = 14, TcpPerThread = 8, IcmpPerThread = 4;
    private const int SharedFlows = 6;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan BarrierPatience = TimeSpan.FromSeconds(10);
    private const long T0 = 1000 * TestTable.Second;
    private const long RoundNs = 100_000_000;

    private static ConntrackOptions Options() => new() { MaxEntries = 8192, Buckets = 4096, HashSeed = 17, TcpBeLiberal = true };

    private sealed record Burst(byte[] Buffer, PacketSegment[] Segments, bool[] DropBeforeConfirm);

    /// <summary>The packet flow <paramref name="j"/> sends in round <paramref name="r"/>, or null.</summary>
    private static byte[]? Script(TestFlow f, int j, int r)
    {
        int k = r - (j % 5); // flows start in different rounds
        if (k < 0)
        {
            return null;
        }

        return f.Protocol switch
        {
            TestFlow.Kind.Tcp => k switch
            {
                0 => f.Forward,
                1 => f.Backward,
                2 => f.ClientAck,
                _ => k % 2 == 1 ? f.ServerAck : f.ClientAck,
            },
            _ => k == 0 || k % 3 != 1 ? f.Forward : f.Backward,
        };
    }

    private static Burst[,] BuildBursts(TestFlow[][] own, TestFlow[] shared)
    {
        var bursts = new Burst[Threads, Rounds];
        for (int t = 0; t < Threads; t++)
        {
            for (int r = 0; r < Rounds; r++)
            {
                var packets = new List<byte[]>();
                var drop = new List<bool>();
                if (r == 0)
                {
                    packets.AddRange(shared.Select(f => f.Forward));
                    drop.AddRange(shared.Select(_ => false));
                }

                for (int j = 0; j < own[t].Length; j++)
                {
                    if (Script(own[t][j], j, r) is { } p)
                    {
                        packets.Add(p);
                        // Some packets die between In and Confirm (the first packet of a flow included).
                        drop.Add((j + 3 * r + t) % 11 == 0);
                    }
                }

                var (buffer, segments) = PacketBuilder.Burst(packets);
                bursts[t, r] = new Burst(buffer, segments, drop.ToArray());
            }
        }

        return bursts;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Bursts_from_many_threads_build_the_same_table_as_the_same_packets_one_by_one_on_one_thread(bool alwaysWalk)
    {
        var own = Enumerable.Range(0, Threads).Select(t =>
            Enumerable.Range(0, UdpPerThread).Select(i => TestFlow.Udp($"10.40.{t}.{i + 1}", "10.41.0.1", (ushort)(9000 + i), 53))
                .Concat(Enumerable.Range(0, TcpPerThread).Select(i => TestFlow.Tcp($"10.42.{t}.{i + 1}", "10.41.0.2", (ushort)(9100 + i), 80)))
                .Concat(Enumerable.Range(0, IcmpPerThread).Select(i => TestFlow.Icmp($"10.43.{t}.{i + 1}", "10.41.0.3", (ushort)(9200 + i))))
                .ToArray()).ToArray();
        var shared = Enumerable.Range(0, SharedFlows).Select(i => TestFlow.Udp("10.44.0.1", "10.41.0.4", (ushort)(9300 + i), 123)).ToArray();
        var bursts = BuildBursts(own, shared);

        // Reference: one thread, packet by packet.
        using var reference = new ConntrackTable(Options());
        var refResults = new (Verdict Verdict, ConntrackInfo Info)[Threads, Rounds][];
        for (int r = 0; r < Rounds; r++)
        {
            for (int t = 0; t < Threads; t++)
            {
                var b = bursts[t, r];
                refResults[t, r] = new (Verdict, ConntrackInfo)[b.Segments.Length];
                for (int i = 0; i < b.Segments.Length; i++)
                {
                    var p = b.Buffer.AsSpan(b.Segments[i].Offset, b.Segments[i].Length);
                    var s = default(PacketState);
                    var v = reference.In(p, T0 + r * RoundNs, ref s);
                    var info = s.Info;
                    if (v == Verdict.Accept && b.DropBeforeConfirm[i])
                    {
                        reference.Release(ref s);
                        v = Verdict.Drop;
                    }
                    else if (v == Verdict.Accept)
                    {
                        v = reference.Confirm(p, T0 + r * RoundNs, ref s);
                    }

                    refResults[t, r][i] = (v, info);
                }
            }
        }

        // The same bursts from Threads threads at once.
        // Lock-free reads of chains other threads change: the chain walk ahead on every burst, however small the
        // table, or never (the bucket heads taken as hints).
        using var table = new ConntrackTable(Options()) { BurstWalkMinEntries = alwaysWalk ? 0 : int.MaxValue };
        var results = new (Verdict Verdict, ConntrackInfo Info)[Threads, Rounds][];
        using var inDone = new Barrier(Threads);
        using var confirmDone = new Barrier(Threads);
        var team = ThreadTeam.Run(Threads, (t, team) =>
        {
            for (int r = 0; r < Rounds; r++)
            {
                var b = bursts[t, r];
                int n = b.Segments.Length;
                var states = new PacketState[n];
                var verdicts = new Verdict[n];
                long now = T0 + r * RoundNs;
                table.InBatch(b.Buffer, b.Segments, now, states, verdicts);
                var infos = states.Select(s => s.Info).ToArray();
                for (int i = 0; i < n; i++)
                {
                    if (verdicts[i] == Verdict.Accept && b.DropBeforeConfirm[i])
                    {
                        table.Release(ref states[i]);
                        verdicts[i] = Verdict.Drop;
                    }
                }

                if (!inDone.SignalAndWait(BarrierPatience))
                {
                    team.Fail($"thread {t} round {r}: the others never finished InBatch");
                    return;
                }

                table.ConfirmBatch(b.Buffer, b.Segments, now, states, verdicts);
                results[t, r] = verdicts.Zip(infos).ToArray();
                if (!confirmDone.SignalAndWait(BarrierPatience))
                {
                    team.Fail($"thread {t} round {r}: the others never finished ConfirmBatch");
                    return;
                }
            }
        }, null, Timeout, i => $"burst thread {i}");

        var checks = new SoftChecks();
        checks.Run(() => team.AssertClean("burst threads"));
        long now = T0 + Rounds * RoundNs;
        var expected = Describe(reference, now);
        var actual = Describe(table, now);
        output.WriteLine($"reference: {expected.Count} connections; concurrent bursts: {actual.Count}");
        checks.That(expected.Count > Threads * (UdpPerThread + TcpPerThread + IcmpPerThread) / 2, $"only {expected.Count} connections: the scenario built too little");
        foreach (var (key, line) in expected)
        {
            checks.That(actual.TryGetValue(key, out var got) && got == line,
                $"{key}: one by one {line}; bursts {(actual.TryGetValue(key, out var g) ? g : "missing")}");
        }

        foreach (var key in actual.Keys.Except(expected.Keys))
        {
            checks.That(false, $"{key}: only in the burst table: {actual[key]}");
        }

        for (int t = 0; t < Threads; t++)
        {
            for (int r = 0; r < Rounds; r++)
            {
                for (int i = 0; i < refResults[t, r].Length; i++)
                {
                    var (v, info) = results[t, r] is { } rr ? rr[i] : default;
                    var (ev, einfo) = refResults[t, r][i];
                    checks.That(v == ev && info == einfo, $"thread {t} round {r} packet {i}: burst {v}/{info}, one by one {ev}/{einfo}");
                }
            }
        }

        var st = table.Statistics;
        var rs = reference.Statistics;
        output.WriteLine($"bursts: clash_resolve {st.ClashResolve}, new {st.New}; one by one: clash_resolve {rs.ClashResolve}, new {rs.New}");
        checks.That(st.ClashResolve == SharedFlows * (Threads - 1),
            $"clash_resolve {st.ClashResolve}: every shared flow must clash in all threads but the winner ({SharedFlows * (Threads - 1)})");
        checks.That(st.New == rs.New + SharedFlows * (Threads - 1), $"new {st.New}, one by one {rs.New}");
        checks.Run(() => ConcurrencyInvariants.AssertHold(table, "burst table"));
        checks.Run(() => ConcurrencyInvariants.AssertHold(reference, "reference table"));
        checks.ThrowIfAny("Bursts versus one by one");
    }

    private static Dictionary<string, string> Describe(ConntrackTable table, long now) =>
        table.Snapshot(now).ToDictionary(
            c => $"{c.Original} zone {c.Zone}",
            c => $"reply {c.Reply} status {c.Status} state {c.ProtocolState} deadline {c.Deadline} mark {c.Mark}");
}
