using BenchmarkDotNet.Attributes;
using Conntrack.Benchmarks.Infrastructure;

namespace Conntrack.Benchmarks.Suites;

/// <summary>
/// The single-thread Open vSwitch <c>test-conntrack benchmark</c> workload (see the <c>throughput</c> command) as a
/// BenchmarkDotNet suite: 32 copies of OVS's 42-byte Ethernet/IPv4/UDP frame, one flow, every burst through
/// <c>TrackBatch</c> (In and Confirm) with one fixed timestamp. The Ethernet header is decoded once, before the
/// runs, as OVS's <c>prepare_packets</c> does with <c>flow_extract</c>; the engine then parses and checks the IPv4
/// header, builds the tuple, hashes, looks up, tracks and confirms every packet of every burst. The baseline sends
/// bursts of 32, as <c>ovstest test-conntrack benchmark 1 N 32</c>; <c>Batch1</c> sends one packet per call
/// (batch size 1); <c>Batch32DecodeEachBurst</c> also decodes the Ethernet header of every packet of every burst
/// (more work than OVS does; how this suite measured before 2026-12-04). Results are per packet.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class OvsWorkloadBenchmarks
{
    public const int Bursts = 1024;
    public const int PacketsPerInvoke = Bursts * 32;

    private ConntrackTable _table = null!;
    private OvsFrames _frames = null!;
    private PacketState[] _states = null!;
    private Verdict[] _verdicts = null!;
    private long _now;

    [GlobalSetup]
    public void Setup()
    {
        _frames = new OvsFrames(32, tid: 0, changeConnection: false);
        _table = new ConntrackTable(new ConntrackOptions { HashSeed = 1 });
        _states = new PacketState[32];
        _verdicts = new Verdict[32];
        _now = EstablishedFlows.SetupStart;
        if (Batch32() != PacketsPerInvoke || _table.Count != 1)
        {
            throw new InvalidOperationException("The OVS frame was not accepted: " + TableReport.Describe(_table));
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        Console.WriteLine("// table: " + TableReport.Describe(_table));
        _table.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = PacketsPerInvoke)]
    public int Batch32()
    {
        int accepted = 0;
        for (int b = 0; b < Bursts; b++)
        {
            accepted += Burst(32);
        }

        return accepted;
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public int Batch1()
    {
        int accepted = 0;
        for (int b = 0; b < PacketsPerInvoke; b++)
        {
            accepted += Burst(1);
        }

        return accepted;
    }

    /// <summary>Bursts of 32 with every packet's Ethernet header decoded again in each burst.</summary>
    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public int Batch32DecodeEachBurst()
    {
        int accepted = 0;
        for (int b = 0; b < Bursts; b++)
        {
            PacketSegment[] segments = _frames.Segments;
            for (int i = 0; i < 32; i++)
            {
                segments[i] = _frames.Decode(i);
            }

            accepted += Burst(32);
        }

        return accepted;
    }

    private int Burst(int n)
    {
        var burst = new ReadOnlySpan<PacketSegment>(_frames.Segments, 0, n);
        return _table.TrackBatch(_frames.Buffer, burst, _now, _states, _verdicts);
    }
}
