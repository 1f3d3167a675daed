using System.Runtime.CompilerServices;

namespace Conntrack.Table;

/// <summary>
/// The connections' memory (the analogue of the <c>nf_conntrack</c> kmem_cache): pinned arrays of structs
/// addressed by index, allocated once for the table's capacity. Slots are handed out by bumping a high-water
/// mark and recycled through a free list, so pages of a large, mostly empty table are never touched.
/// Nothing here touches the GC heap after construction.
/// </summary>
internal sealed class ConnectionStore
{
    public readonly EntryArray Entries;
    public readonly ProtocolState[] Proto;
    public readonly int Capacity;

    private int _highWater;
    private int _freeHead = -1;
    private int _freeCount;
    private SpinLockInt _freeLock;

    public ConnectionStore(int capacity)
    {
        Capacity = capacity;
        // Uninitialized: fresh slots are initialised when first handed out, so untouched pages stay
        // uncommitted; pinned: the batch path prefetches by address.
        Entries = new EntryArray(capacity);
        Proto = GC.AllocateUninitializedArray<ProtocolState>(capacity, pinned: true);
    }

    /// <summary>
    /// Slots ever handed out (the high-water mark). Every slot below it has a defined <see cref="Connection.Kind"/>:
    /// the mark moves only after the slot's first initialisation, so a sweep by slot index never reads a slot's
    /// uninitialised memory.
    /// </summary>
    public int HighWater => Volatile.Read(ref _highWater);

    public int FreeCount => Volatile.Read(ref _freeCount);

    /// <summary>Takes a slot, or returns -1 when every slot is in use or waiting to be reclaimed.</summary>
    public int TryAllocate()
    {
        if (Volatile.Read(ref _freeHead) >= 0)
        {
            _freeLock.Enter();
            int idx = _freeHead;
            if (idx >= 0)
            {
                int next = Entries[idx].ListLink;
                _freeHead = next;
                _freeCount--;
                _freeLock.Exit();
                if (next >= 0)
                {
                    // The next allocation reads that slot's link and then writes both its lines (and an atomic
                    // on its status waits for the line): start both misses now.
                    Entries.Prefetch(next);
                    Entries.Prefetch(next, EntryArray.HalfSize);
                }

                return idx;
            }

            _freeLock.Exit();
        }

        return TryAllocateFresh();
    }

    /// <summary>A never-used slot above the high-water mark, initialised before the mark moves past it.</summary>
    private int TryAllocateFresh()
    {
        if (Volatile.Read(ref _highWater) >= Capacity)
        {
            return -1;
        }

        // Under the lock, so that the mark is published only once the slot below it is initialised (a lock-free
        // bump would leave a moment where a sweep sees the slot counted but still holding old memory). Only
        // taken while the table grows into slots it never used.
        _freeLock.Enter();
        int hw = _highWater;
        if (hw >= Capacity)
        {
            _freeLock.Exit();
            return -1;
        }

        // First use of the slot: give it a defined generation so handles start at 1.
        Entries[hw].Generation = 0;
        Entries[hw].Kind = EntryKind.Free;
        Volatile.Write(ref _highWater, hw + 1);
        _freeLock.Exit();
        return hw;
    }

    /// <summary>Returns a slot that no reader can reach any more.</summary>
    public void Free(int idx)
    {
        ref Connection c = ref Entries[idx];
        c.Kind = EntryKind.Free;
        _freeLock.Enter();
        c.ListLink = _freeHead;
        _freeHead = idx;
        _freeCount++;
        _freeLock.Exit();
    }

    /// <summary>Returns a chain of slots linked through <see cref="Connection.ListLink"/> in one lock hold.</summary>
    public void FreeChain(int head, int tail, int count)
    {
        _freeLock.Enter();
        Entries[tail].ListLink = _freeHead;
        _freeHead = head;
        _freeCount += count;
        _freeLock.Exit();
    }
}

/// <summary>A test-and-set spin lock in an int: no allocation, bounded spinning before yielding.</summary>
internal struct SpinLockInt
{
    private int _state;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Enter()
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            EnterContended();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EnterContended()
    {
        var spin = default(SpinWait);
        while (true)
        {
            if (Volatile.Read(ref _state) == 0 && Interlocked.CompareExchange(ref _state, 1, 0) == 0)
            {
                return;
            }

            // SpinWait escalates from busy spinning to Thread.Yield and Sleep(0)/Sleep(1): bounded spinning.
            spin.SpinOnce();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Exit() => Volatile.Write(ref _state, 0);

    /// <summary>Spin lock over an int field elsewhere (the per-connection lock).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Enter(ref int state)
    {
        if (Interlocked.CompareExchange(ref state, 1, 0) != 0)
        {
            EnterContended(ref state);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void EnterContended(ref int state)
    {
        var spin = default(SpinWait);
        while (Volatile.Read(ref state) != 0 || Interlocked.CompareExchange(ref state, 1, 0) != 0)
        {
            spin.SpinOnce();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Exit(ref int state) => Volatile.Write(ref state, 0);
}
