using Conntrack.Extensions;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack.Expectations;

/// <summary>Flags of an expectation (NF_CT_EXPECT_*).</summary>
[Flags]
public enum ExpectationFlags : byte
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>Serves any number of connections instead of one.</summary>
    Permanent = 1,
    /// <summary>Present but not matched yet (a helper activates it later).</summary>
    Inactive = 2,
    /// <summary>Created from user space (ctnetlink).</summary>
    Userspace = 4,
}

/// <summary>One expectation: the first packet a related connection must have, with a wildcard mask on its source.</summary>
internal struct Expectation
{
    /// <summary>The expected original tuple; fields whose mask is zero are zero.</summary>
    public ConntrackTuple Tuple;
    public InetAddress MaskSource;
    public ushort MaskSourcePort;
    public ushort Zone;
    public ExpectationFlags Flags;
    public byte Class;
    public bool InUse;
    public int HelperId;
    /// <summary>The helper the expected connection gets (exp->assign_helper), 0 for none.</summary>
    public int AssignHelperId;
    public int MasterIndex;
    public int MasterGeneration;
    /// <summary>Absolute deadline in caller nanoseconds.</summary>
    public long Deadline;
    /// <summary>Next in the hash chain (by destination), or -1.</summary>
    public int NextInBucket;
    /// <summary>Next of the same master, newest first, or -1.</summary>
    public int NextOfMaster;
    public int Generation;
}

/// <summary>
/// The expectation table (nf_conntrack_expect.c): a fixed pool of <c>nf_conntrack_expect_max</c> entries,
/// hashed by their destination (the only part never wildcarded), each also on its master's list so that
/// they die with it. One lock guards it all, as the kernel's <c>nf_conntrack_expect_lock</c>; the
/// new-connection path skips the table entirely while it is empty.
/// </summary>
internal sealed class ExpectationTable
{
    public readonly Expectation[] Items;
    private readonly int[] _buckets;
    private readonly ulong _seed;
    private readonly int _max;
    private int _freeHead;
    private int _count;
    public readonly Lock Gate = new();

    public ExpectationTable(int max, int buckets, ulong seed)
    {
        _max = max;
        Items = new Expectation[Math.Max(1, max)];
        for (int i = 0; i < Items.Length; i++)
        {
            Items[i].NextInBucket = i + 1 < Items.Length ? i + 1 : -1;
        }

        _freeHead = max > 0 ? 0 : -1;
        _buckets = new int[Math.Max(1, buckets)];
        Array.Fill(_buckets, -1);
        _seed = seed;
    }

    /// <summary>Expectations in the table (read without the lock by the packet path).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>nf_ct_expect_dst_hash(): the destination address, port and protocol.</summary>
    private int BucketOf(in ConntrackTuple t)
    {
        ulong h = t.Destination.Word0 ^ (t.Destination.Word1 * 0x9E3779B97F4A7C15UL) ^ ((ulong)t.DestinationId << 8 | t.ProtocolField) ^ _seed;
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9UL;
        h ^= h >> 32;
        return (int)(h % (ulong)_buckets.Length);
    }

    /// <summary>nf_ct_tuple_mask_cmp(): the source under the mask, the destination and protocols exactly.</summary>
    public static bool Matches(in Expectation e, in ConntrackTuple t, ushort zone) =>
        e.Zone == zone
        && e.Tuple.ProtocolField == t.ProtocolField
        && e.Tuple.IpVersionField == t.IpVersionField
        && e.Tuple.Destination == t.Destination
        && e.Tuple.DestinationId == t.DestinationId
        && (t.Source.Word0 & e.MaskSource.Word0) == e.Tuple.Source.Word0
        && (t.Source.Word1 & e.MaskSource.Word1) == e.Tuple.Source.Word1
        && (t.SourceId & e.MaskSourcePort) == e.Tuple.SourceId;

    /// <summary>expect_matches(): same tuple and same mask.</summary>
    private static bool SameAs(in Expectation a, in Expectation b) =>
        a.Zone == b.Zone && ConntrackTuple.Equals(in a.Tuple, in b.Tuple)
        && a.MaskSource == b.MaskSource && a.MaskSourcePort == b.MaskSourcePort;

    /// <summary>expect_clash(): equal under the intersection of both masks.</summary>
    private static bool Clashes(in Expectation a, in Expectation b)
    {
        if (a.Zone != b.Zone || a.Tuple.ProtocolField != b.Tuple.ProtocolField || a.Tuple.IpVersionField != b.Tuple.IpVersionField
            || a.Tuple.Destination != b.Tuple.Destination || a.Tuple.DestinationId != b.Tuple.DestinationId)
        {
            return false;
        }

        ulong m0 = a.MaskSource.Word0 & b.MaskSource.Word0, m1 = a.MaskSource.Word1 & b.MaskSource.Word1;
        ushort mp = (ushort)(a.MaskSourcePort & b.MaskSourcePort);
        return (a.Tuple.Source.Word0 & m0) == (b.Tuple.Source.Word0 & m0)
            && (a.Tuple.Source.Word1 & m1) == (b.Tuple.Source.Word1 & m1)
            && (a.Tuple.SourceId & mp) == (b.Tuple.SourceId & mp);
    }

    /// <summary>Walks a bucket; caller holds <see cref="Gate"/>.</summary>
    public int FirstInBucket(in ConntrackTuple t) => _buckets[BucketOf(t)];

    /// <summary>
    /// __nf_ct_expect_check() and nf_ct_expect_insert(): an identical expectation of the same master and class
    /// is replaced, of the same master and another class refuses the new one (EALREADY); one that overlaps it
    /// (another master's identical one included) refuses it (EBUSY); the master's per-class limit evicts its oldest; the global limit refuses (EMFILE).
    /// Caller holds <see cref="Gate"/>. Returns the slot or a negative <see cref="Expectations.ExpectResult"/>.
    /// </summary>
    public ExpectResult TryInsert(ref Expectation candidate, long now, int maxExpectedForClass, ref HelperSlot master,
        Action<int> unlinkCallback, out int slot, bool skipMaster = false)
    {
        slot = -1;
        int b = BucketOf(candidate.Tuple);
        for (int i = _buckets[b]; i >= 0;)
        {
            int next = Items[i].NextInBucket;
            ref Expectation e = ref Items[i];
            if (e.Deadline - now <= 0)
            {
                unlinkCallback(i);
            }
            else if ((skipMaster || (e.MasterIndex == candidate.MasterIndex && e.MasterGeneration == candidate.MasterGeneration)) && SameAs(e, candidate))
            {
                if (e.Class != candidate.Class || e.MasterIndex != candidate.MasterIndex || e.MasterGeneration != candidate.MasterGeneration)
                {
                    return ExpectResult.AlreadyExists;
                }

                unlinkCallback(i);
                break;
            }
            else if (Clashes(e, candidate))
            {
                return ExpectResult.Clash;
            }

            i = next;
        }

        if (maxExpectedForClass > 0 && master.Expecting(candidate.Class) >= maxExpectedForClass)
        {
            // evict_oldest_expect(): drop expired ones of this master, then its oldest of the class if still full.
            int last = -1;
            for (int i = master.ExpectationsHead; i >= 0;)
            {
                int next = Items[i].NextOfMaster;
                if (Items[i].Deadline - now <= 0)
                {
                    unlinkCallback(i);
                }
                else if (Items[i].Class == candidate.Class)
                {
                    last = i;
                }

                i = next;
            }

            if (last >= 0 && master.Expecting(candidate.Class) >= maxExpectedForClass)
            {
                unlinkCallback(last);
            }
        }

        if (_count >= _max || _freeHead < 0)
        {
            return ExpectResult.TableFull;
        }

        slot = _freeHead;
        _freeHead = Items[slot].NextInBucket;
        int gen = Items[slot].Generation + 1;
        Items[slot] = candidate;
        Items[slot].Generation = gen;
        Items[slot].InUse = true;
        Items[slot].NextInBucket = _buckets[b];
        _buckets[b] = slot;
        Items[slot].NextOfMaster = master.ExpectationsHead;
        master.ExpectationsHead = slot;
        master.AddExpecting(candidate.Class, 1);
        Volatile.Write(ref _count, _count + 1);
        return ExpectResult.Created;
    }

    /// <summary>Unlinks an expectation from its bucket and its master's list. Caller holds <see cref="Gate"/>.</summary>
    public void Remove(int slot, ref HelperSlot master)
    {
        ref Expectation e = ref Items[slot];
        if (!e.InUse)
        {
            return;
        }

        int b = BucketOf(e.Tuple);
        ref int link = ref _buckets[b];
        while (link >= 0 && link != slot)
        {
            link = ref Items[link].NextInBucket;
        }

        if (link == slot)
        {
            link = e.NextInBucket;
        }

        ref int mlink = ref master.ExpectationsHead;
        while (mlink >= 0 && mlink != slot)
        {
            mlink = ref Items[mlink].NextOfMaster;
        }

        if (mlink == slot)
        {
            mlink = e.NextOfMaster;
            master.AddExpecting(e.Class, -1);
        }

        e.InUse = false;
        e.NextInBucket = _freeHead;
        _freeHead = slot;
        Volatile.Write(ref _count, _count - 1);
    }
}

/// <summary>What creating an expectation did (nf_ct_expect_related's return codes).</summary>
public enum ExpectResult
{
    /// <summary>Created (an identical one of the same master was replaced).</summary>
    Created = 0,
    /// <summary>EALREADY: the same expectation exists for another master or class.</summary>
    AlreadyExists = 1,
    /// <summary>EBUSY: it overlaps an existing expectation.</summary>
    Clash = 2,
    /// <summary>EMFILE: <c>nf_conntrack_expect_max</c> reached.</summary>
    TableFull = 3,
    /// <summary>ESHUTDOWN: the master has no helper (or is gone).</summary>
    NoHelper = 4,
}
