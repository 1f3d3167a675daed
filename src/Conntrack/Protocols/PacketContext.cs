using System.Runtime.CompilerServices;
using Conntrack.Packets;
using Conntrack.Table;

namespace Conntrack.Protocols;

/// <summary>What a tracker's packet function returns (the kernel's verdict or its negation).</summary>
internal enum TrackResult : byte
{
    /// <summary>NF_ACCEPT: the packet belongs to the connection.</summary>
    Accept = 0,
    /// <summary>-NF_ACCEPT: invalid; the packet is accepted with no connection.</summary>
    Invalid = 1,
    /// <summary>-NF_DROP: invalid and dropped.</summary>
    Drop = 2,
    /// <summary>-NF_REPEAT: the old connection was killed (a TCP reopen); look the packet up again.</summary>
    Repeat = 3,
}

/// <summary>One packet on its way through <c>In</c>: the trimmed bytes, where layer 4 starts, and whose connection it is.</summary>
internal ref struct PacketContext
{
    public ReadOnlySpan<byte> Packet;
    public L3Info L3;
    public long Now;
    public ThreadContext Ctx;

    /// <summary>Connection index, or -1.</summary>
    public int Index;

    /// <summary>0 original, 1 reply.</summary>
    public int Direction;

    public ConntrackInfo Info;

    /// <summary>Set by a tracker that rejects the packet.</summary>
    public PacketReason Reason;

    /// <summary>The layer-4 bytes (empty if the layer-4 offset is at or past the end).</summary>
    public readonly ReadOnlySpan<byte> L4
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (uint)L3.L4Offset < (uint)Packet.Length ? Packet[L3.L4Offset..] : default;
    }
}
