using System.Runtime.CompilerServices;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack;

// The hash table: buckets of singly linked chains of tuple-hash nodes ending in nulls markers
// (hlist_nulls). Readers walk without locks; writers hold the stripe lock of every bucket they change.
public sealed partial class ConntrackTable
{
    /// <summary>Link value of a node that is in no chain (a list end that no bucket's marker equals).</summary>
    internal const int UnhashedMarker = int.MinValue;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool IsExpired(long deadline, long now) => deadline - now <= 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref int LinkOf(int node) => ref Entries.LinkOf(node);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref ConntrackTuple TupleOf(int node) => ref Entries.TupleOf(node);

    /// <summary>
    /// ____nf_conntrack_find() and __nf_conntrack_find_get(): walks the tuple's bucket without a lock and
    /// returns the node whose tuple and zone match, or -1. A match is protected (the thread's hazard pointer)
    /// and checked again, since entries are reused as soon as no thread holds them: the kernel's
    /// "re-check key after refcount". A confirmed entry past its deadline is treated as gone and killed on the
    /// way, as nf_ct_gc_expired() does. If the walk ends on another bucket's nulls marker, an entry it followed
    /// was removed and reused in another chain under it, so the lookup restarts (search_restart).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int Find(in ConntrackTuple tuple, ushort zone, uint hash, long now, ThreadContext ctx)
    {
        int bucket = BucketOf(hash);
    restart:
        int node = Volatile.Read(ref Buckets[bucket]);
        while (node >= 0)
        {
            ref Connection c = ref Entries[node >> 1];
            if (ConntrackTuple.Equals(in EntryArray.TupleOf(ref c, node), in tuple) && c.Zone == zone)
            {
                // Only confirmed, live entries match (nf_ct_key_equal checks IPS_CONFIRMED; an entry being
                // removed is already marked dying). Protect, then check everything again.
                Protect(ctx, node >> 1);
                uint status = Volatile.Read(ref c.Status);
                if ((status & ((uint)ConnectionStatus.Confirmed | (uint)ConnectionStatus.Dying)) == (uint)ConnectionStatus.Confirmed
                    && ConntrackTuple.Equals(in EntryArray.TupleOf(ref c, node), in tuple) && c.Zone == zone)
                {
                    if (!IsExpired(Volatile.Read(ref c.Timeout), now))
                    {
                        return node;
                    }

                    KillExpired(node >> 1, now, ctx);
                }
            }

            node = Volatile.Read(ref EntryArray.LinkOf(ref c, node));
        }

        if (node != NullsMarker(bucket))
        {
            ctx.Stats.SearchRestart++;
            goto restart;
        }

        return -1;
    }

    /// <summary>
    /// <see cref="Find"/> given a node that an unlocked read suggests for this tuple a moment ago (the burst walk's
    /// find, or the head of the tuple's bucket): the node is protected and checked exactly as Find checks a match,
    /// and taken if it passes. A live confirmed tuple is in
    /// the table once, so a node that passes is the one Find would return; otherwise (removed, reused, expired)
    /// this is Find.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int FindFrom(int node, in ConntrackTuple tuple, ushort zone, uint hash, long now, ThreadContext ctx)
    {
        ref Connection c = ref Entries[node >> 1];
        Protect(ctx, node >> 1);
        uint status = Volatile.Read(ref c.Status);
        if ((status & ((uint)ConnectionStatus.Confirmed | (uint)ConnectionStatus.Dying)) == (uint)ConnectionStatus.Confirmed
            && ConntrackTuple.Equals(in EntryArray.TupleOf(ref c, node), in tuple) && c.Zone == zone
            && !IsExpired(Volatile.Read(ref c.Timeout), now))
        {
            return node;
        }

        return FindOutOfLine(in tuple, zone, hash, now, ctx);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private int FindOutOfLine(in ConntrackTuple tuple, ushort zone, uint hash, long now, ThreadContext ctx) =>
        Find(in tuple, zone, hash, now, ctx);

    /// <summary>Links both nodes of an entry at the heads of their buckets. Caller holds both stripe locks.</summary>
    private void LinkBoth(int index, int bucketOriginal, int bucketReply)
    {
        ref Connection c = ref Entries[index];
        c.NextOriginal = Buckets[bucketOriginal];
        Volatile.Write(ref Buckets[bucketOriginal], index << 1);
        c.NextReply = Buckets[bucketReply];
        Volatile.Write(ref Buckets[bucketReply], (index << 1) | 1);
    }

    /// <summary>Links only the reply node (a clash loser, see nf_ct_resolve_clash_harder). Caller holds the lock.</summary>
    private void LinkReplyOnly(int index, int bucketReply)
    {
        ref Connection c = ref Entries[index];
        c.NextOriginal = UnhashedMarker;
        c.NextReply = Buckets[bucketReply];
        Volatile.Write(ref Buckets[bucketReply], (index << 1) | 1);
    }

    /// <summary>
    /// Removes a node from its bucket's chain. The node keeps its own link, so a reader standing on it
    /// continues along the chain it was in (hlist_nulls_del_rcu). Caller holds the stripe lock.
    /// </summary>
    private bool Unlink(int node, int bucket)
    {
        ref int link = ref Buckets[bucket];
        int n = link;
        while (n >= 0)
        {
            if (n == node)
            {
                Volatile.Write(ref link, LinkOf(node));
                return true;
            }

            link = ref LinkOf(n);
            n = link;
        }

        return false;
    }

    /// <summary>
    /// Looks for a confirmed entry with this tuple in the bucket, as the confirm path does under the lock
    /// (nf_ct_key_equal); counts the chain so that an over-long chain can be refused. Returns the node, -1
    /// when absent, or -2 when the chain is longer than <paramref name="maxChain"/>.
    /// </summary>
    private int FindLocked(in ConntrackTuple tuple, ushort zone, int bucket, int maxChain)
    {
        int chain = 0;
        int node = Buckets[bucket];
        while (node >= 0)
        {
            ref Connection c = ref Entries[node >> 1];
            // Confirmed and not dying: an entry whose remover is waiting for this lock is as good as gone, so a
            // new one may take its place (and a lost race must not merge into it).
            if (ConntrackTuple.Equals(in EntryArray.TupleOf(ref c, node), in tuple) && c.Zone == zone
                && (Volatile.Read(ref c.Status) & ((uint)ConnectionStatus.Confirmed | (uint)ConnectionStatus.Dying)) == (uint)ConnectionStatus.Confirmed)
            {
                return node;
            }

            if (chain++ > maxChain)
            {
                return -2;
            }

            node = EntryArray.LinkOf(ref c, node);
        }

        return -1;
    }
}
