using BenchmarkDotNet.Attributes;
using Conntrack.Benchmarks.Infrastructure;

namespace Conntrack.Benchmarks.Suites;

/// <summary>
/// New connections per second at steady state, the whole life cycle included: every packet opens a connection
/// with a tuple not in the table (a UDP query that is never answered, or a TCP SYN), it is confirmed, and a
/// garbage-collection step every <see cref="GcEvery"/> packets, on a clock that advances
/// <c>timeout / LiveTarget</c> per packet, expires the connections opened a timeout ago. The table therefore holds
/// about <see cref="LiveTarget"/> connections plus what one collector sweep lets pile up, and does not grow;
/// the global set-up runs two full passes of the tuple pool first so that the measured part is at that steady
/// state, with recycled (not fresh) slots. Results are per new connection.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class NewConnectionBenchmarks
{
    /// <summary>New connections per benchmark invocation.</summary>
    public const int PacketsPerInvoke = 65536;

    /// <summary>Packets per burst in the batch benchmark.</summary>
    public const int BatchSize = 32;

    /// <summary>Distinct tuples, used round-robin: one comes back long after its connection expired.</summary>
    public const int PoolSize = 1 << 20;

    /// <summary>Connections alive at once (those younger than their timeout).</summary>
    public const int LiveTarget = 262_144;

    /// <summary>nf_conntrack_max and nf_conntrack_buckets of the table.</summary>
    public const int TableSize = 2 * LiveTarget;

    /// <summary>Packets between two garbage-collection steps.</summary>
    public const int GcEvery = 8192;

    /// <summary>Buckets scanned per garbage-collection step: one sweep of the table per 16 steps (131072 packets).</summary>
    public const int GcBudget = TableSize / 16;

    private ConntrackTable _table = null!;
    private byte[] _arena = null!;
    private PacketSegment[] _pool = null!;
    private PacketState[] _states = null!;
    private Verdict[] _verdicts = null!;
    private long _tick;
    private int _cursor;
    private long _now;
    private long _dropped;
    private int _maxCount;

    /// <summary>UDP (30 s unreplied timeout) or TCP SYN (120 s SYN_SENT timeout).</summary>
    [Params(FlowProtocol.Udp, FlowProtocol.Tcp)]
    public FlowProtocol Protocol { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        int packetLength = Protocol == FlowProtocol.Udp ? PacketWriter.UdpLength(8) : PacketWriter.TcpLength(0);
        _arena = GC.AllocateUninitializedArray<byte>(PoolSize * packetLength, pinned: true);
        _pool = new PacketSegment[PoolSize];
        for (int i = 0; i < PoolSize; i++)
        {
            uint client = 0x0A000000u + (uint)i + 1;
            uint server = 0xC0A80100u + (uint)(i % 250) + 1;
            ushort sport = (ushort)(1024 + i % 60000);
            Span<byte> dst = _arena.AsSpan(i * packetLength, packetLength);
            int len = Protocol == FlowProtocol.Udp
                ? PacketWriter.Ipv4Udp(dst, client, server, sport, 4500, 8)
                : PacketWriter.Ipv4Tcp(dst, client, server, sport, 443, PacketWriter.FlagSyn, (uint)i * 2654435761u, 0, 0);
            _pool[i] = new PacketSegment(i * packetLength, len);
        }

        long timeout = Protocol == FlowProtocol.Udp ? 30_000_000_000L : 120_000_000_000L;
        _tick = timeout / LiveTarget;
        _table = new ConntrackTable(new ConntrackOptions { MaxEntries = TableSize, Buckets = TableSize, HashSeed = 1, Checksum = false });
        _states = new PacketState[BatchSize];
        _verdicts = new Verdict[BatchSize];
        _now = EstablishedFlows.SetupStart;
        _cursor = 0;

        // Two passes over the pool: the table fills, connections start expiring, slots are recycled.
        for (int i = 0; i < 2 * PoolSize / PacketsPerInvoke; i++)
        {
            InConfirm();
        }

        if (_dropped != 0)
        {
            throw new InvalidOperationException($"Warm-up dropped {_dropped} new connections: {TableReport.Describe(_table)}");
        }

        Console.WriteLine($"// steady state after warm-up: max count {_maxCount}; {TableReport.Describe(_table)}");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        Console.WriteLine($"// dropped {_dropped}, max count {_maxCount}; {TableReport.Describe(_table)}");
        _table.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = PacketsPerInvoke)]
    public int InConfirm()
    {
        ConntrackTable table = _table;
        PacketSegment[] pool = _pool;
        byte[] arena = _arena;
        int cursor = _cursor;
        long now = _now;
        long tick = _tick;
        int accepted = 0;
        var state = default(PacketState);
        for (int i = 0; i < PacketsPerInvoke; i++)
        {
            PacketSegment seg = pool[cursor];
            var pkt = new ReadOnlySpan<byte>(arena, seg.Offset, seg.Length);
            if (table.In(pkt, now, ref state) == Verdict.Accept && table.Confirm(pkt, now, ref state) == Verdict.Accept)
            {
                accepted++;
            }

            if (++cursor == pool.Length)
            {
                cursor = 0;
            }

            now += tick;
            if ((i & (GcEvery - 1)) == GcEvery - 1)
            {
                Collect(table, now);
            }
        }

        _cursor = cursor;
        _now = now;
        _dropped += PacketsPerInvoke - accepted;
        return accepted;
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public int Batch32()
    {
        ConntrackTable table = _table;
        PacketSegment[] pool = _pool;
        byte[] arena = _arena;
        PacketState[] states = _states;
        Verdict[] verdicts = _verdicts;
        int cursor = _cursor;
        long now = _now;
        long tick = _tick;
        int accepted = 0;
        for (int i = 0; i < PacketsPerInvoke; i += BatchSize)
        {
            var burst = new ReadOnlySpan<PacketSegment>(pool, cursor, BatchSize);
            table.TrackBatch(arena, burst, now, states, verdicts);
            for (int j = 0; j < BatchSize; j++)
            {
                if (verdicts[j] == Verdict.Accept)
                {
                    accepted++;
                }
            }

            cursor += BatchSize;
            if (cursor == pool.Length)
            {
                cursor = 0;
            }

            now += tick * BatchSize;
            if (((i + BatchSize) & (GcEvery - 1)) == 0)
            {
                Collect(table, now);
            }
        }

        _cursor = cursor;
        _now = now;
        _dropped += PacketsPerInvoke - accepted;
        return accepted;
    }

    private void Collect(ConntrackTable table, long now)
    {
        int count = table.Count;
        if (count > _maxCount)
        {
            _maxCount = count;
        }

        table.CollectGarbage(now, GcBudget);
    }
}
