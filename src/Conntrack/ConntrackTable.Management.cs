using System.Collections;
using System.Runtime.CompilerServices;
using Conntrack.Protocols;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack;

// Management: lookups by handle and tuple, delete, flush, enumeration (the conntrack -L / -D / -F side).
public sealed partial class ConntrackTable
{
    /// <summary>
    /// Reads the connection a handle names. False when it has been removed (or its slot reused), or has
    /// expired at <paramref name="now"/>.
    /// </summary>
    public bool TryGetInfo(ConnectionHandle handle, long now, out ConnectionInfo info)
    {
        info = default;
        if (!handle.IsValid || (uint)handle.Index >= (uint)Store.HighWater)
        {
            return false;
        }

        var ctx = Enter();
        try
        {
            ref Connection c = ref Entries[handle.Index];
            if (!IsLiveFor(ref c, handle, ctx))
            {
                return false;
            }

            uint status = Volatile.Read(ref c.Status);
            if ((status & (uint)ConnectionStatus.Dying) != 0
                || ((status & (uint)ConnectionStatus.Confirmed) != 0 && IsExpired(c.Timeout, now)))
            {
                return false;
            }

            info = Snapshot(handle.Index, now);
            return Volatile.Read(ref c.Generation) == handle.Generation;
        }
        finally
        {
            Exit(ctx);
        }
    }

    /// <summary>
    /// Whether a handle still names its connection, for a caller inside the table. The entry is protected
    /// first, so a hashed entry that passes cannot be reused until the caller leaves; an unconfirmed one
    /// belongs to the thread that created it and is freed at once when released, so only that thread may use
    /// its handle.
    /// </summary>
    private bool IsLiveFor(ref Connection c, ConnectionHandle handle, ThreadContext ctx)
    {
        Protect(ctx, handle.Index);
        if (Volatile.Read(ref c.Generation) != handle.Generation)
        {
            return false;
        }

        return (EntryKind)Volatile.Read(ref Unsafe.As<EntryKind, byte>(ref c.Kind)) switch
        {
            EntryKind.Hashed => true,
            // Only this thread writes its own tag, so reading it means the entry is this thread's (the
            // generation check after it rules out an earlier incarnation).
            EntryKind.Unconfirmed => Volatile.Read(ref c.ListLink) == ctx.OwnerTag,
            _ => false,
        } && Volatile.Read(ref c.Generation) == handle.Generation;
    }

    /// <summary>Finds the live, confirmed connection that has <paramref name="tuple"/> in either direction.</summary>
    public bool TryGet(in ConntrackTuple tuple, long now, out ConnectionInfo info, ushort zone = 0)
    {
        var ctx = Enter();
        try
        {
            int node = Find(in tuple, zone, Hasher.Hash(in tuple, zone), now, ctx);
            if (node < 0)
            {
                info = default;
                return false;
            }

            info = Snapshot(node >> 1, now);
            return true;
        }
        finally
        {
            Exit(ctx);
        }
    }

    /// <summary>Sets a connection's mark (<c>ct mark set</c>; an expected connection inherits its master's). Raises a MARK event.</summary>
    public bool SetMark(ConnectionHandle handle, uint mark)
    {
        if (!handle.IsValid || (uint)handle.Index >= (uint)Store.HighWater)
        {
            return false;
        }

        var ctx = Enter();
        try
        {
            ref Connection c = ref Entries[handle.Index];
            if (!IsLiveFor(ref c, handle, ctx))
            {
                return false;
            }

            if (Volatile.Read(ref c.Mark) != mark)
            {
                Volatile.Write(ref c.Mark, mark);
                CacheEvent(handle.Index, Events.ConntrackEventType.Mark);
            }

            return true;
        }
        finally
        {
            Exit(ctx);
        }
    }

    /// <summary>Removes a connection (<c>conntrack -D</c>). False if it was already gone.</summary>
    public bool Delete(ConnectionHandle handle, long now)
    {
        if (!handle.IsValid || (uint)handle.Index >= (uint)Store.HighWater)
        {
            return false;
        }

        var ctx = Enter();
        try
        {
            ref Connection c = ref Entries[handle.Index];
            return IsLiveFor(ref c, handle, ctx) && Kill(handle.Index, now, ctx);
        }
        finally
        {
            Exit(ctx);
        }
    }

    /// <summary>Removes the connection with this tuple in either direction. False if there was none.</summary>
    public bool Delete(in ConntrackTuple tuple, long now, ushort zone = 0)
    {
        var ctx = Enter();
        try
        {
            int node = Find(in tuple, zone, Hasher.Hash(in tuple, zone), now, ctx);
            return node >= 0 && Kill(node >> 1, now, ctx);
        }
        finally
        {
            Exit(ctx);
        }
    }

    /// <summary>
    /// Removes every connection (<c>conntrack -F</c>). Unconfirmed ones are marked so that their
    /// confirmation fails, as in the kernel. Returns the number of confirmed connections removed.
    /// </summary>
    public int Flush(long now)
    {
        int removed = 0;
        var ctx = Enter();
        try
        {
            for (int b = 0; b < Buckets.Length; b++)
            {
                int node = Volatile.Read(ref Buckets[b]);
                while (node >= 0)
                {
                    int next = Volatile.Read(ref LinkOf(node));
                    Protect(ctx, node >> 1);
                    if (Kill(node >> 1, now, ctx))
                    {
                        removed++;
                    }

                    node = next;
                }
            }

            foreach (var owner in Contexts)
            {
                SpinLockInt.Enter(ref owner.UnconfirmedLock);
                for (int idx = owner.UnconfirmedHead; idx >= 0; idx = Entries[idx].NextOriginal)
                {
                    Interlocked.Or(ref Entries[idx].Status, (uint)ConnectionStatus.Dying);
                }

                SpinLockInt.Exit(ref owner.UnconfirmedLock);
            }
        }
        finally
        {
            Exit(ctx);
        }

        Reclaim();
        return removed;
    }

    /// <summary>
    /// The confirmed, live connections at <paramref name="now"/>, in bucket order, as a struct enumerator
    /// (no allocation). Concurrent changes may be missed or seen; each connection appears at most once per
    /// pass unless it is re-created during it.
    /// </summary>
    public Enumerable GetConnections(long now) => new(this, now);

    /// <summary>A snapshot of every live confirmed connection (allocates a list; for tools and tests).</summary>
    public List<ConnectionInfo> Snapshot(long now)
    {
        var list = new List<ConnectionInfo>(Count);
        foreach (var ci in GetConnections(now))
        {
            list.Add(ci);
        }

        return list;
    }

    internal ConnectionInfo Snapshot(int idx, long now)
    {
        ref Connection c = ref Entries[idx];
        uint status = Volatile.Read(ref c.Status);
        long deadline = Volatile.Read(ref c.Timeout);
        bool confirmed = (status & (uint)ConnectionStatus.Confirmed) != 0;
        byte proto = c.Original.ProtocolField;
        return new ConnectionInfo
        {
            Handle = new ConnectionHandle(idx, c.Generation),
            Original = c.Original,
            Reply = c.Reply,
            Status = (ConnectionStatus)status,
            ProtocolState = c.ProtoState,
            StateName = L4Dispatch.StateName(this, proto, c.ProtoState),
            ProtocolName = Protocols.NameOf(proto),
            Zone = c.Zone,
            Mark = c.Mark,
            Deadline = deadline,
            RemainingNs = confirmed ? Math.Max(0, deadline - now) : deadline,
            Accounting = Ext.Accounting is { } a ? a.At(idx) : null,
            Timestamps = Ext.Timestamps is { } t ? t.At(idx) : null,
            HelperName = HelperNameOf(idx),
        };
    }

    /// <summary>Enumerates a table's live connections (see <see cref="GetConnections"/>).</summary>
    public readonly struct Enumerable : IEnumerable<ConnectionInfo>
    {
        private readonly ConntrackTable _table;
        private readonly long _now;

        internal Enumerable(ConntrackTable table, long now)
        {
            _table = table;
            _now = now;
        }

        /// <summary>The struct enumerator.</summary>
        public Enumerator GetEnumerator() => new(_table, _now);

        IEnumerator<ConnectionInfo> IEnumerable<ConnectionInfo>.GetEnumerator() => GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>
    /// Walks the buckets and yields each confirmed entry once, through its original-direction node. Each bucket
    /// is read whole first (a chain ending on another bucket's marker is read again; entries reached through a
    /// reused one are taken only in their own bucket and once), then its entries are handed out one by one: an
    /// entry removed and reused while the caller works on earlier ones cannot lead the walk into another chain.
    /// </summary>
    public struct Enumerator : IEnumerator<ConnectionInfo>
    {
        private readonly ConntrackTable _table;
        private readonly long _now;
        private int _bucket;
        private List<ConnectionInfo>? _batch;
        private int _position;
        private ConnectionInfo _current;

        internal Enumerator(ConntrackTable table, long now)
        {
            _table = table;
            _now = now;
            _bucket = -1;
            _batch = null;
            _position = 0;
            _current = default;
        }

        /// <inheritdoc />
        public readonly ConnectionInfo Current => _current;

        readonly object IEnumerator.Current => _current;

        /// <inheritdoc />
        public bool MoveNext()
        {
            _batch ??= [];
            while (_position >= _batch.Count)
            {
                if (++_bucket >= _table.Buckets.Length)
                {
                    return false;
                }

                _table.ReadBucket(_bucket, _now, _batch);
                _position = 0;
            }

            _current = _batch[_position++];
            return true;
        }

        /// <inheritdoc />
        public void Reset()
        {
            _bucket = -1;
            _batch?.Clear();
            _position = 0;
        }

        /// <inheritdoc />
        public readonly void Dispose()
        {
        }
    }

    private static bool Holds(List<ConnectionInfo> batch, int idx)
    {
        foreach (var ci in batch)
        {
            if (ci.Handle.Index == idx)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Snapshots the live confirmed entries whose original node is in <paramref name="bucket"/>.</summary>
    private void ReadBucket(int bucket, long now, List<ConnectionInfo> into)
    {
        into.Clear();
        var ctx = Enter();
        try
        {
        restart:
            int node = Volatile.Read(ref Buckets[bucket]);
            while (node >= 0)
            {
                if ((node & 1) == 0)
                {
                    ref Connection c = ref Entries[node >> 1];
                    Protect(ctx, node >> 1);
                    uint status = Volatile.Read(ref c.Status);
                    if ((status & ((uint)ConnectionStatus.Confirmed | (uint)ConnectionStatus.Dying)) == (uint)ConnectionStatus.Confirmed
                        && !IsExpired(Volatile.Read(ref c.Timeout), now)
                        && BucketOf(Hasher.Hash(in c.Original, c.Zone)) == bucket
                        && !Holds(into, node >> 1))
                    {
                        // Only one entry is protected at a time, so the link just followed may have led to an entry
                        // removed and reused meanwhile: its chain either ends on another bucket's marker (the walk
                        // starts again) or comes back into this one, past entries already taken. Taking an entry
                        // only in its own bucket and only once is what keeps a pass free of repeats.
                        into.Add(Snapshot(node >> 1, now));
                    }
                }

                node = Volatile.Read(ref LinkOf(node));
            }

            if (node != NullsMarker(bucket))
            {
                ctx.Stats.SearchRestart++;
                into.Clear();
                goto restart;
            }
        }
        finally
        {
            Exit(ctx);
        }
    }
}
