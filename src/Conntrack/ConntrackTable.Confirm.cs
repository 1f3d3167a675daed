using System.Runtime.CompilerServices;
using Conntrack.Events;
using Conntrack.Protocols;
using Conntrack.Table;

namespace Conntrack;

// The way out: ipv4_confirm()/ipv6_confirm() (nf_confirm) and __nf_conntrack_confirm().
public sealed partial class ConntrackTable
{
    /// <summary>MIN_CHAINLEN and MAX_CHAINLEN: an insert is refused when its chain is longer than 50 + rand(30).</summary>
    private const int MinChainLength = 50;
    private const int MaxChainLengthRandom = 80 - MinChainLength;

    /// <summary>
    /// Confirms the packet's connection on its way out (<c>ipv4_confirm</c>/<c>ipv6_confirm</c>): a new
    /// connection enters the hash table under both tuples and its timeout starts. If another packet of the
    /// same new flow was confirmed first, the kernel's clash resolution applies: UDP-like protocols join the
    /// winner's entry, others are dropped. Nothing happens for packets of connections already confirmed.
    /// </summary>
    /// <returns><see cref="Verdict.Drop"/> when the entry could not be inserted (<see cref="PacketState.Reason"/> says why).</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Verdict Confirm(ReadOnlySpan<byte> packet, long timestamp, ref PacketState state)
    {
        // Most packets belong to confirmed connections of a table without helpers or events: nothing to do, and
        // no call (this check is inlined into the caller's packet loop).
        if ((state.Flags & PacketState.StateFlags.Unconfirmed) == 0 && _helperSlots is null && _ecache is null)
        {
            return Verdict.Accept;
        }

        return ConfirmSlow(packet, timestamp, ref state);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Verdict ConfirmSlow(ReadOnlySpan<byte> packet, long timestamp, ref PacketState state)
    {
        bool unconfirmed = (state.Flags & PacketState.StateFlags.Unconfirmed) != 0;
        // Helpers run on every packet of their connection except ICMP errors in the reply direction.
        bool helped = _helperSlots is not null && state.Info.HasConnection() && state.Info != ConntrackInfo.RelatedReply
            && (Volatile.Read(ref Entries[state.Connection.Index].Status) & (uint)ConnectionStatus.Helper) != 0;
        if (!unconfirmed && !helped)
        {
            if (_ecache is not null && state.Info.HasConnection() && HasCachedEvents(state.Connection.Index))
            {
                var c = Enter();
                try
                {
                    Protect(c, state.Connection.Index);
                    if (Volatile.Read(ref Entries[state.Connection.Index].Generation) == state.Connection.Generation)
                    {
                        DeliverCachedEvents(state.Connection.Index, timestamp);
                    }
                }
                finally
                {
                    Exit(c);
                }
            }

            return Verdict.Accept;
        }

        var ctx = Enter();
        try
        {
            // Hold the entry while the helper and the event delivery use it (RunHelper checks the generation).
            Protect(ctx, state.Connection.Index);
            if (helped && RunHelper(packet, timestamp, ref state) == Verdict.Drop)
            {
                // The packet dies at POSTROUTING: a new connection is never confirmed.
                Release(ref state);
                return Verdict.Drop;
            }

            if (!unconfirmed)
            {
                if (Volatile.Read(ref Entries[state.Connection.Index].Generation) == state.Connection.Generation)
                {
                    DeliverCachedEvents(state.Connection.Index, timestamp);
                }

                return Verdict.Accept;
            }

            state.Flags &= ~PacketState.StateFlags.Unconfirmed;
            Verdict v = ConfirmCore(timestamp, ref state, ctx);
            if (v == Verdict.Accept && _ecache is not null)
            {
                // After a clash merge the packet belongs to the winner: hold it before reading it.
                Protect(ctx, state.Connection.Index);
                if (Volatile.Read(ref Entries[state.Connection.Index].Generation) == state.Connection.Generation)
                {
                    DeliverCachedEvents(state.Connection.Index, timestamp);
                }
            }

            return v;
        }
        finally
        {
            Exit(ctx);
        }
    }

    /// <summary>
    /// Gives up the new connection of a packet that will not be forwarded (the caller dropped it between
    /// <c>In</c> and <c>Confirm</c>): the entry is freed, never inserted. Calling <c>In</c> again with the same
    /// <paramref name="state"/> does this implicitly; call it yourself when a state variable goes out of use.
    /// </summary>
    public void Release(ref PacketState state)
    {
        if ((state.Flags & PacketState.StateFlags.Unconfirmed) == 0)
        {
            return;
        }

        state.Flags &= ~PacketState.StateFlags.Unconfirmed;
        int idx = state.Connection.Index;
        ref Connection c = ref Entries[idx];
        if (c.Generation == state.Connection.Generation && c.Kind == EntryKind.Unconfirmed)
        {
            ReleaseUnconfirmed(idx);
        }

        state.Connection = default;
    }

    /// <summary>
    /// The datagram a fragment completed (see <see cref="PacketState.IsReassembled"/>): forward these bytes
    /// instead of the last fragment. Valid until this thread's next call to <c>In</c>.
    /// </summary>
    public bool TryGetReassembled(in PacketState state, out ReadOnlySpan<byte> datagram)
    {
        var ctx = t_context;
        if (!state.IsReassembled || ctx is null || !ReferenceEquals(ctx.Table, this) || ctx.ReassemblyBuffer is null)
        {
            datagram = default;
            return false;
        }

        datagram = ctx.ReassemblyBuffer.AsSpan(0, state.Length);
        return true;
    }

    private Verdict ConfirmCore(long now, ref PacketState state, ThreadContext ctx)
    {
        int idx = state.Connection.Index;
        ref Connection c = ref Entries[idx];
        if (c.Generation != state.Connection.Generation || c.Kind != EntryKind.Unconfirmed)
        {
            // Flushed under us and freed: nothing to insert.
            return Verdict.Accept;
        }

        RemoveUnconfirmed(idx);
        uint replyHash = Hasher.Hash(in c.Reply, c.Zone);
        int b0 = BucketOf(state.OriginalHash);
        int b1 = BucketOf(replyHash);
        LockPair(b0, b1);

        // Checked under the lock: a concurrent delete or flush marked it dying before we got here.
        if ((Volatile.Read(ref c.Status) & (uint)ConnectionStatus.Dying) != 0)
        {
            UnlockPair(b0, b1);
            ctx.Stats.InsertFailed++;
            FreeNeverHashed(idx);
            state.Reason = PacketReason.InsertFailed;
            return Verdict.Drop;
        }

        int maxChain = MinChainLength + (int)ctx.NextRandom(MaxChainLengthRandom);
        int clash = FindLocked(in c.Original, c.Zone, b0, maxChain);
        if (clash == -1)
        {
            clash = FindLocked(in c.Reply, c.Zone, b1, maxChain);
        }

        if (clash == -2)
        {
            UnlockPair(b0, b1);
            ctx.Stats.ChainTooLong++;
            ctx.Stats.InsertFailed++;
            FreeNeverHashed(idx);
            state.Reason = PacketReason.ChainTooLong;
            return Verdict.Drop;
        }

        if (clash >= 0)
        {
            return ResolveClash(idx, clash, b0, b1, now, ref state, ctx);
        }

        // "Timeout is relative to confirmation time, not original setting time."
        c.Timeout += now;
        if (Ext.Timestamps is { } ts)
        {
            ts.At(idx).Start = now;
        }

        LinkBoth(idx, b0, b1);
        // Confirmed only after linking: lookups skip entries without the bit.
        Interlocked.Or(ref c.Status, (uint)ConnectionStatus.Confirmed);
        c.Kind = EntryKind.Hashed;
        UnlockPair(b0, b1);
        Interlocked.Increment(ref _hashedCount);
        // No 'insert' here: the kernel counts it only for ctnetlink inserts (nf_conntrack_hash_check_insert).
        if (_ecache is not null)
        {
            uint status = c.Status;
            CacheEvent(idx, ((status & (uint)ConnectionStatus.Helper) != 0 ? ConntrackEventType.Helper : 0)
                | ((status & (uint)ConnectionStatus.Expected) != 0 ? ConntrackEventType.Related : ConntrackEventType.New));
        }

        return Verdict.Accept;
    }

    /// <summary>
    /// nf_ct_resolve_clash(): another packet confirmed the same flow first. For protocols that allow it,
    /// the packet joins the winner when both entries describe the same flow (either way round); otherwise
    /// the loser goes in under its reply tuple only, with a one-second fixed timeout, so that replies still
    /// find it. Called with both stripe locks held; releases them.
    /// </summary>
    private Verdict ResolveClash(int idx, int clashNode, int b0, int b1, long now, ref PacketState state, ThreadContext ctx)
    {
        ref Connection c = ref Entries[idx];
        if (L4Dispatch.AllowClash(this, c.Protocol))
        {
            if (TryMergeInto(clashNode >> 1, idx, ref state))
            {
                UnlockPair(b0, b1);
                ctx.Stats.ClashResolve++;
                FreeNeverHashed(idx);
                return Verdict.Accept;
            }

            // nf_ct_resolve_clash_harder(): the reply direction must not clash too.
            int replyClash = FindLocked(in c.Reply, c.Zone, b1, int.MaxValue);
            if (replyClash >= 0)
            {
                if (TryMergeInto(replyClash >> 1, idx, ref state))
                {
                    UnlockPair(b0, b1);
                    ctx.Stats.ClashResolve++;
                    FreeNeverHashed(idx);
                    return Verdict.Accept;
                }
            }
            else
            {
                c.Timeout = now + Settings.NsPerSecond;
                Interlocked.Or(ref c.Status, (uint)(ConnectionStatus.FixedTimeout | ConnectionStatus.NatClash));
                if (Ext.Timestamps is { } ts)
                {
                    ts.At(idx).Start = now;
                }

                LinkReplyOnly(idx, b1);
                Interlocked.Or(ref c.Status, (uint)ConnectionStatus.Confirmed);
                c.Kind = EntryKind.Hashed;
                UnlockPair(b0, b1);
                Interlocked.Increment(ref _hashedCount);
                ctx.Stats.ClashResolve++;
                return Verdict.Accept;
            }
        }

        UnlockPair(b0, b1);
        ctx.Stats.Drop++;
        ctx.Stats.InsertFailed++;
        FreeNeverHashed(idx);
        state.Reason = PacketReason.InsertFailed;
        return Verdict.Drop;
    }

    /// <summary>
    /// __nf_ct_resolve_clash(): when the winner and the loser are the same flow (same tuples, or the same
    /// tuples swapped, in the same zone), move the packet over to the winner and add the loser's bytes.
    /// </summary>
    private bool TryMergeInto(int winner, int loser, ref PacketState state)
    {
        ref Connection w = ref Entries[winner];
        ref Connection l = ref Entries[loser];
        bool same = w.Zone == l.Zone && (
            (Tuples.ConntrackTuple.Equals(in w.Original, in l.Original) && Tuples.ConntrackTuple.Equals(in w.Reply, in l.Reply))
            || (Tuples.ConntrackTuple.Equals(in w.Original, in l.Reply) && Tuples.ConntrackTuple.Equals(in w.Reply, in l.Original)));
        if (!same)
        {
            return false;
        }

        if (Ext.Accounting is { } acct)
        {
            // nf_ct_acct_merge(): the loser saw this packet; count its bytes on the winner.
            ref var la = ref acct.At(loser);
            bool reply = state.Info.IsReply();
            long bytes = reply ? la.ReplyBytes : la.OriginalBytes;
            ref var wa = ref acct.At(winner);
            if (reply)
            {
                Interlocked.Increment(ref wa.ReplyPackets);
                Interlocked.Add(ref wa.ReplyBytes, bytes);
            }
            else
            {
                Interlocked.Increment(ref wa.OriginalPackets);
                Interlocked.Add(ref wa.OriginalBytes, bytes);
            }
        }

        state.Connection = new ConnectionHandle(winner, w.Generation);
        return true;
    }

    /// <summary>Frees an entry taken off the unconfirmed list that never entered the hash table.</summary>
    private void FreeNeverHashed(int idx)
    {
        RemoveExpectationsOf(idx, -1, 0);
        Interlocked.Decrement(ref _count);
        Store.Free(idx);
    }
}
