namespace Conntrack;

/// <summary>Status bits of a connection, with the kernel's bit positions (<c>enum ip_conntrack_status</c>).</summary>
[Flags]
public enum ConnectionStatus : uint
{
    /// <summary>No bit set.</summary>
    None = 0,
    /// <summary>An expected connection (created from an expectation of a helper).</summary>
    Expected = 1 << 0,
    /// <summary>Packets have been seen in both directions.</summary>
    SeenReply = 1 << 1,
    /// <summary>The connection is considered important: not evicted early when the table is full.</summary>
    Assured = 1 << 2,
    /// <summary>The connection is in the hash table.</summary>
    Confirmed = 1 << 3,
    /// <summary>Source NAT is configured (reserved for NAT).</summary>
    SourceNat = 1 << 4,
    /// <summary>Destination NAT is configured (reserved for NAT).</summary>
    DestinationNat = 1 << 5,
    /// <summary>TCP sequence numbers are adjusted (reserved for NAT helpers).</summary>
    SequenceAdjust = 1 << 6,
    /// <summary>The connection is being removed.</summary>
    Dying = 1 << 9,
    /// <summary>The timeout is not refreshed by packets.</summary>
    FixedTimeout = 1 << 10,
    /// <summary>Inserted only in the reply direction after a clash (the kernel's IPS_NAT_CLASH); never assured.</summary>
    NatClash = 1 << 12,
    /// <summary>A helper is attached.</summary>
    Helper = 1 << 13,
}
