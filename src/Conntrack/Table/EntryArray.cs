using System.Runtime.CompilerServices;
using Conntrack.Tuples;

namespace Conntrack.Table;

/// <summary>
/// The connections themselves (the <c>nf_conntrack</c> slab): 128-byte entries and their 56-byte protocol states,
/// in 2 KiB blocks of eleven entries followed by their eleven states (2 024 bytes used). An entry is exactly two
/// cache lines, so a hit in the original direction reads one; its protocol state is on the same 4 KiB page, so a
/// TCP packet costs the page walk of its entry only (on this project's VMs a random page costs a walk of its own,
/// about twice a second line on a page already mapped). A parallel array of states would put every state on a
/// page of its own; 64-byte-aligned 192-byte slots would cost 196 bytes per connection; blocks cost 186.2 bytes a
/// slot. The blocks are in a pinned byte array, the first at the array's first 2 KiB boundary (a managed array of
/// structs only promises 8-byte alignment), so no block straddles a page. The array lives on the pinned object
/// heap for as long as the table, so the address never changes and there is no native memory to free.
/// </summary>
internal readonly unsafe struct EntryArray
{
    /// <summary>Entries (and states) per block.</summary>
    internal const int EntriesPerBlock = 11;

    /// <summary>Bytes per block: a power of two that divides a page, so a block never straddles pages.</summary>
    internal const int BlockSize = 2048;

    /// <summary>Offset of a block's first protocol state: after its eleven entries.</summary>
    internal const int StatesOffset = EntriesPerBlock * EntrySize;

    private const int EntrySize = 128;
    private const int StateSize = 56;

    // Entry i is at block i / 11, position i % 11: base + (i / 11) * 2048 + (i % 11) * 128, which is
    // base + i * 128 + (i / 11) * (2048 - 11 * 128): one division by a constant (a multiply) and no remainder.
    private const int EntrySkip = BlockSize - StatesOffset;

    // The same for states: base + 1408 + i * 56 + (i / 11) * (2048 - 11 * 56).
    private const int StateSkip = BlockSize - EntriesPerBlock * StateSize;

    private readonly byte* _first;

    /// <summary>The block that holds the entries (for tools that advise the kernel about its pages).</summary>
    public readonly byte[] Memory;

    public readonly int Length;

    /// <summary>Bytes of this array per slot (entry and protocol state): 2048 / 11.</summary>
    public const double BytesPerSlot = (double)BlockSize / EntriesPerBlock;

    public EntryArray(int length)
    {
        int blocks = (length + EntriesPerBlock - 1) / EntriesPerBlock;
        // Uninitialised: slots are initialised when first handed out, so pages never used are never touched.
        Memory = GC.AllocateUninitializedArray<byte>(checked((blocks + 1) * BlockSize), pinned: true);
        nuint start = (nuint)Unsafe.AsPointer(ref Memory[0]);
        _first = (byte*)((start + BlockSize - 1) & ~(nuint)(BlockSize - 1));
        Length = length;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* EntryAddress(int index) =>
        _first + (nuint)(uint)index * EntrySize + (nuint)((uint)index / EntriesPerBlock) * EntrySkip;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* StateAddress(int index) =>
        _first + StatesOffset + (nuint)(uint)index * StateSize + (nuint)((uint)index / EntriesPerBlock) * StateSkip;

    public ref Connection this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if ((uint)index >= (uint)Length)
            {
                ThrowIndex(index);
            }

            return ref *(Connection*)EntryAddress(index);
        }
    }

    /// <summary>The protocol state of entry <paramref name="index"/> (<c>union nf_conntrack_proto</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ProtocolState StateOf(int index)
    {
        if ((uint)index >= (uint)Length)
        {
            ThrowIndex(index);
        }

        return ref *(ProtocolState*)StateAddress(index);
    }

    /// <summary>Starts loading the protocol state of an entry: both lines it may span (a hint, as <see cref="Prefetch"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchState(int index)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported && (uint)index < (uint)Length)
        {
            byte* state = StateAddress(index);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(state);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(state + StateSize - 1);
        }
    }

    /// <summary>
    /// The tuple of a chain node (entry <c>node &gt;&gt; 1</c>, its original half for an even node, its reply half for
    /// an odd one). The halves have the same layout 64 bytes apart, so this is address arithmetic: a field reference
    /// chosen from a <c>ref Connection</c> instead makes the JIT check that reference for null with a load of the
    /// entry's first line, a cache miss of its own when a walk is on a reply node and only fetched its second line.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ConntrackTuple TupleOf(int node) => ref *(ConntrackTuple*)HalfOf(node);

    /// <summary>
    /// The chain link of a node (<c>NextOriginal</c> or <c>NextReply</c>), addressed as <see cref="TupleOf(int)"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref int LinkOf(int node) => ref *(int*)(HalfOf(node) + LinkOffset);

    /// <summary>
    /// <see cref="TupleOf(int)"/> for a caller that holds the node's entry already (<paramref name="c"/> is
    /// <c>this[node &gt;&gt; 1]</c>): the same address from that reference, without checking the index again.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref ConntrackTuple TupleOf(ref Connection c, int node) =>
        ref Unsafe.As<byte, ConntrackTuple>(ref HalfOf(ref c, node));

    /// <summary><see cref="LinkOf(int)"/> from the node's entry, as <see cref="TupleOf(ref Connection, int)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref int LinkOf(ref Connection c, int node) =>
        ref Unsafe.As<byte, int>(ref Unsafe.Add(ref HalfOf(ref c, node), LinkOffset));

    // Byref arithmetic, not a field of c: a field reference would make the JIT check c for null with a load of the
    // entry's first line (see TupleOf(int)).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref byte HalfOf(ref Connection c, int node) =>
        ref Unsafe.Add(ref Unsafe.As<Connection, byte>(ref c), (node & 1) * HalfSize);

    /// <summary>Offset of <see cref="Connection.Reply"/> from <see cref="Connection.Original"/>.</summary>
    internal const int HalfSize = 64;

    /// <summary>
    /// Offset of a half's link from its tuple (<see cref="Connection.NextOriginal"/>, <see cref="Connection.NextReply"/>).
    /// </summary>
    internal const int LinkOffset = 40;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* HalfOf(int node)
    {
        int index = node >> 1;
        if ((uint)index >= (uint)Length)
        {
            ThrowIndex(index);
        }

        return EntryAddress(index) + (node & 1) * HalfSize;
    }

    /// <summary>Starts loading one line of an entry (a hint; no fault for any index within the table).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Prefetch(int index, int byteOffset = 0)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported && (uint)index < (uint)Length)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(EntryAddress(index) + byteOffset);
        }
    }

    /// <summary>Starts loading the line of a chain node: its entry's half with the node's tuple and link.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchNode(int node) => Prefetch(node >> 1, (node & 1) * HalfSize);

    private static void ThrowIndex(int index) =>
        throw new IndexOutOfRangeException($"Connection slot {index} is outside the table.");
}
