using Conntrack.Defrag;
using Conntrack.Packets;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Defrag;

// Through ConntrackTable.In, as the oracle sees it: held fragments are FRAG (stolen), the fragment that
// completes the datagram gets the datagram's state (selftest ipv4_fragments/ipv6_fragments:
// FRAG FRAG NEW, then the answer ESTABLISHED+REPLY).
public class DefragEndToEndTests
{
    [Fact]
    public void Held_fragments_are_stolen_and_the_completing_one_carries_the_datagrams_state()
    {
        using var t = new TestTable();
        var query = PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 57000, 7, 1200);
        var frags = Fragmenter.Split(query, 480);
        frags.Should().HaveCount(3);

        var s = t.Send(frags[0]);
        t.LastVerdict.Should().Be(Verdict.Stolen);
        s.Reason.Should().Be(PacketReason.FragmentHeld);
        s.Info.HasConnection().Should().BeFalse();
        t.Send(frags[1]);
        t.LastVerdict.Should().Be(Verdict.Stolen);

        var state = default(PacketState);
        t.Table.In(frags[2], t.Now, ref state).Should().Be(Verdict.Accept);
        state.Info.Should().Be(ConntrackInfo.New);
        state.IsReassembled.Should().BeTrue();
        state.Length.Should().Be(query.Length);
        t.Table.TryGetReassembled(in state, out ReadOnlySpan<byte> datagram).Should().BeTrue();
        datagram.ToArray().Should().Equal(query);
        t.Table.Confirm(datagram, t.Now, ref state).Should().Be(Verdict.Accept);

        t.Info(PacketBuilder.Udp("198.51.100.20", "192.0.2.10", 7, 57000, 8)).Should().Be(ConntrackInfo.EstablishedReply);
        t.OracleLines().Should().Equal(
            "ipv4 udp 17 - src=192.0.2.10 dst=198.51.100.20 sport=57000 dport=7 src=198.51.100.20 dst=192.0.2.10 sport=7 dport=57000 mark=0 zone=0");
        t.Table.Defragmenter!.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void Fragmented_ipv6_echo_is_tracked_on_its_last_fragment_and_the_reply_matches()
    {
        using var t = new TestTable();
        var echo = PacketBuilder.Icmp("2001:db8:1::10", "2001:db8:2::20", 128, 0, 77, 1, new byte[1400]);
        var frags = Fragmenter.Split(echo, 720);
        frags.Should().HaveCount(2);
        t.Send(frags[0]);
        t.LastVerdict.Should().Be(Verdict.Stolen);
        t.Info(frags[1]).Should().Be(ConntrackInfo.New);
        t.Info(PacketBuilder.IcmpEcho("2001:db8:2::20", "2001:db8:1::10", 77, 1, reply: true)).Should().Be(ConntrackInfo.EstablishedReply);
    }

    [Fact]
    public void Fragmented_reply_in_reverse_order_is_established_reply()
    {
        using var t = new TestTable();
        t.Info(PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 5353, 53, 20)).Should().Be(ConntrackInfo.New);
        var answer = PacketBuilder.Udp("198.51.100.20", "192.0.2.10", 53, 5353, 3000);
        var frags = Fragmenter.Split(answer, 1480, id: 0x5151);
        frags.Reverse();
        for (int i = 0; i < frags.Count - 1; i++)
        {
            t.Send(frags[i]);
            t.LastVerdict.Should().Be(Verdict.Stolen);
        }

        t.Info(frags[^1]).Should().Be(ConntrackInfo.EstablishedReply);
    }

    [Fact]
    public void Overlapping_fragment_is_dropped()
    {
        using var t = new TestTable();
        var p = PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 1000, 7, 40);
        t.Send(Fragmenter.V4(p, 0, 24, true));
        var s = t.Send(Fragmenter.V4(p, 16, 32, false));
        t.LastVerdict.Should().Be(Verdict.Drop);
        s.Reason.Should().Be(PacketReason.FragmentDropped);
        t.Connections().Should().BeEmpty();
    }

    [Fact]
    public void Fragmented_tcp_syn_is_tracked_when_complete()
    {
        // The zeek capture: a SYN split in two IPv4 fragments -> FRAG, NEW (SYN_SENT).
        using var t = new TestTable();
        var syn = PacketBuilder.Tcp("192.168.1.100", "10.0.0.5", 12345, 80, PacketBuilder.FlagSyn, 1000, 0,
            options: [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
        var frags = Fragmenter.Split(syn, 24);
        t.Send(frags[0]);
        t.LastVerdict.Should().Be(Verdict.Stolen);
        for (int i = 1; i < frags.Count - 1; i++)
        {
            t.Send(frags[i]);
        }

        t.Info(frags[^1]).Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Fragments_in_different_zones_are_reassembled_separately()
    {
        using var t = new TestTable();
        var p = PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 1000, 7, 40);
        t.Send(Fragmenter.V4(p, 0, 16, true), zone: 1);
        t.LastVerdict.Should().Be(Verdict.Stolen);
        t.Send(Fragmenter.V4(p, 16, 32, false), zone: 2);
        t.LastVerdict.Should().Be(Verdict.Stolen);
        t.Send(Fragmenter.V4(p, 16, 32, false), zone: 1).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Garbage_collection_expires_incomplete_datagrams()
    {
        using var t = new TestTable();
        var p = PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 1000, 7, 40);
        t.Send(Fragmenter.V4(p, 0, 16, true));
        t.Table.Defragmenter!.QueueCount.Should().Be(1);
        t.Advance(31);
        t.Table.CollectGarbage(t.Now);
        t.Table.Defragmenter.QueueCount.Should().Be(0);
        t.Table.Defragmenter.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void Non_first_fragment_the_kernel_passes_through_is_tracked_as_it_is()
    {
        // IPv6 non-last fragment whose length is not a multiple of 8: NF_ACCEPT unreassembled; conntrack
        // finds no layer-4 header in a non-first fragment (recording v6_odd_mid: INVALID).
        using var t = new TestTable();
        var p = PacketBuilder.Udp("2001:db8::10", "2001:db8:1::20", 1000, 7, 40);
        t.Send(Fragmenter.V6(p, 0, 16, true));
        var s = t.Send(Fragmenter.V6(p, 16, 13, true));
        t.LastVerdict.Should().Be(Verdict.Accept);
        s.Info.HasConnection().Should().BeFalse();
        s.IsReassembled.Should().BeFalse();
    }
}
