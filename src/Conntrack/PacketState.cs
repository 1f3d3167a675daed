namespace Conntrack;

/// <summary>
/// The caller-owned result of <see cref="ConntrackTable.In(ReadOnlySpan{byte}, long, ref PacketState, ushort)"/>
/// that travels with the packet to <see cref="ConntrackTable.Confirm(ReadOnlySpan{byte}, long, ref PacketState)"/>:
/// the analogue of <c>skb->_nfct</c> (the connection and its <c>ctinfo</c>). Keep one per packet in flight;
/// reusing a variable for the next packet is fine (see <see cref="ConntrackTable.Release(ref PacketState)"/>).
/// </summary>
public struct PacketState
{
    /// <summary>The connection the packet belongs to; invalid when <see cref="Info"/> is Invalid or Untracked.</summary>
    public ConnectionHandle Connection { readonly get; internal set; }

    /// <summary>The kernel's verdict on the packet's relation to its connection.</summary>
    public ConntrackInfo Info { readonly get; internal set; }

    /// <summary>Why the packet is invalid, untracked or dropped; <see cref="PacketReason.None"/> otherwise.</summary>
    public PacketReason Reason { readonly get; internal set; }

    /// <summary>True while the packet's connection is new and waits for <c>Confirm</c> (not yet in the table).</summary>
    public readonly bool IsUnconfirmed => (Flags & StateFlags.Unconfirmed) != 0;

    /// <summary>
    /// True when the packet completed a fragmented datagram: the verdict is the datagram's, and
    /// <see cref="ConntrackTable.TryGetReassembled(in PacketState, out ReadOnlySpan{byte})"/> gives its bytes.
    /// </summary>
    public readonly bool IsReassembled => (Flags & StateFlags.Reassembled) != 0;

    /// <summary>The layer-4 protocol of the packet (after IPv6 extension headers); 0 if not found.</summary>
    public byte Protocol { readonly get; internal set; }

    /// <summary>The helper's message when it dropped the packet (the kernel's nf_ct_helper_log text), else null.</summary>
    public string? HelperMessage { readonly get; internal set; }

    internal StateFlags Flags;

    /// <summary>Hash of the original tuple, kept from <c>In</c> for <c>Confirm</c> (the kernel keeps it in <c>hnnode.pprev</c>).</summary>
    internal uint OriginalHash;

    /// <summary>Offset of the layer-4 header in the packet, for helpers at <c>Confirm</c>.</summary>
    internal int Layer4Offset;

    /// <summary>Length of the IP packet after trimming link-layer padding.</summary>
    internal int Length;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal void Reset()
    {
        Connection = default;
        Info = ConntrackInfo.Invalid;
        Reason = PacketReason.None;
        HelperMessage = null;
        Protocol = 0;
        Flags = StateFlags.None;
        OriginalHash = 0;
        Layer4Offset = 0;
        Length = 0;
    }

    [Flags]
    internal enum StateFlags : byte
    {
        None = 0,
        Unconfirmed = 1,
        Ipv6 = 2,
        Reassembled = 4,
    }
}
