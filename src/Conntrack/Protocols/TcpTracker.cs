using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Conntrack.Packets;
using Conntrack.Table;

namespace Conntrack.Protocols;

/// <summary>
/// TCP connection tracking, a port of the kernel's nf_conntrack_proto_tcp.c: the flag whitelist, the state
/// table, and Guido van Rooij's window tracking ("Real Stateful TCP Packet Filtering in IP Filter") with
/// the kernel's amendments.
/// </summary>
internal static class TcpTracker
{
    // TCP header flag bits (byte 13).
    private const byte Fin = 0x01;
    private const byte Syn = 0x02;
    private const byte Rst = 0x04;
    private const byte Psh = 0x08;
    private const byte Ack = 0x10;
    private const byte Ece = 0x40;
    private const byte Cwr = 0x80;

    // TCP options.
    private const byte OptEol = 0;
    private const byte OptNop = 1;
    private const byte OptWindow = 3;
    private const byte OptSackPerm = 4;
    private const byte OptSack = 5;
    private const byte OptTimestamp = 8;
    private const int OptLenWindow = 3;
    private const int OptLenSackPerm = 2;
    private const int OptLenSackBase = 2;
    private const int OptLenSackPerBlock = 8;
    private const int OptLenTimestamp = 10;
    private const int OptLenTimestampAligned = 12;

    /// <summary>TCP_MAX_WSCALE (RFC 7323: the shift count is limited to 14).</summary>
    private const byte MaxWscale = 14;

    /// <summary>MAXACKWINCONST ("Fixme: what about big packets?").</summary>
    private const uint MaxAckWinConst = 66000;

    /// <summary>
    /// tcp_valid_flags[]: the flag combinations allowed once PSH, ECE and CWR are masked out, as a bit set
    /// indexed by the remaining FIN|SYN|RST|ACK|URG bits: SYN, SYN|URG, SYN|ACK, RST, RST|ACK, FIN|ACK,
    /// FIN|ACK|URG, ACK, ACK|URG.
    /// </summary>
    private const ulong ValidFlags =
        (1UL << 0x02) | (1UL << 0x22) | (1UL << 0x12) | (1UL << 0x04) | (1UL << 0x14)
        | (1UL << 0x11) | (1UL << 0x31) | (1UL << 0x10) | (1UL << 0x30);

    private const byte sNO = TcpConntrack.None;
    private const byte sSS = TcpConntrack.SynSent;
    private const byte sSR = TcpConntrack.SynRecv;
    private const byte sES = TcpConntrack.Established;
    private const byte sFW = TcpConntrack.FinWait;
    private const byte sCW = TcpConntrack.CloseWait;
    private const byte sLA = TcpConntrack.LastAck;
    private const byte sTW = TcpConntrack.TimeWait;
    private const byte sCL = TcpConntrack.Close;
    private const byte sS2 = TcpConntrack.SynSent2;
    private const byte sIV = TcpConntrack.Max;
    private const byte sIG = TcpConntrack.Ignore;

    /// <summary>
    /// tcp_conntracks[dir][index][state], flattened: (dir * 6 + index) * 10 + state. See the kernel for the
    /// reasoning behind every cell ("We are the man in the middle...").
    /// </summary>
    private static ReadOnlySpan<byte> Transitions =>
    [
        // ORIGINAL
        //   sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2
        /*syn*/    sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2,
        /*synack*/ sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR,
        /*fin*/    sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
        /*ack*/    sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV,
        /*rst*/    sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
        /*none*/   sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
        // REPLY
        //   sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2
        /*syn*/    sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2,
        /*synack*/ sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR,
        /*fin*/    sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
        /*ack*/    sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG,
        /*rst*/    sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
        /*none*/   sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
    ];

    private static readonly string[] Names =
    [
        "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",
        "SYN_SENT2",
    ];

    /// <summary>The kernel's enum nf_ct_tcp_action.</summary>
    private enum WindowAction : byte
    {
        Ignore,
        Invalid,
        Accept,
    }

    /// <summary>tcp_conntrack_names[]: the state as /proc prints it.</summary>
    public static string? StateName(byte state) => state < Names.Length ? Names[state] : null;

    /// <summary>tcp_can_early_drop(): closing connections may be evicted even when assured.</summary>
    public static bool CanEarlyDrop(byte state) => state is TcpConntrack.FinWait or TcpConntrack.LastAck
        or TcpConntrack.TimeWait or TcpConntrack.Close or TcpConntrack.CloseWait;

    /// <summary>The next state from the table (also used by tests to name a transition).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static byte NextState(int dir, int index, int state) => Transitions[((dir * 6) + index) * 10 + state];

    /// <summary>get_conntrack_index(): RST wins over SYN, SYN over FIN, FIN over ACK.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static byte GetIndex(byte flags)
    {
        if ((flags & Rst) != 0)
        {
            return TcpIndex.Rst;
        }

        if ((flags & Syn) != 0)
        {
            return (flags & Ack) != 0 ? TcpIndex.SynAck : TcpIndex.Syn;
        }

        if ((flags & Fin) != 0)
        {
            return TcpIndex.Fin;
        }

        return (flags & Ack) != 0 ? TcpIndex.Ack : TcpIndex.None;
    }

    /// <summary>
    /// segment_seq_plus_len(): seq + payload length, plus one for SYN and one for FIN. The payload is what
    /// the IP length leaves after the TCP header ("XXX Should I use payload length field in IP/IPv6
    /// header?" — the kernel uses skb->len, which conntrack sees trimmed to the IP length).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint SeqPlusLen(uint seq, int l4Length, int headerLength, byte flags) =>
        seq + (uint)(l4Length - headerLength) + ((flags & Syn) != 0 ? 1u : 0u) + ((flags & Fin) != 0 ? 1u : 0u);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Before(uint a, uint b) => (int)(a - b) < 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool After(uint a, uint b) => (int)(b - a) < 0;

    /// <summary>MAXACKWINDOW(sender).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint MaxAckWindow(uint senderMaxWin) => senderMaxWin > MaxAckWinConst ? senderMaxWin : MaxAckWinConst;

    /// <summary>nf_conntrack_tcp_packet(): the packet function. Returns the kernel's verdict mapped to <see cref="TrackResult"/>.</summary>
    public static TrackResult Packet(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        ReadOnlySpan<byte> l4 = p.L4;
        // skb_header_pointer() of a whole struct tcphdr fails: -NF_ACCEPT.
        if (l4.Length < 20)
        {
            p.Reason = PacketReason.Layer4Truncated;
            return TrackResult.Invalid;
        }

        if (TcpError(table, ref p, l4))
        {
            return TrackResult.Invalid;
        }

        Settings settings = table.Settings;
        ref TcpState s = ref table.Proto[p.Index].As<TcpState>();
        byte flags = l4[13];
        if ((Volatile.Read(ref c.Status) & (uint)ConnectionStatus.Confirmed) == 0 && !TcpNew(settings, ref p, ref c, ref s, l4, flags))
        {
            return TrackResult.Invalid;
        }

        return PacketLocked(table, ref p, ref c, ref s, l4, flags);
    }

    /// <summary>
    /// tcp_error(): "Protect conntrack against broken packets". Header length, checksum (PREROUTING only,
    /// which is the only hook this engine runs at) and the flag whitelist. True when the packet is bad.
    /// </summary>
    private static bool TcpError(ConntrackTable table, ref PacketContext p, ReadOnlySpan<byte> l4)
    {
        int doff = (l4[12] >> 4) * 4;
        // "Not whole TCP header or malformed packet"
        if (doff < 20)
        {
            p.Reason = PacketReason.Layer4Malformed;
            return true;
        }

        if (l4.Length < doff)
        {
            p.Reason = PacketReason.Layer4Truncated;
            return true;
        }

        // "Checksum invalid? Ignore."
        if (table.Settings.Checksum && !InternetChecksum.Layer4Valid(p.Packet, p.L3.IsIpv6, IpProtocol.Tcp, l4, l4.Length))
        {
            p.Reason = PacketReason.Layer4Checksum;
            return true;
        }

        // "Check TCP flags." PUSH, ECE and CWR are always valid.
        int f = l4[13] & ~(Ece | Cwr | Psh);
        if ((ValidFlags & (1UL << f)) == 0)
        {
            p.Reason = PacketReason.TcpInvalidFlags;
            return true;
        }

        return false;
    }

    /// <summary>
    /// tcp_new(): the first packet of a connection not yet in the table. A SYN opens it in SYN_SENT; any other
    /// packet the state table lets start a connection (a plain ACK) is a mid-stream pickup, allowed only with
    /// nf_conntrack_tcp_loose, with SACK and liberal window checking assumed for both sides "to handle window
    /// scaling". The whole state is initialised here: the area holds an earlier connection's leftovers.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool TcpNew(Settings settings, ref PacketContext p, ref Connection c, ref TcpState s, ReadOnlySpan<byte> l4, byte flags)
    {
        byte newState = NextState(0, GetIndex(flags), TcpConntrack.None);
        // "Invalid: delete conntrack"
        if (newState >= TcpConntrack.Max)
        {
            p.Reason = PacketReason.TcpInvalidFlags;
            return false;
        }

        int doff = (l4[12] >> 4) * 4;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(l4[4..]);
        uint window = BinaryPrimitives.ReadUInt16BigEndian(l4[14..]);
        if (newState == TcpConntrack.SynSent)
        {
            s = default;
            c.ProtoState = TcpConntrack.None;
            ref TcpPeer o = ref s.Seen[0];
            o.End = SeqPlusLen(seq, l4.Length, doff, flags);
            o.MaxWin = window == 0 ? 1 : window;
            o.MaxEnd = o.End;
            ParseOptions(l4, doff, ref s.Scale[0], ref s.Flags[0]);
        }
        else if (!settings.TcpLoose)
        {
            // "Don't try to pick up connections."
            p.Reason = PacketReason.TcpPickupRefused;
            return false;
        }
        else
        {
            s = default;
            c.ProtoState = TcpConntrack.None;
            // "We are in the middle of a connection, its history is lost for us. Let's try to use the data
            // from the packet."
            ref TcpPeer o = ref s.Seen[0];
            o.End = SeqPlusLen(seq, l4.Length, doff, flags);
            o.MaxWin = window == 0 ? 1 : window;
            o.MaxEnd = o.End + o.MaxWin;
            // "We assume SACK and liberal window checking to handle window scaling"
            s.Flags[0] = TcpFlags.SackPerm | TcpFlags.BeLiberal;
            s.Flags[1] = TcpFlags.SackPerm | TcpFlags.BeLiberal;
        }

        // "tcp_packet will set them"
        s.LastIndex = TcpIndex.None;
        return true;
    }

    /// <summary>The part of nf_conntrack_tcp_packet() after tcp_new(), under the connection's lock.</summary>
    private static TrackResult PacketLocked(ConntrackTable table, ref PacketContext p, ref Connection c, ref TcpState s,
        ReadOnlySpan<byte> l4, byte flags)
    {
        Settings settings = table.Settings;
        int dir = p.Direction;
        byte index = GetIndex(flags);
        SpinLockInt.Enter(ref c.Lock);
        byte oldState = c.ProtoState;
        byte newState = NextState(dir, index, oldState);

        switch (newState)
        {
            case TcpConntrack.SynSent:
                if (oldState < TcpConntrack.TimeWait)
                {
                    break;
                }

                // RFC 1122: "When a connection is closed actively, it MUST linger in TIME-WAIT state for a
                // time 2xMSL (Maximum Segment Lifetime). However, it MAY accept a new SYN from the remote TCP
                // to reopen the connection directly from TIME-WAIT state, if..." The kernel ignores the
                // conditions "because we are in the TIME-WAIT state anyway", and also handles aborted
                // connections: the client aborts and starts a new one.
                if (((s.Flags[dir] | s.Flags[1 - dir]) & TcpFlags.CloseInit) != 0
                    || (s.LastDir == dir && s.LastIndex == TcpIndex.Rst))
                {
                    // "Attempt to reopen a closed/aborted connection. Delete this connection and look up
                    // again." Only repeat if we can actually remove it: destruction may already be in
                    // progress elsewhere and must be given a chance to terminate (then NF_DROP).
                    SpinLockInt.Exit(ref c.Lock);
                    if (table.Kill(p.Index, p.Now, p.Ctx))
                    {
                        return TrackResult.Repeat;
                    }

                    p.Reason = PacketReason.TcpReopenDying;
                    return TrackResult.Drop;
                }

                return Ignored(ref p, ref c, ref s, l4, flags, dir, index, oldState);
            case TcpConntrack.Ignore:
                if (index == TcpIndex.SynAck
                    && s.LastIndex == TcpIndex.Syn
                    && s.LastDir != dir
                    && BinaryPrimitives.ReadUInt32BigEndian(l4[8..]) == s.LastEnd)
                {
                    // "b) This SYN/ACK acknowledges a SYN that we earlier ignored as invalid. This means that
                    // the client and the server are both in sync, while the firewall is not. We get in sync
                    // from the previously annotated values."
                    oldState = TcpConntrack.SynSent;
                    newState = TcpConntrack.SynRecv;
                    int ld = s.LastDir;
                    ref TcpPeer lp = ref s.Seen[ld];
                    lp.End = s.LastEnd;
                    lp.MaxEnd = s.LastEnd;
                    lp.MaxWin = s.LastWin == 0 ? 1u : s.LastWin;
                    s.Scale[ld] = s.LastWscale;
                    s.LastFlags &= unchecked((byte)~TcpFlags.ExpectChallengeAck);
                    s.Flags[ld] = s.LastFlags;
                    ResetPeer(ref s, dir);
                    break;
                }

                return Ignored(ref p, ref c, ref s, l4, flags, dir, index, oldState);
            case TcpConntrack.Max:
                // The SYN proxy keep-alive exception needs a synproxy extension, which this engine has not.
                // "Invalid packet"
                SpinLockInt.Exit(ref c.Lock);
                p.Reason = PacketReason.TcpInvalidFlags;
                return TrackResult.Invalid;
            case TcpConntrack.TimeWait:
                // "RFC5961 compliance cause stack to send "challenge-ACK" e.g. in response to spurious SYNs.
                // Conntrack MUST not believe this ACK is acking last FIN."
                if (oldState == TcpConntrack.LastAck
                    && index == TcpIndex.Ack
                    && s.LastDir != dir
                    && s.LastIndex == TcpIndex.Syn
                    && (s.LastFlags & TcpFlags.ExpectChallengeAck) != 0)
                {
                    // "Detected RFC5961 challenge ACK": don't change state.
                    s.LastFlags &= unchecked((byte)~TcpFlags.ExpectChallengeAck);
                    SpinLockInt.Exit(ref c.Lock);
                    p.Reason = PacketReason.TcpIgnored;
                    return TrackResult.Accept;
                }

                break;
            case TcpConntrack.SynSent2:
                // "tcp_conntracks table is not smart enough to handle simultaneous open."
                s.LastFlags |= TcpFlags.SimultaneousOpen;
                break;
            case TcpConntrack.SynRecv:
                if (dir == 1 && index == TcpIndex.Ack && (s.LastFlags & TcpFlags.SimultaneousOpen) != 0)
                {
                    newState = TcpConntrack.Established;
                }

                break;
            case TcpConntrack.Close:
                if (index != TcpIndex.Rst)
                {
                    break;
                }

                switch (CheckRst(settings, ref c, ref s, l4, dir, oldState, ref newState))
                {
                    case RstCheck.InWindow:
                        goto InWindow;
                    case RstCheck.Invalid:
                        SpinLockInt.Exit(ref c.Lock);
                        p.Reason = PacketReason.TcpInvalidRst;
                        return TrackResult.Invalid;
                }

                break;
        }

        switch (TcpInWindow(settings, ref c, ref s, dir, index, l4, flags))
        {
            case WindowAction.Ignore:
                // NF_ACCEPT without any state change or refresh (overshot data, old data, a delayed ACK).
                SpinLockInt.Exit(ref c.Lock);
                p.Reason = PacketReason.TcpIgnored;
                return TrackResult.Accept;
            case WindowAction.Invalid:
                HandleInvalid(table, ref p, ref c, ref s, dir, index);
                SpinLockInt.Exit(ref c.Lock);
                p.Reason = PacketReason.TcpOutOfWindow;
                return TrackResult.Invalid;
        }

    InWindow:
        // "From now on we have got in-window packets"
        s.LastIndex = index;
        s.LastDir = (byte)dir;
        Volatile.Write(ref c.ProtoState, newState);
        if (oldState != newState && newState == TcpConntrack.FinWait)
        {
            s.Flags[dir] |= TcpFlags.CloseInit;
        }

        long[] timeouts = settings.TcpTimeouts;
        long stateTimeout = timeouts[newState];
        long timeout;
        if (s.Retrans >= settings.TcpMaxRetrans && stateTimeout > settings.TcpTimeoutMaxRetrans)
        {
            timeout = settings.TcpTimeoutMaxRetrans;
        }
        else if (index == TcpIndex.Rst && newState == TcpConntrack.Established)
        {
            // An in-window RST that did not match exactly kept ESTABLISHED to allow a challenge ACK. Linux 6.12
            // gives it the unacknowledged timeout (when shorter than the state's); the 6.18 oracle gives it
            // the CLOSE timeout, whatever the other timeouts are (only max_retrans, above, takes precedence):
            // recorded with tcp_timeout_close=200/established=100 (-> 200) and unacknowledged=7 (-> 10).
            timeout = timeouts[TcpConntrack.Close];
        }
        else if (((s.Flags[0] | s.Flags[1]) & TcpFlags.DataUnacknowledged) != 0 && stateTimeout > settings.TcpTimeoutUnacknowledged)
        {
            timeout = settings.TcpTimeoutUnacknowledged;
        }
        else if (s.LastWin == 0 && stateTimeout > settings.TcpTimeoutMaxRetrans)
        {
            timeout = settings.TcpTimeoutMaxRetrans;
        }
        else
        {
            timeout = stateTimeout;
        }

        SpinLockInt.Exit(ref c.Lock);

        if (newState != oldState)
        {
            table.CacheEvent(p.Index, Events.ConntrackEventType.ProtoInfo);
        }

        uint status = Volatile.Read(ref c.Status);
        if ((status & (uint)ConnectionStatus.SeenReply) == 0)
        {
            // "If only reply is a RST, we can consider ourselves not to have an established connection: this
            // is a fairly common problem case, so we can delete the conntrack immediately. --RR"
            if ((flags & Rst) != 0)
            {
                // nf_ct_kill_acct()
                table.AccountOnly(p.Index, dir, p.Packet.Length);
                table.Kill(p.Index, p.Now, p.Ctx);
                return TrackResult.Accept;
            }

            if (index == TcpIndex.Syn && oldState == TcpConntrack.SynSent)
            {
                // "do not renew timeout on SYN retransmit. Else port reuse by client or NAT middlebox can
                // keep entry alive indefinitely (including nat info)."
                return TrackResult.Accept;
            }

            // "ESTABLISHED without SEEN_REPLY, i.e. mid-connection pickup with loose=1. Avoid large
            // ESTABLISHED timeout."
            if (newState == TcpConntrack.Established && timeout > settings.TcpTimeoutUnacknowledged)
            {
                timeout = settings.TcpTimeoutUnacknowledged;
            }
        }
        else if ((status & (uint)ConnectionStatus.Assured) == 0
                 && (oldState == TcpConntrack.SynRecv || oldState == TcpConntrack.Established)
                 && newState == TcpConntrack.Established)
        {
            // "Set ASSURED if we see valid ack in ESTABLISHED after SYN_RECV or a valid answer for a picked up
            // connection."
            if (c.TrySet(ConnectionStatus.Assured))
            {
                table.CacheEvent(p.Index, Events.ConntrackEventType.Assured);
            }
        }

        table.Refresh(ref p, ref c, timeout);
        return TrackResult.Accept;
    }

    /// <summary>
    /// The sIG branch of nf_conntrack_tcp_packet(): "Our connection entry may be out of sync, so ignore packets
    /// which may signal the real connection between the client and the server" — annotate the segment in the
    /// last_* fields (so that an answer to it can resync us) and let it through without touching the state
    /// or the timeout. Called with the lock held; releases it.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static TrackResult Ignored(ref PacketContext p, ref Connection c, ref TcpState s, ReadOnlySpan<byte> l4, byte flags,
        int dir, byte index, byte oldState)
    {
        int doff = (l4[12] >> 4) * 4;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(l4[4..]);
        s.LastIndex = index;
        s.LastDir = (byte)dir;
        s.LastSeq = seq;
        s.LastEnd = SeqPlusLen(seq, l4.Length, doff, flags);
        s.LastWin = BinaryPrimitives.ReadUInt16BigEndian(l4[14..]);

        // "a) This is a SYN in ORIGINAL. The client and the server may be in sync but we are not. In that
        // case, we annotate the TCP options and let the packet go through. If it is a valid SYN packet, the
        // server will reply with a SYN/ACK, and then we'll get in sync. Otherwise, the server potentially
        // responds with a challenge ACK if implementing RFC5961."
        if (index == TcpIndex.Syn && dir == 0)
        {
            byte scale = 0, optFlags = 0;
            s.LastFlags = 0;
            s.LastWscale = 0;
            ParseOptions(l4, doff, ref scale, ref optFlags);
            if ((optFlags & TcpFlags.WindowScale) != 0)
            {
                s.LastFlags |= TcpFlags.WindowScale;
                s.LastWscale = scale;
            }

            if ((optFlags & TcpFlags.SackPerm) != 0)
            {
                s.LastFlags |= TcpFlags.SackPerm;
            }

            // "Mark the potential for RFC5961 challenge ACK, this pose a special problem for LAST_ACK state as
            // ACK is intrepretated as ACKing last FIN."
            if (oldState == TcpConntrack.LastAck)
            {
                s.LastFlags |= TcpFlags.ExpectChallengeAck;
            }
        }

        // "possible challenge ack reply to syn"
        if (oldState == TcpConntrack.SynSent && index == TcpIndex.Ack && dir == 1)
        {
            s.LastAck = BinaryPrimitives.ReadUInt32BigEndian(l4[8..]);
        }

        SpinLockInt.Exit(ref c.Lock);
        // NF_ACCEPT: the packet keeps its connection; the reason only says why nothing changed.
        p.Reason = PacketReason.TcpIgnored;
        return TrackResult.Accept;
    }

    private enum RstCheck : byte
    {
        /// <summary>Go on to the window check.</summary>
        Continue,

        /// <summary>Skip the window check (goto in_window).</summary>
        InWindow,

        /// <summary>"invalid rst": -NF_ACCEPT.</summary>
        Invalid,
    }

    /// <summary>The TCP_CONNTRACK_CLOSE case for an RST in nf_conntrack_tcp_packet(). May keep the old state.</summary>
    private static RstCheck CheckRst(Settings settings, ref Connection c, ref TcpState s, ReadOnlySpan<byte> l4, int dir,
        byte oldState, ref byte newState)
    {
        // "If we are closing, tuple might have been re-used already. last_index, last_ack, and all other ct
        // fields used for sequence/window validation are outdated in that case. As the conntrack can already
        // be expired by GC under pressure, just skip validation checks."
        if (CanEarlyDrop(oldState))
        {
            return RstCheck.InWindow;
        }

        uint seq = BinaryPrimitives.ReadUInt32BigEndian(l4[4..]);
        uint ackSeq = BinaryPrimitives.ReadUInt32BigEndian(l4[8..]);
        int other = 1 - dir;
        // "td_maxack might be outdated if we let a SYN through earlier"
        if ((s.Flags[other] & TcpFlags.MaxAckSet) != 0 && s.LastIndex != TcpIndex.Syn)
        {
            bool established = oldState == TcpConntrack.Established && c.Has(ConnectionStatus.Assured);
            // "If we are not in established state and SEQ=0 this is most likely an answer to a SYN we let go
            // through above (last_index can be updated due to out-of-order ACKs)."
            if (seq == 0 && !established)
            {
                return RstCheck.Continue;
            }

            uint maxAck = s.Seen[other].MaxAck;
            if (Before(seq, maxAck) && !settings.TcpIgnoreInvalidRst)
            {
                return RstCheck.Invalid;
            }

            if (!established || seq == maxAck)
            {
                return RstCheck.Continue;
            }

            // "Check if rst is part of train, such as
            //   foo:80 > bar:4379: P, 235946583:235946602(19) ack 42
            //   foo:80 > bar:4379: R, 235946602:235946602(0)  ack 42"
            if (s.LastIndex == TcpIndex.Ack && s.LastDir == dir && seq == s.LastEnd)
            {
                return RstCheck.Continue;
            }

            // "... RST sequence number doesn't match exactly, keep established state to allow a possible
            // challenge ACK."
            newState = oldState;
        }

        if (((c.Has(ConnectionStatus.SeenReply) && s.LastIndex == TcpIndex.Syn && s.LastDir != dir)
             || (!c.Has(ConnectionStatus.Assured) && s.LastIndex == TcpIndex.Ack))
            && ackSeq == s.LastEnd)
        {
            // "RST sent to invalid SYN or ACK we had let through at a) and c) above: a) SYN was in window then
            // c) we hold a half-open connection. Delete our connection entry. We skip window checking, because
            // packet might ACK segments we ignored."
            return RstCheck.InWindow;
        }

        // "Reset in response to a challenge-ack we let through earlier"
        if (oldState == TcpConntrack.SynSent && s.LastIndex == TcpIndex.Ack && s.LastDir == 1 && seq == s.LastAck)
        {
            return RstCheck.InWindow;
        }

        return RstCheck.Continue;
    }

    /// <summary>nf_ct_tcp_state_reset(): forget a direction's window, keeping only its be-liberal mark.</summary>
    private static void ResetPeer(ref TcpState s, int dir)
    {
        s.Seen[dir] = default;
        s.Scale[dir] = 0;
        s.Flags[dir] &= TcpFlags.BeLiberal;
    }

    /// <summary>
    /// tcp_options(), "simplified tcp_parse_options routine from tcp_input.c": the window scale (capped at 14)
    /// and SACK-permitted options. A segment without options leaves <paramref name="scale"/> and
    /// <paramref name="flags"/> as they were; otherwise both are cleared first (keeping be-liberal).
    /// </summary>
    private static void ParseOptions(ReadOnlySpan<byte> l4, int doff, ref byte scale, ref byte flags)
    {
        if (doff == 20)
        {
            return;
        }

        scale = 0;
        flags &= TcpFlags.BeLiberal;
        var options = new TcpOptionWalker(l4.Slice(20, doff - 20));
        while (options.MoveNext(out byte kind, out ReadOnlySpan<byte> data))
        {
            if (kind == OptSackPerm && data.Length + 2 == OptLenSackPerm)
            {
                flags |= TcpFlags.SackPerm;
            }
            else if (kind == OptWindow && data.Length + 2 == OptLenWindow)
            {
                scale = data[0] > MaxWscale ? MaxWscale : data[0];
                flags |= TcpFlags.WindowScale;
            }
        }
    }

    /// <summary>
    /// tcp_sack(): raises <paramref name="sack"/> to the highest right edge of the first SACK option's blocks.
    /// </summary>
    private static void ParseSack(ReadOnlySpan<byte> l4, int doff, ref uint sack)
    {
        int length = doff - 20;
        if (length == 0)
        {
            return;
        }

        ReadOnlySpan<byte> ptr = l4.Slice(20, length);
        // "Fast path for timestamp-only option"
        if (length == OptLenTimestampAligned
            && BinaryPrimitives.ReadUInt32BigEndian(ptr) == ((uint)OptNop << 24 | (uint)OptNop << 16 | (uint)OptTimestamp << 8 | OptLenTimestamp))
        {
            return;
        }

        var options = new TcpOptionWalker(ptr);
        while (options.MoveNext(out byte kind, out ReadOnlySpan<byte> data))
        {
            int opsize = data.Length + 2;
            if (kind == OptSack && opsize >= OptLenSackBase + OptLenSackPerBlock && (opsize - OptLenSackBase) % OptLenSackPerBlock == 0)
            {
                for (int b = 0; b < data.Length; b += OptLenSackPerBlock)
                {
                    uint right = BinaryPrimitives.ReadUInt32BigEndian(data[(b + 4)..]);
                    if (After(right, sack))
                    {
                        sack = right;
                    }
                }

                return;
            }
        }
    }

    /// <summary>
    /// The option walk tcp_options() and tcp_sack() share: end-of-list stops, NOPs are skipped, and a walk
    /// stops at "silly options" (length below 2) and at an option running past the header ("don't parse
    /// partial options").
    /// </summary>
    private ref struct TcpOptionWalker(ReadOnlySpan<byte> options)
    {
        private readonly ReadOnlySpan<byte> _options = options;
        private int _at;

        public bool MoveNext(out byte kind, out ReadOnlySpan<byte> data)
        {
            data = default;
            kind = 0;
            while (_at < _options.Length)
            {
                kind = _options[_at];
                if (kind == OptEol)
                {
                    return false;
                }

                if (kind == OptNop)
                {
                    _at++;
                    continue;
                }

                int remaining = _options.Length - _at;
                if (remaining < 2)
                {
                    return false;
                }

                int size = _options[_at + 1];
                if (size < 2 || size > remaining)
                {
                    return false;
                }

                data = _options.Slice(_at + 2, size - 2);
                _at += size;
                return true;
            }

            return false;
        }
    }

    /// <summary>
    /// tcp_init_sender(): "SYN-ACK in reply to a SYN or SYN from reply direction in simultaneous open."
    /// RFC 1323: "Both sides must send the Window Scale option to enable window scaling in either direction."
    /// </summary>
    private static void InitSender(ref TcpState s, ReadOnlySpan<byte> l4, int doff, uint end, uint win, int dir)
    {
        int other = 1 - dir;
        ref TcpPeer sender = ref s.Seen[dir];
        sender.End = end;
        sender.MaxEnd = end;
        sender.MaxWin = win == 0 ? 1 : win;
        ParseOptions(l4, doff, ref s.Scale[dir], ref s.Flags[dir]);
        if (dir == 1
            && !((s.Flags[dir] & TcpFlags.WindowScale) != 0 && (s.Flags[other] & TcpFlags.WindowScale) != 0))
        {
            s.Scale[dir] = 0;
            s.Scale[other] = 0;
        }
    }

    /// <summary>
    /// nf_tcp_store_invalid(): a failed window check is forgiven (accepted, without updating anything) when
    /// the sender is marked be-liberal or nf_conntrack_tcp_be_liberal is set.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static WindowAction StoreInvalid(Settings settings, byte senderFlags, WindowAction ret) =>
        (senderFlags & TcpFlags.BeLiberal) != 0 || settings.TcpBeLiberal ? WindowAction.Accept : ret;

    /// <summary>
    /// tcp_in_window(): van Rooij's four bounds, as changed by the kernel according to RFC 793 ("the packet
    /// must intersect the window"):
    /// <list type="number">
    /// <item>Upper bound for valid data: seq &lt;= sender.td_maxend</item>
    /// <item>Lower bound for valid data: seq + len &gt;= sender.td_end - receiver.td_maxwin</item>
    /// <item>Upper bound for valid (s)ack: sack &lt;= receiver.td_end</item>
    /// <item>Lower bound for valid (s)ack: sack &gt;= receiver.td_end - MAXACKWINDOW</item>
    /// </list>
    /// where sack is the highest right edge of a SACK block, or the ack without SACK. Then updates the
    /// windows and counts retransmissions.
    /// </summary>
    private static WindowAction TcpInWindow(Settings settings, ref Connection c, ref TcpState s, int dir, byte index,
        ReadOnlySpan<byte> l4, byte flags)
    {
        int other = 1 - dir;
        ref TcpPeer sender = ref s.Seen[dir];
        ref TcpPeer receiver = ref s.Seen[other];
        int doff = (l4[12] >> 4) * 4;
        bool syn = (flags & Syn) != 0;
        bool hasAck = (flags & Ack) != 0;

        uint seq = BinaryPrimitives.ReadUInt32BigEndian(l4[4..]);
        uint ack = BinaryPrimitives.ReadUInt32BigEndian(l4[8..]);
        uint sack = ack;
        ushort winRaw = BinaryPrimitives.ReadUInt16BigEndian(l4[14..]);
        uint win = winRaw;
        uint end = SeqPlusLen(seq, l4.Length, doff, flags);

        if ((s.Flags[other] & TcpFlags.SackPerm) != 0)
        {
            ParseSack(l4, doff, ref sack);
        }

        // NAT sequence adjustment (nf_ct_seq_offset) is always 0 here: no NAT helpers mangle sequences.
        // The state the kernel reads here is the stored one (ct->proto.tcp.state), which the SYN/ACK resync
        // path does not change.
        byte state = c.ProtoState;
        if (sender.MaxWin == 0)
        {
            // "Initialize sender data."
            if (syn)
            {
                InitSender(ref s, l4, doff, end, win, dir);
                if (!hasAck)
                {
                    // "Simultaneous open"
                    return WindowAction.Accept;
                }
            }
            else
            {
                // "We are in the middle of a connection, its history is lost for us. Let's try to use the
                // data from the packet."
                sender.End = end;
                uint swin0 = win << s.Scale[dir];
                sender.MaxWin = swin0 == 0 ? 1 : swin0;
                sender.MaxEnd = end + sender.MaxWin;
                if (receiver.MaxWin == 0)
                {
                    // "We haven't seen traffic in the other direction yet but we have to tweak window
                    // tracking to pass III and IV until that happens."
                    receiver.End = sack;
                    receiver.MaxEnd = sack;
                }
                else if (sack == receiver.End + 1)
                {
                    // "Likely a reply to a keepalive. Needed for III."
                    receiver.End++;
                }
            }
        }
        else if (syn && After(end, sender.End) && (state == TcpConntrack.SynSent || state == TcpConntrack.SynRecv))
        {
            // RFC 793: "if a TCP is reinitialized ... then it need not wait at all; it must only be sure to
            // use sequence numbers larger than those recently used." Re-init this direction, just like for
            // the first syn(-ack) reply: it might differ in seq, ack or tcp options.
            InitSender(ref s, l4, doff, end, win, dir);
            if (dir == 1 && !hasAck)
            {
                return WindowAction.Accept;
            }
        }

        if (!hasAck)
        {
            // "If there is no ACK, just pretend it was set and OK."
            ack = sack = receiver.End;
        }
        else if ((flags & (Ack | Rst)) == (Ack | Rst) && ack == 0)
        {
            // "Broken TCP stacks, that set ACK in RST packets as well with zero ack value."
            ack = sack = receiver.End;
        }

        if ((flags & Rst) != 0 && seq == 0 && state == TcpConntrack.SynSent)
        {
            // "RST sent answering SYN."
            seq = end = sender.End;
        }

        // I. Upper bound for valid data.
        if (!Before(seq, sender.MaxEnd + 1))
        {
            uint overshot = end - sender.MaxEnd + 1;
            bool ackOk = After(sack, receiver.End - MaxAckWindow(sender.MaxWin) - 1);
            bool inRecvWin = receiver.MaxWin != 0 && After(end, sender.End - receiver.MaxWin - 1);
            if (inRecvWin && ackOk && overshot <= receiver.MaxWin && Before(sack, receiver.End + 1))
            {
                // "Work around TCPs that send more bytes than allowed by the receive window. [...] if only
                // the sequence check fails then do update td_end so possible ACK for this data can update
                // internal state."
                sender.End = end;
                s.Flags[dir] |= TcpFlags.DataUnacknowledged;
                return StoreInvalid(settings, s.Flags[dir], WindowAction.Ignore);
            }

            // "SEQ is over upper bound (over the window of the receiver)"
            return StoreInvalid(settings, s.Flags[dir], WindowAction.Invalid);
        }

        // III. Upper bound for valid (s)ack: "ACK is over upper bound (ACKed data not seen yet)".
        if (!Before(sack, receiver.End + 1))
        {
            return StoreInvalid(settings, s.Flags[dir], WindowAction.Invalid);
        }

        // II. "Is the ending sequence in the receive window (if available)?" Otherwise "SEQ is under lower
        // bound (already ACKed data retransmitted)": ignored, not invalid.
        if (!(receiver.MaxWin == 0 || After(end, sender.End - receiver.MaxWin - 1)))
        {
            return StoreInvalid(settings, s.Flags[dir], WindowAction.Ignore);
        }

        // IV. "ignored ACK under lower bound (possible overly delayed)".
        if (!After(sack, receiver.End - MaxAckWindow(sender.MaxWin) - 1))
        {
            return StoreInvalid(settings, s.Flags[dir], WindowAction.Ignore);
        }

        // "Take into account window scaling (RFC 1323)."
        if (!syn)
        {
            win <<= s.Scale[dir];
        }

        // "Update sender data."
        uint swin = win + (sack - ack);
        if (sender.MaxWin < swin)
        {
            sender.MaxWin = swin;
        }

        if (After(end, sender.End))
        {
            sender.End = end;
            s.Flags[dir] |= TcpFlags.DataUnacknowledged;
        }

        if (hasAck)
        {
            if ((s.Flags[dir] & TcpFlags.MaxAckSet) == 0)
            {
                sender.MaxAck = ack;
                s.Flags[dir] |= TcpFlags.MaxAckSet;
            }
            else if (After(ack, sender.MaxAck))
            {
                sender.MaxAck = ack;
            }
        }

        // "Update receiver data."
        if (receiver.MaxWin != 0 && After(end, sender.MaxEnd))
        {
            receiver.MaxWin += end - sender.MaxEnd;
        }

        if (After(sack + win, receiver.MaxEnd - 1))
        {
            receiver.MaxEnd = sack + win;
            if (win == 0)
            {
                receiver.MaxEnd++;
            }
        }

        if (ack == receiver.End)
        {
            s.Flags[other] &= unchecked((byte)~TcpFlags.DataUnacknowledged);
        }

        // "Check retransmissions."
        if (index == TcpIndex.Ack)
        {
            if (s.LastDir == dir && s.LastSeq == seq && s.LastAck == ack && s.LastEnd == end && s.LastWin == winRaw)
            {
                s.Retrans++;
            }
            else
            {
                s.LastDir = (byte)dir;
                s.LastSeq = seq;
                s.LastAck = ack;
                s.LastEnd = end;
                s.LastWin = winRaw;
                s.Retrans = 0;
            }
        }

        return WindowAction.Accept;
    }

    /// <summary>
    /// nf_tcp_handle_invalid(): "We don't want to have connections hanging around in ESTABLISHED state for
    /// long time 'just because' conntrack deemed a FIN/RST out-of-window." An assured connection that sees
    /// out-of-window FIN/RST from both sides in turn gets its timeout shrunk to the unacknowledged one.
    /// </summary>
    private static void HandleInvalid(ConntrackTable table, ref PacketContext p, ref Connection c, ref TcpState s, int dir, byte index)
    {
        uint status = Volatile.Read(ref c.Status);
        if ((status & (uint)ConnectionStatus.Assured) == 0 || (status & (uint)ConnectionStatus.FixedTimeout) != 0)
        {
            return;
        }

        if (index != TcpIndex.Rst && index != TcpIndex.Fin)
        {
            return;
        }

        if (s.LastDir != dir && (s.LastIndex == TcpIndex.Fin || s.LastIndex == TcpIndex.Rst))
        {
            // nf_ct_expires(): time left, never negative.
            long expires = Volatile.Read(ref c.Timeout) - p.Now;
            if (expires < 0)
            {
                expires = 0;
            }

            if (expires < 120 * Settings.NsPerSecond)
            {
                return;
            }

            long timeout = table.Settings.TcpTimeoutUnacknowledged;
            if (expires > timeout)
            {
                Volatile.Write(ref c.Timeout, p.Now + timeout);
            }
        }
        else
        {
            s.LastIndex = index;
            s.LastDir = (byte)dir;
        }
    }
}
