namespace Conntrack;

/// <summary>
/// Which IP input a packet goes to. The kernel picks <c>ip_rcv</c> or <c>ipv6_rcv</c> by the link layer's
/// EtherType, not by the version nibble; pass what your link layer said, or <see cref="Auto"/> to go by
/// the nibble (raw IP).
/// </summary>
public enum IpVersion : byte
{
    /// <summary>Decide by the first nibble of the packet.</summary>
    Auto = 0,
    /// <summary>IPv4 (EtherType 0x0800): a header of another version is dropped as malformed.</summary>
    V4 = 4,
    /// <summary>IPv6 (EtherType 0x86DD).</summary>
    V6 = 6,
}
