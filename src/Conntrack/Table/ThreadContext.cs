using Conntrack.Diagnostics;

namespace Conntrack.Table;

/// <summary>
/// What one thread keeps per table: its hazard pointer (the entry it holds, the analogue of the reference
/// a packet holds on its conntrack), its statistics (the kernel's per-CPU counters), its unconfirmed list (the
/// kernel's old per-CPU unconfirmed list) and a small random source for chain-length caps.
/// </summary>
/// <remarks>
/// One object per thread and table. The two fields written on every call sit in the middle of a 192-byte
/// block, so whatever the allocator puts next to this object, no other thread's data shares their cache
/// line (contexts of threads created one after the other are otherwise neighbours in memory).
/// </remarks>
internal sealed class ThreadContext
{
    private HotFields _hot = new() { Hazard = -1 };

    /// <summary>
    /// The entry this thread is working on (a hazard pointer), or -1. A removed entry is reused only when no
    /// thread names it here; the reclaimer's process-wide barrier makes this plain store visible to it.
    /// </summary>
    public ref int Hazard => ref _hot.Hazard;

    /// <summary>Nesting depth of Enter/Exit on this thread.</summary>
    public ref int Depth => ref _hot.Depth;

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 192)]
    private struct HotFields
    {
        [System.Runtime.InteropServices.FieldOffset(64)] public int Hazard;
        [System.Runtime.InteropServices.FieldOffset(68)] public int Depth;
    }

    public StatCounters Stats;

    /// <summary>Head of this thread's unconfirmed list (linked through the entries' hash links), or -1.</summary>
    public int UnconfirmedHead = ConntrackTable.UnhashedMarker;
    public int UnconfirmedLock;
    public int UnconfirmedCount;

    /// <summary>Where reassembled datagrams are written (allocated on this thread's first fragment).</summary>
    public byte[]? ReassemblyBuffer;

    private ulong _random;

    public readonly int Id;

    /// <summary>
    /// What an unconfirmed entry owned by this thread holds in <see cref="Connection.ListLink"/>: -2 - Id, a
    /// value no free-list or dying-list link (a slot index or -1) can take, so a thread that reads the field
    /// while the slot changes lists never mistakes a list link for its own ownership.
    /// </summary>
    public int OwnerTag => -2 - Id;

    public static int IdOfOwnerTag(int tag) => -2 - tag;

    /// <summary>Managed thread id of the owner.</summary>
    public int ThreadId { get; init; }
    public readonly ConntrackTable Table;

    public ThreadContext(ConntrackTable table, int id)
    {
        Table = table;
        Id = id;
        _random = (ulong)Environment.TickCount64 * 0x9E3779B97F4A7C15UL ^ (ulong)id ^ 0xD1B54A32D192ED03UL;
        if (_random == 0)
        {
            _random = 1;
        }
    }

    /// <summary>xorshift64*: cheap per-thread randomness (chain-length caps), no shared state.</summary>
    public uint NextRandom(uint below)
    {
        ulong x = _random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        _random = x;
        return (uint)(((x * 0x2545F4914F6CDD1DUL) >> 32) * below >> 32);
    }
}
