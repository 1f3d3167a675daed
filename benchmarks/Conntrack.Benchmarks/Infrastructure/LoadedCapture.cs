using Conntrack.Pcap;

namespace Conntrack.Benchmarks.Infrastructure;

/// <summary>Every IP packet of a capture, copied once into one arena, with its capture timestamp.</summary>
internal sealed class LoadedCapture
{
    private LoadedCapture(string name, byte[] arena, PacketSegment[] packets, long[] timestamps, long records)
    {
        Name = name;
        Arena = arena;
        Packets = packets;
        Timestamps = timestamps;
        Records = records;
    }

    public string Name { get; }

    /// <summary>The IP packets (from their IP header on), back to back in capture order.</summary>
    public byte[] Arena { get; }

    public PacketSegment[] Packets { get; }

    /// <summary>Capture time of each packet, nanoseconds.</summary>
    public long[] Timestamps { get; }

    /// <summary>Records in the file (IP and non-IP).</summary>
    public long Records { get; }

    /// <summary>Capture time of the last packet minus the first.</summary>
    public long Duration => Timestamps.Length == 0 ? 0 : Timestamps[^1] - Timestamps[0];

    public static LoadedCapture Load(string path)
    {
        var arena = new MemoryStream();
        var packets = new List<PacketSegment>();
        var timestamps = new List<long>();
        long records = 0;
        using (CaptureReader reader = CaptureReader.Open(path))
        {
            while (reader.ReadNext(out CaptureRecord record))
            {
                records++;
                if (!LinkLayer.IsSupported(record.LinkType))
                {
                    continue;
                }

                FrameKind kind = LinkLayer.Decode(record.LinkType, record.Data, out int ipOffset);
                if (kind == FrameKind.NonIp)
                {
                    continue;
                }

                ReadOnlySpan<byte> ip = record.Data[ipOffset..];
                packets.Add(new PacketSegment((int)arena.Length, ip.Length));
                timestamps.Add(record.TimestampNs);
                arena.Write(ip);
            }
        }

        var pinned = GC.AllocateUninitializedArray<byte>((int)arena.Length, pinned: true);
        arena.GetBuffer().AsSpan(0, (int)arena.Length).CopyTo(pinned);
        return new LoadedCapture(Path.GetFileNameWithoutExtension(path), pinned, [.. packets], [.. timestamps], records);
    }
}
