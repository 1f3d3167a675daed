using Conntrack.Tests.Support;

namespace Conntrack.Tests.Api;

/// <summary>
/// What the burst entry points promise: <c>TrackBatch</c> equals In + Confirm per packet in order; <c>InBatch</c>
/// equals In for every packet and only then Confirm, so a new flow's later packets in the same burst race with
/// its first as on two CPUs.
/// </summary>
/// <remarks>
/// Run twice (the two subclasses below): with the chain walk ahead on every burst, and with the small-table path
/// (bucket heads taken as unchecked hints), which a table this small takes by itself.
/// </remarks>
public abstract class BurstSemanticsTests
{
    private const long Now = 1_000_000_000_000L;

    private static (byte[] Buffer, PacketSegment[] Segments) Burst(params byte[][] packets) => PacketBuilder.Burst(packets);

    /// <summary>The tables' <c>BurstWalkMinEntries</c>: 0 walks on every burst.</summary>
    protected abstract int WalkMinEntries { get; }

    private ConntrackTable NewTable(int buckets = 1024) =>
        new(new ConntrackOptions { MaxEntries = 1024, Buckets = buckets, HashSeed = 7 }) { BurstWalkMinEntries = WalkMinEntries };

    [Fact]
    public void TrackBatch_lets_a_reply_in_the_same_burst_find_the_connection_its_query_created()
    {
        using var table = NewTable();
        var (buffer, segments) = Burst(
            PacketBuilder.Udp("10.0.0.1", "192.0.2.53", 40000, 53),
            PacketBuilder.Udp("192.0.2.53", "10.0.0.1", 53, 40000),
            PacketBuilder.Udp("10.0.0.1", "192.0.2.53", 40000, 53));
        var states = new PacketState[3];
        var verdicts = new Verdict[3];

        table.TrackBatch(buffer, segments, Now, states, verdicts).Should().Be(3);

        verdicts.Should().Equal(Verdict.Accept, Verdict.Accept, Verdict.Accept);
        states.Select(s => s.Info).Should().Equal(ConntrackInfo.New, ConntrackInfo.EstablishedReply, ConntrackInfo.Established);
        states.Select(s => s.Connection).Distinct().Should().ContainSingle();
        states.Should().OnlyContain(s => !s.IsUnconfirmed, "TrackBatch confirms what it accepts");
        table.Count.Should().Be(1);
    }

    [Fact]
    public void InBatch_does_not_show_a_connection_to_later_packets_of_its_burst_before_ConfirmBatch()
    {
        using var table = NewTable();
        var (buffer, segments) = Burst(
            PacketBuilder.Udp("10.0.0.1", "192.0.2.53", 40000, 53),
            PacketBuilder.Udp("10.0.0.1", "192.0.2.53", 40000, 53));
        var states = new PacketState[2];
        var verdicts = new Verdict[2];

        table.InBatch(buffer, segments, Now, states, verdicts).Should().Be(2);
        states.Select(s => s.Info).Should().Equal(ConntrackInfo.New, ConntrackInfo.New);
        states[0].Connection.Should().NotBe(states[1].Connection, "the second packet cannot see the first one's unconfirmed entry");

        // Confirmation resolves them as the kernel resolves one new UDP flow seen on two CPUs: one connection.
        table.ConfirmBatch(buffer, segments, Now, states, verdicts);
        verdicts.Should().Equal(Verdict.Accept, Verdict.Accept);
        table.Count.Should().Be(1);
        table.Statistics.ClashResolve.Should().Be(1);
    }

    [Fact]
    public void Both_burst_calls_agree_with_the_per_packet_path_for_connections_that_existed_before_the_burst()
    {
        var packets = new List<byte[]>();
        for (int i = 0; i < 40; i++)
        {
            packets.Add(PacketBuilder.Udp($"10.0.1.{i + 1}", "192.0.2.53", (ushort)(41000 + i), 53));
        }

        using var perPacket = NewTable();
        using var inBatch = NewTable();
        using var trackBatch = NewTable();
        var state = default(PacketState);
        foreach (var t in new[] { perPacket, inBatch, trackBatch })
        {
            foreach (var p in packets)
            {
                t.In(p, Now, ref state).Should().Be(Verdict.Accept);
                t.Confirm(p, Now, ref state).Should().Be(Verdict.Accept);
            }
        }

        // A burst of replies and repeats, in an order that visits the flows twice (40 packets: two chunks of 32).
        var burst = new List<byte[]>();
        for (int i = 0; i < 40; i++)
        {
            int f = (i * 7) % 40;
            burst.Add(i % 2 == 0 ? PacketBuilder.Udp("192.0.2.53", $"10.0.1.{f + 1}", 53, (ushort)(41000 + f)) : packets[f]);
        }

        var expected = new ConntrackInfo[burst.Count];
        for (int i = 0; i < burst.Count; i++)
        {
            perPacket.In(burst[i], Now + 1, ref state).Should().Be(Verdict.Accept);
            expected[i] = state.Info;
            perPacket.Confirm(burst[i], Now + 1, ref state).Should().Be(Verdict.Accept);
        }

        var (buffer, segments) = Burst([.. burst]);
        var states = new PacketState[burst.Count];
        var verdicts = new Verdict[burst.Count];
        trackBatch.TrackBatch(buffer, segments, Now + 1, states, verdicts).Should().Be(burst.Count);
        states.Select(s => s.Info).Should().Equal(expected);

        inBatch.InBatch(buffer, segments, Now + 1, states, verdicts).Should().Be(burst.Count);
        states.Select(s => s.Info).Should().Equal(expected);
        inBatch.ConfirmBatch(buffer, segments, Now + 1, states, verdicts);
        verdicts.Should().OnlyContain(v => v == Verdict.Accept);
    }

    [Fact]
    public void TrackBatch_follows_a_tcp_reopen_that_removes_the_connection_later_packets_of_the_burst_were_found_in()
    {
        // The burst's chain walk finds the old connection for all three packets; the SYN removes it and opens a
        // new one, so the other two must not take the node the walk handed them.
        const byte Syn = PacketBuilder.FlagSyn, Ack = PacketBuilder.FlagAck, Fin = PacketBuilder.FlagFin;
        byte[] C(byte flags, uint seq, uint ack) => PacketBuilder.Tcp("10.0.0.1", "192.0.2.80", 40000, 80, flags, seq, ack);
        byte[] S(byte flags, uint seq, uint ack) => PacketBuilder.Tcp("192.0.2.80", "10.0.0.1", 80, 40000, flags, seq, ack);
        byte[][] toTimeWait =
        [
            C(Syn, 1000, 0), S(Syn | Ack, 5000, 1001), C(Ack, 1001, 5001),
            C(Fin | Ack, 1001, 5001), S(Ack, 5001, 1002), S(Fin | Ack, 5001, 1002), C(Ack, 1002, 5002),
        ];
        byte[][] reopen = [C(Syn, 90000, 0), S(Syn | Ack, 7000, 90001), C(Ack, 90001, 7001)];

        var infos = AssertTrackBatchMatchesPerPacket(toTimeWait, reopen, Now + 1_000_000_000L);

        infos.Should().Equal(ConntrackInfo.New, ConntrackInfo.EstablishedReply, ConntrackInfo.Established);
    }

    [Fact]
    public void TrackBatch_treats_a_connection_found_expired_as_gone()
    {
        byte[] query = PacketBuilder.Udp("10.0.0.1", "192.0.2.53", 40000, 53);
        byte[] answer = PacketBuilder.Udp("192.0.2.53", "10.0.0.1", 53, 40000);

        var infos = AssertTrackBatchMatchesPerPacket([query], [query, answer], Now + (31 * 1_000_000_000L));

        infos.Should().Equal(ConntrackInfo.New, ConntrackInfo.EstablishedReply);
    }

    [Fact]
    public void TrackBatch_on_chains_longer_than_the_walk_ahead_matches_the_per_packet_path()
    {
        // Four buckets for 48 flows: chains of about 24 nodes, longer than the walk's rounds, so many walks stop
        // before they find their node and resolution looks up from the bucket, while the new flows and the closing
        // ones change the chains the walk went through.
        const byte Syn = PacketBuilder.FlagSyn, Ack = PacketBuilder.FlagAck, Rst = PacketBuilder.FlagRst;
        var before = new List<byte[]>();
        var burst = new List<byte[]>();
        for (int i = 0; i < 24; i++)
        {
            string client = $"10.0.2.{i + 1}";
            before.Add(PacketBuilder.Udp(client, "192.0.2.53", (ushort)(42000 + i), 53));
            before.Add(PacketBuilder.Tcp(client, "192.0.2.80", (ushort)(43000 + i), 80, Syn, 100, 0));
            before.Add(PacketBuilder.Tcp("192.0.2.80", client, 80, (ushort)(43000 + i), Syn | Ack, 900, 101));
            before.Add(PacketBuilder.Tcp(client, "192.0.2.80", (ushort)(43000 + i), 80, Ack, 101, 901));
        }

        for (int i = 0; i < 64; i++)
        {
            int f = (i * 11) % 24;
            string client = $"10.0.2.{f + 1}";
            burst.Add((i % 4) switch
            {
                0 => PacketBuilder.Udp("192.0.2.53", client, 53, (ushort)(42000 + f)),
                1 => PacketBuilder.Tcp("192.0.2.80", client, 80, (ushort)(43000 + f), Ack, 901, 101),
                2 => PacketBuilder.Udp($"10.0.3.{i + 1}", "192.0.2.53", (ushort)(44000 + i), 53), // a new flow
                _ => i % 8 == 3
                    ? PacketBuilder.Tcp(client, "192.0.2.80", (ushort)(43000 + f), 80, Rst | Ack, 101, 901) // closes it
                    : PacketBuilder.Udp(client, "192.0.2.53", (ushort)(42000 + f), 53),
            });
        }

        var infos = AssertTrackBatchMatchesPerPacket([.. before], [.. burst], Now + 1, buckets: 4);

        infos.Should().Contain(ConntrackInfo.EstablishedReply).And.Contain(ConntrackInfo.New);
    }

    /// <summary>
    /// Sends <paramref name="before"/> packet by packet into two tables, then <paramref name="burst"/> packet by
    /// packet into one and as one <c>TrackBatch</c> into the other; verdicts, states and the tables must agree.
    /// </summary>
    private ConntrackInfo[] AssertTrackBatchMatchesPerPacket(byte[][] before, byte[][] burst, long burstTime, int buckets = 1024)
    {
        using var perPacket = NewTable(buckets);
        using var batched = NewTable(buckets);
        var state = default(PacketState);
        var existing = new[] { new HashSet<ConnectionHandle>(), new HashSet<ConnectionHandle>() };
        foreach (var (t, k) in new[] { (perPacket, 0), (batched, 1) })
        {
            foreach (var p in before)
            {
                t.In(p, Now, ref state).Should().Be(Verdict.Accept);
                t.Confirm(p, Now, ref state).Should().Be(Verdict.Accept);
                existing[k].Add(state.Connection);
            }
        }

        // Whether a packet was given a connection from before the burst or a new one.
        var expected = new (Verdict Verdict, ConntrackInfo Info, PacketReason Reason, bool Old)[burst.Length];
        for (int i = 0; i < burst.Length; i++)
        {
            var v = perPacket.In(burst[i], burstTime, ref state);
            if (v == Verdict.Accept)
            {
                v = perPacket.Confirm(burst[i], burstTime, ref state);
            }

            expected[i] = (v, state.Info, state.Reason, existing[0].Contains(state.Connection));
        }

        var (buffer, segments) = Burst(burst);
        var states = new PacketState[burst.Length];
        var verdicts = new Verdict[burst.Length];
        batched.TrackBatch(buffer, segments, burstTime, states, verdicts);
        var actual = new (Verdict Verdict, ConntrackInfo Info, PacketReason Reason, bool Old)[burst.Length];
        for (int i = 0; i < burst.Length; i++)
        {
            actual[i] = (verdicts[i], states[i].Info, states[i].Reason, existing[1].Contains(states[i].Connection));
        }

        actual.Should().Equal(expected);
        batched.Count.Should().Be(perPacket.Count);
        TableInvariants.AssertHold(batched);
        return [.. actual.Select(a => a.Info)];
    }
}

/// <summary><see cref="BurstSemanticsTests"/> with the chain walk ahead on every burst.</summary>
public sealed class BurstSemanticsWithWalkTests : BurstSemanticsTests
{
    protected override int WalkMinEntries => 0;
}

/// <summary><see cref="BurstSemanticsTests"/> on the small-table path: no walk, bucket heads as hints.</summary>
public sealed class BurstSemanticsWithoutWalkTests : BurstSemanticsTests
{
    protected override int WalkMinEntries => int.MaxValue;
}
