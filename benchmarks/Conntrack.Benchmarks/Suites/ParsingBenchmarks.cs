using BenchmarkDotNet.Attributes;
using Conntrack.Benchmarks.Infrastructure;
using Conntrack.Packets;
using Conntrack.Pcap;
using Conntrack.Protocols;
using Conntrack.Tuples;

namespace Conntrack.Benchmarks.Suites;

/// <summary>Which packets the parsing and hashing benchmarks use.</summary>
public enum PacketKind
{
    /// <summary>IPv4 + UDP, 32-byte payload.</summary>
    Ipv4Udp,

    /// <summary>IPv4 + TCP, 32-byte payload.</summary>
    Ipv4Tcp,

    /// <summary>IPv6 + TCP, 32-byte payload.</summary>
    Ipv6Tcp,
}

/// <summary>1024 Ethernet frames of distinct flows, for the parsing and hashing benchmarks.</summary>
internal sealed class FramePool
{
    public const int Count = 1024;

    public FramePool(PacketKind kind)
    {
        const int Stride = 128;
        Arena = GC.AllocateUninitializedArray<byte>(Count * Stride, pinned: true);
        Frames = new PacketSegment[Count];
        Packets = new PacketSegment[Count];
        Span<byte> src6 = stackalloc byte[16];
        Span<byte> dst6 = stackalloc byte[16];
        for (int i = 0; i < Count; i++)
        {
            int at = i * Stride;
            Span<byte> frame = Arena.AsSpan(at, Stride);
            Span<byte> ip = frame[PacketWriter.EthernetHeaderLength..];
            uint client = 0x0A000000u + (uint)i + 1;
            uint server = 0xC0A80000u + (uint)(i % 250) + 1;
            ushort sport = (ushort)(1024 + i);
            int len;
            switch (kind)
            {
                case PacketKind.Ipv4Udp:
                    len = PacketWriter.Ipv4Udp(ip, client, server, sport, 4500, 32);
                    break;
                case PacketKind.Ipv4Tcp:
                    len = PacketWriter.Ipv4Tcp(ip, client, server, sport, 443, PacketWriter.FlagAck, 1000, 2000, 32);
                    break;
                default:
                    src6.Clear();
                    dst6.Clear();
                    src6[0] = 0x20; src6[1] = 0x01; src6[2] = 0x0d; src6[3] = 0xb8;
                    dst6[0] = 0x20; dst6[1] = 0x01; dst6[2] = 0x0d; dst6[3] = 0xb8; dst6[4] = 1;
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(src6[12..], client);
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(dst6[12..], server);
                    len = PacketWriter.Ipv6Tcp(ip, src6, dst6, sport, 443, PacketWriter.FlagAck, 1000, 2000, 32);
                    break;
            }

            PacketWriter.EthernetHeader(frame, kind == PacketKind.Ipv6Tcp);
            Frames[i] = new PacketSegment(at, PacketWriter.EthernetHeaderLength + len);
            Packets[i] = new PacketSegment(at + PacketWriter.EthernetHeaderLength, len);
        }
    }

    public byte[] Arena { get; }

    /// <summary>Whole frames, from the Ethernet header.</summary>
    public PacketSegment[] Frames { get; }

    /// <summary>The same packets from their IP header.</summary>
    public PacketSegment[] Packets { get; }
}

/// <summary>
/// Header parsing alone, per packet: the IP input checks (<c>IpHeaders.CheckInput</c>, the baseline: version,
/// lengths, IPv4 header checksum, IPv6 extension-header walk), then the tuple (<c>L4Dispatch.TryBuildTuple</c>),
/// then with the Ethernet decode in front (<c>LinkLayer.Decode</c>), then with the keyed tuple hash and bucket.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class HeaderParsingBenchmarks
{
    private FramePool _pool = null!;
    private ConntrackTable _table = null!;

    [Params(PacketKind.Ipv4Udp, PacketKind.Ipv4Tcp, PacketKind.Ipv6Tcp)]
    public PacketKind Kind { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _pool = new FramePool(Kind);
        _table = new ConntrackTable(new ConntrackOptions { MaxEntries = 65536, Buckets = 65536, HashSeed = 1, Checksum = false });
        if (CheckInputThenTuple() == 0)
        {
            throw new InvalidOperationException("The frame pool does not parse.");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _table.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = FramePool.Count)]
    public int CheckInput()
    {
        byte[] arena = _pool.Arena;
        PacketSegment[] packets = _pool.Packets;
        int sum = 0;
        for (int i = 0; i < packets.Length; i++)
        {
            PacketSegment seg = packets[i];
            if (IpHeaders.CheckInput(new ReadOnlySpan<byte>(arena, seg.Offset, seg.Length), 0, out L3Info l3) == PacketReason.None)
            {
                sum += l3.L4Offset;
            }
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = FramePool.Count)]
    public int CheckInputThenTuple()
    {
        byte[] arena = _pool.Arena;
        PacketSegment[] packets = _pool.Packets;
        ConntrackTable table = _table;
        int sum = 0;
        for (int i = 0; i < packets.Length; i++)
        {
            PacketSegment seg = packets[i];
            var pkt = new ReadOnlySpan<byte>(arena, seg.Offset, seg.Length);
            if (IpHeaders.CheckInput(pkt, 0, out L3Info l3) == PacketReason.None
                && L4Dispatch.TryBuildTuple(table, pkt[..l3.Length], 0, l3.IsIpv6, l3.Protocol, l3.L4Offset, out ConntrackTuple tuple))
            {
                sum += tuple.SourcePort;
            }
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = FramePool.Count)]
    public int EthernetThenTuple()
    {
        byte[] arena = _pool.Arena;
        PacketSegment[] frames = _pool.Frames;
        ConntrackTable table = _table;
        int sum = 0;
        for (int i = 0; i < frames.Length; i++)
        {
            PacketSegment seg = frames[i];
            var frame = new ReadOnlySpan<byte>(arena, seg.Offset, seg.Length);
            if (LinkLayer.Decode(LinkType.Ethernet, frame, out int ipOffset) == FrameKind.NonIp)
            {
                continue;
            }

            ReadOnlySpan<byte> pkt = frame[ipOffset..];
            if (IpHeaders.CheckInput(pkt, 0, out L3Info l3) == PacketReason.None
                && L4Dispatch.TryBuildTuple(table, pkt[..l3.Length], 0, l3.IsIpv6, l3.Protocol, l3.L4Offset, out ConntrackTuple tuple))
            {
                sum += tuple.SourcePort;
            }
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = FramePool.Count)]
    public int EthernetThenTupleThenBucket()
    {
        byte[] arena = _pool.Arena;
        PacketSegment[] frames = _pool.Frames;
        ConntrackTable table = _table;
        int sum = 0;
        for (int i = 0; i < frames.Length; i++)
        {
            PacketSegment seg = frames[i];
            var frame = new ReadOnlySpan<byte>(arena, seg.Offset, seg.Length);
            if (LinkLayer.Decode(LinkType.Ethernet, frame, out int ipOffset) == FrameKind.NonIp)
            {
                continue;
            }

            ReadOnlySpan<byte> pkt = frame[ipOffset..];
            if (IpHeaders.CheckInput(pkt, 0, out L3Info l3) == PacketReason.None
                && L4Dispatch.TryBuildTuple(table, pkt[..l3.Length], 0, l3.IsIpv6, l3.Protocol, l3.L4Offset, out ConntrackTuple tuple))
            {
                sum += table.BucketOf(table.Hasher.Hash(in tuple, 0));
            }
        }

        return sum;
    }
}

/// <summary>
/// Tuple hashing alone, per tuple: the BCL's unkeyed <c>HashCode.Combine</c> over the tuple's five words
/// (<c>ConntrackTuple.GetHashCode</c>, the baseline) against the engine's keyed <c>TupleHasher.Hash</c>, alone
/// and with the bucket scale, and the tuple equality compare a chain walk does per node.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class TupleHashBenchmarks
{
    private ConntrackTuple[] _tuples = null!;
    private TupleHasher _hasher;
    private ConntrackTable _table = null!;

    [Params(PacketKind.Ipv4Tcp, PacketKind.Ipv6Tcp)]
    public PacketKind Kind { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var pool = new FramePool(Kind);
        _table = new ConntrackTable(new ConntrackOptions { MaxEntries = 65536, Buckets = 65536, HashSeed = 1, Checksum = false });
        _hasher = TupleHasher.CreateWithSeed(1);
        _tuples = new ConntrackTuple[FramePool.Count];
        for (int i = 0; i < FramePool.Count; i++)
        {
            PacketSegment seg = pool.Packets[i];
            var pkt = new ReadOnlySpan<byte>(pool.Arena, seg.Offset, seg.Length);
            if (IpHeaders.CheckInput(pkt, 0, out L3Info l3) != PacketReason.None
                || !L4Dispatch.TryBuildTuple(_table, pkt[..l3.Length], 0, l3.IsIpv6, l3.Protocol, l3.L4Offset, out _tuples[i]))
            {
                throw new InvalidOperationException($"Frame {i} does not parse.");
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _table.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = FramePool.Count)]
    public int BclHashCode()
    {
        ConntrackTuple[] tuples = _tuples;
        int sum = 0;
        for (int i = 0; i < tuples.Length; i++)
        {
            sum += tuples[i].GetHashCode();
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = FramePool.Count)]
    public uint TupleHasherHash()
    {
        ConntrackTuple[] tuples = _tuples;
        TupleHasher hasher = _hasher;
        uint sum = 0;
        for (int i = 0; i < tuples.Length; i++)
        {
            sum += hasher.Hash(in tuples[i], 0);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = FramePool.Count)]
    public int TupleHasherHashAndBucket()
    {
        ConntrackTuple[] tuples = _tuples;
        ConntrackTable table = _table;
        int sum = 0;
        for (int i = 0; i < tuples.Length; i++)
        {
            sum += table.BucketOf(table.Hasher.Hash(in tuples[i], 0));
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = FramePool.Count)]
    public int TupleEquals()
    {
        ConntrackTuple[] tuples = _tuples;
        int sum = 0;
        for (int i = 0; i < tuples.Length; i++)
        {
            if (ConntrackTuple.Equals(in tuples[i], in tuples[(i + 1) & (FramePool.Count - 1)]))
            {
                sum++;
            }
        }

        return sum;
    }
}
