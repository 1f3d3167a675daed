using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Conntrack.Benchmarks.Infrastructure;

namespace Conntrack.Benchmarks.Commands;

/// <summary>
/// <c>throughput</c>: Open vSwitch's <c>ovstest test-conntrack benchmark n_threads n_pkts batch_size
/// [change_connection]</c> (tests/test-conntrack.c), reproduced for side-by-side runs.
/// </summary>
/// <remarks>
/// As in OVS: one table shared by all threads; each thread owns 32 copies of one 42-byte Ethernet/IPv4/UDP frame
/// (10.1.1.1:1+tid → 10.1.1.2:2, TTL 0, valid IPv4 header checksum, UDP checksum 0; OVS's hex payload byte for
/// byte), prepared before the start barrier; each thread sends n_pkts packets in calls of batch_size packets
/// (<c>for (i = 0; i &lt; n_pkts; i += batch_size)</c>, so n_pkts is per thread and rounded up to whole batches),
/// every call with the same timestamp (OVS reads <c>time_msec()</c> once per thread) and the commit flag (new
/// connections are confirmed). Time runs from the start barrier to the end barrier, that is until the last thread
/// is done. Each frame's Ethernet header is decoded once, before the start barrier (<c>LinkLayer.Decode</c>, as
/// OVS's <c>prepare_packets</c> calls <c>flow_extract</c> once per packet); per batch each frame then goes through
/// the engine's whole path: <c>TrackBatch</c>
/// (IPv4 input checks with the header checksum, tuple, keyed hash, bucket prefetch, lookup, UDP tracker, and the
/// confirmation of each accepted packet, in order). No state is carried from one call to the next for a packet (OVS's newer
/// <c>process_one_fast</c> reuses <c>pkt-&gt;md.conn</c> across calls; this does not).
/// Before the timed run each thread warms up on a throw-away table for <c>--warmup-ms</c> (JIT tiering; OVS
/// is compiled ahead of time), unless 0.
/// </remarks>
internal static class ThroughputCommand
{
    private const int FramesPerThread = 32; // NETDEV_MAX_BURST

    public static int Run(string[] args)
    {
        int threads = 1;
        long packets = 10_000_000;
        int batch = 32;
        bool changeConn = false;
        int warmupMs = 3000;
        bool advanceClock = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            switch (a)
            {
                case "--threads" or "-t":
                    threads = int.Parse(Next(args, ref i), CultureInfo.InvariantCulture);
                    break;
                case "--packets" or "-n":
                    packets = long.Parse(Next(args, ref i), CultureInfo.InvariantCulture);
                    break;
                case "--batch" or "-b":
                    batch = int.Parse(Next(args, ref i), CultureInfo.InvariantCulture);
                    break;
                case "--change-conn":
                    changeConn = Next(args, ref i) != "0";
                    break;
                case "--pin":
                    Pin = true;
                    break;
                case "--split-hooks":
                    SplitHooks = true;
                    break;
                case "--warmup-ms":
                    warmupMs = int.Parse(Next(args, ref i), CultureInfo.InvariantCulture);
                    break;
                case "--advance-clock":
                    advanceClock = true;
                    break;
                case "--help" or "-h":
                    PrintHelp();
                    return 0;
                default:
                    Console.Error.WriteLine($"throughput: unknown argument '{a}' (see --help)");
                    return 2;
            }
        }

        if (threads < 1 || packets < 1 || batch < 1 || batch > FramesPerThread)
        {
            Console.Error.WriteLine($"throughput: need --threads >= 1, --packets >= 1 and --batch between 1 and {FramesPerThread} (NETDEV_MAX_BURST)");
            return 2;
        }

        if (warmupMs > 0)
        {
            using var warmTable = CreateTable();
            RunOnce(warmTable, threads, packets, batch, changeConn, advanceClock, TimeSpan.FromMilliseconds(warmupMs), out _, out _, out _);
        }

        using var table = CreateTable();
        RunOnce(table, threads, packets, batch, changeConn, advanceClock, null, out TimeSpan elapsed, out long allocated, out long[] bad);
        long perThread = (packets + batch - 1) / batch * batch;
        long total = perThread * threads;
        double mpps = total / elapsed.TotalSeconds / 1e6;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"conntrack: {(long)elapsed.TotalMilliseconds} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{mpps:F2} Mpps"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"allocated: {allocated} bytes"));
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"# {threads} thread(s) x {perThread} packets = {total} packets in {elapsed.TotalMilliseconds:F1} ms; " +
            $"{elapsed.TotalNanoseconds / perThread:F2} ns per packet per thread; not accepted: {bad.Sum()}; " +
            $"allocated by the packet loops themselves: {LastWorkerAllocated} bytes; {TableReport.Describe(table)}"));
        return bad.Sum() == 0 ? 0 : 1;
    }

    private static ConntrackTable CreateTable() =>
        // Kernel defaults (262144 entries and buckets, checksum checks on: OVS validates the IPv4 header checksum and
        // would validate a non-zero UDP checksum); a fixed hash seed for reproducible runs.
        new(new ConntrackOptions { HashSeed = 1 });

    private static void RunOnce(ConntrackTable table, int threads, long packets, int batch, bool changeConn, bool advanceClock,
        TimeSpan? forDuration, out TimeSpan elapsed, out long allocated, out long[] bad)
    {
        // Ready: frames prepared. Start: all threads go. End: all threads done.
        using var ready = new Barrier(threads + 1);
        using var start = new Barrier(threads + 1);
        using var end = new Barrier(threads + 1);
        var notAccepted = new long[threads];
        var workerAllocated = new long[threads];
        var workers = new Thread[threads];
        long deadline = forDuration is { } d ? Stopwatch.GetTimestamp() + (long)(d.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
        for (int t = 0; t < threads; t++)
        {
            int tid = t;
            workers[t] = new Thread(() =>
            {
                if (Pin)
                {
                    PinToCpu(tid % Environment.ProcessorCount);
                }

                var worker = new Worker(table, tid, batch, changeConn);
                ready.SignalAndWait();
                start.SignalAndWait();
                long mine = GC.GetAllocatedBytesForCurrentThread();
                notAccepted[tid] = forDuration is null
                    ? worker.Run(packets, advanceClock)
                    : worker.RunUntil(deadline, advanceClock);
                workerAllocated[tid] = GC.GetAllocatedBytesForCurrentThread() - mine;
                end.SignalAndWait();
            })
            {
                Name = "ct_thread " + tid.ToString(CultureInfo.InvariantCulture),
                IsBackground = true,
            };
            workers[t].Start();
        }

        ready.SignalAndWait();
        long before = GC.GetTotalAllocatedBytes(true);
        start.SignalAndWait();
        long t0 = Stopwatch.GetTimestamp();
        end.SignalAndWait();
        elapsed = Stopwatch.GetElapsedTime(t0);
        allocated = GC.GetTotalAllocatedBytes(true) - before;
        foreach (Thread w in workers)
        {
            w.Join();
        }

        bad = notAccepted;
        LastWorkerAllocated = workerAllocated.Sum();
    }

    /// <summary>Pin worker thread t to CPU t (OVS runs its datapath threads pinned, one per core).</summary>
    private static bool Pin { get; set; }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int sched_setaffinity(int pid, nint cpusetsize, ref ulong mask);

    /// <summary>Pins the calling thread (Linux: sched_setaffinity with pid 0 is the calling thread).</summary>
    private static void PinToCpu(int cpu)
    {
        if (!OperatingSystem.IsLinux() || cpu >= 64)
        {
            throw new PlatformNotSupportedException("--pin needs Linux and at most 64 CPUs.");
        }

        ulong mask = 1UL << cpu;
        if (sched_setaffinity(0, sizeof(ulong), ref mask) != 0)
        {
            throw new InvalidOperationException($"sched_setaffinity failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>InBatch then ConfirmBatch, as a forwarder with work between the two hooks calls them, instead of TrackBatch.</summary>
    private static bool SplitHooks { get; set; }

    /// <summary>Bytes the worker threads allocated inside their packet loops in the last run.</summary>
    private static long LastWorkerAllocated { get; set; }

    /// <summary>One thread's frames, burst descriptors and results, all allocated before the start barrier.</summary>
    private sealed class Worker
    {
        private readonly ConntrackTable _table;
        private readonly byte[] _frames;
        private readonly PacketSegment[] _segments;
        private readonly PacketState[] _states;
        private readonly Verdict[] _verdicts;
        private readonly int _batch;

        public Worker(ConntrackTable table, int tid, int batch, bool changeConn)
        {
            _table = table;
            _batch = batch;
            var frames = new OvsFrames(FramesPerThread, tid, changeConn);
            _frames = frames.Buffer;
            _segments = frames.Segments;
            _states = new PacketState[FramesPerThread];
            _verdicts = new Verdict[FramesPerThread];

            // The table allocates a small per-thread context on a thread's first call; take it here, before the
            // start barrier, with a lookup that finds nothing (OVS's threads likewise set up before the barrier).
            table.TryGet(default, 0, out _);
        }

        /// <summary>Sends <paramref name="packets"/> packets (rounded up to whole batches); returns how many were not accepted.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public long Run(long packets, bool advanceClock)
        {
            long now = Stopwatch.GetTimestamp(); // one reading, as OVS's time_msec() before its loop
            long bad = 0;
            for (long i = 0; i < packets; i += _batch)
            {
                bad += Burst(now);
                if (advanceClock)
                {
                    now += 1000;
                }
            }

            return bad;
        }

        public long RunUntil(long deadline, bool advanceClock)
        {
            long now = Stopwatch.GetTimestamp();
            long bad = 0;
            while (Stopwatch.GetTimestamp() < deadline)
            {
                for (int i = 0; i < 1024; i++)
                {
                    bad += Burst(now);
                    if (advanceClock)
                    {
                        now += 1000;
                    }
                }
            }

            return bad;
        }

        /// <summary>One conntrack_execute(): the engine's burst path with confirmation.</summary>
        private int Burst(long now)
        {
            int n = _batch;
            PacketSegment[] segments = _segments;
            ReadOnlySpan<byte> frames = _frames;
            ReadOnlySpan<PacketSegment> burst = new(segments, 0, n);
            Span<Verdict> verdicts = _verdicts;
            int accepted;
            if (SplitHooks)
            {
                accepted = _table.InBatch(frames, burst, now, _states, verdicts);
                _table.ConfirmBatch(frames, burst, now, _states, verdicts);
            }
            else
            {
                accepted = _table.TrackBatch(frames, burst, now, _states, verdicts);
            }

            return n - accepted;
        }
    }

    private static string Next(string[] args, ref int i)
    {
        if (i + 1 >= args.Length)
        {
            throw new ArgumentException($"{args[i]} needs a value");
        }

        return args[++i];
    }

    private static void PrintHelp() => Console.WriteLine(
        """
        Usage: Conntrack.Benchmarks throughput [--threads T] [--packets N] [--batch B] [--change-conn 0|1]
                                              [--warmup-ms MS] [--advance-clock]

        Open vSwitch's `ovstest test-conntrack benchmark T N B [change_connection]` workload on this engine.
        Each of T threads sends N packets (N is PER THREAD, as in OVS: each thread runs
        `for (i = 0; i < N; i += B)`, so N is rounded up to whole batches; the total is T x N), B packets per
        call (1..32), from 32 copies of OVS's 42-byte Ethernet/IPv4/UDP frame (10.1.1.1:1+thread -> 10.1.1.2:2),
        through Ethernet decode and TrackBatch (IPv4 checks and header checksum, tuple, hash, lookup, UDP tracking,
        confirmation), all threads on one table. Time runs from the start barrier until the last thread is done.

          --threads, -t T      threads (default 1)
          --packets, -n N      packets per thread (default 10000000)
          --batch, -b B        packets per call, 1..32 (default 32)
          --change-conn 0|1    OVS's change_connection: packet i of a batch goes to port 2+i (default 0)
          --warmup-ms MS       warm-up on a throw-away table before the timed run, for JIT tiering (default 3000; 0: none)
          --pin                pin worker thread t to CPU t (Linux), as OVS pins its datapath threads
          --split-hooks        InBatch then ConfirmBatch per burst (work between the hooks) instead of TrackBatch
          --advance-clock      advance the timestamp 1 us per call (OVS uses one timestamp for the whole run)

        Prints OVS's line `conntrack: <ms> ms`, then `<Mpps> Mpps` (T x N / time) and `allocated: <bytes> bytes`
        (managed bytes allocated by the process during the timed part, GC.GetTotalAllocatedBytes(true)).
        Diagnostics go to standard error. Exit code 1 if any packet was not accepted.
        """);
}
