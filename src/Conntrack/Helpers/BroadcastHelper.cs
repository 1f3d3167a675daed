namespace Conntrack.Helpers;

/// <summary>
/// The NetBIOS name service and SNMP helpers (nf_conntrack_netbios_ns.c, nf_conntrack_snmp.c), both built on
/// nf_conntrack_broadcast_help(): they let the unicast answers to a broadcast query <em>sent by the router
/// itself</em> back in. The engine sees packets passing through, never ones a local socket sent, so these
/// helpers attach to connections (and show as <c>helper=netbios-ns</c>) but create no expectation — which is
/// what the kernel does for forwarded traffic too.
/// </summary>
public sealed class BroadcastHelper : ConntrackHelper
{
    private BroadcastHelper(string name, ushort port, TimeSpan timeout)
        : base(name, IpProtocol.Udp, port, ipv6: false, new ExpectPolicy(null, 1, timeout))
    {
    }

    /// <summary>The <c>netbios-ns</c> helper (UDP 137, 3 s).</summary>
    public static BroadcastHelper NetbiosNameService() => new("netbios-ns", 137, TimeSpan.FromSeconds(3));

    /// <summary>The <c>snmp</c> helper (UDP 161, 30 s).</summary>
    public static BroadcastHelper Snmp() => new("snmp", 161, TimeSpan.FromSeconds(30));

    /// <inheritdoc />
    public override HelperVerdict Help(ref HelperContext context) =>
        // "we're only interested in locally generated packets": none reach a forwarding engine.
        HelperVerdict.Accept;
}
