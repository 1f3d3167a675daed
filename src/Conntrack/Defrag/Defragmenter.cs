using System.Buffers.Binary;
using Conntrack.Packets;

namespace Conntrack.Defrag;

/// <summary>What reassembly did with a packet.</summary>
internal enum DefragResult : byte
{
    /// <summary>Not a fragment (or an atomic IPv6 fragment): track the packet as it is.</summary>
    NotFragment,
    /// <summary>Kept until its datagram is complete (NF_STOLEN).</summary>
    Held,
    /// <summary>The datagram is complete: the output buffer holds it.</summary>
    Complete,
    /// <summary>Dropped: malformed, overlapping, oversized, or over the memory limit (NF_DROP).</summary>
    Dropped,
}

/// <summary>
/// IPv4 and IPv6 reassembly in front of conntrack, as the kernel's nf_defrag_ipv4 (ip_defrag) and
/// nf_defrag_ipv6 (nf_ct_frag6_gather) do it.
/// </summary>
/// <remarks>
/// <para>
/// IPv4 follows <c>ip_defrag</c>/<c>ip_frag_queue</c>/<c>ip_frag_reasm</c>, IPv6 <c>nf_ct_frag6_gather</c>/
/// <c>nf_ct_frag6_queue</c>/<c>nf_ct_frag6_reasm</c>, both over the shared <c>inet_frag_queue_insert</c>
/// (see <see cref="FragmentQueues"/>). Each family has its own table, memory counter, thresholds and
/// timeout, as the kernel's two <c>fqdir</c>s do. The low thresholds have no effect: the kernel no longer
/// evicts queues (low_thresh is only a bound for the sysctl), it refuses every fragment, even of existing
/// queues, while the memory is above the high threshold, until timeouts or completions bring it down.
/// </para>
/// <para>
/// Results: <see cref="DefragResult.Held"/> for a fragment the kernel queued (and for what
/// <c>nf_ct_frag6_gather</c> reports as queued: IPv6 duplicates and IPv6 datagrams that failed on
/// completion); <see cref="DefragResult.Dropped"/> for a fragment the kernel freed (for IPv4 the hook still
/// returns NF_STOLEN, but <c>ip_defrag</c> failed and the packet is gone; for IPv6 NF_DROP);
/// <see cref="DefragResult.NotFragment"/> where <c>nf_ct_frag6_gather</c> returns 0 without reassembling
/// (no fragment header it can find, a jumbogram, a first fragment without its upper-layer header, a
/// non-last fragment whose length is not a multiple of 8), so conntrack sees the fragment itself.
/// </para>
/// <para>One lock covers both families: fragments are rare, and a packet's work under it is short.</para>
/// </remarks>
internal sealed class Defragmenter
{
    private const int Ipv4MoreFragments = 0x2000;
    private const int Ipv4DontFragment = 0x4000;
    private const int Ipv4OffsetMask = 0x1FFF;
    private const int Ipv6MaxPayload = 65535;

    // ip_frag_ecn_table (RFC 3168 5.3), indexed by the OR of 1 << ecn over the fragments: the value to OR
    // into the reassembled header's ECN bits, or 0xFF to drop. Bits: 1 not-ECT, 2 ECT(1), 4 ECT(0), 8 CE.
    private static ReadOnlySpan<byte> EcnTable =>
    [
        0, 0, 0, 0xFF, 0, 0xFF, 0, 0xFF,
        0, 0xFF, 3, 0xFF, 3, 0xFF, 3, 0xFF,
    ];

    private readonly Lock _lock = new();
    private readonly FragmentQueues _v4;
    private readonly FragmentQueues _v6;
    private readonly InetPeers? _peers;
    private readonly uint _maxDistance;

    public Defragmenter(ConntrackOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _maxDistance = (uint)Math.Max(0, options.Ipv4FragmentMaxDistance);
        _peers = _maxDistance != 0 ? new InetPeers() : null;
        _v4 = new FragmentQueues(options.Ipv4FragmentHighThreshold, options.Ipv4FragmentTimeout, FragmentMemory.Ipv4QueueSize, _peers);
        _v6 = new FragmentQueues(options.Ipv6FragmentHighThreshold, options.Ipv6FragmentTimeout, FragmentMemory.Ipv6QueueSize, null);
    }

    /// <summary>Largest datagram <see cref="Gather"/> writes to its output.</summary>
    public const int MaxDatagram = 65535 + 40;

    /// <summary>
    /// Offers a packet that passed IP input checks. <paramref name="output"/> must hold
    /// <see cref="MaxDatagram"/> bytes; on <see cref="DefragResult.Complete"/> the first
    /// <paramref name="length"/> bytes are the reassembled datagram (a valid IP packet with its header
    /// checksum and length fields set and, for IPv6, the fragment header removed).
    /// </summary>
    public DefragResult Gather(ReadOnlySpan<byte> packet, in L3Info l3, ushort zone, long now, Span<byte> output, out int length)
    {
        length = 0;
        bool ipv6 = l3.IsIpv6;
        lock (_lock)
        {
            return ipv6 ? GatherV6(packet, zone, now, output, ref length) : GatherV4(packet, zone, now, output, ref length);
        }
    }

    /// <summary>Drops incomplete datagrams held past their timeout; returns how many.</summary>
    public int Expire(long now)
    {
        lock (_lock)
        {
            return _v4.ExpireDue(now) + _v6.ExpireDue(now);
        }
    }

    /// <summary>Bytes currently held.</summary>
    public long MemoryInUse
    {
        get
        {
            lock (_lock)
            {
                return _v4.Memory + _v6.Memory;
            }
        }
    }

    /// <summary>The kernel's memory count for IPv4 fragments (<c>fqdir->mem</c>, "FRAG: memory" in /proc/net/sockstat).</summary>
    internal long Ipv4Memory
    {
        get
        {
            lock (_lock)
            {
                return _v4.Memory;
            }
        }
    }

    /// <summary>The kernel's memory count for IPv6 fragments.</summary>
    internal long Ipv6Memory
    {
        get
        {
            lock (_lock)
            {
                return _v6.Memory;
            }
        }
    }

    /// <summary>Incomplete datagrams held (both families).</summary>
    internal int QueueCount
    {
        get
        {
            lock (_lock)
            {
                return _v4.Count + _v6.Count;
            }
        }
    }

    /// <summary>Bytes of data blocks holding fragments (both families); never more than <see cref="MemoryInUse"/>.</summary>
    internal long StoredBytes
    {
        get
        {
            lock (_lock)
            {
                return _v4.StoredBytes + _v6.StoredBytes;
            }
        }
    }

    // ip_defrag() -> ip_find() -> ip_frag_queue() -> ip_frag_reasm().
    private DefragResult GatherV4(ReadOnlySpan<byte> p, ushort zone, long now, Span<byte> output, ref int length)
    {
        if (p.Length < 20)
        {
            return DefragResult.Dropped;
        }

        int ihl = (p[0] & 0x0F) << 2;
        if (ihl < 20 || ihl > p.Length)
        {
            return DefragResult.Dropped;
        }

        int fragField = BinaryPrimitives.ReadUInt16BigEndian(p[6..]);
        if ((fragField & (Ipv4MoreFragments | Ipv4OffsetMask)) == 0)
        {
            return DefragResult.NotFragment;
        }

        uint source = BinaryPrimitives.ReadUInt32BigEndian(p[12..]);
        var key = new FragmentKey
        {
            SourceLow = source,
            DestinationLow = BinaryPrimitives.ReadUInt32BigEndian(p[16..]),
            Id = BinaryPrimitives.ReadUInt16BigEndian(p[4..]),
            Protocol = p[9],
            Zone = zone,
        };

        FragmentQueues d = _v4;
        d.ExpireDue(now);
        int q = d.Find(in key, source, now);
        if (q < 0)
        {
            return DefragResult.Dropped;
        }

        ref FragmentQueues.Queue queue = ref d[q];

        // ip_frag_too_far(): more than ipfrag_max_dist fragments from this source since this queue's last
        // one restarts the queue (ip_frag_reinit: fragments flushed, state cleared, timer re-armed).
        if (queue.Peer >= 0 && _peers is not null)
        {
            uint start = queue.Rid;
            uint end = _peers.NextRid(queue.Peer);
            queue.Rid = end;
            if (queue.Tail >= 0 && end - start > _maxDistance)
            {
                d.Flush(q);
                queue.Flags = 0;
                queue.Len = 0;
                queue.Meat = 0;
                queue.Ecn = 0;
                d.Rearm(q, now);
            }
        }

        byte ecn = (byte)(1 << (p[1] & 3));
        int offset = (fragField & Ipv4OffsetMask) << 3;
        int dataEnd = offset + p.Length - ihl;
        int fragEnd = dataEnd;
        if ((fragField & Ipv4MoreFragments) == 0)
        {
            // The last fragment: nothing may lie beyond it, and a second last fragment must agree.
            if (fragEnd < queue.Len || ((queue.Flags & FragmentQueues.LastIn) != 0 && fragEnd != queue.Len))
            {
                return Discard(d, q);
            }

            queue.Flags |= FragmentQueues.LastIn;
            queue.Len = fragEnd;
        }
        else
        {
            // Other fragments carry a multiple of 8 bytes: the rest is trimmed off.
            fragEnd &= ~7;
            if (fragEnd > queue.Len)
            {
                if ((queue.Flags & FragmentQueues.LastIn) != 0)
                {
                    return Discard(d, q);
                }

                queue.Len = fragEnd;
            }
        }

        if (fragEnd == offset)
        {
            return Discard(d, q);
        }

        int dataLength = fragEnd - offset;
        ReadOnlySpan<byte> header = offset == 0 ? p[..ihl] : default;
        switch (d.Insert(q, offset, fragEnd, header, p.Slice(ihl, dataLength), FragmentMemory.Truesize(p.Length)))
        {
            case InsertResult.Duplicate:
                // Only the duplicate goes; the queue keeps what it had.
                return DefragResult.Dropped;
            case InsertResult.Overlap:
            case InsertResult.NoMemory:
                return Discard(d, q);
        }

        queue = ref d[q];
        queue.Meat += dataLength;
        queue.Ecn |= ecn;
        if (offset == 0)
        {
            queue.Flags |= FragmentQueues.FirstIn;
        }

        int fragSize = dataLength + ihl;
        if (fragSize > queue.MaxSize)
        {
            queue.MaxSize = (ushort)fragSize;
        }

        if ((fragField & Ipv4DontFragment) != 0 && fragSize > queue.MaxDfSize)
        {
            queue.MaxDfSize = (ushort)fragSize;
        }

        if (queue.Flags != (FragmentQueues.FirstIn | FragmentQueues.LastIn) || queue.Meat != queue.Len)
        {
            return DefragResult.Held;
        }

        return ReassembleV4(d, q, output, ref length);
    }

    // ip_frag_reasm(): the first fragment's header (options included) in front of the data, total length
    // set, CE folded in, DF kept only if the largest fragment had it, checksum recomputed.
    private static DefragResult ReassembleV4(FragmentQueues d, int q, Span<byte> output, ref int length)
    {
        ref FragmentQueues.Queue queue = ref d[q];
        byte ecn = EcnTable[queue.Ecn & 0x0F];
        int ihl = d.HeadHeaderLength(q);
        int total = ihl + queue.Len;
        if (ecn == 0xFF || ihl < 20 || total > 65535 || total > output.Length)
        {
            d.Kill(q);
            return DefragResult.Dropped;
        }

        d.ReadHeadHeader(q, output[..ihl]);
        if (!d.ReadData(q, output[ihl..total]))
        {
            d.Kill(q);
            return DefragResult.Dropped;
        }

        output[1] |= ecn;
        BinaryPrimitives.WriteUInt16BigEndian(output[2..], (ushort)total);
        BinaryPrimitives.WriteUInt16BigEndian(output[6..], (ushort)(queue.MaxDfSize == queue.MaxSize ? Ipv4DontFragment : 0));
        output[10] = 0;
        output[11] = 0;
        ushort checksum = (ushort)~InternetChecksum.Fold(InternetChecksum.Add(0, output[..ihl]));
        BinaryPrimitives.WriteUInt16BigEndian(output[10..], checksum);
        d.Kill(q);
        length = total;
        return DefragResult.Complete;
    }

    // ip_frag_queue's discard_qp: the whole datagram goes, and the fragment with it.
    private static DefragResult Discard(FragmentQueues d, int q)
    {
        d.Kill(q);
        return DefragResult.Dropped;
    }

    // nf_ct_frag6_gather() -> find_prev_fhdr(), ipv6frag_thdr_truncated(), fq_find(), nf_ct_frag6_queue().
    private DefragResult GatherV6(ReadOnlySpan<byte> p, ushort zone, long now, Span<byte> output, ref int length)
    {
        if (p.Length < 40)
        {
            return DefragResult.Dropped;
        }

        // Jumbo payload inhibits the fragment header.
        int payloadLength = BinaryPrimitives.ReadUInt16BigEndian(p[4..]);
        if (payloadLength == 0)
        {
            return DefragResult.NotFragment;
        }

        if (40 + payloadLength > p.Length)
        {
            return DefragResult.Dropped;
        }

        p = p[..(40 + payloadLength)];

        if (!FindPreviousFragmentHeader(p, out int nhOffset, out int fhOffset))
        {
            return DefragResult.NotFragment;
        }

        // RFC 8200 4.5: a first fragment without all headers through the upper-layer header is not
        // reassembled; conntrack gets it as it is (the IPv6 input path drops it later).
        if (UpperLayerHeaderTruncated(p, fhOffset))
        {
            return DefragResult.NotFragment;
        }

        if (fhOffset + 8 > p.Length)
        {
            return DefragResult.Dropped;
        }

        var key = new FragmentKey
        {
            SourceHigh = BinaryPrimitives.ReadUInt64BigEndian(p[8..]),
            SourceLow = BinaryPrimitives.ReadUInt64BigEndian(p[16..]),
            DestinationHigh = BinaryPrimitives.ReadUInt64BigEndian(p[24..]),
            DestinationLow = BinaryPrimitives.ReadUInt64BigEndian(p[32..]),
            Id = BinaryPrimitives.ReadUInt32BigEndian(p[(fhOffset + 4)..]),
            Zone = zone,
        };

        FragmentQueues d = _v6;
        d.ExpireDue(now);
        int q = d.Find(in key, 0, now);
        if (q < 0)
        {
            return DefragResult.Dropped;
        }

        ref FragmentQueues.Queue queue = ref d[q];
        int fragField = BinaryPrimitives.ReadUInt16BigEndian(p[(fhOffset + 2)..]);
        int offset = fragField & 0xFFF8;
        int end = offset + (payloadLength - (fhOffset + 8 - 40));
        if ((uint)end > Ipv6MaxPayload)
        {
            return DefragResult.Dropped;
        }

        int dsfield = (BinaryPrimitives.ReadUInt16BigEndian(p) >> 4) & 0xFF;
        byte ecn = (byte)(1 << (dsfield & 3));
        if ((fragField & 1) == 0)
        {
            // The last fragment. Unlike IPv4, a contradiction drops only this fragment.
            if (end < queue.Len || ((queue.Flags & FragmentQueues.LastIn) != 0 && end != queue.Len))
            {
                return DefragResult.Dropped;
            }

            queue.Flags |= FragmentQueues.LastIn;
            queue.Len = end;
        }
        else
        {
            if ((end & 7) != 0)
            {
                // RFC 8200 wants a parameter problem: the queue is killed and the fragment goes on to
                // conntrack untouched (-EPROTO, which nf_ct_frag6_gather turns into NF_ACCEPT).
                d.Kill(q);
                return DefragResult.NotFragment;
            }

            if (end > queue.Len)
            {
                if ((queue.Flags & FragmentQueues.LastIn) != 0)
                {
                    return DefragResult.Dropped;
                }

                queue.Len = end;
            }
        }

        if (end == offset)
        {
            return DefragResult.Dropped;
        }

        // The first fragment keeps its unfragmentable part and the fragment header's next-header byte.
        ReadOnlySpan<byte> header = offset == 0 ? p[..(fhOffset + 1)] : default;
        switch (d.Insert(q, offset, end, header, p.Slice(fhOffset + 8, end - offset), FragmentMemory.Truesize(p.Length)))
        {
            case InsertResult.Duplicate:
                // "No error for duplicates, pretend they got queued."
                return DefragResult.Held;
            case InsertResult.Overlap:
            case InsertResult.NoMemory:
                d.Kill(q);
                return DefragResult.Dropped;
        }

        queue = ref d[q];
        queue.Meat += end - offset;
        queue.Ecn |= ecn;
        if (payloadLength > queue.MaxSize)
        {
            queue.MaxSize = (ushort)payloadLength;
        }

        if (offset == 0)
        {
            queue.NhOffset = (ushort)nhOffset;
            queue.Flags |= FragmentQueues.FirstIn;
        }

        if (queue.Flags != (FragmentQueues.FirstIn | FragmentQueues.LastIn) || queue.Meat != queue.Len)
        {
            return DefragResult.Held;
        }

        return ReassembleV6(d, q, output, ref length);
    }

    // nf_ct_frag6_reasm(): the first fragment's unfragmentable part, its previous header's next-header set
    // to what followed the fragment header, the fragment header removed, payload length set, CE folded into
    // the traffic class. A failure here still reports the fragment as queued (-EINPROGRESS).
    private static DefragResult ReassembleV6(FragmentQueues d, int q, Span<byte> output, ref int length)
    {
        ref FragmentQueues.Queue queue = ref d[q];
        byte ecn = EcnTable[queue.Ecn & 0x0F];
        int fhOffset = d.HeadHeaderLength(q) - 1;
        int payload = fhOffset - 40 + queue.Len;
        int total = fhOffset + queue.Len;
        int nhOffset = queue.NhOffset;
        if (ecn == 0xFF || fhOffset < 40 || payload > Ipv6MaxPayload || total > output.Length || nhOffset >= fhOffset)
        {
            d.Kill(q);
            return DefragResult.Held;
        }

        d.ReadHeadHeader(q, output[..(fhOffset + 1)]);
        byte next = output[fhOffset];
        if (!d.ReadData(q, output[fhOffset..total]))
        {
            d.Kill(q);
            return DefragResult.Held;
        }

        output[nhOffset] = next;
        BinaryPrimitives.WriteUInt16BigEndian(output[4..], (ushort)payload);
        output[1] |= (byte)(ecn << 4);
        d.Kill(q);
        length = total;
        return DefragResult.Complete;
    }

    /// <summary>
    /// find_prev_fhdr(): walks hop-by-hop, routing, destination-options and AH headers to the first fragment
    /// header. <paramref name="nhOffset"/> is where the next-header byte that names it is.
    /// </summary>
    private static bool FindPreviousFragmentHeader(ReadOnlySpan<byte> p, out int nhOffset, out int fhOffset)
    {
        byte next = p[6];
        nhOffset = 6;
        fhOffset = 0;
        int start = 40;
        int len = p.Length - 40;
        while (next != IpProtocol.Fragment)
        {
            if (!IsExtensionHeader(next) || next == IpProtocol.NoNextHeader)
            {
                return false;
            }

            if (len < 2)
            {
                return false;
            }

            int hdrlen = next == IpProtocol.Ah ? (p[start + 1] + 2) << 2 : (p[start + 1] + 1) << 3;
            nhOffset = start;
            next = p[start];
            len -= hdrlen;
            start += hdrlen;
        }

        if (len < 0)
        {
            return false;
        }

        fhOffset = start;
        return true;
    }

    /// <summary>
    /// ipv6frag_thdr_truncated() from the fragment header: for a first fragment, whether the packet ends
    /// before the upper-layer header does (TCP 20 bytes, UDP 8, ICMPv6 8, anything else 1). As
    /// ipv6_skip_exthdr() does, a later fragment header with a non-zero offset, no-next-header or a header
    /// cut short ends the walk with "not truncated".
    /// </summary>
    private static bool UpperLayerHeaderTruncated(ReadOnlySpan<byte> p, int start)
    {
        byte next = IpProtocol.Fragment;
        int fragField = 0;
        while (IsExtensionHeader(next))
        {
            if (next == IpProtocol.NoNextHeader || start > p.Length - 2)
            {
                return false;
            }

            int hdrlen;
            if (next == IpProtocol.Fragment)
            {
                if (start > p.Length - 4)
                {
                    return false;
                }

                fragField = BinaryPrimitives.ReadUInt16BigEndian(p[(start + 2)..]);
                if ((fragField & 0xFFF8) != 0)
                {
                    break;
                }

                hdrlen = 8;
            }
            else
            {
                hdrlen = next == IpProtocol.Ah ? (p[start + 1] + 2) << 2 : (p[start + 1] + 1) << 3;
            }

            next = p[start];
            start += hdrlen;
        }

        if ((fragField & 0xFFF8) != 0)
        {
            return false;
        }

        int need = next switch
        {
            IpProtocol.Tcp => 20,
            IpProtocol.Udp => 8,
            IpProtocol.Icmpv6 => 8,
            _ => 1,
        };
        return (long)start + need > p.Length;
    }

    // ipv6_ext_hdr(): hop-by-hop, routing, fragment, AH, no-next-header, destination options (not ESP).
    private static bool IsExtensionHeader(byte next) =>
        next is IpProtocol.HopByHop or IpProtocol.Routing or IpProtocol.Fragment or IpProtocol.Ah
            or IpProtocol.NoNextHeader or IpProtocol.DestinationOptions;
}
