using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Conntrack.Table;

namespace Conntrack.Protocols;

/// <summary>
/// SCTP connection tracking, a port of the kernel's nf_conntrack_proto_sctp.c (Linux 6.18): the chunk
/// sanity checks, the state table indexed by direction, chunk type and state, the verification tag rules
/// of RFC 9260 section 8.5, the INIT/INIT ACK tag bookkeeping and the heartbeat handling that lets a
/// secondary path (multi-homing) or a restarted association be picked up.
/// </summary>
/// <remarks>
/// Every rejection is the kernel's -NF_ACCEPT (the packet is invalid and gets no connection); this tracker
/// never drops. The state is <c>Connection.ProtoState</c>; tags and INIT flags are <see cref="SctpState"/>.
/// </remarks>
internal static class SctpTracker
{
    /// <summary>sizeof(struct sctphdr): source port, destination port, verification tag, checksum.</summary>
    private const int HeaderLength = 12;

    /// <summary>sizeof(struct sctp_chunkhdr): type, flags, length.</summary>
    private const int ChunkHeaderLength = 4;

    /// <summary>sizeof(struct sctp_inithdr): init_tag, a_rwnd, two stream counts, initial_tsn.</summary>
    private const int InitHeaderLength = 16;

    private const byte sNO = SctpConntrack.None;
    private const byte sCL = SctpConntrack.Closed;
    private const byte sCW = SctpConntrack.CookieWait;
    private const byte sCE = SctpConntrack.CookieEchoed;
    private const byte sES = SctpConntrack.Established;
    private const byte sSS = SctpConntrack.ShutdownSent;
    private const byte sSR = SctpConntrack.ShutdownRecd;
    private const byte sSA = SctpConntrack.ShutdownAckSent;
    private const byte sHS = SctpConntrack.HeartbeatSent;
    private const byte sIV = SctpConntrack.Max;

    /// <summary>Rows of the state table per direction (the chunk types sctp_new_state() knows).</summary>
    private const int Rows = 11;

    /// <summary>Columns: SCTP_CONNTRACK_MAX. The kernel's rows list 9 states; the 10th (HEARTBEAT_ACKED) is zero, sNO.</summary>
    private const int Columns = SctpConntrack.Max;

    /// <summary>Chunk types whose presence skips the general verification tag check (they have their own rules).</summary>
    private const ulong VtagCheckExempt =
        (1UL << SctpChunk.Init) | (1UL << SctpChunk.ShutdownComplete) | (1UL << SctpChunk.CookieEcho)
        | (1UL << SctpChunk.Abort) | (1UL << SctpChunk.ShutdownAck) | (1UL << SctpChunk.Heartbeat)
        | (1UL << SctpChunk.HeartbeatAck);

    /// <summary>"If an OOTB packet has any of these chunks discard (Sec 8.4)".</summary>
    private const ulong OutOfTheBlueDiscard =
        (1UL << SctpChunk.Abort) | (1UL << SctpChunk.ShutdownComplete) | (1UL << SctpChunk.CookieAck);

    /// <summary>
    /// sctp_conntracks[dir][row][state], flattened: <c>(dir * Rows + row) * Columns + state</c>. Typed from the
    /// kernel source, row by row; the last column of each row is the unused HEARTBEAT_ACKED state (sNO).
    /// </summary>
    private static ReadOnlySpan<byte> Transitions =>
    [
        // ORIGINAL
        //                  sNO, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS, (sHA)
        /* init         */ sCL, sCL, sCW, sCE, sES, sCL, sCL, sSA, sCW, sNO,
        /* init_ack     */ sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sCL, sNO,
        /* abort        */ sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sNO,
        /* shutdown     */ sCL, sCL, sCW, sCE, sSS, sSS, sSR, sSA, sCL, sNO,
        /* shutdown_ack */ sSA, sCL, sCW, sCE, sES, sSA, sSA, sSA, sSA, sNO,
        /* error        */ sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sCL, sNO, // Can't have Stale cookie
        /* cookie_echo  */ sCL, sCL, sCE, sCE, sES, sSS, sSR, sSA, sCL, sNO, // 5.2.4 - Big TODO
        /* cookie_ack   */ sCL, sCL, sCW, sES, sES, sSS, sSR, sSA, sCL, sNO, // Can't come in orig dir
        /* shutdown_comp*/ sCL, sCL, sCW, sCE, sES, sSS, sSR, sCL, sCL, sNO,
        /* heartbeat    */ sHS, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS, sNO,
        /* heartbeat_ack*/ sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS, sNO,
        // REPLY
        //                  sNO, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS, (sHA)
        /* init         */ sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sIV, sNO, // INIT in sCL Big TODO
        /* init_ack     */ sIV, sCW, sCW, sCE, sES, sSS, sSR, sSA, sIV, sNO,
        /* abort        */ sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sIV, sNO,
        /* shutdown     */ sIV, sCL, sCW, sCE, sSR, sSS, sSR, sSA, sIV, sNO,
        /* shutdown_ack */ sIV, sCL, sCW, sCE, sES, sSA, sSA, sSA, sIV, sNO,
        /* error        */ sIV, sCL, sCW, sCL, sES, sSS, sSR, sSA, sIV, sNO,
        /* cookie_echo  */ sIV, sCL, sCE, sCE, sES, sSS, sSR, sSA, sIV, sNO, // Can't come in reply dir
        /* cookie_ack   */ sIV, sCL, sCW, sES, sES, sSS, sSR, sSA, sIV, sNO,
        /* shutdown_comp*/ sIV, sCL, sCW, sCE, sES, sSS, sSR, sCL, sIV, sNO,
        /* heartbeat    */ sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS, sNO,
        /* heartbeat_ack*/ sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sES, sNO,
    ];

    /// <summary>
    /// sctp_new_state(): the state after a chunk of <paramref name="chunkType"/> in direction
    /// <paramref name="dir"/>; chunk types outside the table (DATA, SACK, ...) leave the state unchanged.
    /// <see cref="SctpConntrack.Max"/> means invalid.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static byte NewState(int dir, byte state, byte chunkType)
    {
        int row;
        switch (chunkType)
        {
            case SctpChunk.Init: row = 0; break;
            case SctpChunk.InitAck: row = 1; break;
            case SctpChunk.Abort: row = 2; break;
            case SctpChunk.Shutdown: row = 3; break;
            case SctpChunk.ShutdownAck: row = 4; break;
            case SctpChunk.Error: row = 5; break;
            case SctpChunk.CookieEcho: row = 6; break;
            case SctpChunk.CookieAck: row = 7; break;
            case SctpChunk.ShutdownComplete: row = 8; break;
            case SctpChunk.Heartbeat: row = 9; break;
            case SctpChunk.HeartbeatAck: row = 10; break;
            default:
                // "Other chunks like DATA or SACK do not change the state"
                return state;
        }

        return Transitions[(((dir * Rows) + row) * Columns) + state];
    }

    /// <summary>nf_conntrack_sctp_packet(). Returns <see cref="TrackResult.Accept"/> or, for -NF_ACCEPT, <see cref="TrackResult.Invalid"/>.</summary>
    public static TrackResult Packet(ConntrackTable table, ref PacketContext p, ref Connection c)
    {
        ReadOnlySpan<byte> l4 = p.L4;

        // sctp_error()
        if (l4.Length < HeaderLength)
        {
            p.Reason = PacketReason.Layer4Truncated; // "nf_ct_sctp: short packet"
            return TrackResult.Invalid;
        }

        // Checked at PREROUTING (the only hook here) with nf_conntrack_checksum on; packets reach conntrack
        // as CHECKSUM_NONE (no offload verified them).
        if (table.Settings.Checksum && !SctpChecksum.Valid(l4))
        {
            p.Reason = PacketReason.Layer4Checksum; // "nf_ct_sctp: bad CRC"
            return TrackResult.Invalid;
        }

        if (!BasicChecks(l4, out ulong map))
        {
            p.Reason = PacketReason.Layer4Malformed;
            return TrackResult.Invalid;
        }

        uint vtag = BinaryPrimitives.ReadUInt32BigEndian(l4[4..]);
        ref SctpState s = ref table.Proto[p.Index].As<SctpState>();
        bool confirmed = (Volatile.Read(ref c.Status) & (uint)ConnectionStatus.Confirmed) != 0;
        if (!confirmed)
        {
            if ((map & OutOfTheBlueDiscard) != 0 || !New(ref c, ref s, l4, vtag))
            {
                p.Reason = PacketReason.CannotCreate;
                return TrackResult.Invalid;
            }
        }

        int dir = p.Direction;

        // Check the verification tag (Sec 8.5)
        if ((map & VtagCheckExempt) == 0 && vtag != s.Vtag(dir))
        {
            p.Reason = PacketReason.SctpVerificationTag;
            return TrackResult.Invalid;
        }

        SpinLockInt.Enter(ref c.Lock);
        PacketReason reason = Chunks(ref c, ref s, l4, map, vtag, dir, confirmed, out byte newState, out bool ignore);
        SpinLockInt.Exit(ref c.Lock);
        if (reason != PacketReason.None)
        {
            p.Reason = reason;
            return TrackResult.Invalid;
        }

        // "allow but do not refresh timeout"
        if (ignore)
        {
            return TrackResult.Accept;
        }

        // timeouts[0] holds the CLOSED timeout ("so ->timeouts[0] contains 'new' timeout").
        long[] timeouts = table.Settings.SctpTimeouts;
        table.Refresh(ref p, ref c, timeouts[newState == sNO ? sCL : newState]);
        return TrackResult.Accept;
    }

    /// <summary>
    /// do_basic_checks(): walks the chunks; false (invalid) for a zero-length chunk, a COOKIE ECHO or COOKIE ACK
    /// that is not the first chunk, an INIT, INIT ACK or SHUTDOWN COMPLETE that is not the only chunk, or no
    /// chunk at all. <paramref name="map"/> gets a bit per chunk type seen (only types below 64 are ever asked
    /// about, so one word of the kernel's 256-bit map is enough).
    /// </summary>
    private static bool BasicChecks(ReadOnlySpan<byte> l4, out ulong map)
    {
        map = 0;
        int count = 0;
        bool flag = false;

        // for_each_sctp_chunk: while a whole chunk header is in the packet, stepping by the padded length.
        for (int offset = HeaderLength; offset + ChunkHeaderLength <= l4.Length; count++)
        {
            byte type = l4[offset];
            int length = BinaryPrimitives.ReadUInt16BigEndian(l4[(offset + 2)..]);
            if (type is SctpChunk.Init or SctpChunk.InitAck or SctpChunk.ShutdownComplete)
            {
                flag = true;
            }

            // "Cookie Ack/Echo chunks not the first OR Init / Init Ack / Shutdown compl chunks not the only
            // chunks OR zero-length."
            if (((type is SctpChunk.CookieAck or SctpChunk.CookieEcho || flag) && count != 0) || length == 0)
            {
                return false;
            }

            if (type < 64)
            {
                map |= 1UL << type;
            }

            offset += (length + 3) & ~3;
        }

        return count != 0;
    }

    /// <summary>
    /// sctp_new(): a connection may start with any chunk the table moves out of NONE in the original
    /// direction (not DATA, SACK or other unlisted types); an INIT must carry vtag 0 and a whole INIT header.
    /// Records the tags known from the first packet.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool New(ref Connection c, ref SctpState s, ReadOnlySpan<byte> l4, uint vtag)
    {
        s = default;
        c.ProtoState = sNO;
        for (int offset = HeaderLength; offset + ChunkHeaderLength <= l4.Length;)
        {
            byte type = l4[offset];
            int length = BinaryPrimitives.ReadUInt16BigEndian(l4[(offset + 2)..]);
            byte newState = NewState(0, sNO, type);

            // "Invalid: delete conntrack"
            if (newState is sNO or sIV)
            {
                return false;
            }

            // "Copy the vtag into the state info"
            if (type == SctpChunk.Init)
            {
                // "Sec 8.5.1 (A)"
                if (vtag != 0 || offset + ChunkHeaderLength + InitHeaderLength > l4.Length)
                {
                    return false;
                }

                s.VtagReply = BinaryPrimitives.ReadUInt32BigEndian(l4[(offset + ChunkHeaderLength)..]);
            }
            else if (type == SctpChunk.Heartbeat)
            {
                // "Setting vtag for secondary conntrack"
                s.VtagOriginal = vtag;
            }
            else if (type == SctpChunk.ShutdownAck)
            {
                // "If it is a shutdown ack OOTB packet, we expect a return shutdown complete, otherwise an
                // ABORT Sec 8.4 (5) and (8)"
                s.VtagReply = vtag;
            }

            offset += (length + 3) & ~3;
        }

        return true;
    }

    /// <summary>
    /// The chunk loop of nf_conntrack_sctp_packet(), under the connection's lock: the special vtag cases of
    /// Sec 8.5.1, heartbeat tag learning, the state transition and the INIT/INIT ACK tag bookkeeping of each
    /// chunk. Returns <see cref="PacketReason.None"/>, or why the packet is invalid.
    /// </summary>
    private static PacketReason Chunks(ref Connection c, ref SctpState s, ReadOnlySpan<byte> l4, ulong map, uint vtag,
        int dir, bool confirmed, out byte newState, out bool ignore)
    {
        int other = dir ^ 1;
        newState = sNO;
        ignore = false;
        int length;
        for (int offset = HeaderLength; offset + ChunkHeaderLength <= l4.Length; offset += (length + 3) & ~3)
        {
            byte type = l4[offset];
            byte chunkFlags = l4[offset + 1];
            length = BinaryPrimitives.ReadUInt16BigEndian(l4[(offset + 2)..]);

            // Special cases of Verification tag check (Sec 8.5.1)
            switch (type)
            {
                case SctpChunk.Init:
                    // (A) vtag MUST be zero
                    if (vtag != 0)
                    {
                        return PacketReason.SctpVerificationTag;
                    }

                    break;
                case SctpChunk.Abort:
                case SctpChunk.ShutdownComplete:
                    // (B), (C): vtag MUST match own vtag if T flag is unset OR MUST match peer's vtag if T flag is set
                    if (vtag != s.Vtag((chunkFlags & SctpChunk.FlagT) == 0 ? dir : other))
                    {
                        return PacketReason.SctpVerificationTag;
                    }

                    break;
                case SctpChunk.CookieEcho:
                    // (D) vtag must be same as init_vtag as found in INIT_ACK
                    if (vtag != s.Vtag(dir))
                    {
                        return PacketReason.SctpVerificationTag;
                    }

                    break;
                case SctpChunk.CookieAck:
                    s.Init(dir) = 0;
                    s.Init(other) = 0;
                    break;
                case SctpChunk.Heartbeat:
                    if (s.Vtag(dir) == 0)
                    {
                        s.Vtag(dir) = vtag;
                    }
                    else if (vtag != s.Vtag(dir))
                    {
                        if ((map & (1UL << SctpChunk.Data)) != 0 || ignore)
                        {
                            return PacketReason.SctpVerificationTag;
                        }

                        // Maybe a new path or a restart: remember it, let it through without refreshing, and
                        // leave the state alone.
                        s.Flags |= SctpState.FlagHeartbeatVtagFailed;
                        s.LastDir = (byte)dir;
                        ignore = true;
                        continue;
                    }
                    else if ((s.Flags & SctpState.FlagHeartbeatVtagFailed) != 0)
                    {
                        s.Flags &= unchecked((byte)~SctpState.FlagHeartbeatVtagFailed);
                    }

                    break;
                case SctpChunk.HeartbeatAck:
                    if (s.Vtag(dir) == 0)
                    {
                        s.Vtag(dir) = vtag;
                    }
                    else if (vtag != s.Vtag(dir))
                    {
                        if ((map & (1UL << SctpChunk.Data)) != 0 || ignore)
                        {
                            return PacketReason.SctpVerificationTag;
                        }

                        // Only the answer to a HEARTBEAT that failed the check in the other direction.
                        if ((s.Flags & SctpState.FlagHeartbeatVtagFailed) == 0 || s.LastDir == dir)
                        {
                            return PacketReason.SctpVerificationTag;
                        }

                        s.Flags &= unchecked((byte)~SctpState.FlagHeartbeatVtagFailed);
                        s.Vtag(dir) = vtag;
                        s.Vtag(other) = 0;
                    }
                    else if ((s.Flags & SctpState.FlagHeartbeatVtagFailed) != 0)
                    {
                        s.Flags &= unchecked((byte)~SctpState.FlagHeartbeatVtagFailed);
                    }

                    break;
            }

            byte oldState = c.ProtoState;
            newState = NewState(dir, oldState, type);
            if (newState == sIV)
            {
                return PacketReason.SctpInvalid;
            }

            // If it is an INIT or an INIT ACK note down the vtag
            if (type == SctpChunk.Init)
            {
                if (offset + ChunkHeaderLength + InitHeaderLength > l4.Length)
                {
                    return PacketReason.Layer4Truncated;
                }

                uint initTag = BinaryPrimitives.ReadUInt32BigEndian(l4[(offset + ChunkHeaderLength)..]);

                // Do not record INIT matching peer vtag (stale or retransmitted INIT).
                if (oldState == sNO || s.Vtag(other) != initTag)
                {
                    if (s.Init(dir) != 0 && s.Init(other) != 0)
                    {
                        s.Init(other) = 0;
                    }

                    s.Init(dir) = 1;
                }

                s.Vtag(other) = initTag;

                // "don't renew timeout on init retransmit so port reuse by client or NAT middlebox cannot
                // keep entry alive indefinitely (incl. nat info)."
                if (newState == sCL && oldState == sCL && confirmed)
                {
                    ignore = true;
                }
            }
            else if (type == SctpChunk.InitAck)
            {
                if (offset + ChunkHeaderLength + InitHeaderLength > l4.Length)
                {
                    return PacketReason.Layer4Truncated;
                }

                uint initTag = BinaryPrimitives.ReadUInt32BigEndian(l4[(offset + ChunkHeaderLength)..]);
                uint peer = s.Vtag(other);
                if (s.Init(other) == 0 && peer != 0 && peer != initTag)
                {
                    return PacketReason.SctpVerificationTag;
                }

                // collision
                if (s.Init(dir) != 0 && s.Init(other) != 0 && peer != initTag)
                {
                    return PacketReason.SctpVerificationTag;
                }

                s.Vtag(other) = initTag;
            }

            c.ProtoState = newState;
            if (oldState != newState && newState == sES)
            {
                c.TrySet(ConnectionStatus.Assured);
            }
        }

        return PacketReason.None;
    }

    /// <summary>sctp_can_early_drop(): entries that are shutting down may be evicted even when assured.</summary>
    public static bool CanEarlyDrop(byte state) => state is sSS or sSR or sSA;

    /// <summary>sctp_conntrack_names[]: the state as /proc/net/nf_conntrack prints it.</summary>
    public static string? StateName(byte state) => state switch
    {
        sNO => "NONE",
        sCL => "CLOSED",
        sCW => "COOKIE_WAIT",
        sCE => "COOKIE_ECHOED",
        sES => "ESTABLISHED",
        sSS => "SHUTDOWN_SENT",
        sSR => "SHUTDOWN_RECD",
        sSA => "SHUTDOWN_ACK_SENT",
        sHS => "HEARTBEAT_SENT",
        _ => null,
    };
}
