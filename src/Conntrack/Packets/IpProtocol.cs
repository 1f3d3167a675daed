namespace Conntrack;

/// <summary>IANA protocol numbers the engine knows by name.</summary>
public static class IpProtocol
{
    /// <summary>IPv6 hop-by-hop options.</summary>
    public const byte HopByHop = 0;
    /// <summary>ICMP.</summary>
    public const byte Icmp = 1;
    /// <summary>TCP.</summary>
    public const byte Tcp = 6;
    /// <summary>UDP.</summary>
    public const byte Udp = 17;
    /// <summary>IPv6 routing header.</summary>
    public const byte Routing = 43;
    /// <summary>IPv6 fragment header.</summary>
    public const byte Fragment = 44;
    /// <summary>GRE.</summary>
    public const byte Gre = 47;
    /// <summary>ESP.</summary>
    public const byte Esp = 50;
    /// <summary>Authentication header.</summary>
    public const byte Ah = 51;
    /// <summary>ICMPv6.</summary>
    public const byte Icmpv6 = 58;
    /// <summary>IPv6 "no next header".</summary>
    public const byte NoNextHeader = 59;
    /// <summary>IPv6 destination options.</summary>
    public const byte DestinationOptions = 60;
    /// <summary>SCTP.</summary>
    public const byte Sctp = 132;
    /// <summary>UDP-Lite.</summary>
    public const byte UdpLite = 136;
}
