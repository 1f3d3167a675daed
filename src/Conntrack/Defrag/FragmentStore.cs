namespace Conntrack.Defrag;

/// <summary>
/// Where held fragment bytes live: fixed 512-byte blocks carved from 64 KiB slabs, chained per fragment.
/// Slabs are allocated the first time they are needed and then kept, so a steady flow of fragments
/// allocates nothing; the number of blocks is capped so that the store can never outgrow the memory
/// threshold it serves.
/// </summary>
/// <remarks>
/// Every fragment is charged at least its length plus 606 bytes (<see cref="FragmentMemory.Truesize"/>),
/// more than the 511 bytes a chain can waste in its last block, so the bytes in blocks never exceed the
/// charged memory, which the queue table keeps below its high threshold plus one queue and one fragment.
/// </remarks>
internal sealed class FragmentStore
{
    public const int BlockSize = 512;
    private const int SlabBlocks = 128;

    private readonly byte[]?[] _slabs;
    private readonly int _maxBlocks;
    private int[] _next = [];
    private int _free = -1;
    private int _freeCount;
    private int _created;

    public FragmentStore(long maxBytes)
    {
        long blocks = Math.Clamp((maxBytes + BlockSize - 1) / BlockSize, 0, int.MaxValue / 2);
        _maxBlocks = (int)blocks;
        _slabs = new byte[]?[(_maxBlocks + SlabBlocks - 1) / SlabBlocks];
    }

    /// <summary>Blocks holding fragment bytes now.</summary>
    public int BlocksInUse => _created - _freeCount;

    /// <summary>Bytes of slabs allocated so far (the store's footprint).</summary>
    public long BytesReserved => (long)((_created + SlabBlocks - 1) / SlabBlocks) * SlabBlocks * BlockSize;

    /// <summary>
    /// Copies <paramref name="first"/> then <paramref name="second"/> into a new chain. Returns the chain
    /// (-1 for no bytes), or -2 when the store is full (nothing is then taken).
    /// </summary>
    public int Write(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        int total = first.Length + second.Length;
        if (total == 0)
        {
            return -1;
        }

        int needed = (total + BlockSize - 1) / BlockSize;
        if (needed > _freeCount + (_maxBlocks - _created))
        {
            return -2;
        }

        int head = -1, last = -1;
        int pos = 0;
        while (pos < total)
        {
            int b = Take();
            if (last < 0)
            {
                head = b;
            }
            else
            {
                _next[last] = b;
            }

            last = b;
            Span<byte> block = Block(b);
            int n = Math.Min(BlockSize, total - pos);
            int done = 0;
            if (pos < first.Length)
            {
                int k = Math.Min(n, first.Length - pos);
                first.Slice(pos, k).CopyTo(block);
                done = k;
            }

            if (done < n)
            {
                int from = pos + done - first.Length;
                second.Slice(from, n - done).CopyTo(block[done..]);
            }

            pos += n;
        }

        _next[last] = -1;
        return head;
    }

    /// <summary>Copies <paramref name="destination"/>.Length bytes of a chain, starting <paramref name="skip"/> bytes in.</summary>
    public void Read(int chain, int skip, Span<byte> destination)
    {
        int b = chain;
        while (skip >= BlockSize && b >= 0)
        {
            b = _next[b];
            skip -= BlockSize;
        }

        int pos = 0;
        while (pos < destination.Length && b >= 0)
        {
            int n = Math.Min(BlockSize - skip, destination.Length - pos);
            Block(b).Slice(skip, n).CopyTo(destination[pos..]);
            pos += n;
            skip = 0;
            b = _next[b];
        }
    }

    /// <summary>Returns a chain's blocks to the free list.</summary>
    public void Free(int chain)
    {
        int b = chain;
        while (b >= 0)
        {
            int next = _next[b];
            _next[b] = _free;
            _free = b;
            _freeCount++;
            b = next;
        }
    }

    private int Take()
    {
        if (_free >= 0)
        {
            int b = _free;
            _free = _next[b];
            _freeCount--;
            return b;
        }

        // A new block from the current slab, allocating the slab (and room in the link array) on first use.
        int idx = _created++;
        int slab = idx / SlabBlocks;
        if (_slabs[slab] is null)
        {
            _slabs[slab] = new byte[SlabBlocks * BlockSize];
            if (_next.Length < (slab + 1) * SlabBlocks)
            {
                Array.Resize(ref _next, Math.Min(_slabs.Length * SlabBlocks, Math.Max((slab + 1) * SlabBlocks, _next.Length * 2)));
            }
        }

        return idx;
    }

    private Span<byte> Block(int b) => _slabs[b / SlabBlocks].AsSpan((b % SlabBlocks) * BlockSize, BlockSize);
}
