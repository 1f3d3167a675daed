namespace Conntrack.Tests.Support;

/// <summary>A table plus a clock, pushing packets through In and Confirm as a forwarder would.</summary>
public sealed class TestTable : IDisposable
{
    public const long Second = 1_000_000_000L;

    public TestTable(ConntrackOptions? options = null)
    {
        options ??= new ConntrackOptions { MaxEntries = 4096, Buckets = 1024, HashSeed = 42 };
        Table = new ConntrackTable(options);
    }

    public ConntrackTable Table { get; }

    /// <summary>The current time in nanoseconds (starts at 1000 s so that nothing is at 0).</summary>
    public long Now { get; set; } = 1000 * Second;

    public void Advance(double seconds) => Now += (long)(seconds * Second);

    /// <summary>In then, if accepted, Confirm. Returns the packet's state.</summary>
    public PacketState Send(byte[] packet, bool confirm = true, ushort zone = 0)
    {
        var state = default(PacketState);
        var v = Table.In(packet, Now, ref state, zone);
        LastVerdict = v;
        if (v == Verdict.Accept && confirm)
        {
            LastVerdict = Table.Confirm(packet, Now, ref state);
        }

        return state;
    }

    public Verdict LastVerdict { get; private set; }

    public ConntrackInfo Info(byte[] packet) => Send(packet).Info;

    public List<ConnectionInfo> Connections() => Table.Snapshot(Now);

    public List<string> OracleLines() =>
        Table.Snapshot(Now).Select(c => global::Conntrack.Diagnostics.ConnectionFormatter.ToOracleLine(c)).Order(StringComparer.Ordinal).ToList();

    public void Dispose() => Table.Dispose();
}
