namespace Conntrack.Pcap;

/// <summary>
/// Link-layer header types (the tcpdump.org <c>LINKTYPE_*</c> numbers) that a capture file declares for its frames.
/// </summary>
/// <remarks>
/// The named members are the ones <see cref="LinkLayer"/> can decode. A capture may declare any other number;
/// the reader passes it through unchanged (cast to <see cref="LinkType"/>), and
/// <see cref="LinkLayer.IsSupported(LinkType)"/> tells whether it can be decoded.
/// </remarks>
public enum LinkType : uint
{
    /// <summary>BSD loopback (<c>LINKTYPE_NULL</c>): a 4-byte address family in host byte order, then the IP packet.</summary>
    Null = 0,

    /// <summary>Ethernet II (<c>LINKTYPE_ETHERNET</c>), possibly with 802.1Q/802.1ad VLAN tags.</summary>
    Ethernet = 1,

    /// <summary>Raw IP as some BSDs number it (<c>DLT_RAW</c> = 12); the frame starts with the IP header.</summary>
    RawLegacy12 = 12,

    /// <summary>Raw IP as other BSDs number it (<c>DLT_RAW</c> = 14); the frame starts with the IP header.</summary>
    RawLegacy14 = 14,

    /// <summary>Raw IP (<c>LINKTYPE_RAW</c>): the frame starts with an IPv4 or IPv6 header.</summary>
    Raw = 101,

    /// <summary>OpenBSD loopback (<c>LINKTYPE_LOOP</c>): a 4-byte address family in network byte order, then the IP packet.</summary>
    Loop = 108,

    /// <summary>Linux cooked capture v1 (<c>LINKTYPE_LINUX_SLL</c>): a 16-byte pseudo-header ending in the protocol type.</summary>
    LinuxSll = 113,

    /// <summary>Raw IPv4 (<c>LINKTYPE_IPV4</c>): every frame is an IPv4 packet.</summary>
    Ipv4 = 228,

    /// <summary>Raw IPv6 (<c>LINKTYPE_IPV6</c>): every frame is an IPv6 packet.</summary>
    Ipv6 = 229,

    /// <summary>Linux cooked capture v2 (<c>LINKTYPE_LINUX_SLL2</c>): a 20-byte pseudo-header starting with the protocol type.</summary>
    LinuxSll2 = 276,
}
