namespace Conntrack;

/// <summary>
/// What conntrack says about one packet: the kernel's <c>enum ip_conntrack_info</c> plus the two
/// outcomes the kernel expresses by attaching no connection (<see cref="Invalid"/>) or the untracked
/// marker (<see cref="Untracked"/>).
/// </summary>
/// <remarks>Values differ from the kernel's so that <c>default</c> means <see cref="Invalid"/>.</remarks>
public enum ConntrackInfo : byte
{
    /// <summary>No connection: malformed, out of window, an ICMP error for an unknown flow, ... (<c>ct state invalid</c>).</summary>
    Invalid = 0,

    /// <summary>Original direction, no reply seen yet (<c>IP_CT_NEW</c>).</summary>
    New = 1,

    /// <summary>Original direction of a connection that has seen a reply (<c>IP_CT_ESTABLISHED</c>).</summary>
    Established = 2,

    /// <summary>
    /// An ICMP/ICMPv6 error about a tracked connection in its original direction, or the first packets of an
    /// expected connection (<c>IP_CT_RELATED</c>).
    /// </summary>
    Related = 3,

    /// <summary>Reply direction (<c>IP_CT_ESTABLISHED_REPLY</c>).</summary>
    EstablishedReply = 4,

    /// <summary>An ICMP/ICMPv6 error about a tracked connection, travelling in its reply direction (<c>IP_CT_RELATED_REPLY</c>).</summary>
    RelatedReply = 5,

    /// <summary>Deliberately not tracked: ICMPv6 neighbour discovery, router solicitation/advertisement, MLD (<c>IP_CT_UNTRACKED</c>).</summary>
    Untracked = 6,
}

/// <summary>Helpers on <see cref="ConntrackInfo"/>.</summary>
public static class ConntrackInfoExtensions
{
    /// <summary>True for <see cref="ConntrackInfo.EstablishedReply"/> and <see cref="ConntrackInfo.RelatedReply"/>.</summary>
    public static bool IsReply(this ConntrackInfo info) =>
        info is ConntrackInfo.EstablishedReply or ConntrackInfo.RelatedReply;

    /// <summary>True when a connection is attached (every value except Invalid and Untracked).</summary>
    public static bool HasConnection(this ConntrackInfo info) =>
        info is not (ConntrackInfo.Invalid or ConntrackInfo.Untracked);

    /// <summary>The oracle's name for the state: NEW, ESTABLISHED, ESTABLISHED+REPLY, RELATED, RELATED+REPLY, INVALID, UNTRACKED.</summary>
    public static string ToOracleString(this ConntrackInfo info) => info switch
    {
        ConntrackInfo.New => "NEW",
        ConntrackInfo.Established => "ESTABLISHED",
        ConntrackInfo.Related => "RELATED",
        ConntrackInfo.EstablishedReply => "ESTABLISHED+REPLY",
        ConntrackInfo.RelatedReply => "RELATED+REPLY",
        ConntrackInfo.Untracked => "UNTRACKED",
        _ => "INVALID",
    };
}
