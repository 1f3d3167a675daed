using Conntrack.Expectations;

namespace Conntrack.Events;

/// <summary>
/// What happened to a connection or an expectation, with the kernel's event bits (<c>enum ip_conntrack_events</c>,
/// <c>enum ip_conntrack_expect_events</c>). One delivered event carries every bit cached since the last one.
/// </summary>
[Flags]
public enum ConntrackEventType : uint
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>IPCT_NEW: a connection was confirmed.</summary>
    New = 1 << 0,
    /// <summary>IPCT_RELATED: an expected connection was confirmed.</summary>
    Related = 1 << 1,
    /// <summary>IPCT_DESTROY: a connection was removed.</summary>
    Destroy = 1 << 2,
    /// <summary>IPCT_REPLY: the first reply was seen.</summary>
    Reply = 1 << 3,
    /// <summary>IPCT_ASSURED: the connection became assured.</summary>
    Assured = 1 << 4,
    /// <summary>IPCT_PROTOINFO: the protocol state changed (TCP, SCTP).</summary>
    ProtoInfo = 1 << 5,
    /// <summary>IPCT_HELPER: a helper was attached.</summary>
    Helper = 1 << 6,
    /// <summary>IPCT_MARK: the mark changed.</summary>
    Mark = 1 << 7,
    /// <summary>IPEXP_NEW: an expectation was created.</summary>
    ExpectationNew = 1 << 16,
    /// <summary>IPEXP_DESTROY: an expectation was used, replaced, expired or removed with its master.</summary>
    ExpectationDestroy = 1 << 17,

    /// <summary>Every connection event.</summary>
    AllConnection = New | Related | Destroy | Reply | Assured | ProtoInfo | Helper | Mark,
    /// <summary>Every expectation event.</summary>
    AllExpectation = ExpectationNew | ExpectationDestroy,
    /// <summary>Everything.</summary>
    All = AllConnection | AllExpectation,
}

/// <summary>One delivered event: the event bits and a snapshot of the connection (or expectation) at that moment.</summary>
public readonly struct ConntrackEvent
{
    /// <summary>The event bits (for a connection, all bits cached since its last delivery).</summary>
    public ConntrackEventType Types { get; init; }

    /// <summary>The connection (when <see cref="IsExpectation"/> is false).</summary>
    public ConnectionInfo Connection { get; init; }

    /// <summary>The expectation (when <see cref="IsExpectation"/> is true).</summary>
    public ExpectationInfo Expectation { get; init; }

    /// <summary>True for expectation events.</summary>
    public bool IsExpectation { get; init; }

    /// <summary>The caller's timestamp of the packet or call that caused the delivery.</summary>
    public long Timestamp { get; init; }

    /// <summary>How <c>conntrack -E</c> labels it: NEW (new or related), DESTROY, or UPDATE.</summary>
    public string Label =>
        (Types & (ConntrackEventType.New | ConntrackEventType.Related | ConntrackEventType.ExpectationNew)) != 0 ? "NEW"
        : (Types & (ConntrackEventType.Destroy | ConntrackEventType.ExpectationDestroy)) != 0 ? "DESTROY"
        : "UPDATE";
}
