using Conntrack.Helpers;

namespace Conntrack.Tests.Support;

/// <summary>A helper that runs another one (under its name and policies) and remembers the last drop message.</summary>
public class RecordingHelper(ConntrackHelper inner)
    : ConntrackHelper(inner.Name, inner.Protocol, inner.DefaultPort, inner.SupportsIpv6, [.. inner.Policies])
{
    /// <summary>The message of the last dropped packet, or null if the last packet was accepted.</summary>
    public string? LastDrop { get; private set; }

    /// <summary>How many packets the helper was called for.</summary>
    public int Calls { get; private set; }

    public override HelperVerdict Help(ref HelperContext context)
    {
        Calls++;
        var verdict = inner.Help(ref context);
        LastDrop = verdict == HelperVerdict.Drop ? context.DropMessage ?? "" : null;
        return verdict;
    }
}
