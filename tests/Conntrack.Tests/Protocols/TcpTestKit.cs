using Conntrack.Tests.Support;
using static Conntrack.Tests.Support.PacketBuilder;

namespace Conntrack.Tests.Protocols;

/// <summary>Helpers for the TCP tracker tests: one client/server flow with its sequence numbers.</summary>
public static class TcpTestKit
{
    public const string Client = "192.0.2.10";
    public const string Server = "198.51.100.20";
    public const ushort ClientPort = 40000;
    public const ushort ServerPort = 80;

    /// <summary>Client ISN and server ISN of the standard handshake.</summary>
    public const uint ClientIsn = 1000, ServerIsn = 5000;

    public const long Second = TestTable.Second;

    /// <summary>Window scale option (NOP + kind 3) with the shift count.</summary>
    public static byte[] WScale(byte shift) => [1, 3, 3, shift];

    /// <summary>SACK-permitted option (kind 4) padded with two NOPs.</summary>
    public static readonly byte[] SackPerm = [1, 1, 4, 2];

    /// <summary>A SACK option (kind 5) with the given blocks (left, right), after two NOPs.</summary>
    public static byte[] Sack(params (uint Left, uint Right)[] blocks)
    {
        var o = new byte[4 + blocks.Length * 8];
        o[0] = 1;
        o[1] = 1;
        o[2] = 5;
        o[3] = (byte)(2 + blocks.Length * 8);
        for (int i = 0; i < blocks.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(4 + i * 8), blocks[i].Left);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(8 + i * 8), blocks[i].Right);
        }

        return o;
    }

    /// <summary>
    /// A client (original direction) and a server (reply direction) talking through the table. It keeps
    /// the next sequence number of each side; <see cref="Orig"/> and <see cref="Reply"/> send a segment
    /// with explicit numbers, <see cref="O"/> and <see cref="R"/> with the current ones.
    /// </summary>
    public sealed class Flow(TestTable t, ushort clientPort = ClientPort)
    {
        public TestTable Table { get; } = t;

        public ushort ClientPortNumber { get; } = clientPort;

        /// <summary>Next sequence number of the client and of the server.</summary>
        public uint CNext { get; set; } = ClientIsn;

        public uint SNext { get; set; } = ServerIsn;

        public byte[] OrigPacket(byte flags, uint seq, uint ack, ushort window = 65535, byte[]? options = null, int payload = 0) =>
            Tcp(Client, Server, ClientPortNumber, ServerPort, flags, seq, ack, window, options, payload);

        public byte[] ReplyPacket(byte flags, uint seq, uint ack, ushort window = 65535, byte[]? options = null, int payload = 0) =>
            Tcp(Server, Client, ServerPort, ClientPortNumber, flags, seq, ack, window, options, payload);

        public PacketState Orig(byte flags, uint seq, uint ack, ushort window = 65535, byte[]? options = null, int payload = 0) =>
            Table.Send(OrigPacket(flags, seq, ack, window, options, payload));

        public PacketState Reply(byte flags, uint seq, uint ack, ushort window = 65535, byte[]? options = null, int payload = 0) =>
            Table.Send(ReplyPacket(flags, seq, ack, window, options, payload));

        /// <summary>Client segment at the client's next sequence number acknowledging the server's; advances.</summary>
        public PacketState O(byte flags, int payload = 0, ushort window = 65535, byte[]? options = null)
        {
            var r = Orig(flags, CNext, (flags & FlagAck) != 0 ? SNext : 0, window, options, payload);
            CNext += (uint)payload + ((flags & FlagSyn) != 0 ? 1u : 0u) + ((flags & FlagFin) != 0 ? 1u : 0u);
            return r;
        }

        /// <summary>Server segment at the server's next sequence number acknowledging the client's; advances.</summary>
        public PacketState R(byte flags, int payload = 0, ushort window = 65535, byte[]? options = null)
        {
            var r = Reply(flags, SNext, (flags & FlagAck) != 0 ? CNext : 0, window, options, payload);
            SNext += (uint)payload + ((flags & FlagSyn) != 0 ? 1u : 0u) + ((flags & FlagFin) != 0 ? 1u : 0u);
            return r;
        }

        /// <summary>SYN, SYN/ACK, ACK.</summary>
        public void Handshake(byte[]? clientOptions = null, byte[]? serverOptions = null, ushort clientWindow = 65535, ushort serverWindow = 65535)
        {
            O(FlagSyn, window: clientWindow, options: clientOptions).Info.Should().Be(ConntrackInfo.New);
            R(FlagSyn | FlagAck, window: serverWindow, options: serverOptions).Info.Should().Be(ConntrackInfo.EstablishedReply);
            O(FlagAck, window: clientWindow).Info.Should().Be(ConntrackInfo.Established);
        }

        /// <summary>Drives a fresh flow into a state (by its /proc name) with in-window segments.</summary>
        public void DriveTo(string state)
        {
            switch (state)
            {
                case "NONE":
                    break;
                case "SYN_SENT":
                    O(FlagSyn);
                    break;
                case "SYN_SENT2":
                    // Simultaneous open: both sides send a SYN.
                    O(FlagSyn);
                    R(FlagSyn);
                    break;
                case "SYN_RECV":
                    O(FlagSyn);
                    R(FlagSyn | FlagAck);
                    break;
                case "ESTABLISHED":
                    Handshake();
                    break;
                case "FIN_WAIT":
                    Handshake();
                    O(FlagFin | FlagAck);
                    break;
                case "CLOSE_WAIT":
                    Handshake();
                    O(FlagFin | FlagAck);
                    R(FlagAck);
                    break;
                case "LAST_ACK":
                    Handshake();
                    O(FlagFin | FlagAck);
                    R(FlagAck);
                    R(FlagFin | FlagAck);
                    break;
                case "TIME_WAIT":
                    Handshake();
                    O(FlagFin | FlagAck);
                    R(FlagAck);
                    R(FlagFin | FlagAck);
                    O(FlagAck);
                    break;
                case "CLOSE":
                    Handshake();
                    Orig(FlagRst, CNext, 0);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(state), state, null);
            }
        }

        /// <summary>
        /// One segment of a flag class ("syn", "synack", "fin", "ack", "rst", "none") in a direction (0 client,
        /// 1 server), at the side's current numbers; SYNs reuse the side's initial sequence number.
        /// </summary>
        public PacketState Probe(int dir, string cls)
        {
            uint mine = dir == 0 ? CNext : SNext, other = dir == 0 ? SNext : CNext, isn = dir == 0 ? ClientIsn : ServerIsn;
            (byte flags, uint seq, uint ack) = cls switch
            {
                "syn" => ((byte)FlagSyn, isn, 0u),
                "synack" => ((byte)(FlagSyn | FlagAck), isn, other),
                "fin" => ((byte)(FlagFin | FlagAck), mine, other),
                "ack" => ((byte)FlagAck, mine, other),
                "rst" => ((byte)FlagRst, mine, 0u),
                // No SYN, FIN, ACK or RST: only PSH, which tcp_error()'s whitelist refuses.
                "none" => ((byte)FlagPsh, mine, other),
                _ => throw new ArgumentOutOfRangeException(nameof(cls), cls, null),
            };
            return dir == 0 ? Orig(flags, seq, ack) : Reply(flags, seq, ack);
        }

        /// <summary>The single connection's info (fails if there is not exactly one).</summary>
        public ConnectionInfo Conn()
        {
            var all = Table.Connections();
            all.Should().ContainSingle();
            return all[0];
        }

        public string? StateName() => Conn().StateName;

        /// <summary>Seconds left on the single connection's timeout.</summary>
        public double TimeoutSeconds() => Conn().RemainingNs / (double)Second;
    }
}
