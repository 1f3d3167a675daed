namespace Conntrack.Pcap;

/// <summary>What <see cref="LinkLayer.Decode"/> found inside a link-layer frame.</summary>
public enum FrameKind
{
    /// <summary>An IPv4 packet starts at the returned offset.</summary>
    Ipv4 = 0,

    /// <summary>An IPv6 packet starts at the returned offset.</summary>
    Ipv6 = 1,

    /// <summary>The frame does not carry IPv4 or IPv6 (ARP, LLDP, MPLS, a frame too short for its link header, ...).</summary>
    NonIp = 2,
}
