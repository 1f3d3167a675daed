using System.Numerics;
using BenchmarkDotNet.Attributes;
using Conntrack.Benchmarks.Infrastructure;

namespace Conntrack.Benchmarks.Suites;

/// <summary>
/// Packets of established flows, in a pre-shuffled random order over all flows and both directions, through the
/// per-packet path (<c>In</c> then <c>Confirm</c>, the baseline) and the burst path (<c>TrackBatch</c>: In and
/// Confirm per packet in order, 32 packets per burst). Every flow is set up through the packet path in the global set-up
/// and every packet of the sequence is checked once to be ESTABLISHED before measuring. The clock advances by
/// 1 ns per packet (nothing expires). Results are per packet (<see cref="PacketsPerInvoke"/> packets per
/// invocation, continuing through the sequence from one invocation to the next).
/// </summary>
public abstract class EstablishedFlowsBenchmarkBase
{
    /// <summary>Packets per benchmark invocation.</summary>
    public const int PacketsPerInvoke = 65536;

    /// <summary>Packets per burst in the batch benchmark.</summary>
    public const int BatchSize = 32;

    private EstablishedFlows _flows = null!;
    private ConntrackTable _table = null!;
    private PacketState[] _states = null!;
    private Verdict[] _verdicts = null!;
    private int _cursor;
    private long _now;

    /// <summary>Number of established flows in the table (each sends in both directions).</summary>
    [Params(1, 10_000, 1_000_000)]
    public int Flows { get; set; }

    /// <summary>The protocol of the flows.</summary>
    protected abstract FlowProtocol Protocol { get; }

    [GlobalSetup]
    public void Setup()
    {
        _flows = EstablishedFlows.Build(Protocol, Flows, PacketsPerInvoke, seed: 12345);
        _table = CreateTable(Flows);
        long now = _flows.SetUp(_table);
        _now = _flows.Verify(_table, now);
        _states = new PacketState[BatchSize];
        _verdicts = new Verdict[BatchSize];
        _cursor = 0;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        Console.WriteLine("// table: " + TableReport.Describe(_table));
        _table.Dispose();
    }

    /// <summary>
    /// Table sized at twice the flow count rounded up to a power of two (at least 65536), as many buckets as
    /// entries (the kernel's nf_conntrack_max = nf_conntrack_buckets), fixed hash seed, no layer-4 checksum checks.
    /// </summary>
    internal static ConntrackTable CreateTable(int flows)
    {
        int size = (int)Math.Max(65536u, BitOperations.RoundUpToPowerOf2((uint)flows * 2));
        return new ConntrackTable(new ConntrackOptions { MaxEntries = size, Buckets = size, HashSeed = 1, Checksum = false });
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = PacketsPerInvoke)]
    public int InConfirm()
    {
        ConntrackTable table = _table;
        PacketSegment[] sequence = _flows.Sequence;
        byte[] arena = _flows.Arena;
        int cursor = _cursor;
        long now = _now;
        int accepted = 0;
        var state = default(PacketState);
        for (int i = 0; i < PacketsPerInvoke; i++)
        {
            PacketSegment seg = sequence[cursor];
            var pkt = new ReadOnlySpan<byte>(arena, seg.Offset, seg.Length);
            if (table.In(pkt, now, ref state) == Verdict.Accept && table.Confirm(pkt, now, ref state) == Verdict.Accept)
            {
                accepted++;
            }

            if (++cursor == sequence.Length)
            {
                cursor = 0;
            }

            now++;
        }

        _cursor = cursor;
        _now = now;
        return accepted;
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public int Batch32()
    {
        ConntrackTable table = _table;
        PacketSegment[] sequence = _flows.Sequence;
        byte[] arena = _flows.Arena;
        PacketState[] states = _states;
        Verdict[] verdicts = _verdicts;
        int cursor = _cursor;
        long now = _now;
        int accepted = 0;
        for (int i = 0; i < PacketsPerInvoke; i += BatchSize)
        {
            var burst = new ReadOnlySpan<PacketSegment>(sequence, cursor, BatchSize);
            accepted += table.TrackBatch(arena, burst, now, states, verdicts);
            cursor += BatchSize;
            if (cursor == sequence.Length)
            {
                cursor = 0;
            }

            now += BatchSize;
        }

        _cursor = cursor;
        _now = now;
        return accepted;
    }
}

/// <summary>Established UDP flows (assured streams): see <see cref="EstablishedFlowsBenchmarkBase"/>.</summary>
[MemoryDiagnoser]
[MedianColumn]
public class EstablishedUdpBenchmarks : EstablishedFlowsBenchmarkBase
{
    protected override FlowProtocol Protocol => FlowProtocol.Udp;
}

/// <summary>Established TCP flows (handshake done, data and ACKs with window tracking): see <see cref="EstablishedFlowsBenchmarkBase"/>.</summary>
[MemoryDiagnoser]
[MedianColumn]
public class EstablishedTcpBenchmarks : EstablishedFlowsBenchmarkBase
{
    protected override FlowProtocol Protocol => FlowProtocol.Tcp;
}
