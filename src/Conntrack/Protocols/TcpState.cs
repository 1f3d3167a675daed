using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Conntrack.Protocols;

/// <summary>The kernel's <c>enum tcp_conntrack</c>, in its order (the values are stored in <c>Connection.ProtoState</c>).</summary>
internal static class TcpConntrack
{
    public const byte None = 0;
    public const byte SynSent = 1;
    public const byte SynRecv = 2;
    public const byte Established = 3;
    public const byte FinWait = 4;
    public const byte CloseWait = 5;
    public const byte LastAck = 6;
    public const byte TimeWait = 7;
    public const byte Close = 8;

    /// <summary>TCP_CONNTRACK_SYN_SENT2, which reuses the obsolete LISTEN value.</summary>
    public const byte SynSent2 = 9;

    /// <summary>TCP_CONNTRACK_MAX: the table's <c>sIV</c>, an invalid transition.</summary>
    public const byte Max = 10;

    /// <summary>TCP_CONNTRACK_IGNORE: the table's <c>sIG</c>, a segment that may or may not be valid.</summary>
    public const byte Ignore = 11;
}

/// <summary>The kernel's <c>enum tcp_bit_set</c>: which of RST/SYN/FIN/ACK decide the row of the state table.</summary>
internal static class TcpIndex
{
    public const byte Syn = 0;
    public const byte SynAck = 1;
    public const byte Fin = 2;
    public const byte Ack = 3;
    public const byte Rst = 4;
    public const byte None = 5;
}

/// <summary>The per-direction flags of <c>struct ip_ct_tcp_state</c> (uapi nf_conntrack_tcp.h).</summary>
internal static class TcpFlags
{
    /// <summary>IP_CT_TCP_FLAG_WINDOW_SCALE: window scaling is advertised by the sender.</summary>
    public const byte WindowScale = 0x01;

    /// <summary>IP_CT_TCP_FLAG_SACK_PERM: SACK is permitted by the sender.</summary>
    public const byte SackPerm = 0x02;

    /// <summary>IP_CT_TCP_FLAG_CLOSE_INIT: this sender sent FIN first.</summary>
    public const byte CloseInit = 0x04;

    /// <summary>IP_CT_TCP_FLAG_BE_LIBERAL: be liberal in window checking.</summary>
    public const byte BeLiberal = 0x08;

    /// <summary>IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED: has unacknowledged data.</summary>
    public const byte DataUnacknowledged = 0x10;

    /// <summary>IP_CT_TCP_FLAG_MAXACK_SET: td_maxack has been set.</summary>
    public const byte MaxAckSet = 0x20;

    /// <summary>IP_CT_EXP_CHALLENGE_ACK: an RFC 5961 challenge ACK may follow (kept in last_flags).</summary>
    public const byte ExpectChallengeAck = 0x40;

    /// <summary>IP_CT_TCP_SIMULTANEOUS_OPEN: simultaneous open initialised (kept in last_flags).</summary>
    public const byte SimultaneousOpen = 0x80;
}

/// <summary>The window-tracking half of <c>struct ip_ct_tcp_state</c> (td_scale and flags live in <see cref="TcpState"/>).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TcpPeer
{
    /// <summary>td_end: max of seq + len.</summary>
    public uint End;

    /// <summary>td_maxend: max of ack + max(win, 1).</summary>
    public uint MaxEnd;

    /// <summary>td_maxwin: max(win).</summary>
    public uint MaxWin;

    /// <summary>td_maxack: max of ack.</summary>
    public uint MaxAck;
}

[InlineArray(2)]
internal struct TcpPeerPair
{
    private TcpPeer _first;
}

[InlineArray(2)]
internal struct TcpBytePair
{
    private byte _first;
}

/// <summary>
/// <c>struct ip_ct_tcp</c> in the connection's 56-byte protocol area. The state itself is kept in
/// <c>Connection.ProtoState</c> (where the formatter and early drop read it), so it is not repeated here.
/// The per-direction scale and flags are pulled out of the peers so that every field stays aligned.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TcpState
{
    /// <summary>seen[2]: window tracking per direction (0 original, 1 reply).</summary>
    public TcpPeerPair Seen;

    /// <summary>seen[dir].td_scale: window scale factor.</summary>
    public TcpBytePair Scale;

    /// <summary>seen[dir].flags: <see cref="TcpFlags"/>.</summary>
    public TcpBytePair Flags;

    /// <summary>Direction of the last packet.</summary>
    public byte LastDir;

    /// <summary>Number of retransmitted packets.</summary>
    public byte Retrans;

    /// <summary>Index (<see cref="TcpIndex"/>) of the last packet.</summary>
    public byte LastIndex;

    /// <summary>Last window scaling factor seen (of an ignored SYN).</summary>
    public byte LastWscale;

    /// <summary>Last sequence number seen in dir.</summary>
    public uint LastSeq;

    /// <summary>Last acknowledgement seen (in the opposite direction's sequence space).</summary>
    public uint LastAck;

    /// <summary>Last seq + len.</summary>
    public uint LastEnd;

    /// <summary>Last window advertisement seen in dir (unscaled).</summary>
    public ushort LastWin;

    /// <summary>Last flags set (options of an ignored SYN, challenge-ACK and simultaneous-open marks).</summary>
    public byte LastFlags;
}
