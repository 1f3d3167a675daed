using System.Runtime.CompilerServices;
using Conntrack.Defrag;
using Conntrack.Packets;
using Conntrack.Protocols;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack;

// The way in: nf_conntrack_in() at PREROUTING.
public sealed partial class ConntrackTable
{
    /// <summary>
    /// Tracks a packet on its way in (<c>nf_conntrack_in</c>): validates the IP header as the kernel's IP
    /// input does, finds or creates the packet's connection, runs the protocol's state machine and fills
    /// <paramref name="state"/> with the connection and its <see cref="ConntrackInfo"/>. A new connection
    /// stays invisible to other packets until <see cref="Confirm"/>. Never throws for any packet content.
    /// </summary>
    /// <param name="packet">The packet from its IPv4 or IPv6 header on (link-layer padding may follow).</param>
    /// <param name="timestamp">Monotonic nanoseconds on the caller's clock.</param>
    /// <param name="state">Receives the result; pass the same variable to <see cref="Confirm"/>.</param>
    /// <param name="zone">Conntrack zone: identical tuples in different zones are different connections.</param>
    /// <returns>
    /// <see cref="Verdict.Accept"/> (invalid packets included: policy is yours), or <see cref="Verdict.Drop"/>
    /// when the kernel would have dropped the packet (IP input errors, table full).
    /// </returns>
    public Verdict In(ReadOnlySpan<byte> packet, long timestamp, ref PacketState state, ushort zone = 0) =>
        In(packet, IpVersion.Auto, timestamp, ref state, zone);

    /// <summary>
    /// <see cref="In(ReadOnlySpan{byte}, long, ref PacketState, ushort)"/> for a packet whose IP version the
    /// link layer stated (an EtherType): a header of the other version is then dropped, as <c>ip_rcv</c>
    /// would drop it.
    /// </summary>
    public Verdict In(ReadOnlySpan<byte> packet, IpVersion version, long timestamp, ref PacketState state, ushort zone = 0)
    {
        if ((state.Flags & PacketState.StateFlags.Unconfirmed) != 0)
        {
            // The caller reuses the state of a packet it never confirmed: that packet was dropped.
            Release(ref state);
        }

        state.Reset();
        var ctx = Enter();
        try
        {
            return InCore(packet, (int)version, timestamp, ref state, zone, ctx);
        }
        finally
        {
            Exit(ctx);
        }
    }

    private Verdict InCore(ReadOnlySpan<byte> packet, int version, long now, ref PacketState state, ushort zone, ThreadContext ctx)
    {
        PacketReason reason = IpHeaders.CheckInput(packet, version, out L3Info l3);
        if (reason != PacketReason.None)
        {
            ctx.Stats.IpInputDrop++;
            state.Reason = reason;
            return Verdict.Drop;
        }

        packet = packet[..l3.Length];
        // IPv6 atomic fragments go through reassembly too: the kernel queues them like any fragment.
        if ((l3.IsFragment || l3.Ipv6FragmentHeaderOffset >= 0) && Defragmenter is { } defrag)
        {
            // nf_defrag_ipv4/ipv6 run before conntrack (PREROUTING priority -400): fragments are held and the
            // datagram they complete is tracked as one packet, on the fragment that completed it.
            ctx.ReassemblyBuffer ??= new byte[Defragmenter.MaxDatagram];
            switch (defrag.Gather(packet, in l3, zone, now, ctx.ReassemblyBuffer, out int length))
            {
                case DefragResult.Held:
                    state.Reason = PacketReason.FragmentHeld;
                    return Verdict.Stolen;
                case DefragResult.Dropped:
                    ctx.Stats.IpInputDrop++;
                    state.Reason = PacketReason.FragmentDropped;
                    return Verdict.Drop;
                case DefragResult.Complete:
                    packet = ctx.ReassemblyBuffer.AsSpan(0, length);
                    state.Flags |= PacketState.StateFlags.Reassembled;
                    reason = IpHeaders.CheckInput(packet, version, out l3);
                    if (reason != PacketReason.None)
                    {
                        ctx.Stats.IpInputDrop++;
                        state.Reason = reason;
                        return Verdict.Drop;
                    }

                    packet = packet[..l3.Length];
                    break;
            }
        }

        state.Length = l3.Length;
        if (l3.IsIpv6)
        {
            state.Flags |= PacketState.StateFlags.Ipv6;
        }

        var p = new PacketContext
        {
            Packet = packet,
            L3 = l3,
            Now = now,
            Ctx = ctx,
            Index = -1,
        };
        return Track(ref p, ref state, zone);
    }

    /// <summary>The conntrack part proper, after IP input (and, when enabled, reassembly).</summary>
    private Verdict Track(ref PacketContext p, ref PacketState state, ushort zone)
    {
        ThreadContext ctx = p.Ctx;
        if (p.L3.L4Offset <= 0)
        {
            // get_l4proto() failed: a non-first fragment or no locatable layer-4 header.
            ctx.Stats.Invalid++;
            state.Reason = p.L3.IsFragment ? PacketReason.Fragment : PacketReason.NoLayer4;
            return Verdict.Accept;
        }

        byte protocol = p.L3.Protocol;
        bool ipv6 = p.L3.IsIpv6;
        state.Protocol = protocol;
        state.Layer4Offset = p.L3.L4Offset;

        if ((protocol == IpProtocol.Icmp && !ipv6) || (protocol == IpProtocol.Icmpv6 && ipv6))
        {
            IcmpErrorResult r = ipv6
                ? IcmpErrors.HandleV6(this, ref p, zone, out int node)
                : IcmpErrors.HandleV4(this, ref p, zone, out node);
            switch (r)
            {
                case IcmpErrorResult.Invalid:
                    ctx.Stats.Error++;
                    state.Reason = p.Reason;
                    return Verdict.Accept;
                case IcmpErrorResult.Untracked:
                    ctx.Stats.Untracked++;
                    state.Info = ConntrackInfo.Untracked;
                    state.Reason = p.Reason;
                    return Verdict.Accept;
                case IcmpErrorResult.Related:
                    ctx.Stats.RelatedIcmpErrors++;
                    state.Connection = new ConnectionHandle(node >> 1, Entries[node >> 1].Generation);
                    state.Info = (node & 1) == 0 ? ConntrackInfo.Related : ConntrackInfo.RelatedReply;
                    return Verdict.Accept;
            }
        }

        return TrackTuple(ref p, ref state, zone, hasTuple: false, default, 0, -1);
    }

    /// <summary>
    /// resolve_normal_ct() and the protocol's packet function. The batch path passes the tuple and hash it
    /// computed ahead (<paramref name="hasTuple"/>) and a node to try first (<paramref name="hint"/>: what its
    /// chain walk found or, on a small table, the head of the tuple's bucket; -1 for none), which
    /// <see cref="FindFrom"/> checks; a TCP reopen (Repeat) recomputes them.
    /// </summary>
    [SkipLocalsInit] // the tuple this path builds for itself is written before it is read
    private Verdict TrackTuple(ref PacketContext p, ref PacketState state, ushort zone, bool hasTuple, in ConntrackTuple precomputed,
        uint precomputedHash, int hint)
    {
        ThreadContext ctx = p.Ctx;
        // The burst path's tuple is used where it lies (no 40-byte copy); this path builds its own.
        scoped ref readonly ConntrackTuple tuple = ref precomputed;
        Unsafe.SkipInit(out ConntrackTuple built);
        uint hash = precomputedHash;
    repeat:
        if (!hasTuple)
        {
            if (!L4Dispatch.TryBuildTuple(this, p.Packet, 0, p.L3.IsIpv6, p.L3.Protocol, p.L3.L4Offset, out built))
            {
                ctx.Stats.Invalid++;
                state.Reason = PacketReason.Layer4Truncated;
                return Verdict.Accept;
            }

            tuple = ref built;
            hash = Hasher.Hash(in tuple, zone);
        }

        int found = hint >= 0 ? FindFrom(hint, in tuple, zone, hash, p.Now, ctx) : Find(in tuple, zone, hash, p.Now, ctx);
        bool created = false;
        if (found < 0)
        {
            found = CreateEntry(in tuple, hash, zone, ref p, ref state);
            if (found < 0)
            {
                return state.Reason == PacketReason.TableFull ? Verdict.Drop : Verdict.Accept;
            }

            created = true;
        }

        int idx = found >> 1;
        int direction = found & 1;
        ref Connection c = ref Entries[idx];
        p.Index = idx;
        p.Direction = direction;
        ConntrackInfo info;
        if (direction == 1)
        {
            info = ConntrackInfo.EstablishedReply;
        }
        else
        {
            // "Once we've had two way comms, always ESTABLISHED."
            uint status = Volatile.Read(ref c.Status);
            info = (status & (uint)ConnectionStatus.SeenReply) != 0 ? ConntrackInfo.Established
                : (status & (uint)ConnectionStatus.Expected) != 0 ? ConntrackInfo.Related
                : ConntrackInfo.New;
        }

        p.Info = info;
        TrackResult tr = L4Dispatch.Packet(this, ref p, ref c);
        if (tr != TrackResult.Accept)
        {
            if (created)
            {
                ReleaseUnconfirmed(idx);
            }

            if (tr == TrackResult.Repeat)
            {
                // The tracker killed the old connection (a TCP reopen): look again and create a fresh one.
                p.Reason = PacketReason.None;
                hasTuple = false;
                hint = -1;
                goto repeat;
            }

            ctx.Stats.Invalid++;
            state.Reason = p.Reason;
            if (tr == TrackResult.Drop)
            {
                ctx.Stats.Drop++;
                return Verdict.Drop;
            }

            return Verdict.Accept;
        }

        if (info == ConntrackInfo.EstablishedReply && c.TrySet(ConnectionStatus.SeenReply))
        {
            CacheEvent(idx, Events.ConntrackEventType.Reply);
        }

        state.Connection = new ConnectionHandle(idx, c.Generation);
        state.Info = info;
        if (p.Reason == PacketReason.TcpIgnored)
        {
            // A segment the TCP tracker ignores keeps its connection (the kernel returns NF_ACCEPT); say so.
            state.Reason = PacketReason.TcpIgnored;
        }

        if (created && info == ConntrackInfo.New && (Settings.AutomaticHelpers || Helpers.HasRules))
        {
            ApplyHelperRules(idx, ref c);
        }

        if (created)
        {
            state.OriginalHash = hash;
            state.Flags |= PacketState.StateFlags.Unconfirmed;
        }

        return Verdict.Accept;
    }

    /// <summary>
    /// init_conntrack(): the reply tuple by inversion (ICMP replies and errors have none, so they cannot
    /// start a connection), a slot counted against the limit, and the entry on this thread's unconfirmed
    /// list. Returns the original node, or -1 with <paramref name="state"/>'s reason set.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int CreateEntry(in ConntrackTuple tuple, uint hash, ushort zone, ref PacketContext p, ref PacketState state)
    {
        if (!L4Dispatch.TryInvert(this, in tuple, out ConntrackTuple reply))
        {
            p.Ctx.Stats.Invalid++;
            state.Reason = PacketReason.CannotCreate;
            return -1;
        }

        int idx = AllocateEntry(hash, p.Now, p.Ctx);
        if (idx < 0)
        {
            p.Ctx.Stats.Drop++;
            state.Reason = PacketReason.TableFull;
            return -1;
        }

        InitEntry(idx, in tuple, in reply, zone, p.Ctx);
        if (HasExpectations)
        {
            MatchExpectation(idx, in tuple, zone, p.Now, p.Ctx);
        }

        return idx << 1;
    }
}
