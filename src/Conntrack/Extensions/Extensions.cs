using System.Runtime.CompilerServices;

namespace Conntrack.Extensions;

/// <summary>
/// Per-connection extension areas, as the kernel's <c>nf_ct_ext_types</c> registry. Each extension has an
/// id and a fixed size; its area is one array parallel to the connection store, allocated only when the
/// extension is enabled, so a table pays nothing for extensions it does not use.
/// </summary>
public enum ExtensionId : byte
{
    /// <summary>Helper state (the kernel's <c>NF_CT_EXT_HELPER</c>).</summary>
    Helper = 0,
    /// <summary>NAT bindings (reserved).</summary>
    Nat = 1,
    /// <summary>Packet and byte counters per direction (<c>NF_CT_EXT_ACCT</c>).</summary>
    Accounting = 2,
    /// <summary>Event cache (<c>NF_CT_EXT_ECACHE</c>).</summary>
    EventCache = 3,
    /// <summary>Start and stop times (<c>NF_CT_EXT_TSTAMP</c>).</summary>
    Timestamp = 4,
    /// <summary>Connection labels (reserved).</summary>
    Labels = 5,
}

/// <summary>Packet and byte counters of one connection, per direction (<c>struct nf_conn_counter[2]</c>).</summary>
public struct AccountingCounters
{
    /// <summary>Packets in the original direction.</summary>
    public long OriginalPackets;
    /// <summary>Bytes (IP length) in the original direction.</summary>
    public long OriginalBytes;
    /// <summary>Packets in the reply direction.</summary>
    public long ReplyPackets;
    /// <summary>Bytes (IP length) in the reply direction.</summary>
    public long ReplyBytes;
}

/// <summary>When a connection was confirmed and when it was removed, in the caller's nanoseconds (<c>struct nf_conn_tstamp</c>).</summary>
public struct ConnectionTimestamps
{
    /// <summary>Timestamp of the packet that confirmed the connection.</summary>
    public long Start;
    /// <summary>When the connection was removed (for an expiry, its deadline); 0 while it lives.</summary>
    public long Stop;
}

/// <summary>One extension's storage: an array parallel to the connection store.</summary>
internal sealed class ExtensionArea<T> where T : unmanaged
{
    public readonly T[] Items;
    public readonly ExtensionId Id;

    public ExtensionArea(ExtensionId id, int capacity)
    {
        Id = id;
        Items = GC.AllocateUninitializedArray<T>(capacity, pinned: true);
    }

    public static int Size => Unsafe.SizeOf<T>();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref T At(int index) => ref Items[index];
}

/// <summary>The extensions a table has enabled.</summary>
internal sealed class ExtensionSet
{
    public readonly ExtensionArea<AccountingCounters>? Accounting;
    public readonly ExtensionArea<ConnectionTimestamps>? Timestamps;

    public ExtensionSet(int capacity, bool accounting, bool timestamps)
    {
        if (accounting)
        {
            Accounting = new ExtensionArea<AccountingCounters>(ExtensionId.Accounting, capacity);
        }

        if (timestamps)
        {
            Timestamps = new ExtensionArea<ConnectionTimestamps>(ExtensionId.Timestamp, capacity);
        }
    }

    /// <summary>Bytes per connection the enabled extensions cost.</summary>
    public int BytesPerConnection =>
        (Accounting is null ? 0 : ExtensionArea<AccountingCounters>.Size) +
        (Timestamps is null ? 0 : ExtensionArea<ConnectionTimestamps>.Size);

    /// <summary>Clears a new connection's areas (nf_ct_ext_add on init_conntrack).</summary>
    public void Init(int index)
    {
        if (Accounting is not null)
        {
            Accounting.At(index) = default;
        }

        if (Timestamps is not null)
        {
            Timestamps.At(index) = default;
        }
    }
}
