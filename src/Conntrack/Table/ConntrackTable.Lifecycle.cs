using System.Runtime.CompilerServices;
using Conntrack.Protocols;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack;

// Birth, refresh and death of entries: allocation with early drop (__nf_conntrack_alloc, early_drop), the
// unconfirmed lists, removal (nf_ct_delete), the dying list and deferred reuse, and garbage collection.
public sealed partial class ConntrackTable
{
    /// <summary>NF_CT_EVICTION_RANGE: buckets early drop looks at.</summary>
    private const int EvictionRange = 8;

    private int _dyingHead = -1;
    private int _dyingTail = -1;
    private int _dyingCount;
    private SpinLockInt _dyingLock;

    private int _gcCursor;
    private volatile bool _gcEarlyDrop;
    private readonly Lock _gcGate = new();

    // ---------------------------------------------------------------- allocation

    /// <summary>
    /// __nf_conntrack_alloc(): counts the entry against nf_conntrack_max, evicting an unassured entry near
    /// the new one's bucket when the table is full. Returns the slot or -1.
    /// </summary>
    private int AllocateEntry(uint hash, long now, ThreadContext ctx)
    {
        int count = Interlocked.Increment(ref _count);
        if (count > Settings.MaxEntries && !EarlyDrop(hash, now, ctx))
        {
            // Let the next collection pass evict unassured entries too (gc_worker's early_drop).
            _gcEarlyDrop = true;
            Interlocked.Decrement(ref _count);
            return -1;
        }

        if (Volatile.Read(ref _dyingCount) > (Store.Capacity - Settings.MaxEntries) / 2)
        {
            // Half the slack waits on the dying list: recycle it in one go (one process-wide barrier for
            // many entries) before allocation has to fail.
            Reclaim(ctx);
        }

        int idx = Store.TryAllocate();
        if (idx < 0)
        {
            // Every slot is in use or waiting for readers to move on: try to reclaim, once.
            Reclaim(ctx);
            idx = Store.TryAllocate();
            if (idx < 0)
            {
                Interlocked.Decrement(ref _count);
                return -1;
            }
        }

        ctx.Stats.New++;
        return idx;
    }

    /// <summary>Initialises a fresh entry as unconfirmed and puts it on this thread's unconfirmed list.</summary>
    private void InitEntry(int idx, in ConntrackTuple orig, in ConntrackTuple reply, ushort zone, ThreadContext ctx)
    {
        ref Connection c = ref Entries[idx];
        c.Original = orig;
        c.Reply = reply;
        c.Status = 0;
        c.Timeout = 0;
        int gen = c.Generation + 1;
        c.Generation = gen == 0 ? 1 : gen;
        c.Zone = zone;
        c.ProtoState = 0;
        c.Mark = 0;
        c.ProtoTime = 0;
        c.Lock = 0;
        c.Kind = EntryKind.Unconfirmed;
        Ext.Init(idx);
        if (Volatile.Read(ref _helperSlots) is { } helpers)
        {
            helpers.At(idx).Reset();
        }

        if (_ecache is { } ecache)
        {
            ecache.At(idx) = default;
        }

        AddUnconfirmed(idx, ctx);
    }

    // ---------------------------------------------------------------- unconfirmed lists

    /// <summary>Links the entry on the thread's unconfirmed list through its (still unused) hash links.</summary>
    private void AddUnconfirmed(int idx, ThreadContext ctx)
    {
        ref Connection c = ref Entries[idx];
        c.ListLink = ctx.Id;
        SpinLockInt.Enter(ref ctx.UnconfirmedLock);
        int head = ctx.UnconfirmedHead;
        c.NextOriginal = head;
        c.NextReply = -1;
        if (head >= 0)
        {
            Entries[head].NextReply = idx;
        }

        ctx.UnconfirmedHead = idx;
        ctx.UnconfirmedCount++;
        SpinLockInt.Exit(ref ctx.UnconfirmedLock);
    }

    private void RemoveUnconfirmed(int idx)
    {
        ref Connection c = ref Entries[idx];
        ThreadContext owner = Contexts[c.ListLink];
        SpinLockInt.Enter(ref owner.UnconfirmedLock);
        int next = c.NextOriginal, prev = c.NextReply;
        if (prev >= 0)
        {
            Entries[prev].NextOriginal = next;
        }
        else
        {
            owner.UnconfirmedHead = next;
        }

        if (next >= 0)
        {
            Entries[next].NextReply = prev;
        }

        owner.UnconfirmedCount--;
        SpinLockInt.Exit(ref owner.UnconfirmedLock);
        c.NextOriginal = UnhashedMarker;
        c.NextReply = UnhashedMarker;
    }

    /// <summary>Frees an entry that was never in the hash table: no reader can have seen it.</summary>
    private void ReleaseUnconfirmed(int idx)
    {
        RemoveUnconfirmed(idx);
        RemoveExpectationsOf(idx, -1, 0);
        Interlocked.Decrement(ref _count);
        Store.Free(idx);
    }

    // ---------------------------------------------------------------- refresh and status

    /// <summary>
    /// __nf_ct_refresh_acct(): a confirmed entry's deadline becomes now + extra; an unconfirmed one keeps the
    /// relative timeout until confirmation. Accounting counts the packet either way.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Refresh(ref PacketContext p, ref Connection c, long extra) =>
        Refresh(ref c, p.Index, p.Direction, p.Now, p.Packet.Length, extra);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Refresh(ref Connection c, int index, int direction, long now, int bytes, long extra)
    {
        uint status = Volatile.Read(ref c.Status);
        if ((status & (uint)ConnectionStatus.FixedTimeout) == 0)
        {
            long t = (status & (uint)ConnectionStatus.Confirmed) != 0 ? now + extra : extra;
            if (c.Timeout != t)
            {
                Volatile.Write(ref c.Timeout, t);
            }
        }

        if (Ext.Accounting is { } acct)
        {
            Account(ref acct.At(index), direction, bytes);
        }
    }

    /// <summary>Counts a packet without touching the timeout (nf_ct_acct_update, as nf_ct_kill_acct uses it).</summary>
    internal void AccountOnly(int index, int direction, int bytes)
    {
        if (Ext.Accounting is { } acct)
        {
            Account(ref acct.At(index), direction, bytes);
        }
    }

    private static void Account(ref Extensions.AccountingCounters a, int direction, int bytes)
    {
        if (direction == 0)
        {
            Interlocked.Increment(ref a.OriginalPackets);
            Interlocked.Add(ref a.OriginalBytes, bytes);
        }
        else
        {
            Interlocked.Increment(ref a.ReplyPackets);
            Interlocked.Add(ref a.ReplyBytes, bytes);
        }
    }

    // ---------------------------------------------------------------- removal

    /// <summary>nf_ct_gc_expired(): kill a confirmed entry found past its deadline.</summary>
    internal void KillExpired(int idx, long now, ThreadContext ctx)
    {
        ref Connection c = ref Entries[idx];
        uint status = Volatile.Read(ref c.Status);
        if ((status & ((uint)ConnectionStatus.Confirmed | (uint)ConnectionStatus.Dying)) == (uint)ConnectionStatus.Confirmed
            && IsExpired(Volatile.Read(ref c.Timeout), now))
        {
            Kill(idx, now, ctx);
        }
    }

    /// <summary>
    /// nf_ct_delete(): marks the entry dying (only the first caller proceeds), records its stop time,
    /// removes both nodes from the hash and puts it on the dying list. An entry not yet confirmed is only
    /// marked; its confirmation will then fail, as in the kernel.
    /// </summary>
    internal bool Kill(int idx, long now, ThreadContext ctx)
    {
        ref Connection c = ref Entries[idx];
        if (!c.TrySet(ConnectionStatus.Dying))
        {
            return false;
        }

        if (Ext.Timestamps is { } ts)
        {
            // A connection killed after its deadline stopped at its deadline.
            long deadline = Volatile.Read(ref c.Timeout);
            ts.At(idx).Stop = (c.Status & (uint)ConnectionStatus.Confirmed) != 0 && deadline - now < 0 ? deadline : now;
        }

        int b0 = BucketOf(Hasher.Hash(in c.Original, c.Zone));
        int b1 = BucketOf(Hasher.Hash(in c.Reply, c.Zone));
        LockPair(b0, b1);
        if (c.Kind != EntryKind.Hashed)
        {
            // Unconfirmed (or being confirmed by its owner, who will see the dying bit under this lock).
            UnlockPair(b0, b1);
            return true;
        }

        if (c.NextOriginal != UnhashedMarker)
        {
            Unlink(idx << 1, b0);
        }

        Unlink((idx << 1) | 1, b1);
        c.Kind = EntryKind.Dying;
        UnlockPair(b0, b1);
        Interlocked.Decrement(ref _hashedCount);

        // Expectations die with their master (nf_ct_remove_expectations).
        RemoveExpectationsOf(idx, -1, now);

        if (!DeliverDestroy(idx, now))
        {
            // Still counted against the limit until its DESTROY is out, as on the kernel's ecache dying list.
            DeferDestroy(idx);
            return true;
        }

        Interlocked.Decrement(ref _count);
        Retire(idx);
        return true;
    }

    /// <summary>
    /// Puts a removed entry on the dying list, stamped with the current epoch: it is reused only after
    /// every thread that might have been walking a chain through it has left the table.
    /// </summary>
    private void Retire(int idx)
    {
        ref Connection c = ref Entries[idx];
        c.Timeout = Volatile.Read(ref _epoch);
        c.ListLink = -1;
        _dyingLock.Enter();
        if (_dyingTail >= 0)
        {
            Entries[_dyingTail].ListLink = idx;
        }
        else
        {
            _dyingHead = idx;
        }

        _dyingTail = idx;
        _dyingCount++;
        _dyingLock.Exit();
    }

    /// <summary>
    /// Moves dying entries that no reader can still reach to the free list. Readers announce the epoch
    /// they entered in with a plain store; a process-wide memory barrier (membarrier) makes those stores
    /// visible here, so the packet path needs no fence of its own. An entry retired in epoch R is safe once
    /// every thread inside the table entered after R.
    /// </summary>
    /// <param name="quiescent">
    /// The calling thread's context when the caller holds no entry it found (the allocation path: its
    /// lookup missed); it then counts as having entered in the new epoch, so entries it retired itself —
    /// an early drop's victims — become reusable at once.
    /// </param>
    internal void Reclaim(ThreadContext? quiescent = null)
    {
        if (Volatile.Read(ref _dyingHead) < 0)
        {
            return;
        }

        long epoch = Interlocked.Increment(ref _epoch);
        if (quiescent is not null && quiescent.Depth > 0)
        {
            Volatile.Write(ref quiescent.ActiveEpoch, epoch);
        }

        Interlocked.MemoryBarrierProcessWide();
        // Every thread inside the table counts, the caller included: it may still hold an entry it found.
        long oldestActive = long.MaxValue;
        foreach (var ctx in Contexts)
        {
            long a = Volatile.Read(ref ctx.ActiveEpoch);
            if (a != 0 && a < oldestActive)
            {
                oldestActive = a;
            }
        }

        _dyingLock.Enter();
        int head = _dyingHead, tail = -1, n = 0;
        int idx = head;
        while (idx >= 0 && Entries[idx].Timeout < oldestActive)
        {
            Entries[idx].Kind = EntryKind.Free;
            tail = idx;
            n++;
            idx = Entries[idx].ListLink;
        }

        if (n > 0)
        {
            _dyingHead = idx;
            if (idx < 0)
            {
                _dyingTail = -1;
            }

            _dyingCount -= n;
        }

        _dyingLock.Exit();
        if (n > 0)
        {
            Store.FreeChain(head, tail, n);
        }
    }

    // ---------------------------------------------------------------- early drop and garbage collection

    /// <summary>
    /// early_drop(): looks at up to 8 buckets from the new entry's and removes every confirmed, unassured
    /// entry of the first bucket that has any. True when something was removed.
    /// </summary>
    private bool EarlyDrop(uint hash, long now, ThreadContext ctx)
    {
        int bucket = BucketOf(hash);
        for (int i = 0; i < EvictionRange; i++)
        {
            int b = (int)((bucket + (long)i) % BucketCount);
            int drops = 0;
            int node = Volatile.Read(ref Buckets[b]);
            while (node >= 0)
            {
                int idx = node >> 1;
                ref Connection c = ref Entries[idx];
                int next = Volatile.Read(ref LinkOf(node));
                uint status = Volatile.Read(ref c.Status);
                if ((status & (uint)ConnectionStatus.Confirmed) != 0 && IsExpired(Volatile.Read(ref c.Timeout), now))
                {
                    KillExpired(idx, now, ctx);
                }
                else if ((status & ((uint)ConnectionStatus.Assured | (uint)ConnectionStatus.Dying | (uint)ConnectionStatus.Confirmed))
                         == (uint)ConnectionStatus.Confirmed && Kill(idx, now, ctx))
                {
                    drops++;
                }

                node = next;
            }

            if (drops > 0)
            {
                ctx.Stats.EarlyDrop += drops;
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// One incremental step of the garbage collector (gc_worker): scans up to <paramref name="bucketBudget"/>
    /// buckets from where the last step stopped, removes entries whose deadline has passed, and — after the
    /// table was found full — also unassured entries (or assured ones their protocol lets go, such as TCP in
    /// TIME_WAIT) while the table is above 95% of its limit. Then recycles dying entries no reader can
    /// still see. Call it from your packet loop or a timer; it never blocks on another collector.
    /// </summary>
    /// <param name="now">The current time on the same clock as the packets' timestamps.</param>
    /// <param name="bucketBudget">How many buckets to scan in this step.</param>
    /// <returns>The number of entries removed.</returns>
    public int CollectGarbage(long now, int bucketBudget = 1024)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bucketBudget);
        if (!_gcGate.TryEnter())
        {
            return 0;
        }

        int removed = 0;
        var ctx = Enter();
        try
        {
            int max95 = Settings.MaxEntries / 100 * 95;
            // The kernel skips eviction entirely when the 95% mark rounds to 0 (nf_conntrack_max < 100).
            bool earlyDrop = _gcEarlyDrop && max95 > 0;
            int i = _gcCursor;
            for (int n = 0; n < bucketBudget; n++)
            {
                int node = Volatile.Read(ref Buckets[i]);
                while (node >= 0)
                {
                    int idx = node >> 1;
                    ref Connection c = ref Entries[idx];
                    int next = Volatile.Read(ref LinkOf(node));
                    uint status = Volatile.Read(ref c.Status);
                    if ((status & ((uint)ConnectionStatus.Confirmed | (uint)ConnectionStatus.Dying)) == (uint)ConnectionStatus.Confirmed)
                    {
                        if (IsExpired(Volatile.Read(ref c.Timeout), now))
                        {
                            if (Kill(idx, now, ctx))
                            {
                                removed++;
                            }
                        }
                        else if (earlyDrop && Volatile.Read(ref _count) >= max95
                                 && ((status & (uint)ConnectionStatus.Assured) == 0 || L4Dispatch.CanEarlyDrop(ref c))
                                 && Kill(idx, now, ctx))
                        {
                            removed++;
                        }
                    }

                    node = next;
                }

                if (++i >= BucketCount)
                {
                    i = 0;
                    _gcEarlyDrop = false;
                }
            }

            _gcCursor = i;
            Defragmenter?.Expire(now);
            ExpireExpectations(now);
            RedeliverDestroys(now);
        }
        finally
        {
            Exit(ctx);
            _gcGate.Exit();
        }

        Reclaim();
        return removed;
    }
}
