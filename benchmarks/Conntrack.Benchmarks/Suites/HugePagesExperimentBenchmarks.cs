using BenchmarkDotNet.Attributes;
using Conntrack.Benchmarks.Infrastructure;

namespace Conntrack.Benchmarks.Suites;

/// <summary>
/// Experiment behind a recommendation: the established-TCP, 1 000 000-flow, batch-of-32 case of
/// <see cref="EstablishedTcpBenchmarks"/>, with the table's entry, protocol and bucket arrays on 4 KiB pages
/// (baseline, as the engine allocates them) or advised to transparent huge pages before first use. The packet
/// path is the engine's, unchanged.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class HugePagesExperimentBenchmarks
{
    public const int PacketsPerInvoke = EstablishedFlowsBenchmarkBase.PacketsPerInvoke;
    public const int BatchSize = EstablishedFlowsBenchmarkBase.BatchSize;

    private EstablishedFlows _flows = null!;
    private ConntrackTable _table = null!;
    private PacketState[] _states = null!;
    private Verdict[] _verdicts = null!;
    private int _cursor;
    private long _now;

    [Params(1_000_000)]
    public int Flows { get; set; }

    [Params(false, true)]
    public bool HugePageArrays { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        long before = HugePages.AnonHugePagesKiB();
        _flows = EstablishedFlows.Build(FlowProtocol.Tcp, Flows, PacketsPerInvoke, seed: 12345);
        _table = EstablishedFlowsBenchmarkBase.CreateTable(Flows);
        bool advised = false;
        if (HugePageArrays)
        {
            advised = HugePages.Advise(_table.Entries.Memory) & HugePages.Advise(_table.Proto) & HugePages.Advise(_table.Buckets);
        }

        long now = _flows.SetUp(_table);
        _now = _flows.Verify(_table, now);
        _states = new PacketState[BatchSize];
        _verdicts = new Verdict[BatchSize];
        Console.WriteLine($"// huge pages advised: {advised}; AnonHugePages {before} -> {HugePages.AnonHugePagesKiB()} KiB; " +
            $"line offset of Entries[0] {HugePages.LineOffset(_table)}, Proto[0] {HugePages.LineOffset(_table.Proto)}");
    }

    [GlobalCleanup]
    public void Cleanup() => _table.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = PacketsPerInvoke)]
    public int Batch32()
    {
        ConntrackTable table = _table;
        PacketSegment[] sequence = _flows.Sequence;
        byte[] arena = _flows.Arena;
        int cursor = _cursor;
        long now = _now;
        int accepted = 0;
        for (int i = 0; i < PacketsPerInvoke; i += BatchSize)
        {
            var burst = new ReadOnlySpan<PacketSegment>(sequence, cursor, BatchSize);
            accepted += table.TrackBatch(arena, burst, now, _states, _verdicts);
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
