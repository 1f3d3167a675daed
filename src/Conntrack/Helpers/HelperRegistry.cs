namespace Conntrack.Helpers;

/// <summary>
/// The helpers a table knows (<c>nf_ct_helper_hash</c>) and the rules that assign them to new connections.
/// A rule is the analogue of <c>ct state new tcp dport 21 ct helper set "ftp"</c>: applied by <c>In</c> to a
/// connection it creates, in the order rules were added, first match wins. With
/// <see cref="ConntrackOptions.AutomaticHelperAssignment"/> (the kernel's old <c>nf_conntrack_helper=1</c>),
/// every registered helper is also assigned on its default port.
/// </summary>
public sealed class HelperRegistry
{
    private readonly Lock _gate = new();
    private ConntrackHelper[] _helpers = [];
    private AssignmentRule[] _rules = [];

    /// <summary>
    /// The built-in helpers, in the order the kernel oracle's <c>--helpers</c> assigns them: FTP, TFTP, IRC,
    /// SIP over UDP and TCP, NetBIOS-NS and SNMP. (The kernel's PPTP, SANE, Amanda and H.323 helpers are not
    /// built in yet; <see cref="ConntrackHelper"/> is the interface they will implement.)
    /// </summary>
    public static IReadOnlyList<ConntrackHelper> CreateBuiltIns() =>
    [
        new FtpHelper(), new TftpHelper(), new IrcHelper(), new SipHelper(IpProtocol.Udp), new SipHelper(IpProtocol.Tcp),
        BroadcastHelper.NetbiosNameService(), BroadcastHelper.Snmp(),
    ];

    /// <summary>Adds a helper. Names need not be unique across protocols (SIP has a UDP and a TCP helper).</summary>
    public void Register(ConntrackHelper helper)
    {
        ArgumentNullException.ThrowIfNull(helper);
        lock (_gate)
        {
            foreach (var h in _helpers)
            {
                if (ReferenceEquals(h, helper) || (string.Equals(h.Name, helper.Name, StringComparison.OrdinalIgnoreCase) && h.Protocol == helper.Protocol))
                {
                    throw new ArgumentException($"A helper '{helper.Name}' for protocol {helper.Protocol} is registered already.", nameof(helper));
                }
            }

            helper.Id = _helpers.Length + 1;
            _helpers = [.. _helpers, helper];
        }
    }

    /// <summary>Registers every built-in helper not registered yet.</summary>
    public void RegisterBuiltIns()
    {
        foreach (var h in CreateBuiltIns())
        {
            if (Find(h.Name, h.Protocol) is null)
            {
                Register(h);
            }
        }
    }

    /// <summary>The helper with this name for this protocol, or null.</summary>
    public ConntrackHelper? Find(string name, byte protocol)
    {
        foreach (var h in Volatile.Read(ref _helpers))
        {
            if (h.Protocol == protocol && string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return h;
            }
        }

        return null;
    }

    /// <summary>Every registered helper.</summary>
    public IReadOnlyList<ConntrackHelper> All => Volatile.Read(ref _helpers);

    /// <summary>
    /// Assigns <paramref name="helperName"/> to new connections of <paramref name="protocol"/> whose
    /// destination port is in [<paramref name="firstPort"/>, <paramref name="lastPort"/>].
    /// </summary>
    /// <exception cref="ArgumentException">No such helper is registered for the protocol.</exception>
    public void Assign(string helperName, byte protocol, ushort firstPort, ushort? lastPort = null)
    {
        var helper = Find(helperName, protocol)
            ?? throw new ArgumentException($"No helper '{helperName}' for protocol {protocol} is registered.", nameof(helperName));
        ushort last = lastPort ?? firstPort;
        if (last < firstPort)
        {
            throw new ArgumentException("The port range is empty.", nameof(lastPort));
        }

        lock (_gate)
        {
            _rules = [.. _rules, new AssignmentRule(helper, protocol, firstPort, last)];
        }
    }

    /// <summary>Assigns every registered helper on its default port (what the oracle's <c>--helpers</c> does).</summary>
    public void AssignDefaults()
    {
        foreach (var h in All)
        {
            Assign(h.Name, h.Protocol, h.DefaultPort);
        }
    }

    internal bool HasRules => Volatile.Read(ref _rules).Length > 0;

    internal ConntrackHelper? ById(int id)
    {
        var all = Volatile.Read(ref _helpers);
        return (uint)(id - 1) < (uint)all.Length ? all[id - 1] : null;
    }

    /// <summary>The first rule's helper for a new connection (protocol, destination port, family).</summary>
    internal ConntrackHelper? Match(byte protocol, ushort destinationPort, bool ipv6, bool automatic)
    {
        foreach (var r in Volatile.Read(ref _rules))
        {
            // Every matching rule runs and the first that can assign wins; an IPv4-only helper assigns
            // nothing to an IPv6 connection (its nft helper object has no IPv6 helper).
            if (r.Protocol == protocol && destinationPort >= r.FirstPort && destinationPort <= r.LastPort
                && (!ipv6 || r.Helper.SupportsIpv6))
            {
                return r.Helper;
            }
        }

        if (automatic)
        {
            foreach (var h in Volatile.Read(ref _helpers))
            {
                if (h.Protocol == protocol && h.DefaultPort == destinationPort && (!ipv6 || h.SupportsIpv6))
                {
                    return h;
                }
            }
        }

        return null;
    }

    private sealed record AssignmentRule(ConntrackHelper Helper, byte Protocol, ushort FirstPort, ushort LastPort);
}
