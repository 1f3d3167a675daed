using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Conntrack.Benchmarks.Infrastructure;
using Conntrack.Pcap;

namespace Conntrack.Benchmarks.Suites;

/// <summary>
/// The single-thread Open vSwitch <c>test-conntrack benchmark</c> workload (see the <c>throughput</c> command) as a
/// BenchmarkDotNet suite: 32 copies of OVS's 42-byte Ethernet/IPv4/UDP frame, one flow, every burst through
/// Ethernet decode and <c>TrackBatch</c> (In and Confirm) with one fixed timestamp. The baseline sends bursts of 32,
/// as <c>ovstest test-conntrack benchmark 1 N 32</c>; the other case sends one packet per call (batch size 1).
/// Results are per packet.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class OvsWorkloadBenchmarks
{
    public const int Bursts = 1024;
    public const int PacketsPerInvoke = Bursts * 32;

    private const string OvsPayloadHex = "50540000000a50540000000908004500001c000000000011a4cd0a0101010a0101020001000200080000";

    private ConntrackTable _table = null!;
    private byte[] _frames = null!;
    private int _frameLength;
    private PacketSegment[] _segments = null!;
    private PacketState[] _states = null!;
    private Verdict[] _verdicts = null!;
    private long _now;

    [GlobalSetup]
    public void Setup()
    {
        byte[] frame = Convert.FromHexString(OvsPayloadHex);
        _frameLength = frame.Length;
        _frames = GC.AllocateArray<byte>(32 * frame.Length, pinned: true);
        for (int i = 0; i < 32; i++)
        {
            frame.CopyTo(_frames, i * frame.Length);
            BinaryPrimitives.WriteUInt16BigEndian(_frames.AsSpan(i * frame.Length + 34), 1); // udp_src = 1 + tid, tid 0
        }

        _table = new ConntrackTable(new ConntrackOptions { HashSeed = 1 });
        _segments = new PacketSegment[32];
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

    private int Burst(int n)
    {
        ReadOnlySpan<byte> frames = _frames;
        PacketSegment[] segments = _segments;
        int length = _frameLength;
        for (int i = 0; i < n; i++)
        {
            int at = i * length;
            if (LinkLayer.Decode(LinkType.Ethernet, frames.Slice(at, length), out int ipOffset) == FrameKind.NonIp)
            {
                ipOffset = length;
            }

            segments[i] = new PacketSegment(at + ipOffset, length - ipOffset);
        }

        var burst = new ReadOnlySpan<PacketSegment>(segments, 0, n);
        int accepted = _table.TrackBatch(frames, burst, _now, _states, _verdicts);
        return accepted;
    }
}
