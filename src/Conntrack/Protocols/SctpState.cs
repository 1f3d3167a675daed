using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Conntrack.Protocols;

/// <summary>
/// The kernel's <c>enum sctp_conntrack</c> (uapi nf_conntrack_sctp.h), in its order; the value lives in
/// <c>Connection.ProtoState</c>. HEARTBEAT_ACKED is still in the enum ("no longer used"), so MAX is 10.
/// </summary>
internal static class SctpConntrack
{
    public const byte None = 0;
    public const byte Closed = 1;
    public const byte CookieWait = 2;
    public const byte CookieEchoed = 3;
    public const byte Established = 4;
    public const byte ShutdownSent = 5;
    public const byte ShutdownRecd = 6;
    public const byte ShutdownAckSent = 7;
    public const byte HeartbeatSent = 8;

    /// <summary>SCTP_CONNTRACK_HEARTBEAT_ACKED: kept in the uapi enum, never entered.</summary>
    public const byte HeartbeatAcked = 9;

    /// <summary>SCTP_CONNTRACK_MAX: the state table's <c>sIV</c>, an invalid transition.</summary>
    public const byte Max = 10;
}

/// <summary>SCTP chunk type identifiers (include/linux/sctp.h, <c>enum sctp_cid</c>) that conntrack looks at.</summary>
internal static class SctpChunk
{
    public const byte Data = 0;
    public const byte Init = 1;
    public const byte InitAck = 2;
    public const byte Sack = 3;
    public const byte Heartbeat = 4;
    public const byte HeartbeatAck = 5;
    public const byte Abort = 6;
    public const byte Shutdown = 7;
    public const byte ShutdownAck = 8;
    public const byte Error = 9;
    public const byte CookieEcho = 10;
    public const byte CookieAck = 11;
    public const byte ShutdownComplete = 14;

    /// <summary>SCTP_CHUNK_FLAG_T: the T bit of ABORT and SHUTDOWN COMPLETE (the sender had no TCB; reflected tag).</summary>
    public const byte FlagT = 0x01;
}

/// <summary>
/// <c>struct ip_ct_sctp</c> without its state (which is <c>Connection.ProtoState</c>): the verification tag
/// expected in each direction, whether each side has sent an INIT, and the heartbeat vtag-failure memory.
/// Lives in the connection's 56-byte protocol area. Tags hold the wire value read big-endian; they are only
/// compared with each other and with zero, as in the kernel.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SctpState
{
    /// <summary>SCTP_FLAG_HEARTBEAT_VTAG_FAILED: a HEARTBEAT carried an unknown vtag (a new path, or a restart).</summary>
    public const byte FlagHeartbeatVtagFailed = 1;

    /// <summary>vtag[IP_CT_DIR_ORIGINAL]: the tag packets in the original direction must carry.</summary>
    public uint VtagOriginal;

    /// <summary>vtag[IP_CT_DIR_REPLY].</summary>
    public uint VtagReply;

    /// <summary>init[IP_CT_DIR_ORIGINAL]: an INIT was recorded from the original side.</summary>
    public byte InitOriginal;

    /// <summary>init[IP_CT_DIR_REPLY].</summary>
    public byte InitReply;

    /// <summary>last_dir: the direction of the HEARTBEAT whose vtag check failed.</summary>
    public byte LastDir;

    /// <summary><see cref="FlagHeartbeatVtagFailed"/>.</summary>
    public byte Flags;

    /// <summary>vtag[dir].</summary>
    [UnscopedRef]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref uint Vtag(int dir) => ref Unsafe.Add(ref VtagOriginal, dir);

    /// <summary>init[dir].</summary>
    [UnscopedRef]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref byte Init(int dir) => ref Unsafe.Add(ref InitOriginal, dir);
}
