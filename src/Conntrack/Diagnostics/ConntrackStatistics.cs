using System.Runtime.InteropServices;

namespace Conntrack.Diagnostics;

/// <summary>
/// Per-thread event counters with the kernel's names (<c>struct ip_conntrack_stat</c>, shown in
/// <c>/proc/net/stat/nf_conntrack</c>). Each thread increments its own copy without atomics; readers sum.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct StatCounters
{
    public long Found;
    public long Invalid;
    public long Insert;
    public long InsertFailed;
    public long ClashResolve;
    public long Drop;
    public long EarlyDrop;
    public long Error;
    public long RelatedIcmpErrors;
    public long ExpectNew;
    public long ExpectCreate;
    public long ExpectDelete;
    public long SearchRestart;
    public long ChainTooLong;
    public long New;
    public long IpInputDrop;
    public long Untracked;
    public long EventsLost;

    public void AddTo(ref ConntrackStatistics s)
    {
        s.Found += Volatile.Read(ref Found);
        s.Invalid += Volatile.Read(ref Invalid);
        s.Insert += Volatile.Read(ref Insert);
        s.InsertFailed += Volatile.Read(ref InsertFailed);
        s.ClashResolve += Volatile.Read(ref ClashResolve);
        s.Drop += Volatile.Read(ref Drop);
        s.EarlyDrop += Volatile.Read(ref EarlyDrop);
        s.Error += Volatile.Read(ref Error);
        s.RelatedIcmpErrors += Volatile.Read(ref RelatedIcmpErrors);
        s.ExpectNew += Volatile.Read(ref ExpectNew);
        s.ExpectCreate += Volatile.Read(ref ExpectCreate);
        s.ExpectDelete += Volatile.Read(ref ExpectDelete);
        s.SearchRestart += Volatile.Read(ref SearchRestart);
        s.ChainTooLong += Volatile.Read(ref ChainTooLong);
        s.New += Volatile.Read(ref New);
        s.IpInputDrop += Volatile.Read(ref IpInputDrop);
        s.Untracked += Volatile.Read(ref Untracked);
        s.EventsLost += Volatile.Read(ref EventsLost);
    }
}

/// <summary>
/// A snapshot of a table's statistics. Counter names follow the kernel's <c>/proc/net/stat/nf_conntrack</c>
/// columns; <see cref="Entries"/>, <see cref="Unconfirmed"/>, <see cref="Dying"/> and
/// <see cref="MaxEntries"/> describe the table itself.
/// </summary>
public struct ConntrackStatistics
{
    /// <summary>Confirmed connections in the table (<c>nf_conntrack_count</c> minus unconfirmed ones).</summary>
    public long Entries { get; internal set; }
    /// <summary>Connections created by <c>In</c> and not yet confirmed or released.</summary>
    public long Unconfirmed { get; internal set; }
    /// <summary>Removed connections waiting for their destroy event or for readers to move on.</summary>
    public long Dying { get; internal set; }
    /// <summary>The table's limit (<c>nf_conntrack_max</c>).</summary>
    public long MaxEntries { get; internal set; }
    /// <summary>Hash buckets (<c>nf_conntrack_buckets</c>).</summary>
    public long Buckets { get; internal set; }
    /// <summary><c>found</c>: a lookup found an entry where an insert wanted to go.</summary>
    public long Found { get; internal set; }
    /// <summary><c>invalid</c>: packets that got no connection.</summary>
    public long Invalid { get; internal set; }
    /// <summary><c>insert</c>: connections inserted through the management interface (the kernel counts only ctnetlink inserts here, not confirmations).</summary>
    public long Insert { get; internal set; }
    /// <summary><c>insert_failed</c>: confirmations refused (lost race without resolution, chain too long, dying).</summary>
    public long InsertFailed { get; internal set; }
    /// <summary><c>clash_resolve</c>: lost insert races resolved without dropping the packet.</summary>
    public long ClashResolve { get; internal set; }
    /// <summary><c>drop</c>: packets dropped by conntrack (table full, failed insert).</summary>
    public long Drop { get; internal set; }
    /// <summary><c>early_drop</c>: unassured connections evicted to make room.</summary>
    public long EarlyDrop { get; internal set; }
    /// <summary><c>error</c>: ICMP/ICMPv6 packets conntrack's error handler rejected.</summary>
    public long Error { get; internal set; }
    /// <summary>ICMP/ICMPv6 errors that matched a tracked connection (RELATED); not a kernel counter (the kernel's <c>error</c> counts the rejected ones).</summary>
    public long RelatedIcmpErrors { get; internal set; }
    /// <summary><c>expect_new</c>: connections created from an expectation.</summary>
    public long ExpectNew { get; internal set; }
    /// <summary><c>expect_create</c>: expectations created.</summary>
    public long ExpectCreate { get; internal set; }
    /// <summary><c>expect_delete</c>: expectations removed.</summary>
    public long ExpectDelete { get; internal set; }
    /// <summary><c>search_restart</c>: lock-free lookups that ended on another bucket's nulls marker and restarted.</summary>
    public long SearchRestart { get; internal set; }
    /// <summary><c>chaintoolong</c>: inserts refused because the bucket's chain was over the cap.</summary>
    public long ChainTooLong { get; internal set; }
    /// <summary>Connections allocated (the old kernels' <c>new</c>).</summary>
    public long New { get; internal set; }
    /// <summary>Packets the kernel's IP input would have dropped before conntrack (bad header, length, addresses).</summary>
    public long IpInputDrop { get; internal set; }
    /// <summary>Packets deliberately not tracked (ICMPv6 neighbour discovery, MLD, ...).</summary>
    public long Untracked { get; internal set; }
    /// <summary>Events that could not be delivered to a subscriber (its channel was full).</summary>
    public long EventsLost { get; internal set; }

    /// <summary>One line per counter, <c>name value</c>, in the kernel's order.</summary>
    public override readonly string ToString() =>
        $"entries {Entries}\nunconfirmed {Unconfirmed}\ndying {Dying}\nmax {MaxEntries}\nbuckets {Buckets}\n" +
        $"found {Found}\ninvalid {Invalid}\ninsert {Insert}\ninsert_failed {InsertFailed}\nclash_resolve {ClashResolve}\n" +
        $"drop {Drop}\nearly_drop {EarlyDrop}\nerror {Error}\nicmp_related {RelatedIcmpErrors}\nexpect_new {ExpectNew}\n" +
        $"expect_create {ExpectCreate}\nexpect_delete {ExpectDelete}\nsearch_restart {SearchRestart}\n" +
        $"chaintoolong {ChainTooLong}\nnew {New}\nip_input_drop {IpInputDrop}\nuntracked {Untracked}\nevents_lost {EventsLost}";
}
