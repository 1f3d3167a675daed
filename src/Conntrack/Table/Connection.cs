using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Conntrack.Tuples;

namespace Conntrack.Table;

/// <summary>Which list an entry is on; exactly one at any time (the table invariant "no entry on two lists").</summary>
internal enum EntryKind : byte
{
    /// <summary>On the free list (or never used).</summary>
    Free = 0,
    /// <summary>Allocated by <c>In</c>, on its thread's unconfirmed list, in no hash chain.</summary>
    Unconfirmed = 1,
    /// <summary>In the hash table under both tuples.</summary>
    Hashed = 2,
    /// <summary>Removed from the hash table, on the dying list until its destroy event is out and no reader can still see it.</summary>
    Dying = 3,
}

/// <summary>
/// The hot part of <c>struct nf_conn</c>: both tuple-hash nodes and the fields every packet reads, in
/// exactly two cache lines. Line 0 holds the original tuple and its chain link with status, deadline and
/// zone, so a hit in the original direction costs one line; line 1 holds the reply tuple and its link, so a
/// chain walk that passes a reply node touches only that line.
/// </summary>
/// <remarks>
/// Entries are addressed by index into one pinned array (the analogue of the <c>nf_conntrack</c> slab).
/// A hash node is <c>index * 2 + direction</c>; a chain link holds a node or, when negative, the nulls
/// marker <c>~bucket</c> that ends the chain of that bucket.
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct Connection
{
    [FieldOffset(0)] public ConntrackTuple Original;

    /// <summary>Next node in the original tuple's hash chain. While unconfirmed: next on the unconfirmed list.</summary>
    [FieldOffset(40)] public int NextOriginal;

    /// <summary><see cref="ConnectionStatus"/> bits; changed with atomic OR once the entry is shared.</summary>
    [FieldOffset(44)] public uint Status;

    /// <summary>
    /// Confirmed: absolute deadline in caller nanoseconds. Unconfirmed: the relative timeout, made absolute
    /// at confirmation (as the kernel does, "timer relative to confirmation time").
    /// </summary>
    [FieldOffset(48)] public long Timeout;

    /// <summary>Bumped each time the slot is allocated; a <see cref="ConnectionHandle"/> carries it.</summary>
    [FieldOffset(56)] public int Generation;

    [FieldOffset(60)] public ushort Zone;

    /// <summary>Protocol state machine value (TCP, SCTP); 0 for protocols without one.</summary>
    [FieldOffset(62)] public byte ProtoState;

    [FieldOffset(63)] public EntryKind Kind;

    [FieldOffset(64)] public ConntrackTuple Reply;

    /// <summary>Next node in the reply tuple's chain. While unconfirmed: previous on the unconfirmed list.</summary>
    [FieldOffset(104)] public int NextReply;

    [FieldOffset(108)] public uint Mark;

    /// <summary>Protocol-specific time: UDP's stream deadline (created + 2 s).</summary>
    [FieldOffset(112)] public long ProtoTime;

    /// <summary>Free list / dying list link; while unconfirmed, the owning thread context's id.</summary>
    [FieldOffset(120)] public int ListLink;

    /// <summary>Per-connection spin lock for trackers that update multi-field state (the kernel's <c>ct->lock</c>).</summary>
    [FieldOffset(124)] public int Lock;

    public readonly byte Protocol => Original.ProtocolField;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Has(ConnectionStatus bit) => (Volatile.Read(ref Unsafe.AsRef(in Status)) & (uint)bit) != 0;

    /// <summary>Sets a status bit; returns true if this call set it (test_and_set_bit).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TrySet(ConnectionStatus bit)
    {
        if ((Volatile.Read(ref Status) & (uint)bit) != 0)
        {
            return false;
        }

        return (Interlocked.Or(ref Status, (uint)bit) & (uint)bit) == 0;
    }
}

/// <summary>
/// The per-protocol part of <c>struct nf_conn</c> (<c>union nf_conntrack_proto</c>): 56 bytes, in a
/// parallel array so that protocols without state (UDP, ICMP, generic) never touch it.
/// </summary>
[InlineArray(56)]
internal struct ProtocolState
{
    private byte _first;
}

/// <summary>Typed views of <see cref="ProtocolState"/>.</summary>
internal static class ProtocolStateExtensions
{
    /// <summary>The state viewed as <typeparamref name="T"/> (a struct of at most 56 bytes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref T As<T>(ref this ProtocolState state) where T : unmanaged
    {
        System.Diagnostics.Debug.Assert(Unsafe.SizeOf<T>() <= 56);
        return ref Unsafe.As<ProtocolState, T>(ref state);
    }

    public static Span<byte> AsBytes(ref this ProtocolState state) =>
        MemoryMarshal.CreateSpan(ref Unsafe.As<ProtocolState, byte>(ref state), 56);
}
