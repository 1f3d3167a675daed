namespace Conntrack.Benchmarks.Infrastructure;

/// <summary>Layer-4 protocol of a synthetic flow set.</summary>
public enum FlowProtocol
{
    /// <summary>UDP: a query/answer pair per flow, replied to, then seen again after 2 s (an assured stream).</summary>
    Udp,

    /// <summary>TCP: a three-way handshake per flow, then a data segment and its acknowledgement.</summary>
    Tcp,
}

/// <summary>
/// A set of IPv4 flows and a long, pre-shuffled sequence of their established-state packets (both directions),
/// laid out in one arena in the order they are sent, as a NIC's receive ring would hold them: the packet bytes
/// stream through the cache sequentially, and only the engine's own structures are touched at random.
/// </summary>
internal sealed class EstablishedFlows
{
    /// <summary>Virtual clock at which flow set-up starts (nanoseconds).</summary>
    public const long SetupStart = 1_000_000_000_000L;

    private const ushort TcpServerPort = 443;
    private const ushort UdpServerPort = 4500;
    private const int OriginalPayload = 32;
    private const int ReplyPayload = 64;

    private EstablishedFlows(FlowProtocol protocol, int flows, byte[] arena, PacketSegment[] sequence)
    {
        Protocol = protocol;
        Flows = flows;
        Arena = arena;
        Sequence = sequence;
    }

    public FlowProtocol Protocol { get; }

    public int Flows { get; }

    /// <summary>The packets of <see cref="Sequence"/>, back to back, in sending order.</summary>
    public byte[] Arena { get; }

    /// <summary>The established-state packets in sending order; its length is a multiple of 32.</summary>
    public PacketSegment[] Sequence { get; }

    /// <summary>
    /// Builds <paramref name="flows"/> flows and a sequence of at least <paramref name="minLength"/> packets: whole
    /// rounds in which every flow sends once in each direction, each round shuffled (seeded), padded to a multiple of 32.
    /// </summary>
    public static EstablishedFlows Build(FlowProtocol protocol, int flows, int minLength, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(flows, 1);
        int round = checked(2 * flows);
        int rounds = Math.Max(1, (minLength + round - 1) / round);
        int length = checked(rounds * round);
        length = (length + 31) & ~31;
        var rng = new Random(seed);
        var events = new int[length]; // flow * 2 + direction
        int n = 0;
        for (int r = 0; r < rounds; r++)
        {
            int start = n;
            for (int e = 0; e < round; e++)
            {
                events[n++] = e;
            }

            rng.Shuffle(events.AsSpan(start, round));
        }

        while (n < length)
        {
            events[n++] = rng.Next(round);
        }

        long bytes = 0;
        foreach (int e in events)
        {
            bytes += PacketLength(protocol, e & 1);
        }

        var arena = GC.AllocateUninitializedArray<byte>(checked((int)bytes), pinned: true);
        var sequence = new PacketSegment[length];
        int offset = 0;
        for (int i = 0; i < length; i++)
        {
            int flow = events[i] >> 1, dir = events[i] & 1;
            int len = WriteEstablished(arena.AsSpan(offset), protocol, flow, dir);
            sequence[i] = new PacketSegment(offset, len);
            offset += len;
        }

        return new EstablishedFlows(protocol, flows, arena, sequence);
    }

    /// <summary>
    /// Sets every flow up in <paramref name="table"/> through the packet path (In and Confirm), so that each is
    /// confirmed and established in both directions. Returns a timestamp after the set-up from which a benchmark
    /// can run its clock.
    /// </summary>
    public long SetUp(ConntrackTable table)
    {
        Span<byte> scratch = stackalloc byte[256];
        var state = default(PacketState);
        long now = SetupStart;
        for (int f = 0; f < Flows; f++)
        {
            long t = now + f * 1000L; // 1 µs apart
            if (Protocol == FlowProtocol.Udp)
            {
                Send(table, scratch[..WriteEstablished(scratch, Protocol, f, 0)], t, ref state, f);
                Send(table, scratch[..WriteEstablished(scratch, Protocol, f, 1)], t, ref state, f);
            }
            else
            {
                (uint client, uint server, ushort sport) = Address(f);
                (uint isn, uint isr) = InitialSequenceNumbers(f);
                Send(table, scratch[..PacketWriter.Ipv4Tcp(scratch, client, server, sport, TcpServerPort, PacketWriter.FlagSyn, isn, 0, 0)], t, ref state, f);
                Send(table, scratch[..PacketWriter.Ipv4Tcp(scratch, server, client, TcpServerPort, sport, PacketWriter.FlagSyn | PacketWriter.FlagAck, isr, isn + 1, 0)], t, ref state, f);
                Send(table, scratch[..PacketWriter.Ipv4Tcp(scratch, client, server, sport, TcpServerPort, PacketWriter.FlagAck, isn + 1, isr + 1, 0)], t, ref state, f);
                Send(table, scratch[..WriteEstablished(scratch, Protocol, f, 0)], t, ref state, f);
                Send(table, scratch[..WriteEstablished(scratch, Protocol, f, 1)], t, ref state, f);
            }
        }

        long later = now + Flows * 1000L + 3_000_000_000L; // > 2 s after creation: UDP flows become assured streams
        for (int f = 0; f < Flows; f++)
        {
            Send(table, scratch[..WriteEstablished(scratch, Protocol, f, 0)], later, ref state, f);
        }

        if (table.Count != Flows)
        {
            throw new InvalidOperationException($"Set-up left {table.Count} connections in the table, expected {Flows}.");
        }

        return later + 1_000_000_000L;
    }

    /// <summary>
    /// Sends the whole sequence once and checks that every packet is accepted as ESTABLISHED (original direction)
    /// or ESTABLISHED+REPLY and that no connection was created. Returns the clock after the pass.
    /// </summary>
    public long Verify(ConntrackTable table, long now)
    {
        var state = default(PacketState);
        long bad = 0;
        string? first = null;
        for (int i = 0; i < Sequence.Length; i++)
        {
            var seg = Sequence[i];
            var pkt = new ReadOnlySpan<byte>(Arena, seg.Offset, seg.Length);
            Verdict v = table.In(pkt, now, ref state);
            ConntrackInfo info = state.Info;
            if (v == Verdict.Accept)
            {
                v = table.Confirm(pkt, now, ref state);
            }

            bool reply = pkt[12] != 10; // clients are 10.0.0.0/8
            if (v != Verdict.Accept || info != (reply ? ConntrackInfo.EstablishedReply : ConntrackInfo.Established))
            {
                bad++;
                first ??= $"packet {i}: verdict {v}, info {info}, reason {state.Reason}";
            }

            now++;
        }

        if (bad != 0 || table.Count != Flows)
        {
            throw new InvalidOperationException(
                $"{bad} of {Sequence.Length} established-state packets were not ESTABLISHED (first: {first}); table holds {table.Count} of {Flows} flows.");
        }

        return now;
    }

    private static void Send(ConntrackTable table, ReadOnlySpan<byte> pkt, long now, ref PacketState state, int flow)
    {
        Verdict v = table.In(pkt, now, ref state);
        if (v == Verdict.Accept)
        {
            v = table.Confirm(pkt, now, ref state);
        }

        if (v != Verdict.Accept || state.Info == ConntrackInfo.Invalid)
        {
            throw new InvalidOperationException($"Set-up packet of flow {flow} got {v} / {state.Info} ({state.Reason}).");
        }
    }

    /// <summary>Client 10.0.0.0/8 (distinct per flow), server one of 250 in 192.168.0.0/24, client port 1024..61023.</summary>
    private static (uint Client, uint Server, ushort ClientPort) Address(int flow) =>
        (0x0A000000u + (uint)flow + 1, 0xC0A80000u + (uint)(flow % 250) + 1, (ushort)(1024 + flow % 60000));

    private static (uint Isn, uint Isr) InitialSequenceNumbers(int flow)
    {
        uint h = (uint)flow * 0x9E3779B1u;
        return (h ^ 0x5BD1E995u, (h >> 7) * 2654435761u);
    }

    private static int PacketLength(FlowProtocol protocol, int dir) => protocol == FlowProtocol.Udp
        ? PacketWriter.UdpLength(dir == 0 ? OriginalPayload : ReplyPayload)
        : PacketWriter.TcpLength(dir == 0 ? OriginalPayload : 0);

    /// <summary>
    /// The steady-state packet of a flow: UDP a query (original) or answer (reply); TCP a 32-byte data segment
    /// (original) or the pure ACK that acknowledges it (reply). Sending either again is a retransmission, which
    /// TCP window tracking accepts, so the sequence can be replayed any number of times.
    /// </summary>
    private static int WriteEstablished(Span<byte> dst, FlowProtocol protocol, int flow, int dir)
    {
        (uint client, uint server, ushort sport) = Address(flow);
        if (protocol == FlowProtocol.Udp)
        {
            return dir == 0
                ? PacketWriter.Ipv4Udp(dst, client, server, sport, UdpServerPort, OriginalPayload)
                : PacketWriter.Ipv4Udp(dst, server, client, UdpServerPort, sport, ReplyPayload);
        }

        (uint isn, uint isr) = InitialSequenceNumbers(flow);
        return dir == 0
            ? PacketWriter.Ipv4Tcp(dst, client, server, sport, TcpServerPort, PacketWriter.FlagAck | PacketWriter.FlagPsh, isn + 1, isr + 1, OriginalPayload)
            : PacketWriter.Ipv4Tcp(dst, server, client, TcpServerPort, sport, PacketWriter.FlagAck, isr + 1, isn + 1 + OriginalPayload, 0);
    }
}
