using Conntrack.Diagnostics;
using Conntrack.Pcap;

namespace Conntrack.Conformance;

/// <summary>
/// <c>TrackBatch</c> promises the per-packet result: every packet of the real-stack captures, sent in bursts of
/// 32, must get the same verdict, conntrack info and reason as In + Confirm one packet at a time (each burst's
/// packets stamped with the time of its first, on both sides), and the tables must end equal.
/// </summary>
public class BurstEquivalenceTests
{
    private const int BurstSize = 32;

    // Each capture with the chain walk ahead on every burst, and with the table's own choice (no walk while it
    // holds fewer than BurstWalkMinEntries connections).
    public static TheoryData<string, bool> Captures => new()
    {
        { "real-web", true }, { "real-mixed", true }, { "real-ftp", true }, { "real-bulk", true },
        { "real-web", false }, { "real-mixed", false }, { "real-ftp", false }, { "real-bulk", false },
    };

    [Theory]
    [MemberData(nameof(Captures))]
    public void TrackBatch_gives_the_per_packet_result_on_a_real_capture(string name, bool alwaysWalk)
    {
        var (arena, segments, times) = Load(Path.Combine(SharedCorpus.Require(), "pcaps", "real-stack", name + ".pcap"));
        var options = new ConntrackOptions { MaxEntries = 65536, Buckets = 65536, HashSeed = 3 };
        int n = segments.Length;

        using var perPacket = new ConntrackTable(options);
        var expected = new (Verdict, ConntrackInfo, PacketReason)[n];
        var state = default(PacketState);
        for (int i = 0; i < n; i++)
        {
            var pkt = new ReadOnlySpan<byte>(arena, segments[i].Offset, segments[i].Length);
            long now = times[i - i % BurstSize];
            Verdict v = perPacket.In(pkt, now, ref state);
            var info = state.Info;
            var reason = state.Reason;
            if (v == Verdict.Accept)
            {
                v = perPacket.Confirm(pkt, now, ref state);
            }

            expected[i] = (v, info, reason);
        }

        using var burst = new ConntrackTable(options);
        if (alwaysWalk)
        {
            burst.BurstWalkMinEntries = 0;
        }

        var states = new PacketState[BurstSize];
        var verdicts = new Verdict[BurstSize];
        int differ = 0;
        string first = "";
        for (int start = 0; start < n; start += BurstSize)
        {
            int count = Math.Min(BurstSize, n - start);
            burst.TrackBatch(arena, segments.AsSpan(start, count), times[start], states, verdicts);
            for (int j = 0; j < count; j++)
            {
                var got = (verdicts[j], states[j].Info, states[j].Reason);
                if (got != expected[start + j] && differ++ == 0)
                {
                    first = $"packet {start + j}: per packet {expected[start + j]}, TrackBatch {got}";
                }
            }
        }

        differ.Should().Be(0, $"TrackBatch must equal the per-packet path on {name} ({n} packets); first difference {first}");
        long end = times[^1];
        Table(burst, end).Should().Equal(Table(perPacket, end));
        n.Should().BeGreaterThan(1000, "the capture must be the real one");
    }

    private static List<string> Table(ConntrackTable table, long now)
    {
        var lines = new List<string>();
        foreach (var ci in table.GetConnections(now))
        {
            lines.Add(ConnectionFormatter.ToOracleLine(ci) + " deadline=" + ci.Deadline);
        }

        lines.Sort(StringComparer.Ordinal);
        return lines;
    }

    private static (byte[] Arena, PacketSegment[] Segments, long[] Times) Load(string path)
    {
        var arena = new MemoryStream();
        var segments = new List<PacketSegment>();
        var times = new List<long>();
        using (CaptureReader reader = CaptureReader.Open(path))
        {
            while (reader.ReadNext(out CaptureRecord record))
            {
                if (!LinkLayer.IsSupported(record.LinkType)
                    || LinkLayer.Decode(record.LinkType, record.Data, out int ipOffset) == FrameKind.NonIp)
                {
                    continue;
                }

                ReadOnlySpan<byte> ip = record.Data[ipOffset..];
                segments.Add(new PacketSegment((int)arena.Length, ip.Length));
                times.Add(record.TimestampNs);
                arena.Write(ip);
            }
        }

        return (arena.ToArray(), [.. segments], [.. times]);
    }
}
