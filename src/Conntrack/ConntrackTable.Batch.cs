using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Conntrack.Packets;
using Conntrack.Protocols;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack;

// The burst entry points: a burst of packets in, a burst of verdicts out. Hashing every packet first and
// prefetching its bucket, then its first chain node, lets the memory latency of one packet's lookup overlap
// the work on the others; on a table much larger than the caches this is where the time goes.
public sealed partial class ConntrackTable
{
    private const int BatchChunk = 32;

    /// <summary>
    /// <see cref="In(ReadOnlySpan{byte}, long, ref PacketState, ushort)"/> for a burst: packet <c>i</c> is
    /// <c>buffer[packets[i]]</c>, its result goes to <c>states[i]</c> and <c>verdicts[i]</c>. Same results as
    /// calling <c>In</c> for each packet in order.
    /// </summary>
    /// <returns>How many packets were accepted.</returns>
    [SkipLocalsInit] // the per-chunk scratch (tuples, hashes, headers) is written before it is read
    public int InBatch(ReadOnlySpan<byte> buffer, ReadOnlySpan<PacketSegment> packets, long timestamp,
        Span<PacketState> states, Span<Verdict> verdicts, ushort zone = 0)
    {
        if (states.Length < packets.Length || verdicts.Length < packets.Length)
        {
            ThrowBatchSpans();
        }

        for (int i = 0; i < packets.Length; i++)
        {
            var seg = packets[i];
            if ((uint)seg.Offset > (uint)buffer.Length || (uint)seg.Length > (uint)(buffer.Length - seg.Offset))
            {
                ThrowSegment(i);
            }

            if ((states[i].Flags & PacketState.StateFlags.Unconfirmed) != 0)
            {
                Release(ref states[i]);
            }

            states[i].Reset();
        }

        int accepted = 0;
        var ctx = Enter();
        try
        {
            Span<ConntrackTuple> tuples = stackalloc ConntrackTuple[BatchChunk];
            Span<uint> hashes = stackalloc uint[BatchChunk];
            Span<L3Info> l3s = stackalloc L3Info[BatchChunk];
            Span<byte> fast = stackalloc byte[BatchChunk];
            for (int start = 0; start < packets.Length; start += BatchChunk)
            {
                int n = Math.Min(BatchChunk, packets.Length - start);

                // 1. Parse, hash, prefetch the bucket heads.
                for (int j = 0; j < n; j++)
                {
                    var seg = packets[start + j];
                    ReadOnlySpan<byte> pkt = buffer.Slice(seg.Offset, seg.Length);
                    fast[j] = 0;
                    if (IpHeaders.CheckInput(pkt, 0, out l3s[j]) != PacketReason.None)
                    {
                        continue; // the full path reports it
                    }

                    ref L3Info l3 = ref l3s[j];
                    byte proto = l3.Protocol;
                    if (l3.IsFragment || l3.L4Offset <= 0 || proto == (l3.IsIpv6 ? IpProtocol.Icmpv6 : IpProtocol.Icmp)
                        || !L4Dispatch.TryBuildTuple(this, pkt[..l3.Length], 0, l3.IsIpv6, proto, l3.L4Offset, out tuples[j]))
                    {
                        continue;
                    }

                    hashes[j] = Hasher.Hash(in tuples[j], zone);
                    Prefetch(ref Buckets[BucketOf(hashes[j])]);
                    fast[j] = 1;
                }

                // 2. The bucket heads are (nearly) in cache: prefetch each chain's first node.
                for (int j = 0; j < n; j++)
                {
                    if (fast[j] != 0)
                    {
                        int head = Volatile.Read(ref Buckets[BucketOf(hashes[j])]);
                        if (head >= 0)
                        {
                            Prefetch(ref Unsafe.As<Connection, byte>(ref Entries[head >> 1]), (head & 1) * 64);
                        }
                    }
                }

                // 3. Resolve in order.
                for (int j = 0; j < n; j++)
                {
                    int i = start + j;
                    var seg = packets[i];
                    ReadOnlySpan<byte> pkt = buffer.Slice(seg.Offset, seg.Length);
                    Verdict v;
                    if (fast[j] == 0)
                    {
                        v = InCore(pkt, 0, timestamp, ref states[i], zone, ctx);
                    }
                    else
                    {
                        ref L3Info l3 = ref l3s[j];
                        ref PacketState state = ref states[i];
                        state.Length = l3.Length;
                        state.Protocol = l3.Protocol;
                        state.Layer4Offset = l3.L4Offset;
                        if (l3.IsIpv6)
                        {
                            state.Flags |= PacketState.StateFlags.Ipv6;
                        }

                        var p = new PacketContext { Packet = pkt[..l3.Length], L3 = l3, Now = timestamp, Ctx = ctx, Index = -1 };
                        v = TrackTuple(ref p, ref state, zone, hasTuple: true, in tuples[j], hashes[j]);
                    }

                    verdicts[i] = v;
                    if (v == Verdict.Accept)
                    {
                        accepted++;
                    }
                }
            }
        }
        finally
        {
            Exit(ctx);
        }

        return accepted;
    }

    /// <summary>
    /// <see cref="Confirm(ReadOnlySpan{byte}, long, ref PacketState)"/> for the accepted packets of a burst
    /// (<c>verdicts[i] == Accept</c>); a packet whose confirmation fails gets <see cref="Verdict.Drop"/>.
    /// Release the states of packets you dropped instead (<see cref="Release"/>).
    /// </summary>
    public void ConfirmBatch(ReadOnlySpan<byte> buffer, ReadOnlySpan<PacketSegment> packets, long timestamp,
        Span<PacketState> states, Span<Verdict> verdicts)
    {
        if (states.Length < packets.Length || verdicts.Length < packets.Length)
        {
            ThrowBatchSpans();
        }

        for (int i = 0; i < packets.Length; i++)
        {
            if (verdicts[i] == Verdict.Accept)
            {
                var seg = packets[i];
                verdicts[i] = Confirm(buffer.Slice(seg.Offset, seg.Length), timestamp, ref states[i]);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Prefetch<T>(ref T location, int byteOffset = 0)
    {
        if (Sse.IsSupported)
        {
            // The arrays are pinned (allocated on the pinned object heap), so the address is stable.
            Sse.Prefetch0((byte*)Unsafe.AsPointer(ref location) + byteOffset);
        }
    }

    private static void ThrowBatchSpans() =>
        throw new ArgumentException("states and verdicts must have at least as many elements as packets.");

    private static void ThrowSegment(int i) =>
        throw new ArgumentOutOfRangeException(nameof(i), i, "A packet segment lies outside the buffer.");
}
