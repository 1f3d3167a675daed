using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Conntrack.Tuples;

/// <summary>
/// One direction of a connection: addresses, layer-4 protocol and its identifying fields, as in the
/// kernel's <c>struct nf_conntrack_tuple</c>. Ports for TCP, UDP, UDP-Lite and SCTP; for ICMP and
/// ICMPv6 the echo identifier (<see cref="SourcePort"/>) and type/code (<see cref="IcmpType"/>,
/// <see cref="IcmpCode"/>); for GRE the keys; nothing for protocols tracked generically.
/// </summary>
/// <remarks>
/// 40 bytes with no padding left undefined, so equality is five 64-bit compares and the hash reads
/// the same five words. The direction is not part of the tuple: it is implied by which of a
/// connection's two hash nodes holds it.
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 40)]
public struct ConntrackTuple : IEquatable<ConntrackTuple>
{
    [FieldOffset(0)] internal InetAddress Source;
    [FieldOffset(16)] internal InetAddress Destination;

    /// <summary>Source port; ICMP/ICMPv6 echo identifier; GRE source key.</summary>
    [FieldOffset(32)] internal ushort SourceId;

    /// <summary>Destination port; ICMP type (high byte) and code (low byte); GRE destination key.</summary>
    [FieldOffset(34)] internal ushort DestinationId;

    [FieldOffset(36)] internal byte IpVersionField;
    [FieldOffset(37)] internal byte ProtocolField;
    [FieldOffset(38)] internal ushort Reserved;

    /// <summary>Creates a tuple for a protocol identified by ports (TCP, UDP, UDP-Lite, SCTP).</summary>
    public static ConntrackTuple ForPorts(InetAddress source, InetAddress destination, byte protocol,
        ushort sourcePort, ushort destinationPort, bool ipv6)
    {
        var t = default(ConntrackTuple);
        t.Source = source;
        t.Destination = destination;
        t.ProtocolField = protocol;
        t.IpVersionField = ipv6 ? (byte)6 : (byte)4;
        t.SourceId = sourcePort;
        t.DestinationId = destinationPort;
        return t;
    }

    /// <summary>Creates an ICMP (<paramref name="ipv6"/> false) or ICMPv6 tuple.</summary>
    public static ConntrackTuple ForIcmp(InetAddress source, InetAddress destination, byte type, byte code,
        ushort id, bool ipv6)
    {
        var t = default(ConntrackTuple);
        t.Source = source;
        t.Destination = destination;
        t.ProtocolField = ipv6 ? IpProtocol.Icmpv6 : IpProtocol.Icmp;
        t.IpVersionField = ipv6 ? (byte)6 : (byte)4;
        t.SourceId = id;
        t.DestinationId = (ushort)((type << 8) | code);
        return t;
    }

    /// <summary>Creates a tuple for a protocol tracked only by its addresses.</summary>
    public static ConntrackTuple ForAddresses(InetAddress source, InetAddress destination, byte protocol, bool ipv6)
    {
        var t = default(ConntrackTuple);
        t.Source = source;
        t.Destination = destination;
        t.ProtocolField = protocol;
        t.IpVersionField = ipv6 ? (byte)6 : (byte)4;
        return t;
    }

    /// <summary>The source address.</summary>
    public readonly InetAddress SourceAddress => Source;

    /// <summary>The destination address.</summary>
    public readonly InetAddress DestinationAddress => Destination;

    /// <summary>True for IPv6, false for IPv4.</summary>
    public readonly bool IsIpv6 => IpVersionField == 6;

    /// <summary>The layer-4 protocol number (6 TCP, 17 UDP, 1 ICMP, ...).</summary>
    public readonly byte Protocol => ProtocolField;

    /// <summary>Source port (or ICMP identifier, or GRE source key).</summary>
    public readonly ushort SourcePort => SourceId;

    /// <summary>Destination port (or GRE destination key). For ICMP use <see cref="IcmpType"/>/<see cref="IcmpCode"/>.</summary>
    public readonly ushort DestinationPort => DestinationId;

    /// <summary>ICMP/ICMPv6 type.</summary>
    public readonly byte IcmpType => (byte)(DestinationId >> 8);

    /// <summary>ICMP/ICMPv6 code.</summary>
    public readonly byte IcmpCode => (byte)DestinationId;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Equals(ConntrackTuple other) => Equals(in this, in other);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool Equals(in ConntrackTuple a, in ConntrackTuple b)
    {
        ref ulong x = ref Unsafe.As<ConntrackTuple, ulong>(ref Unsafe.AsRef(in a));
        ref ulong y = ref Unsafe.As<ConntrackTuple, ulong>(ref Unsafe.AsRef(in b));
        return ((x ^ y) | (Unsafe.Add(ref x, 1) ^ Unsafe.Add(ref y, 1)) | (Unsafe.Add(ref x, 2) ^ Unsafe.Add(ref y, 2))
                | (Unsafe.Add(ref x, 3) ^ Unsafe.Add(ref y, 3)) | (Unsafe.Add(ref x, 4) ^ Unsafe.Add(ref y, 4))) == 0;
    }

    /// <inheritdoc />
    public override readonly bool Equals([NotNullWhen(true)] object? obj) => obj is ConntrackTuple t && Equals(t);

    /// <inheritdoc />
    public override readonly int GetHashCode()
    {
        ref ulong x = ref Unsafe.As<ConntrackTuple, ulong>(ref Unsafe.AsRef(in this));
        return HashCode.Combine(x, Unsafe.Add(ref x, 1), Unsafe.Add(ref x, 2), Unsafe.Add(ref x, 3), Unsafe.Add(ref x, 4));
    }

    /// <summary>Equality.</summary>
    public static bool operator ==(ConntrackTuple left, ConntrackTuple right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(ConntrackTuple left, ConntrackTuple right) => !left.Equals(right);

    /// <summary>Formats as the kernel prints a tuple (<c>src=... dst=... sport=... dport=...</c>).</summary>
    public override readonly string ToString()
    {
        var sw = new StringWriter();
        Diagnostics.ConnectionFormatter.WriteTuple(sw, in this, compressIpv6: true);
        return sw.ToString().TrimEnd();
    }
}
