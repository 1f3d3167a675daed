using BenchmarkDotNet.Attributes;
using Conntrack.Benchmarks.Infrastructure;
using Conntrack.Diagnostics;

namespace Conntrack.Benchmarks.Suites;

/// <summary>
/// A real capture held in memory (every IP packet of <c>../shared/pcaps/real-stack/NAME.pcap</c>, loaded once) and
/// replayed with its capture timestamps, checksum checks off, through <c>In</c> then <c>Confirm</c> (baseline) or
/// bursts of 32 consecutive packets through <c>TrackBatch</c> (each burst stamped with its first
/// packet's time). Each pass over the capture starts from an empty table: at the end of a pass the table is flushed
/// (<c>conntrack -F</c>; its cost is part of the measurement, amortised over the pass) and the clock jumps one hour
/// past the capture's end so that time only moves forward. A garbage-collection step runs every
/// <see cref="GcEvery"/> packets. Results are per packet.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class ReplayBenchmarks
{
    /// <summary>Packets per benchmark invocation (a pass continues from one invocation to the next).</summary>
    public const int PacketsPerInvoke = 65536;

    public const int BatchSize = 32;

    public const int GcEvery = 8192;

    public const int GcBudget = 1024;

    private LoadedCapture _capture = null!;
    private ConntrackTable _table = null!;
    private PacketState[] _states = null!;
    private Verdict[] _verdicts = null!;
    private int _cursor;
    private long _offset;
    private long _passes;
    private long _accepted;
    private long _sent;

    /// <summary>The capture, by file name without extension.</summary>
    [Params("real-web", "real-mixed")]
    public string Capture { get; set; } = "real-web";

    [GlobalSetup]
    public void Setup()
    {
        _capture = LoadedCapture.Load(SharedCorpus.RealStackCapture(Capture));
        if (_capture.Packets.Length == 0)
        {
            throw new InvalidOperationException($"{Capture}: no IP packets.");
        }

        _table = new ConntrackTable(new ConntrackOptions { MaxEntries = 65536, Buckets = 65536, HashSeed = 1, Checksum = false });
        _states = new PacketState[BatchSize];
        _verdicts = new Verdict[BatchSize];
        _cursor = 0;
        _offset = 0;
        Console.WriteLine($"// {Capture}: {_capture.Packets.Length} IP packets of {_capture.Records} records, {_capture.Arena.Length} bytes, {_capture.Duration / 1e9:F1} s of capture time");
        Console.WriteLine("// " + CompareBatchWithPerPacket(_capture));
    }

    /// <summary>
    /// One pass of the capture through a fresh table per packet (In, Confirm) and one in bursts of 32 (TrackBatch),
    /// every packet stamped with its burst's first time on both sides: how many packets get a different verdict or
    /// conntrack info (TrackBatch promises none).
    /// </summary>
    internal static string CompareBatchWithPerPacket(LoadedCapture capture)
    {
        int n = capture.Packets.Length;
        var perPacket = new (Verdict, ConntrackInfo)[n];
        var batched = new (Verdict, ConntrackInfo)[n];
        using (var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 65536, Buckets = 65536, HashSeed = 1, Checksum = false }))
        {
            var state = default(PacketState);
            for (int i = 0; i < n; i++)
            {
                PacketSegment seg = capture.Packets[i];
                var pkt = new ReadOnlySpan<byte>(capture.Arena, seg.Offset, seg.Length);
                Verdict v = table.In(pkt, capture.Timestamps[i - i % BatchSize], ref state);
                ConntrackInfo info = state.Info;
                if (v == Verdict.Accept)
                {
                    v = table.Confirm(pkt, capture.Timestamps[i - i % BatchSize], ref state);
                }

                perPacket[i] = (v, info);
            }
        }

        ConntrackStatistics stats;
        using (var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 65536, Buckets = 65536, HashSeed = 1, Checksum = false }))
        {
            var states = new PacketState[BatchSize];
            var verdicts = new Verdict[BatchSize];
            for (int start = 0; start < n; start += BatchSize)
            {
                int count = Math.Min(BatchSize, n - start);
                var burst = new ReadOnlySpan<PacketSegment>(capture.Packets, start, count);
                long now = capture.Timestamps[start];
                table.TrackBatch(capture.Arena, burst, now, states, verdicts);
                for (int j = 0; j < count; j++)
                {
                    batched[start + j] = (verdicts[j], states[j].Info);
                }
            }

            stats = table.Statistics;
        }

        int differ = 0, firstDiffer = -1;
        for (int i = 0; i < n; i++)
        {
            if (perPacket[i] != batched[i])
            {
                differ++;
                if (firstDiffer < 0)
                {
                    firstDiffer = i;
                }
            }
        }

        return differ == 0
            ? $"batch of {BatchSize} vs per packet: all {n} verdicts and infos agree"
            : $"batch of {BatchSize} vs per packet: {differ} of {n} packets differ (first: packet {firstDiffer}, per packet {perPacket[firstDiffer]}, batched {batched[firstDiffer]}); batched table: insert_failed={stats.InsertFailed} clash_resolve={stats.ClashResolve} invalid={stats.Invalid} drop={stats.Drop}";
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        Console.WriteLine($"// {Capture}: {_passes} passes, {_sent} packets sent, {_accepted} accepted; {TableReport.Describe(_table)}");
        _table.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = PacketsPerInvoke)]
    public int InConfirm()
    {
        ConntrackTable table = _table;
        PacketSegment[] packets = _capture.Packets;
        long[] timestamps = _capture.Timestamps;
        byte[] arena = _capture.Arena;
        int cursor = _cursor;
        long offset = _offset;
        int accepted = 0;
        var state = default(PacketState);
        for (int i = 0; i < PacketsPerInvoke; i++)
        {
            if (cursor == packets.Length)
            {
                offset = EndPass(timestamps[^1] + offset);
                cursor = 0;
            }

            PacketSegment seg = packets[cursor];
            long now = timestamps[cursor] + offset;
            var pkt = new ReadOnlySpan<byte>(arena, seg.Offset, seg.Length);
            if (table.In(pkt, now, ref state) == Verdict.Accept && table.Confirm(pkt, now, ref state) == Verdict.Accept)
            {
                accepted++;
            }

            cursor++;
            if ((i & (GcEvery - 1)) == GcEvery - 1)
            {
                table.CollectGarbage(now, GcBudget);
            }
        }

        table.Release(ref state);
        _cursor = cursor;
        _accepted += accepted;
        _sent += PacketsPerInvoke;
        return accepted;
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public int Batch32()
    {
        ConntrackTable table = _table;
        PacketSegment[] packets = _capture.Packets;
        long[] timestamps = _capture.Timestamps;
        byte[] arena = _capture.Arena;
        PacketState[] states = _states;
        Verdict[] verdicts = _verdicts;
        int cursor = _cursor;
        long offset = _offset;
        int accepted = 0;
        int done = 0;
        int sinceGc = 0;
        while (done < PacketsPerInvoke)
        {
            if (cursor == packets.Length)
            {
                offset = EndPass(timestamps[^1] + offset);
                cursor = 0;
            }

            int n = Math.Min(BatchSize, Math.Min(packets.Length - cursor, PacketsPerInvoke - done));
            long now = timestamps[cursor] + offset;
            var burst = new ReadOnlySpan<PacketSegment>(packets, cursor, n);
            accepted += table.TrackBatch(arena, burst, now, states, verdicts);
            cursor += n;
            done += n;
            sinceGc += n;
            if (sinceGc >= GcEvery)
            {
                sinceGc = 0;
                table.CollectGarbage(now, GcBudget);
            }
        }

        _cursor = cursor;
        _accepted += accepted;
        _sent += PacketsPerInvoke;
        return accepted;
    }

    /// <summary>Flushes the table at the end of a pass and moves the clock an hour past the pass's end.</summary>
    private long EndPass(long lastNow)
    {
        _table.Flush(lastNow);
        _passes++;
        _offset += _capture.Duration + 3_600_000_000_000L;
        return _offset;
    }
}
