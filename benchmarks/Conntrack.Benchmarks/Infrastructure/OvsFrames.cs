using System.Buffers.Binary;
using Conntrack.Pcap;

namespace Conntrack.Benchmarks.Infrastructure;

/// <summary>
/// The packets of Open vSwitch's <c>test-conntrack benchmark</c> (<c>prepare_packets</c>): copies of its 42-byte
/// frame (Ethernet 52:54:00:00:00:09 → 52:54:00:00:00:0a, IPv4 10.1.1.1 → 10.1.1.2, TTL 0, valid header checksum,
/// UDP 1 → 2, length 8, checksum 0; OVS's hex payload byte for byte) in one pinned buffer, and where each one's IP
/// packet lies in it. Used by the <c>throughput</c> command and the <c>OvsWorkload</c> suite.
/// </summary>
internal sealed class OvsFrames
{
    /// <summary>OVS's payload, as in <c>tests/test-conntrack.c</c>.</summary>
    public const string PayloadHex = "50540000000a50540000000908004500001c000000000011a4cd0a0101010a0101020001000200080000";

    /// <summary>All frames, back to back (pinned: the engine's burst path prefetches by address).</summary>
    public byte[] Buffer { get; }

    /// <summary>The length of one frame.</summary>
    public int FrameLength { get; }

    /// <summary>Frame <c>i</c>'s IP packet, decoded once here as OVS's <c>flow_extract</c> does once per packet.</summary>
    public PacketSegment[] Segments { get; }

    /// <summary>
    /// <paramref name="count"/> frames for thread <paramref name="tid"/>: <c>udp_src = 1 + tid</c>; with
    /// <paramref name="changeConnection"/>, frame <c>i</c> also gets <c>udp_dst = 2 + i</c>.
    /// </summary>
    public OvsFrames(int count, int tid, bool changeConnection)
    {
        byte[] frame = Convert.FromHexString(PayloadHex);
        FrameLength = frame.Length;
        Buffer = GC.AllocateArray<byte>(count * frame.Length, pinned: true);
        Segments = new PacketSegment[count];
        const int Udp = PacketWriter.EthernetHeaderLength + PacketWriter.Ipv4HeaderLength;
        for (int i = 0; i < count; i++)
        {
            Span<byte> f = Buffer.AsSpan(i * frame.Length, frame.Length);
            frame.CopyTo(f);
            // udp->udp_src = htons(ntohs(udp->udp_src) + tid); with change_connection, udp_dst += i.
            BinaryPrimitives.WriteUInt16BigEndian(f[Udp..], (ushort)(1 + tid));
            if (changeConnection)
            {
                BinaryPrimitives.WriteUInt16BigEndian(f[(Udp + 2)..], (ushort)(2 + i));
            }

            Segments[i] = Decode(i);
        }
    }

    /// <summary>Where frame <paramref name="i"/>'s IP packet lies in <see cref="Buffer"/> (an Ethernet decode).</summary>
    public PacketSegment Decode(int i)
    {
        int at = i * FrameLength;
        if (LinkLayer.Decode(LinkType.Ethernet, Buffer.AsSpan(at, FrameLength), out int ipOffset) == FrameKind.NonIp)
        {
            ipOffset = FrameLength; // an empty packet: the engine drops it
        }

        return new PacketSegment(at + ipOffset, FrameLength - ipOffset);
    }
}
