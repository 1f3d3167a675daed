namespace Conntrack;

/// <summary>
/// Why a packet got <see cref="ConntrackInfo.Invalid"/>, <see cref="ConntrackInfo.Untracked"/> or a
/// non-accept verdict. <see cref="None"/> for packets tracked normally.
/// </summary>
public enum PacketReason : byte
{
    /// <summary>Tracked normally.</summary>
    None = 0,

    // ---- dropped by the kernel's IP input before conntrack (ip_rcv_core / ip6_rcv_core) ----

    /// <summary>Shorter than an IP header, or than the header length it declares.</summary>
    IpHeaderTruncated,
    /// <summary>The version field is not the one expected for the frame.</summary>
    IpBadVersion,
    /// <summary>IPv4 header length below 5 words, or total length below the header length.</summary>
    IpBadHeaderLength,
    /// <summary>IPv4 header checksum wrong.</summary>
    IpBadChecksum,
    /// <summary>The IP length field claims more bytes than the packet has.</summary>
    IpLengthExceedsPacket,
    /// <summary>IPv6 loopback source or destination on a non-loopback interface.</summary>
    Ipv6Loopback,
    /// <summary>IPv6 multicast source address.</summary>
    Ipv6MulticastSource,
    /// <summary>IPv6 multicast destination of interface-local (1) or reserved (0) scope.</summary>
    Ipv6BadMulticastScope,
    /// <summary>Malformed IPv6 hop-by-hop options (bad lengths, padding, jumbo option, unknown option that must be discarded).</summary>
    Ipv6BadHopByHop,
    /// <summary>Dropped by IPv6 reassembly (malformed or overlapping fragments).</summary>
    FragmentDropped,

    // ---- reached conntrack, no connection attached (INVALID) ----

    /// <summary>A non-first IP fragment with no reassembly in front (the kernel always reassembles first).</summary>
    Fragment,
    /// <summary>No layer-4 header could be located (IPv6 no-next-header, truncated extension headers, ...).</summary>
    NoLayer4,
    /// <summary>The layer-4 header is shorter than the protocol needs.</summary>
    Layer4Truncated,
    /// <summary>Inconsistent layer-4 lengths or fields.</summary>
    Layer4Malformed,
    /// <summary>Layer-4 checksum wrong (only with checksum verification on).</summary>
    Layer4Checksum,
    /// <summary>ICMP type above 18 (RFC 1122: unknown types are discarded).</summary>
    IcmpUnknownType,
    /// <summary>An ICMP/ICMPv6 error whose embedded packet belongs to no tracked connection.</summary>
    IcmpErrorNoConnection,
    /// <summary>An ICMP/ICMPv6 error whose outer destination is not the tracked connection's address.</summary>
    IcmpErrorAddressMismatch,
    /// <summary>This packet type cannot start a connection (an echo reply, an ICMPv6 informational reply, ...).</summary>
    CannotCreate,
    /// <summary>A user-registered tracker rejected the packet.</summary>
    TrackerRejected,
    /// <summary>TCP: flags combination not allowed, or an invalid transition of the state machine.</summary>
    TcpInvalidFlags,
    /// <summary>TCP: sequence or acknowledgement outside the window.</summary>
    TcpOutOfWindow,
    /// <summary>TCP: a segment the tracker ignores (kernel "IG"), such as a SYN/ACK it cannot place.</summary>
    TcpIgnored,
    /// <summary>TCP: an RST the tracker does not believe.</summary>
    TcpInvalidRst,
    /// <summary>SCTP: bad chunk sequence, verification tag or state transition.</summary>
    SctpInvalid,

    // ---- untracked ----

    /// <summary>ICMPv6 neighbour discovery, router solicitation/advertisement or MLD: never tracked.</summary>
    UntrackedIcmpv6,

    // ---- dropped by conntrack ----

    /// <summary>The table is full and no unassured entry could be evicted.</summary>
    TableFull,
    /// <summary>Another packet inserted the same connection first and the clash could not be resolved.</summary>
    InsertFailed,
    /// <summary>The bucket's chain is longer than the cap; the insert was refused.</summary>
    ChainTooLong,
    /// <summary>A connection helper rejected the packet.</summary>
    HelperDropped,

    // ---- held ----

    /// <summary>A fragment held until its datagram is complete.</summary>
    FragmentHeld,

    // ---- appended later (keep the values above stable) ----

    /// <summary>TCP: a segment other than a SYN cannot start a connection with nf_conntrack_tcp_loose off (no mid-stream pickup).</summary>
    TcpPickupRefused,
    /// <summary>TCP: a SYN reopening a closed connection found that connection already being destroyed (the kernel's NF_DROP).</summary>
    TcpReopenDying,
    /// <summary>SCTP: the verification tag is not the one the connection expects (RFC 9260 8.5 and 8.5.1), or an INIT ACK's initiate tag contradicts the tag already recorded.</summary>
    SctpVerificationTag,
}

/// <summary>Helpers on <see cref="PacketReason"/>.</summary>
public static class PacketReasonExtensions
{
    /// <summary>
    /// True when the kernel's IP input would have dropped the packet before conntrack saw it (the oracle's
    /// <c>LOST</c>).
    /// </summary>
    public static bool IsIpInputDrop(this PacketReason reason) =>
        reason is >= PacketReason.IpHeaderTruncated and <= PacketReason.FragmentDropped;
}
