using System.Runtime.CompilerServices;
using Conntrack.Tuples;

namespace Conntrack.Table;

/// <summary>
/// The connections themselves (the <c>nf_conntrack</c> slab): 128-byte entries in one pinned block whose first
/// entry starts on a cache line, so every entry is exactly two lines and a hit in the original direction reads
/// one. A managed array of structs only promises 8-byte alignment (entry 0 landed 56 bytes into a line, which
/// spread each entry over three lines); this wraps a pinned byte array with the entries at its first 64-byte
/// boundary. The array lives on the pinned object heap for as long as the table, so the address never changes
/// and there is no native memory to free.
/// </summary>
internal readonly unsafe struct EntryArray
{
    private const int LineSize = 64;

    private readonly Connection* _first;

    /// <summary>The block that holds the entries (for tools that advise the kernel about its pages).</summary>
    public readonly byte[] Memory;

    public readonly int Length;

    public EntryArray(int length)
    {
        // Uninitialised: slots are initialised when first handed out, so pages never used are never touched.
        Memory = GC.AllocateUninitializedArray<byte>(checked(length * sizeof(Connection) + LineSize), pinned: true);
        nuint start = (nuint)Unsafe.AsPointer(ref Memory[0]);
        _first = (Connection*)((start + LineSize - 1) & ~(nuint)(LineSize - 1));
        Length = length;
    }

    public ref Connection this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if ((uint)index >= (uint)Length)
            {
                ThrowIndex(index);
            }

            return ref _first[index];
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

        return (byte*)(_first + index) + (node & 1) * HalfSize;
    }

    /// <summary>Starts loading one line of an entry (a hint; no fault for any index within the table).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Prefetch(int index, int byteOffset = 0)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported && (uint)index < (uint)Length)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0((byte*)(_first + index) + byteOffset);
        }
    }

    /// <summary>Starts loading the line of a chain node: its entry's half with the node's tuple and link.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchNode(int node) => Prefetch(node >> 1, (node & 1) * HalfSize);

    private static void ThrowIndex(int index) =>
        throw new IndexOutOfRangeException($"Connection slot {index} is outside the table.");
}
