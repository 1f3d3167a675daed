using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Conntrack.Diagnostics;
using Conntrack.Extensions;
using Conntrack.Protocols;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack;

/// <summary>
/// A connection-tracking table: the analogue of one network namespace's <c>nf_conntrack</c>. Feed each
/// packet to <see cref="In(ReadOnlySpan{byte}, long, ref PacketState, ushort)"/> on its way in (the
/// kernel's <c>nf_conntrack_in</c> at PREROUTING) and, if you forward it, to
/// <see cref="Confirm(ReadOnlySpan{byte}, long, ref PacketState)"/> on its way out (<c>ipv4_confirm</c> /
/// <c>ipv6_confirm</c>). Safe to use from many threads at once: lookups take no lock, inserts and removals
/// take striped bucket locks.
/// </summary>
/// <remarks>
/// The engine reads no clock: every call carries the caller's monotonic timestamp in nanoseconds (the
/// capture's, the NIC's, or one <see cref="TimeProvider"/> reading per burst). Timeouts are deadlines
/// compared with those timestamps; expired entries are invisible to lookups and are removed by
/// <see cref="CollectGarbage(long, int)"/>.
/// </remarks>
public sealed partial class ConntrackTable : IDisposable
{
    /// <summary>The kernel's CONNTRACK_LOCKS: bucket locks are striped over this many spin locks.</summary>
    internal const int LockCount = 1024;

    internal readonly Settings Settings;
    internal readonly ConnectionStore Store;
    internal readonly EntryArray Entries;
    internal readonly ProtocolState[] Proto;
    internal readonly int[] Buckets;
    internal readonly uint BucketCount;
    internal readonly TupleHasher Hasher;
    internal readonly ExtensionSet Ext;

    private readonly PaddedLock[] _locks = new PaddedLock[LockCount];

    /// <summary>nf_conntrack_count: entries allocated and not yet released (unconfirmed, hashed, undelivered dying).</summary>
    private int _count;

    private int _hashedCount;

    private ThreadContext[] _contexts = [];
    private readonly Lock _contextsGate = new();

    [ThreadStatic]
    private static ThreadContext? t_context;

    private volatile bool _disposed;

    /// <summary>Creates a table with the given options (kernel defaults when null).</summary>
    public ConntrackTable(ConntrackOptions? options = null)
    {
        Settings = new Settings(options ?? new ConntrackOptions());
        // Room beyond nf_conntrack_max for removed entries between two reclaims and for those a thread still
        // holds (one per thread at most): 1/64 more, under 3 bytes per connection. The arrays are allocated
        // uninitialised and slots come from the free list first, so pages never used are never touched.
        int capacity = (int)Math.Min(1 << 30, Settings.MaxEntries + (long)Settings.MaxEntries / 64 + 256);
        Store = new ConnectionStore(capacity);
        Entries = Store.Entries;
        Proto = Store.Proto;
        BucketCount = (uint)Settings.Buckets;
        Buckets = GC.AllocateUninitializedArray<int>(Settings.Buckets, pinned: true);
        for (int i = 0; i < Buckets.Length; i++)
        {
            Buckets[i] = NullsMarker(i);
        }

        Hasher = Settings.Options.HashSeed is ulong seed ? TupleHasher.CreateWithSeed(seed) : TupleHasher.CreateRandom();
        Ext = new ExtensionSet(capacity, Settings.Accounting, Settings.Timestamps);
        Protocols = new ProtocolRegistry();
        InitHelpers();
        if (Settings.Defragmentation)
        {
            Defragmenter = new Defrag.Defragmenter(Settings.Options);
        }
    }

    /// <summary>IPv4/IPv6 reassembly in front of tracking, or null when turned off.</summary>
    internal readonly Defrag.Defragmenter? Defragmenter;

    /// <summary>The options this table runs with (a copy; changing it has no effect).</summary>
    public ConntrackOptions Options => Settings.Options.Clone();

    /// <summary>Layer-4 trackers: the built-in ones and any registered by the user.</summary>
    public ProtocolRegistry Protocols { get; }

    /// <summary>Confirmed connections currently in the table (expired ones not yet collected included).</summary>
    public int Count => Volatile.Read(ref _hashedCount);

    /// <summary>
    /// Bytes of memory per tracked connection when the table is full: the entry, its protocol state and the
    /// enabled extensions (with the share of the reclaim slack), and the bucket array's share.
    /// </summary>
    public double BytesPerConnection =>
        (double)(Unsafe.SizeOf<Connection>() + Unsafe.SizeOf<ProtocolState>() + Ext.BytesPerConnection
            + (Volatile.Read(ref _helperSlots) is null ? 0 : Unsafe.SizeOf<Extensions.HelperSlot>())
            + (Volatile.Read(ref _ecache) is null ? 0 : Unsafe.SizeOf<EventCacheSlot>()))
        * Store.Capacity / Settings.MaxEntries
        + 4.0 * Settings.Buckets / Settings.MaxEntries;

    /// <summary>The highest number of slots ever in use at once (the high-water mark of the store).</summary>
    public int SlotsInUse => Store.HighWater;

    /// <summary>A snapshot of the counters, summed over the threads that used the table.</summary>
    public ConntrackStatistics Statistics
    {
        get
        {
            var s = default(ConntrackStatistics);
            foreach (var c in Volatile.Read(ref _contexts))
            {
                c.Stats.AddTo(ref s);
            }

            s.EventsLost += Interlocked.Read(ref _eventsLost);
            s.Entries = Volatile.Read(ref _hashedCount);
            s.MaxEntries = Settings.MaxEntries;
            s.Buckets = Settings.Buckets;
            long unconfirmed = 0;
            foreach (var c in Volatile.Read(ref _contexts))
            {
                unconfirmed += Volatile.Read(ref c.UnconfirmedCount);
            }

            s.Unconfirmed = unconfirmed;
            s.Dying = Volatile.Read(ref _dyingCount) + Volatile.Read(ref _pendingDestroyCount);
            return s;
        }
    }

    // ---------------------------------------------------------------- thread contexts and epochs

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ThreadContext Enter()
    {
        if (_disposed)
        {
            ThrowDisposed();
        }

        var ctx = t_context;
        if (ctx is null || !ReferenceEquals(ctx.Table, this))
        {
            ctx = ContextForThisThread();
        }

        ctx.Depth++;
        return ctx;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Exit(ThreadContext ctx)
    {
        if (--ctx.Depth == 0)
        {
            Volatile.Write(ref ctx.Hazard, -1);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ThreadContext ContextForThisThread()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int threadId = Environment.CurrentManagedThreadId;
        lock (_contextsGate)
        {
            foreach (var c in _contexts)
            {
                if (c.ThreadId == threadId)
                {
                    t_context = c;
                    return c;
                }
            }

            var ctx = new ThreadContext(this, _contexts.Length) { ThreadId = threadId };
            var grown = new ThreadContext[_contexts.Length + 1];
            _contexts.CopyTo(grown, 0);
            grown[^1] = ctx;
            Volatile.Write(ref _contexts, grown);
            t_context = ctx;
            return ctx;
        }
    }

    internal ThreadContext[] Contexts => Volatile.Read(ref _contexts);

    /// <summary>
    /// Announces that this thread holds entry <paramref name="idx"/>. Callers then re-read what they checked:
    /// a remover marks an entry dying before its reclaim's process-wide barrier, so either the barrier makes this
    /// store visible to the reclaimer (which then leaves the entry alone) or the re-read sees the entry dying.
    /// This is the kernel's "take a reference, then re-check the tuple" (SLAB_TYPESAFE_BY_RCU) without an
    /// atomic instruction on the packet path.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Protect(ThreadContext ctx, int idx) => Volatile.Write(ref ctx.Hazard, idx);

    // ---------------------------------------------------------------- locks

    [StructLayout(LayoutKind.Explicit, Size = 64)]
    private struct PaddedLock
    {
        [FieldOffset(0)] public int State;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int NullsMarker(int bucket) => ~bucket;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int BucketOf(uint hash) => TupleHasher.Scale(hash, BucketCount);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void LockBucket(int bucket) => SpinLockInt.Enter(ref _locks[bucket % LockCount].State);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void UnlockBucket(int bucket) => SpinLockInt.Exit(ref _locks[bucket % LockCount].State);

    /// <summary>Locks the stripes of two buckets in a fixed order (lower stripe first), once if they share one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void LockPair(int a, int b)
    {
        int la = a % LockCount, lb = b % LockCount;
        if (la == lb)
        {
            SpinLockInt.Enter(ref _locks[la].State);
        }
        else if (la < lb)
        {
            SpinLockInt.Enter(ref _locks[la].State);
            SpinLockInt.Enter(ref _locks[lb].State);
        }
        else
        {
            SpinLockInt.Enter(ref _locks[lb].State);
            SpinLockInt.Enter(ref _locks[la].State);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void UnlockPair(int a, int b)
    {
        int la = a % LockCount, lb = b % LockCount;
        SpinLockInt.Exit(ref _locks[la].State);
        if (la != lb)
        {
            SpinLockInt.Exit(ref _locks[lb].State);
        }
    }

    /// <summary>Releases the table. Calls after disposal throw <see cref="ObjectDisposedException"/>, on every thread.</summary>
    public void Dispose()
    {
        _disposed = true;
        if (ReferenceEquals(t_context?.Table, this))
        {
            t_context = null;
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowDisposed() => throw new ObjectDisposedException(nameof(ConntrackTable));
}
