using System.Globalization;
using System.Runtime.CompilerServices;
using Conntrack.Benchmarks.Infrastructure;
using Conntrack.Table;

namespace Conntrack.Benchmarks.Commands;

/// <summary>
/// <c>memory</c>: fills a table with established TCP connections (three-way handshake through <c>In</c> and
/// <c>Confirm</c>) and reports the bytes each tracked connection costs with every structure included, from the
/// engine's own arrays and from the process's and the GC's numbers, next to <c>table.BytesPerConnection</c>.
/// </summary>
internal static class MemoryCommand
{
    public static int Run(string[] args)
    {
        int connections = 1_000_000;
        int maxEntries = -1;
        int buckets = -1;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--connections" or "-n":
                    connections = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--max-entries":
                    maxEntries = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--buckets":
                    buckets = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--help" or "-h":
                    Console.WriteLine(
                        """
                        Usage: Conntrack.Benchmarks memory [--connections N] [--max-entries M] [--buckets B]

                        Fills a table (nf_conntrack_max M, default N; buckets B, default M) with N established TCP
                        connections (default 1000000) and prints bytes per tracked connection: the engine's arrays
                        (entries, protocol areas, buckets, extensions, including the slack slots beyond M that the
                        table reserves), the GC's committed bytes and heap size, and the process working set, each as
                        a delta over the empty process divided by N; and table.BytesPerConnection. Target: <= 192.
                        """);
                    return 0;
                default:
                    Console.Error.WriteLine($"memory: unknown argument '{args[i]}' (see --help)");
                    return 2;
            }
        }

        if (maxEntries < 0)
        {
            maxEntries = connections;
        }

        if (buckets < 0)
        {
            buckets = maxEntries;
        }

        Snapshot before = Snapshot.Take();
        var table = new ConntrackTable(new ConntrackOptions { MaxEntries = maxEntries, Buckets = buckets, HashSeed = 1, Checksum = false });
        Snapshot created = Snapshot.Take();
        int half = connections / 2;
        Fill(table, 0, half);
        Snapshot halfway = Snapshot.Take();
        Fill(table, half, connections);
        Snapshot filled = Snapshot.Take();

        long entryBytes = (long)table.Entries.Length * Unsafe.SizeOf<Connection>();
        long protoBytes = (long)table.Proto.Length * Unsafe.SizeOf<ProtocolState>();
        long bucketBytes = (long)table.Buckets.Length * sizeof(int);
        long extBytes = (long)table.Ext.BytesPerConnection * table.Store.Capacity;
        long arrays = entryBytes + protoBytes + bucketBytes + extBytes;
        long slotsTouched = table.Store.HighWater;
        long touchedBytes = slotsTouched * (Unsafe.SizeOf<Connection>() + Unsafe.SizeOf<ProtocolState>() + table.Ext.BytesPerConnection) + bucketBytes;
        double n = connections;

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"connections: {table.Count} established TCP (asked {connections}); nf_conntrack_max {maxEntries}, buckets {buckets}, slots {table.Store.Capacity} (slots touched {slotsTouched})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"table.BytesPerConnection: {table.BytesPerConnection} B per slot (Connection {Unsafe.SizeOf<Connection>()} + ProtocolState {Unsafe.SizeOf<ProtocolState>()} + extensions {table.Ext.BytesPerConnection} + buckets {4.0 * buckets / maxEntries:F2})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"engine arrays, all slots: {arrays} B = {arrays / n:F1} B per connection (entries {entryBytes}, protocol {protoBytes}, buckets {bucketBytes}, extensions {extBytes})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"engine arrays, slots touched: {touchedBytes} B = {touchedBytes / n:F1} B per connection"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"GC committed: +{filled.Committed - before.Committed} B = {(filled.Committed - before.Committed) / n:F1} B per connection (after creating the empty table: +{created.Committed - before.Committed})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"GC heap size: +{filled.HeapSize - before.HeapSize} B = {(filled.HeapSize - before.HeapSize) / n:F1} B per connection (pinned object heap +{filled.Pinned - before.Pinned})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"working set: +{filled.WorkingSet - before.WorkingSet} B = {(filled.WorkingSet - before.WorkingSet) / n:F1} B per connection (after creating the empty table: +{created.WorkingSet - before.WorkingSet})"));
        double second = connections - half;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"marginal (second half of the fill, fixed costs excluded): working set {(filled.WorkingSet - halfway.WorkingSet) / second:F1} B, GC heap {(filled.HeapSize - halfway.HeapSize) / second:F1} B per connection"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"GC generations before/after (bytes after GC): {before.Generations} / {filled.Generations}"));
        double managed = (filled.HeapSize - before.HeapSize) / n;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"bytes per tracked connection, all managed structures (GC heap delta): {managed:F1} (target <= 192: {(managed <= 192 ? "met" : "missed")})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"alignment: Entries[0] at line offset {HugePages.LineOffset(table)}, Proto[0] at {HugePages.LineOffset(table.Proto)}, Buckets[0] at {HugePages.LineOffset(table.Buckets)} (0 = 64-byte aligned)"));
        Console.Error.WriteLine("# " + TableReport.Describe(table));
        GC.KeepAlive(table);
        table.Dispose();
        return table.Count == connections ? 0 : 1;
    }

    private static void Fill(ConntrackTable table, int from, int to)
    {
        Span<byte> p = stackalloc byte[64];
        var state = default(PacketState);
        long now = EstablishedFlows.SetupStart + from * 1000L;
        for (int f = from; f < to; f++)
        {
            uint client = 0x0A000000u + (uint)f + 1;
            uint server = 0xC0A80000u + (uint)(f % 250) + 1;
            ushort sport = (ushort)(1024 + f % 60000);
            uint isn = (uint)f * 2654435761u, isr = ~isn;
            Send(table, p[..PacketWriter.Ipv4Tcp(p, client, server, sport, 443, PacketWriter.FlagSyn, isn, 0, 0)], now, ref state);
            Send(table, p[..PacketWriter.Ipv4Tcp(p, server, client, 443, sport, PacketWriter.FlagSyn | PacketWriter.FlagAck, isr, isn + 1, 0)], now, ref state);
            Send(table, p[..PacketWriter.Ipv4Tcp(p, client, server, sport, 443, PacketWriter.FlagAck, isn + 1, isr + 1, 0)], now, ref state);
            if (state.Info != ConntrackInfo.Established)
            {
                throw new InvalidOperationException($"Connection {f} is {state.Info} after its handshake ({state.Reason}).");
            }

            now += 1000;
        }
    }

    private static void Send(ConntrackTable table, ReadOnlySpan<byte> pkt, long now, ref PacketState state)
    {
        if (table.In(pkt, now, ref state) != Verdict.Accept || table.Confirm(pkt, now, ref state) != Verdict.Accept)
        {
            throw new InvalidOperationException($"Packet dropped while filling the table: {state.Reason}; {TableReport.Describe(table)}");
        }
    }

    private readonly record struct Snapshot(long Committed, long HeapSize, long Pinned, long WorkingSet, string Generations)
    {
        public static Snapshot Take()
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GCMemoryInfo info = GC.GetGCMemoryInfo(GCKind.FullBlocking);
            long pinned = info.GenerationInfo.Length > 4 ? info.GenerationInfo[4].SizeAfterBytes : 0;
            string generations = string.Join(" ", info.GenerationInfo.ToArray().Select((g, i) => string.Create(CultureInfo.InvariantCulture, $"g{i}={g.SizeAfterBytes}")));
            return new Snapshot(info.TotalCommittedBytes, info.HeapSizeBytes, pinned, Environment.WorkingSet, generations);
        }
    }
}
