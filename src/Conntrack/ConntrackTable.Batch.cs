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
    /// <c>buffer[packets[i]]</c>, its result goes to <c>states[i]</c> and <c>verdicts[i]</c>. Follow it with
    /// <see cref="ConfirmBatch"/> once the accepted packets have passed whatever runs between the two hooks (NAT,
    /// filtering); when nothing does, <see cref="TrackBatch"/> does both in one pass.
    /// </summary>
    /// <remarks>
    /// The result is that of calling <c>In</c> for every packet in order and only then <c>Confirm</c> for each, as
    /// when the packets of a burst all pass the kernel's PREROUTING hook before the first reaches POSTROUTING. A
    /// packet therefore does not see a connection that an earlier packet of the same burst created: it is not in
    /// the table before its confirmation. A second packet of such a new flow creates its own unconfirmed entry,
    /// and <see cref="ConfirmBatch"/> resolves the two as the kernel resolves packets of one new flow racing on two
    /// CPUs (<c>nf_ct_resolve_clash</c>: a UDP packet joins the first connection, others are dropped); a reply in
    /// the same burst as the first packet of its flow is seen as a new flow of its own. Known connections are
    /// unaffected. <see cref="TrackBatch"/> gives exactly the per-packet results.
    /// </remarks>
    /// <returns>How many packets were accepted.</returns>
    [SkipLocalsInit] // the per-chunk scratch (tuples, hashes, headers) is written before it is read
    public int InBatch(ReadOnlySpan<byte> buffer, ReadOnlySpan<PacketSegment> packets, long timestamp,
        Span<PacketState> states, Span<Verdict> verdicts, ushort zone = 0)
    {
        Unsafe.SkipInit(out BurstScratch scratch);
        return Burst(buffer, packets, timestamp, states, verdicts, zone, confirm: false, ref scratch);
    }

    /// <summary>
    /// <c>In</c> and then, for an accepted packet, <c>Confirm</c>, for each packet of a burst in order: the exact
    /// result of calling both for one packet after the other, with the memory latency of the lookups overlapped
    /// as in <see cref="InBatch"/>. For a forwarder that does nothing between the two hooks. A packet whose
    /// confirmation fails gets <see cref="Verdict.Drop"/>; no state is left unconfirmed, so nothing needs
    /// releasing.
    /// </summary>
    /// <returns>How many packets were accepted (and confirmed).</returns>
    [SkipLocalsInit]
    public int TrackBatch(ReadOnlySpan<byte> buffer, ReadOnlySpan<PacketSegment> packets, long timestamp,
        Span<PacketState> states, Span<Verdict> verdicts, ushort zone = 0)
    {
        Unsafe.SkipInit(out BurstScratch scratch);
        return Burst(buffer, packets, timestamp, states, verdicts, zone, confirm: true, ref scratch);
    }

    /// <summary>
    /// What the burst loop keeps per packet of a chunk. It lives in the two entry points' frames (loop-free
    /// methods), not in a <c>stackalloc</c> of the loop's own: a method that both allocates on the stack and
    /// loops is compiled once, optimised without a profile, while this loop gets tiered compilation with one.
    /// </summary>
    private struct BurstScratch
    {
        public TupleChunk Tuples;
        public HashChunk Hashes;
        public L3Chunk Headers;
        public HashChunk Cursors;
        public HashChunk Phases;
        public HashChunk Walking;
    }

    [InlineArray(BatchChunk)]
    private struct TupleChunk
    {
        private ConntrackTuple _first;
    }

    [InlineArray(BatchChunk)]
    private struct HashChunk
    {
        private uint _first;
    }

    [InlineArray(BatchChunk)]
    private struct L3Chunk
    {
        private L3Info _first;
    }

    // Never inlined into the caller's loop: this loop is tiered and profiled on its own (see BurstScratch).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int Burst(ReadOnlySpan<byte> buffer, ReadOnlySpan<PacketSegment> packets, long timestamp,
        Span<PacketState> states, Span<Verdict> verdicts, ushort zone, bool confirm, ref BurstScratch scratch)
    {
        Span<ConntrackTuple> tuples = scratch.Tuples;
        Span<uint> hashes = scratch.Hashes;
        Span<L3Info> l3s = scratch.Headers;
        Span<uint> cursors = scratch.Cursors;
        Span<uint> phases = scratch.Phases;
        Span<uint> walking = scratch.Walking;
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
            for (int start = 0; start < packets.Length; start += BatchChunk)
            {
                int n = Math.Min(BatchChunk, packets.Length - start);

                // 1. Parse, hash, prefetch the bucket heads. A hash of 0 marks a packet for the full path (a
                // tuple that really hashes to 0 just takes that path too).
                for (int j = 0; j < n; j++)
                {
                    var seg = packets[start + j];
                    ReadOnlySpan<byte> pkt = buffer.Slice(seg.Offset, seg.Length);
                    hashes[j] = 0;
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

                    uint hash = Hasher.Hash(in tuples[j], zone);
                    hashes[j] = hash;
                    Prefetch(ref Buckets[BucketOf(hash)]);
                }

                // 2. The bucket heads are (nearly) in cache: walk every packet's chain a node per round, all
                // chains together, so that each round's misses overlap (see WalkChains). A table small enough to
                // stay in a core's caches has no misses to overlap: there only the heads are taken.
                WalkChains(tuples, hashes, cursors, phases, walking, n, zone,
                    walk: Volatile.Read(ref _hashedCount) >= BurstWalkMinEntries);

                // 3. Resolve in order (and with TrackBatch confirm, so later packets find what this one created).
                for (int j = 0; j < n; j++)
                {
                    int i = start + j;
                    var seg = packets[i];
                    ReadOnlySpan<byte> pkt = buffer.Slice(seg.Offset, seg.Length);
                    ref PacketState state = ref states[i];
                    Verdict v;
                    if (hashes[j] == 0)
                    {
                        v = InCore(pkt, 0, timestamp, ref state, zone, ctx);
                    }
                    else
                    {
                        ref L3Info l3 = ref l3s[j];
                        state.Length = l3.Length;
                        state.Protocol = l3.Protocol;
                        state.Layer4Offset = l3.L4Offset;
                        if (l3.IsIpv6)
                        {
                            state.Flags |= PacketState.StateFlags.Ipv6;
                        }

                        // Field by field: an initializer zeroes a temporary and copies it whole, and that copy
                        // reads across the smaller stores just made into it (a store-forwarding stall).
                        Unsafe.SkipInit(out PacketContext p);
                        p.Packet = pkt[..l3.Length];
                        p.L3 = l3;
                        p.Now = timestamp;
                        p.Ctx = ctx;
                        p.Index = -1;
                        p.Direction = 0;
                        p.Info = default;
                        p.Reason = PacketReason.None;
                        v = TrackTuple(ref p, ref state, zone, hasTuple: true, in tuples[j], hashes[j],
                            phases[j] >= WalkFound ? (int)cursors[j] : -1);
                    }

                    if (confirm && v == Verdict.Accept)
                    {
                        v = Confirm(pkt, timestamp, ref state);
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
    /// From how many connections on the burst path walks the chains ahead (<see cref="WalkChains"/>). Below it the
    /// entries (about 190 bytes each) fit in one core's level-2 cache, the lookups hit it, and the walk costs more
    /// than it saves: about 3.5 ns per packet on one flow, nothing measurable either way in short runs at 1 000 and
    /// 4 000 flows. Below it the bucket heads are still read ahead, in one loop, as hints (see <see cref="WalkChains"/>).
    /// Settable for tests, which run the burst path both ways.
    /// </summary>
    internal int BurstWalkMinEntries { get; set; } = 2048;

    /// <summary>How far a chain walk of the burst path goes: enough for a lookup and a confirmation's second chain.</summary>
    private const int BurstWalkRounds = 8;

    // What a packet's chain walk is doing (WalkChains).
    // WalkHead (no walk on a small table): the bucket's head node, not compared yet; resolution checks it as a hint.
    private const uint WalkLookup = 0, WalkReplyHead = 1, WalkReply = 2, WalkDone = 3, WalkFound = 4, WalkHead = 5;

    /// <summary>
    /// Brings into cache what resolving each packet of a chunk will read. Every packet's chain is walked one
    /// node per round, all chains in the same round, so that the misses of a round overlap rather than follow
    /// one another as they would in <see cref="Find"/>. A packet whose tuple is found gets the rest of its
    /// entry and its protocol state fetched. One whose chain ends without it is probably new: its reply tuple's
    /// chain is walked too, which confirmation reads under the lock to check for a clash. The walk reads
    /// without locks and only prefetches; whatever it gets wrong, resolution reads again.
    /// Without <paramref name="walk"/> (a small table) only each bucket's head node is taken, in one loop of
    /// independent loads, as a hint that resolution checks: <see cref="Find"/> would otherwise begin with a chain of
    /// dependent loads (bucket, node, entry, tuple) that nothing overlaps.
    /// </summary>
    private void WalkChains(Span<ConntrackTuple> tuples, Span<uint> hashes, Span<uint> cursors, Span<uint> phases, Span<uint> walking,
        int n, ushort zone, bool walk)
    {
        int count = 0;
        for (int j = 0; j < n; j++)
        {
            phases[j] = WalkDone;
            if (hashes[j] != 0)
            {
                int head = Volatile.Read(ref Buckets[BucketOf(hashes[j])]);
                cursors[j] = (uint)head;
                if (!walk)
                {
                    if (head >= 0)
                    {
                        phases[j] = WalkHead;
                    }

                    continue;
                }

                phases[j] = WalkLookup;
                if (head >= 0)
                {
                    // Only the half with the node's tuple: the rest of the entry is fetched once the tuple is seen to
                    // match, since a packet of a new flow (or one further down the chain) would not use it.
                    Entries.PrefetchNode(head);
                }

                walking[count++] = (uint)j;
            }
        }

        // Each round looks at the node the previous round fetched and fetches the next, over the packets still walking.
        for (int round = 0; round < BurstWalkRounds && count > 0; round++)
        {
            int kept = 0;
            for (int k = 0; k < count; k++)
            {
                int j = (int)walking[k];
                if (WalkStep(j, tuples, cursors, phases, zone))
                {
                    walking[kept++] = (uint)j;
                }
            }

            count = kept;
        }
    }

    /// <summary>One packet's step of <see cref="WalkChains"/>; true while it has more to walk.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool WalkStep(int j, Span<ConntrackTuple> tuples, Span<uint> cursors, Span<uint> phases, ushort zone)
    {
        uint phase = phases[j];
        int node = (int)cursors[j];
        if (phase == WalkLookup)
        {
            if (node >= 0)
            {
                if (ConntrackTuple.Equals(in TupleOf(node), in tuples[j]))
                {
                    // Found (resolution starts from this node): the entry's other half and its protocol state.
                    phases[j] = WalkFound;
                    PrefetchRest(node, tuples[j].ProtocolField);
                    return false;
                }

                node = Volatile.Read(ref LinkOf(node));
            }

            if (node < 0)
            {
                // Not in the table: fetch the reply tuple's bucket for the confirmation.
                if (!L4Dispatch.TryInvert(this, in tuples[j], out ConntrackTuple reply))
                {
                    phases[j] = WalkDone;
                    return false;
                }

                node = BucketOf(Hasher.Hash(in reply, zone));
                Prefetch(ref Buckets[node]);
                cursors[j] = (uint)node;
                phases[j] = WalkReplyHead;
                return true;
            }
        }
        else
        {
            node = phase == WalkReplyHead ? Volatile.Read(ref Buckets[node]) : Volatile.Read(ref LinkOf(node));
            phases[j] = WalkReply;
            if (node < 0)
            {
                phases[j] = WalkDone;
                return false;
            }
        }

        Entries.PrefetchNode(node);
        cursors[j] = (uint)node;
        return true;
    }

    /// <summary>
    /// What resolving a node found by the walk reads beyond the node's own half: the entry's other half and, for
    /// trackers that keep one, its protocol state.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void PrefetchRest(int node, byte protocol)
    {
        int idx = node >> 1;
        Entries.PrefetchNode(node ^ 1);
        if (protocol is IpProtocol.Tcp or IpProtocol.Sctp)
        {
            ref byte state = ref Unsafe.As<ProtocolState, byte>(ref Proto[idx]);
            Prefetch(ref state);
            Prefetch(ref state, Unsafe.SizeOf<ProtocolState>() - 1);
        }
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
