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
            Reclaim();
        }

        int idx = Store.TryAllocate();
        if (idx < 0)
        {
            // Every slot is in use or dying: recycle the dying ones no thread holds, once.
            Reclaim();
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
        // Released after the tuples and the cleared status: a reader that sees the old generation together with a
        // live status has read the old tuples (the collector's batch relies on it).
        Volatile.Write(ref c.Generation, gen == 0 ? 1 : gen);
        c.Zone = zone;
        c.ProtoState = 0;
        c.Mark = 0;
        c.ProtoTime = 0;
        c.Lock = 0;
        // Owner before kind, kind last and released: a thread that sees Unconfirmed with this generation also
        // sees who owns it (IsLiveFor), never the free-list link the field held a moment ago.
        c.ListLink = ctx.OwnerTag;
        Volatile.Write(ref Unsafe.As<EntryKind, byte>(ref c.Kind), (byte)EntryKind.Unconfirmed);
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
        SpinLockInt.Enter(ref ctx.UnconfirmedLock);
        int head = ctx.UnconfirmedHead;
        // List links are entry indices ending in UnhashedMarker, never -1: a lookup that strays here from a
        // reused entry must not mistake the end of this list for the end of bucket 0's chain.
        c.NextOriginal = head;
        c.NextReply = UnhashedMarker;
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
        ThreadContext owner = Contexts[ThreadContext.IdOfOwnerTag(c.ListLink)];
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
        Refresh(ref p, ref c, Volatile.Read(ref c.Status), extra);

    /// <summary><see cref="Refresh(ref PacketContext, ref Connection, long)"/> with the status the tracker has just read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Refresh(ref PacketContext p, ref Connection c, uint status, long extra) =>
        Refresh(ref c, status, p.Index, p.Direction, p.Now, p.Packet.Length, extra);

    /// <summary>The refresh itself, for callers without a packet context (custom trackers), given the status just read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Refresh(ref Connection c, uint status, int index, int direction, long now, int bytes, long extra)
    {
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
        var tally = new RemovalTally();
        bool killed = Kill(idx, BucketOf(Hasher.Hash(in c.Original, c.Zone)), BucketOf(Hasher.Hash(in c.Reply, c.Zone)), now, ctx,
            ref tally);
        Settle(ref tally);
        return killed;
    }

    /// <summary>
    /// What removals leave to settle on shared state: the counts to take off and the entries to put on the dying
    /// list, chained among themselves. The collector removes a batch and settles once, with one locked
    /// instruction per counter and one dying-list lock instead of one each per entry.
    /// </summary>
    private struct RemovalTally
    {
        public int Unhashed;
        public int Head;
        public int Tail;
        public int Dying;

        public RemovalTally()
        {
            Head = -1;
            Tail = -1;
        }
    }

    /// <summary>
    /// Applies a <see cref="RemovalTally"/>: the hashed count, then the entries chained in it leave the count
    /// against the limit and go on the dying list.
    /// </summary>
    private void Settle(ref RemovalTally tally)
    {
        if (tally.Unhashed != 0)
        {
            Interlocked.Add(ref _hashedCount, -tally.Unhashed);
        }

        if (tally.Head >= 0)
        {
            // Off the count against the limit as they go on the dying list (nf_conntrack_free's atomic_dec).
            Interlocked.Add(ref _count, -tally.Dying);
            _dyingLock.Enter();
            if (_dyingTail >= 0)
            {
                Entries[_dyingTail].ListLink = tally.Head;
            }
            else
            {
                _dyingHead = tally.Head;
            }

            _dyingTail = tally.Tail;
            _dyingCount += tally.Dying;
            _dyingLock.Exit();
        }
    }

    /// <summary>
    /// <see cref="Kill(int, long, ThreadContext)"/> for a caller that has the buckets of both tuples; what is left
    /// for shared state goes to <paramref name="tally"/>, which the caller settles.
    /// </summary>
    private bool Kill(int idx, int b0, int b1, long now, ThreadContext ctx, ref RemovalTally tally)
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
        tally.Unhashed++;

        // Expectations die with their master (nf_ct_remove_expectations).
        RemoveExpectationsOf(idx, -1, now);

        if (!DeliverDestroy(idx, now))
        {
            // Still counted against the limit until its DESTROY is out, as on the kernel's ecache dying list.
            DeferDestroy(idx);
            return true;
        }

        AddDying(ref tally, idx);
        return true;
    }

    /// <summary>Chains a removed entry onto the tally's part of the dying list (see <see cref="Settle"/>).</summary>
    private void AddDying(ref RemovalTally tally, int idx)
    {
        Entries[idx].ListLink = -1;
        if (tally.Tail >= 0)
        {
            Entries[tally.Tail].ListLink = idx;
        }
        else
        {
            tally.Head = idx;
        }

        tally.Tail = idx;
        tally.Dying++;
    }

    /// <summary>
    /// Takes a removed entry off the count against the limit and puts it on the dying list. It is reused once no
    /// thread holds it (see <see cref="Reclaim"/>); readers that merely walk a chain through it need no
    /// protection, the nulls markers send them back.
    /// </summary>
    private void Retire(int idx)
    {
        var tally = new RemovalTally();
        AddDying(ref tally, idx);
        Settle(ref tally);
    }

    private readonly Lock _reclaimGate = new();
    private int[] _hazards = new int[8];

    /// <summary>
    /// Moves dying entries that no thread holds to the free list. Every thread publishes the entry it works on
    /// with a plain store (<see cref="Protect"/>); a process-wide memory barrier (membarrier) makes those stores
    /// visible here, so the packet path needs no fence of its own. An entry was marked dying before this
    /// barrier, so a thread that protects it afterwards sees it dying and lets go; a thread that protected it
    /// before is seen here. One stalled thread holds back at most the one entry it names.
    /// </summary>
    internal void Reclaim()
    {
        if (Volatile.Read(ref _dyingHead) < 0 || !_reclaimGate.TryEnter())
        {
            return;
        }

        try
        {
            Interlocked.MemoryBarrierProcessWide();
            var contexts = Contexts;
            if (_hazards.Length < contexts.Length)
            {
                _hazards = new int[contexts.Length * 2];
            }

            int nh = 0;
            foreach (var ctx in contexts)
            {
                int h = Volatile.Read(ref ctx.Hazard);
                if (h >= 0)
                {
                    _hazards[nh++] = h;
                }
            }

            var held = _hazards.AsSpan(0, nh);
            _dyingLock.Enter();
            int freeHead = -1, freeTail = -1, freed = 0;
            int keepHead = -1, keepTail = -1;
            for (int idx = _dyingHead; idx >= 0;)
            {
                int next = Entries[idx].ListLink;
                if (held.Contains(idx))
                {
                    Entries[idx].ListLink = -1;
                    if (keepTail >= 0)
                    {
                        Entries[keepTail].ListLink = idx;
                    }
                    else
                    {
                        keepHead = idx;
                    }

                    keepTail = idx;
                }
                else
                {
                    Entries[idx].Kind = EntryKind.Free;
                    Entries[idx].ListLink = freeHead;
                    freeHead = idx;
                    if (freeTail < 0)
                    {
                        freeTail = idx;
                    }

                    freed++;
                }

                idx = next;
            }

            _dyingHead = keepHead;
            _dyingTail = keepTail;
            _dyingCount -= freed;
            _dyingLock.Exit();
            if (freed > 0)
            {
                Store.FreeChain(freeHead, freeTail, freed);
            }
        }
        finally
        {
            _reclaimGate.Exit();
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
                Protect(ctx, idx);
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

    /// <summary>Entries the collector gathers before removing them together (their buckets' misses overlap).</summary>
    private const int GcBatch = 16;

    /// <summary>Chain nodes per chain the collector fetches ahead of removal.</summary>
    private const int GcPrefetchDepth = 4;

    /// <summary>
    /// How many slots ahead the sweep fetches the first line of a slot (what it reads to choose). The hardware's
    /// stream prefetcher stops at every 4 KiB page, 32 slots; this keeps the sweep's reads from waiting at each.
    /// </summary>
    private const int GcSweepAhead = 16;

    [InlineArray(GcBatch)]
    private struct GcCandidates
    {
        private int _first;
    }

    [InlineArray(2 * GcBatch)]
    private struct GcBuckets
    {
        private int _first;
    }

    /// <summary>The collector's batch: the entries picked, their generations, the buckets of both their tuples.</summary>
    private struct GcScratch
    {
        public GcCandidates Entries;
        public GcCandidates Generations;
        public GcBuckets Buckets;
        public GcBuckets Cursors;
    }

    /// <summary>
    /// One incremental step of the garbage collector (gc_worker): scans the next share of the table — as much
    /// as <paramref name="bucketBudget"/> buckets are of all buckets, so that <c>buckets / bucketBudget</c>
    /// steps cover it once — removes entries whose deadline has passed, and — after the table was found full —
    /// also unassured entries (or assured ones their protocol lets go, such as TCP in TIME_WAIT) while the
    /// table is above 95% of its limit. Then recycles dying entries no reader can still see. Call it from your
    /// packet loop or a timer; it never blocks on another collector.
    /// </summary>
    /// <remarks>
    /// The kernel walks the hash buckets; this walks the connections' slots in index order instead. It looks
    /// at the same entries (every hashed connection once per sweep, where a bucket walk meets each twice, once
    /// per direction) but reads memory in sequence rather than one random miss per chain node; only the
    /// order in which expired connections go, and so the order of their DESTROY events, differs.
    /// </remarks>
    /// <param name="now">The current time on the same clock as the packets' timestamps.</param>
    /// <param name="bucketBudget">How much of the table to scan in this step, counted in buckets.</param>
    /// <returns>The number of entries removed.</returns>
    [SkipLocalsInit]
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
            int slots = Store.HighWater;
            long share = ((long)bucketBudget * slots + BucketCount - 1) / BucketCount;
            int steps = (int)Math.Min(share, slots);
            int i = _gcCursor < slots ? _gcCursor : 0;
            Unsafe.SkipInit(out GcScratch scratch);
            Span<int> batch = scratch.Entries;
            int pending = 0;
            for (int n = 0; n < steps; n++)
            {
                Entries.Prefetch(i + GcSweepAhead);
                ref Connection c = ref Entries[i];
                // Unprotected reads: only a hint, checked again under protection before anything is removed.
                if (c.Kind == EntryKind.Hashed && IsCollectable(ref c, Volatile.Read(ref c.Status), now, earlyDrop, max95))
                {
                    // The batch hashes the reply tuple, in the second line: fetch it while the sweep goes on.
                    Entries.Prefetch(i, EntryArray.HalfSize);
                    batch[pending++] = i;
                    if (pending == GcBatch)
                    {
                        removed += CollectBatch(ref scratch, pending, now, earlyDrop, max95, ctx);
                        pending = 0;
                    }
                }

                if (++i >= slots)
                {
                    i = 0;
                    _gcEarlyDrop = false;
                }
            }

            if (pending > 0)
            {
                removed += CollectBatch(ref scratch, pending, now, earlyDrop, max95, ctx);
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

    /// <summary>
    /// Whether the collector removes this entry: confirmed, not dying, and past its deadline, or (eviction under
    /// pressure, gc_worker's early_drop) unassured or let go by its protocol while the table is above 95%.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsCollectable(ref Connection c, uint status, long now, bool earlyDrop, int max95)
    {
        if ((status & ((uint)ConnectionStatus.Confirmed | (uint)ConnectionStatus.Dying)) != (uint)ConnectionStatus.Confirmed)
        {
            return false;
        }

        return IsExpired(Volatile.Read(ref c.Timeout), now)
            || (earlyDrop && Volatile.Read(ref _count) >= max95
                && ((status & (uint)ConnectionStatus.Assured) == 0 || L4Dispatch.CanEarlyDrop(ref c)));
    }

    /// <summary>
    /// Removes a batch of entries the sweep picked. Removal walks both of an entry's chains from their buckets,
    /// each a likely cache miss on a large table: the buckets of the whole batch are fetched first, then the
    /// chains are walked a node at a time, all together, so those misses overlap instead of following one
    /// another. Each entry is then protected and checked again, since it may have been removed and reused since
    /// the sweep saw it; the same generation means the same connection, so the buckets computed here still hold.
    /// </summary>
    private int CollectBatch(ref GcScratch scratch, int count, long now, bool earlyDrop, int max95, ThreadContext ctx)
    {
        Span<int> entries = ((Span<int>)scratch.Entries)[..count];
        Span<int> generations = scratch.Generations;
        Span<int> buckets = ((Span<int>)scratch.Buckets)[..(2 * count)];
        Span<int> cursors = ((Span<int>)scratch.Cursors)[..(2 * count)];
        for (int k = 0; k < entries.Length; k++)
        {
            ref Connection c = ref Entries[entries[k]];
            // Generation first: a slot being reused writes its tuples before its new generation.
            generations[k] = Volatile.Read(ref c.Generation);
            int b0 = BucketOf(Hasher.Hash(in c.Original, c.Zone));
            int b1 = BucketOf(Hasher.Hash(in c.Reply, c.Zone));
            buckets[2 * k] = b0;
            buckets[(2 * k) + 1] = b1;
            Prefetch(ref Buckets[b0]);
            Prefetch(ref Buckets[b1]);
        }

        // Unlocked reads and prefetches only; Kill walks again under the lock.
        for (int k = 0; k < buckets.Length; k++)
        {
            cursors[k] = Volatile.Read(ref Buckets[buckets[k]]);
        }

        for (int step = 0; step < GcPrefetchDepth; step++)
        {
            bool more = false;
            for (int k = 0; k < cursors.Length; k++)
            {
                int node = cursors[k];
                if (node < 0)
                {
                    continue;
                }

                if (node == ((entries[k >> 1] << 1) | (k & 1)))
                {
                    cursors[k] = -1;
                    continue;
                }

                if (step > 0)
                {
                    node = Volatile.Read(ref LinkOf(node));
                    cursors[k] = node;
                }

                if (node >= 0)
                {
                    Entries.PrefetchNode(node);
                    more = true;
                }
            }

            if (!more)
            {
                break;
            }
        }

        int removed = 0;
        var tally = new RemovalTally();
        for (int k = 0; k < entries.Length; k++)
        {
            int idx = entries[k];
            ref Connection c = ref Entries[idx];
            Protect(ctx, idx);
            if (Volatile.Read(ref c.Generation) == generations[k]
                && IsCollectable(ref c, Volatile.Read(ref c.Status), now, earlyDrop, max95)
                && Kill(idx, buckets[2 * k], buckets[(2 * k) + 1], now, ctx, ref tally))
            {
                removed++;
            }
        }

        Settle(ref tally);
        return removed;
    }
}
