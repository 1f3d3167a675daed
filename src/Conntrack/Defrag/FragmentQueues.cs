namespace Conntrack.Defrag;

/// <summary>
/// A reassembly key (<c>frag_v4_compare_key</c> / <c>frag_v6_compare_key</c>). IPv4: addresses, IP id,
/// protocol and user; IPv6: addresses, fragment id and user. The user is conntrack-in plus the zone. The
/// kernel's IPv4 <c>vif</c> (the VRF master's ifindex) and IPv6 <c>iif</c> (the input interface, for
/// link-local and multicast destinations only) are constant for a single input interface, so they are
/// left out.
/// </summary>
internal struct FragmentKey : IEquatable<FragmentKey>
{
    public ulong SourceHigh;
    public ulong SourceLow;
    public ulong DestinationHigh;
    public ulong DestinationLow;
    public uint Id;
    public ushort Zone;
    public byte Protocol;

    public readonly bool Equals(FragmentKey other) =>
        SourceLow == other.SourceLow && DestinationLow == other.DestinationLow && Id == other.Id
        && SourceHigh == other.SourceHigh && DestinationHigh == other.DestinationHigh
        && Zone == other.Zone && Protocol == other.Protocol;

    public override readonly bool Equals(object? obj) => obj is FragmentKey k && Equals(k);

    // HashCode is seeded at random per process, which keeps remote hosts from aiming keys at one bucket.
    public override readonly int GetHashCode() =>
        HashCode.Combine(SourceHigh, SourceLow, DestinationHigh, DestinationLow, Id, Zone, Protocol);
}

/// <summary>What <see cref="FragmentQueues.Insert"/> did (<c>inet_frag_queue_insert</c>'s results).</summary>
internal enum InsertResult : byte
{
    /// <summary><c>IPFRAG_OK</c>.</summary>
    Ok,
    /// <summary><c>IPFRAG_DUP</c>: the fragment lies wholly inside one run of fragments already held.</summary>
    Duplicate,
    /// <summary><c>IPFRAG_OVERLAP</c>: any other overlap.</summary>
    Overlap,
    /// <summary>The byte store is full (cannot happen within the memory bound; treated as -ENOMEM).</summary>
    NoMemory,
}

/// <summary>
/// One family's fragment queues: the kernel's <c>fqdir</c> (hash table of <c>inet_frag_queue</c>s, memory
/// counter, timeout) with each queue's fragments, kept in offset order and grouped into the "runs" of
/// <c>inet_frag_queue_insert</c>. Single-threaded: the caller holds the lock.
/// </summary>
/// <remarks>
/// Queues, fragment records and the byte store grow on demand up to the most the memory threshold allows
/// and are then reused, so steady traffic allocates nothing. Timers are a list in deadline order (every
/// queue of a family has the same timeout, so creation order is deadline order); expired queues are killed
/// from its head, by <see cref="ExpireDue"/>, before every lookup and on garbage collection.
/// </remarks>
internal sealed class FragmentQueues
{
    /// <summary><c>INET_FRAG_FIRST_IN</c>.</summary>
    public const byte FirstIn = 1;

    /// <summary><c>INET_FRAG_LAST_IN</c>.</summary>
    public const byte LastIn = 2;

    /// <summary>One datagram being reassembled (<c>struct ipq</c> / <c>struct frag_queue</c>).</summary>
    public struct Queue
    {
        public FragmentKey Key;

        /// <summary>When the queue's timer fires (caller's nanoseconds).</summary>
        public long Deadline;
        public int HashNext;
        public int TimerPrev;
        public int TimerNext;

        /// <summary>Lowest-offset fragment (the rb-tree's first), -1 when empty.</summary>
        public int Head;

        /// <summary><c>fragments_tail</c>: the fragment that ends highest, -1 when empty.</summary>
        public int Tail;

        /// <summary><c>last_run_head</c>.</summary>
        public int LastRunHead;

        /// <summary><c>q.len</c>: the datagram's length as known so far.</summary>
        public int Len;

        /// <summary><c>q.meat</c>: bytes received.</summary>
        public int Meat;

        /// <summary>IPv4: the source's <see cref="InetPeers"/> entry, or -1.</summary>
        public int Peer;

        /// <summary>IPv4: <c>qp->rid</c>, the peer counter at this queue's previous fragment.</summary>
        public uint Rid;

        /// <summary><c>q.max_size</c>.</summary>
        public ushort MaxSize;

        /// <summary>IPv4: <c>max_df_size</c>, the largest fragment with DF set.</summary>
        public ushort MaxDfSize;

        /// <summary>IPv6: <c>nhoffset</c>, where the first fragment's next-header field before the fragment header is.</summary>
        public ushort NhOffset;

        /// <summary><see cref="FirstIn"/> | <see cref="LastIn"/>.</summary>
        public byte Flags;

        /// <summary>OR of <c>1 &lt;&lt; ecn</c> over the fragments (IPFRAG_ECN_*).</summary>
        public byte Ecn;
        public bool InUse;
    }

    private struct Fragment
    {
        /// <summary>Data offset in the datagram.</summary>
        public int Offset;

        /// <summary>Data length.</summary>
        public int Length;

        /// <summary>For a run head, the run's total length (<c>frag_run_len</c>).</summary>
        public int RunLength;

        /// <summary>Next fragment in offset order, -1 at the end.</summary>
        public int Next;

        /// <summary>Block chain: <see cref="HeaderLength"/> header bytes, then the data.</summary>
        public int Chain;
        public int HeaderLength;
        public int Truesize;
        public bool RunHead;
    }

    private readonly long _high;
    private readonly long _timeout;
    private readonly int _queueSize;
    private readonly InetPeers? _peers;
    private readonly int _maxQueues;
    private readonly int _maxFragments;
    private readonly FragmentStore _store;

    private Queue[] _queues = [];
    private int[] _buckets = [];
    private int _queueHighWater;
    private int _freeQueue = -1;
    private int _timerHead = -1;
    private int _timerTail = -1;

    private Fragment[] _fragments = [];
    private int _fragmentHighWater;
    private int _freeFragment = -1;

    /// <param name="highThreshold"><c>high_thresh</c>: no queue is looked up or created while the memory is above it.</param>
    /// <param name="timeout">The queue timer (<c>ipfrag_time</c>, <c>nf_conntrack_frag6_timeout</c>).</param>
    /// <param name="queueSize">What each queue is charged (<c>inet_frags.qsize</c>).</param>
    /// <param name="peers">IPv4 with <c>ipfrag_max_dist</c> on: the per-source counters, else null.</param>
    public FragmentQueues(long highThreshold, TimeSpan timeout, int queueSize, InetPeers? peers)
    {
        _high = highThreshold;
        _timeout = Math.Min(Math.Max(0, timeout.Ticks), long.MaxValue / 100) * 100;
        _queueSize = queueSize;
        _peers = peers;

        // inet_frag_find() refuses while mem > high_thresh, so mem never exceeds high_thresh plus one new
        // queue and one fragment.
        long maxMemory = highThreshold <= 0 ? 0 : highThreshold + queueSize + FragmentMemory.MaxTruesize;
        _maxQueues = (int)Math.Min(int.MaxValue / 4, maxMemory / queueSize + 1);
        _maxFragments = (int)Math.Min(int.MaxValue / 4, maxMemory / FragmentMemory.MinTruesize + 1);
        _store = new FragmentStore(maxMemory);
    }

    /// <summary><c>fqdir->mem</c>: bytes charged for queues and fragments held.</summary>
    public long Memory { get; private set; }

    /// <summary>Queues in the table.</summary>
    public int Count { get; private set; }

    /// <summary>Bytes of fragment data blocks in use (for tests of the memory bound).</summary>
    public long StoredBytes => (long)_store.BlocksInUse * FragmentStore.BlockSize;

    public ref Queue this[int queue] => ref _queues[queue];

    /// <summary>
    /// <c>inet_frag_find</c>: the queue for <paramref name="key"/>, created (timer armed, charged, for IPv4
    /// with its peer) if there is none; -1 when memory is above the high threshold (-ENOMEM).
    /// </summary>
    public int Find(in FragmentKey key, uint source, long now)
    {
        if (_high <= 0 || Memory > _high)
        {
            return -1;
        }

        int hash = key.GetHashCode();
        if (_buckets.Length != 0)
        {
            for (int i = _buckets[hash & (_buckets.Length - 1)]; i >= 0; i = _queues[i].HashNext)
            {
                if (_queues[i].Key.Equals(key))
                {
                    return i;
                }
            }
        }

        int q = AllocateQueue();
        if (q < 0)
        {
            return -1;
        }

        int b = hash & (_buckets.Length - 1);
        _queues[q] = new Queue
        {
            Key = key,
            Deadline = DeadlineFrom(now),
            HashNext = _buckets[b],
            TimerPrev = _timerTail,
            TimerNext = -1,
            Head = -1,
            Tail = -1,
            LastRunHead = -1,
            Peer = _peers is null ? -1 : _peers.Acquire(source),
            InUse = true,
        };
        _buckets[b] = q;
        if (_timerTail >= 0)
        {
            _queues[_timerTail].TimerNext = q;
        }
        else
        {
            _timerHead = q;
        }

        _timerTail = q;
        Memory += _queueSize;
        Count++;
        return q;
    }

    /// <summary>
    /// <c>inet_frag_queue_insert</c> for data [<paramref name="offset"/>, <paramref name="end"/>), and on
    /// success the fragment's bytes (<paramref name="header"/> is kept only for the first fragment) and its
    /// charge.
    /// </summary>
    public InsertResult Insert(int queue, int offset, int end, ReadOnlySpan<byte> header, ReadOnlySpan<byte> data, int truesize)
    {
        int prev = -1, next = -1;
        bool atEnd = true, joinRun = false;
        int tail = _queues[queue].Tail;
        if (tail >= 0)
        {
            int tailEnd = _fragments[tail].Offset + _fragments[tail].Length;
            if (tailEnd < end)
            {
                // The common case: it goes at the end, joining the last run if it starts where that ends.
                if (offset < tailEnd)
                {
                    return InsertResult.Overlap;
                }

                prev = tail;
                joinRun = offset == tailEnd;
            }
            else
            {
                // The rb-tree search, over runs: the fragment either fits in a gap (a run of its own, which is
                // never extended later) or meets one run (wholly inside it: a duplicate) or several.
                atEnd = false;
                int cur = _queues[queue].Head;
                while (cur >= 0)
                {
                    ref Fragment f = ref _fragments[cur];
                    if (f.RunHead)
                    {
                        if (end <= f.Offset)
                        {
                            break;
                        }

                        int runEnd = f.Offset + f.RunLength;
                        if (offset < runEnd)
                        {
                            return offset >= f.Offset && end <= runEnd ? InsertResult.Duplicate : InsertResult.Overlap;
                        }
                    }

                    prev = cur;
                    cur = f.Next;
                }

                next = cur;
            }
        }

        int chain = _store.Write(header, data);
        if (chain == -2)
        {
            return InsertResult.NoMemory;
        }

        int r = AllocateFragment();
        if (r < 0)
        {
            _store.Free(chain);
            return InsertResult.NoMemory;
        }

        int length = end - offset;
        _fragments[r] = new Fragment
        {
            Offset = offset,
            Length = length,
            RunLength = length,
            Next = next,
            Chain = chain,
            HeaderLength = header.Length,
            Truesize = truesize,
            RunHead = !joinRun,
        };

        ref Queue q = ref _queues[queue];
        if (prev < 0)
        {
            q.Head = r;
        }
        else
        {
            _fragments[prev].Next = r;
        }

        if (atEnd)
        {
            if (joinRun)
            {
                _fragments[q.LastRunHead].RunLength += length;
            }
            else
            {
                q.LastRunHead = r;
            }

            q.Tail = r;
        }

        Memory += truesize;
        return InsertResult.Ok;
    }

    /// <summary>Header bytes kept with the queue's first fragment (0 if it has none).</summary>
    public int HeadHeaderLength(int queue)
    {
        int h = _queues[queue].Head;
        return h < 0 ? 0 : _fragments[h].HeaderLength;
    }

    /// <summary>Copies the first fragment's kept header bytes (as many as <paramref name="destination"/> holds).</summary>
    public void ReadHeadHeader(int queue, Span<byte> destination)
    {
        int h = _queues[queue].Head;
        if (h >= 0)
        {
            _store.Read(_fragments[h].Chain, 0, destination[..Math.Min(destination.Length, _fragments[h].HeaderLength)]);
        }
    }

    /// <summary>
    /// Writes every fragment's data at its offset in <paramref name="destination"/> (the datagram's data
    /// part). False if a fragment would not fit.
    /// </summary>
    public bool ReadData(int queue, Span<byte> destination)
    {
        for (int r = _queues[queue].Head; r >= 0; r = _fragments[r].Next)
        {
            ref Fragment f = ref _fragments[r];
            if (f.Offset + f.Length > destination.Length)
            {
                return false;
            }

            _store.Read(f.Chain, f.HeaderLength, destination.Slice(f.Offset, f.Length));
        }

        return true;
    }

    /// <summary><c>inet_frag_queue_flush</c>: drops the fragments, keeps the queue.</summary>
    public void Flush(int queue)
    {
        ref Queue q = ref _queues[queue];
        int r = q.Head;
        while (r >= 0)
        {
            int next = _fragments[r].Next;
            _store.Free(_fragments[r].Chain);
            Memory -= _fragments[r].Truesize;
            _fragments[r].Next = _freeFragment;
            _freeFragment = r;
            r = next;
        }

        q.Head = q.Tail = q.LastRunHead = -1;
    }

    /// <summary><c>mod_timer(&amp;q->timer, jiffies + timeout)</c>: the queue's deadline starts again from now.</summary>
    public void Rearm(int queue, long now)
    {
        UnlinkTimer(queue);
        ref Queue q = ref _queues[queue];
        q.Deadline = DeadlineFrom(now);
        q.TimerPrev = _timerTail;
        q.TimerNext = -1;
        if (_timerTail >= 0)
        {
            _queues[_timerTail].TimerNext = queue;
        }
        else
        {
            _timerHead = queue;
        }

        _timerTail = queue;
    }

    /// <summary><c>inet_frag_kill</c> and the destruction that follows: the queue and its fragments are gone.</summary>
    public void Kill(int queue)
    {
        Flush(queue);
        ref Queue q = ref _queues[queue];
        int b = q.Key.GetHashCode() & (_buckets.Length - 1);
        ref int link = ref _buckets[b];
        while (link >= 0)
        {
            if (link == queue)
            {
                link = q.HashNext;
                break;
            }

            link = ref _queues[link].HashNext;
        }

        UnlinkTimer(queue);
        if (q.Peer >= 0)
        {
            _peers?.Release(q.Peer);
        }

        q.InUse = false;
        q.Peer = -1;
        q.HashNext = _freeQueue;
        _freeQueue = queue;
        Memory -= _queueSize;
        Count--;
    }

    /// <summary>Kills the queues whose timer has fired by <paramref name="now"/> (<c>ip_expire</c>, <c>nf_ct_frag6_expire</c>).</summary>
    public int ExpireDue(long now)
    {
        int n = 0;
        while (_timerHead >= 0 && now >= _queues[_timerHead].Deadline)
        {
            Kill(_timerHead);
            n++;
        }

        return n;
    }

    private long DeadlineFrom(long now) => now > long.MaxValue - _timeout ? long.MaxValue : now + _timeout;

    private void UnlinkTimer(int queue)
    {
        ref Queue q = ref _queues[queue];
        if (q.TimerPrev >= 0)
        {
            _queues[q.TimerPrev].TimerNext = q.TimerNext;
        }
        else
        {
            _timerHead = q.TimerNext;
        }

        if (q.TimerNext >= 0)
        {
            _queues[q.TimerNext].TimerPrev = q.TimerPrev;
        }
        else
        {
            _timerTail = q.TimerPrev;
        }

        q.TimerPrev = q.TimerNext = -1;
    }

    private int AllocateQueue()
    {
        if (_freeQueue >= 0)
        {
            int q = _freeQueue;
            _freeQueue = _queues[q].HashNext;
            return q;
        }

        if (_queueHighWater == _queues.Length)
        {
            if (_queues.Length >= _maxQueues)
            {
                return -1;
            }

            GrowQueues((int)Math.Min(_maxQueues, Math.Max(64L, _queues.Length * 2L)));
        }

        return _queueHighWater++;
    }

    // Only called with the free list empty: every slot below the high-water mark is in use.
    private void GrowQueues(int size)
    {
        Array.Resize(ref _queues, size);
        int buckets = (int)Math.Min(1 << 30, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)size));
        _buckets = new int[buckets];
        Array.Fill(_buckets, -1);
        for (int i = 0; i < _queueHighWater; i++)
        {
            int b = _queues[i].Key.GetHashCode() & (buckets - 1);
            _queues[i].HashNext = _buckets[b];
            _buckets[b] = i;
        }
    }

    private int AllocateFragment()
    {
        if (_freeFragment >= 0)
        {
            int r = _freeFragment;
            _freeFragment = _fragments[r].Next;
            return r;
        }

        if (_fragmentHighWater == _fragments.Length)
        {
            if (_fragments.Length >= _maxFragments)
            {
                return -1;
            }

            Array.Resize(ref _fragments, (int)Math.Min(_maxFragments, Math.Max(256L, _fragments.Length * 2L)));
        }

        return _fragmentHighWater++;
    }
}
