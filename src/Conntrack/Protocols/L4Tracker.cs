using Conntrack.Table;

namespace Conntrack.Protocols;

/// <summary>
/// A layer-4 tracker a user adds for a protocol the engine otherwise tracks generically (the analogue of
/// registering an <c>nf_conntrack_l4proto</c>). Override what your protocol needs; the defaults behave like
/// the kernel's generic tracker (no identifying fields, a fixed timeout, clash resolution allowed).
/// </summary>
/// <remarks>
/// Built-in protocols are dispatched by a switch on the protocol number without virtual calls; a user
/// tracker costs one virtual call per packet of its protocol.
/// </remarks>
public abstract class L4Tracker
{
    /// <summary>Creates a tracker for <paramref name="protocol"/>, shown in tables as <paramref name="name"/>.</summary>
    protected L4Tracker(byte protocol, string name, TimeSpan timeout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be positive.");
        }

        Protocol = protocol;
        Name = name;
        Timeout = timeout;
        TimeoutNs = timeout.Ticks * 100;
    }

    /// <summary>The IP protocol number this tracker handles.</summary>
    public byte Protocol { get; }

    /// <summary>The name printed in tables (the kernel prints <c>unknown</c> for generic protocols).</summary>
    public string Name { get; }

    /// <summary>How long a connection lives after its last packet, unless <see cref="Packet"/> chooses otherwise.</summary>
    public TimeSpan Timeout { get; }

    internal long TimeoutNs { get; }

    /// <summary>
    /// Reads the fields that, with the addresses, identify a connection of this protocol (ports, an SPI, a
    /// key...). Return false when the header is too short: the packet is then invalid. Default: none.
    /// </summary>
    /// <param name="layer4">The bytes from the protocol's header to the end of the IP packet.</param>
    /// <param name="sourceId">The source-side identifier (a source port).</param>
    /// <param name="destinationId">The destination-side identifier (a destination port).</param>
    public virtual bool TryReadIds(ReadOnlySpan<byte> layer4, out ushort sourceId, out ushort destinationId)
    {
        sourceId = 0;
        destinationId = 0;
        return true;
    }

    /// <summary>
    /// The identifiers of the reply direction. Return false if such a packet cannot start a connection
    /// (the kernel's ICMP trackers do this for replies). Default: swap them, as for ports.
    /// </summary>
    public virtual bool TryInvertIds(ushort sourceId, ushort destinationId, out ushort replySourceId, out ushort replyDestinationId)
    {
        replySourceId = destinationId;
        replyDestinationId = sourceId;
        return true;
    }

    /// <summary>
    /// Decides about a packet of a connection of this protocol and sets its timeout. Return false to mark the
    /// packet invalid (a new connection is then discarded). Default: refresh with <see cref="Timeout"/>.
    /// </summary>
    public virtual bool Packet(ref TrackedPacket packet)
    {
        packet.Refresh(Timeout);
        return true;
    }

    /// <summary>Whether a lost insert race may be resolved by merging into the winner (the kernel's <c>allow_clash</c>).</summary>
    public virtual bool AllowClash => true;

    /// <summary>The name of a protocol state value for tables; null prints <c>-</c>.</summary>
    public virtual string? StateName(byte state) => null;
}

/// <summary>The view of one packet and its connection given to a user <see cref="L4Tracker"/>.</summary>
public ref struct TrackedPacket
{
    private readonly ConntrackTable _table;
    private readonly ref Connection _c;
    private readonly ReadOnlySpan<byte> _packet;
    private readonly ReadOnlySpan<byte> _layer4;
    private readonly long _now;
    private readonly int _index;
    private readonly int _direction;

    internal TrackedPacket(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        _table = table;
        _c = ref c;
        _packet = p.Packet;
        _layer4 = p.L4;
        _now = p.Now;
        _index = p.Index;
        _direction = p.Direction;
    }

    /// <summary>The whole IP packet (trimmed to its IP length).</summary>
    public readonly ReadOnlySpan<byte> IpPacket => _packet;

    /// <summary>The protocol header and payload.</summary>
    public readonly ReadOnlySpan<byte> Layer4 => _layer4;

    /// <summary>The caller's timestamp for this packet, in nanoseconds.</summary>
    public readonly long Timestamp => _now;

    /// <summary>True when the packet travels in the connection's reply direction.</summary>
    public readonly bool IsReply => _direction == 1;

    /// <summary>True when the connection is new (this packet created it; not yet confirmed).</summary>
    public readonly bool IsNew => (_c.Status & (uint)ConnectionStatus.Confirmed) == 0;

    /// <summary>The connection's status bits.</summary>
    public readonly ConnectionStatus Status => (ConnectionStatus)Volatile.Read(ref _c.Status);

    /// <summary>A byte of protocol state, printed through <see cref="L4Tracker.StateName"/>.</summary>
    public readonly byte State
    {
        get => _c.ProtoState;
        set => _c.ProtoState = value;
    }

    /// <summary>56 bytes of per-connection storage for the tracker (zero when the connection is new).</summary>
    public readonly Span<byte> PrivateState => _table.Proto[_index].AsBytes();

    /// <summary>Sets the connection to expire <paramref name="timeout"/> after this packet.</summary>
    public readonly void Refresh(TimeSpan timeout) =>
        _table.Refresh(ref _c, Volatile.Read(ref _c.Status), _index, _direction, _now, _packet.Length, timeout.Ticks * 100);

    /// <summary>Marks the connection assured (not evicted early when the table is full).</summary>
    public readonly void SetAssured()
    {
        _c.TrySet(ConnectionStatus.Assured);
    }
}

/// <summary>
/// The layer-4 protocols a table knows. The built-ins (TCP, UDP, UDP-Lite, ICMP, ICMPv6, SCTP, GRE and the
/// generic tracker) are always present; <see cref="Register"/> adds a tracker for any other protocol.
/// </summary>
public sealed class ProtocolRegistry
{
    private readonly L4Tracker?[] _user = new L4Tracker?[256];

    /// <summary>Protocols with a built-in tracker; everything else is tracked generically unless registered.</summary>
    public static bool IsBuiltIn(byte protocol) => protocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.UdpLite
        or IpProtocol.Icmp or IpProtocol.Icmpv6 or IpProtocol.Sctp or IpProtocol.Gre;

    /// <summary>Adds a tracker. Register before the first packet of its protocol.</summary>
    /// <exception cref="ArgumentException">The protocol has a built-in tracker or one is registered already.</exception>
    public void Register(L4Tracker tracker)
    {
        ArgumentNullException.ThrowIfNull(tracker);
        if (IsBuiltIn(tracker.Protocol))
        {
            throw new ArgumentException($"Protocol {tracker.Protocol} has a built-in tracker.", nameof(tracker));
        }

        if (Interlocked.CompareExchange(ref _user[tracker.Protocol], tracker, null) is not null)
        {
            throw new ArgumentException($"A tracker for protocol {tracker.Protocol} is registered already.", nameof(tracker));
        }
    }

    /// <summary>The user tracker for a protocol, or null.</summary>
    public L4Tracker? Find(byte protocol) => Volatile.Read(ref _user[protocol]);

    /// <summary>The kernel's name of a protocol (<c>tcp</c>, <c>udp</c>, ...; <c>unknown</c> for generic ones) or the registered tracker's.</summary>
    public string NameOf(byte protocol) => protocol switch
    {
        IpProtocol.Icmp => "icmp",
        IpProtocol.Tcp => "tcp",
        IpProtocol.Udp => "udp",
        IpProtocol.Gre => "gre",
        IpProtocol.Sctp => "sctp",
        IpProtocol.UdpLite => "udplite",
        IpProtocol.Icmpv6 => "icmpv6",
        _ => Find(protocol)?.Name ?? "unknown",
    };
}
