using Conntrack.Diagnostics;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Protocols;

/// <summary>
/// GRE (nf_conntrack_proto_gre.c:150-238): version 0 behaves like the generic tracker (keys 0); version 1
/// (PPTP's enhanced GRE) puts the call id in dstkey; srckey comes from the PPTP helper's keymap (0 without it).
/// 30 s until a reply, then 180 s and ASSURED.
/// </summary>
public class GreTrackerTests
{
    private const long S = TestTable.Second;
    private const string A = "192.0.2.1", B = "198.51.100.2";

    private static byte[] Gre(string src, string dst, byte[] gre) => PacketBuilder.Raw(src, dst, IpProtocol.Gre, gre);

    [Fact]
    public void Version_0_gre_has_keys_zero_whatever_its_key_field()
    {
        // gre_pkt_to_tuple: "(grehdr->flags & GRE_VERSION) != GRE_VERSION_1" -> src.u.all = dst.u.all = 0.
        using var t = new TestTable();
        t.Info(Gre(A, B, RawPackets.GreV0(key: 0x11111111))).Should().Be(ConntrackInfo.New);
        t.Info(Gre(A, B, RawPackets.GreV0(key: 0x22222222))).Should().Be(ConntrackInfo.New);
        t.Table.Count.Should().Be(1);
        var c = t.Connections().Single();
        c.Original.SourcePort.Should().Be(0);
        c.Original.DestinationPort.Should().Be(0);
    }

    [Fact]
    public void Version_0_reply_is_established_reply()
    {
        using var t = new TestTable();
        t.Send(Gre(A, B, RawPackets.GreV0()));
        t.Info(Gre(B, A, RawPackets.GreV0())).Should().Be(ConntrackInfo.EstablishedReply);
    }

    [Fact]
    public void Unreplied_gre_lives_30_seconds_and_is_not_assured()
    {
        using var t = new TestTable();
        t.Send(Gre(A, B, RawPackets.GreV0()));
        var c = t.Connections().Single();
        c.RemainingNs.Should().Be(30 * S);
        c.Status.Should().NotHaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Replied_gre_becomes_an_assured_180_second_stream_on_the_next_packet()
    {
        using var t = new TestTable();
        t.Send(Gre(A, B, RawPackets.GreV0()));
        t.Send(Gre(B, A, RawPackets.GreV0()));
        t.Connections().Single().RemainingNs.Should().Be(30 * S, "SEEN_REPLY is set after the packet function");
        t.Send(Gre(A, B, RawPackets.GreV0()));
        var c = t.Connections().Single();
        c.RemainingNs.Should().Be(180 * S);
        c.Status.Should().HaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Gre_timeouts_follow_the_sysctls()
    {
        var o = new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3 };
        o.SetSysctl("nf_conntrack_gre_timeout", "11");
        o.SetSysctl("nf_conntrack_gre_timeout_stream", "222");
        using var t = new TestTable(o);
        t.Send(Gre(A, B, RawPackets.GreV0()));
        t.Connections().Single().RemainingNs.Should().Be(11 * S);
        t.Send(Gre(B, A, RawPackets.GreV0()));
        t.Send(Gre(A, B, RawPackets.GreV0()));
        t.Connections().Single().RemainingNs.Should().Be(222 * S);
    }

    [Fact]
    public void Version_1_call_id_is_the_destination_key()
    {
        using var t = new TestTable();
        t.Info(Gre(A, B, RawPackets.GreV1(0x1234))).Should().Be(ConntrackInfo.New);
        var c = t.Connections().Single();
        c.Original.SourcePort.Should().Be(0, "srckey comes from the PPTP keymap, empty without the helper");
        c.Original.DestinationPort.Should().Be(0x1234);
        c.Reply.SourcePort.Should().Be(0x1234, "the reply tuple swaps the keys");
        c.Reply.DestinationPort.Should().Be(0);
    }

    [Fact]
    public void Version_1_packets_with_different_call_ids_are_different_connections()
    {
        using var t = new TestTable();
        t.Send(Gre(A, B, RawPackets.GreV1(0x1234)));
        t.Send(Gre(A, B, RawPackets.GreV1(0x1235)));
        t.Table.Count.Should().Be(2);
    }

    [Fact]
    public void Version_1_peer_packet_without_the_pptp_helper_is_a_new_connection()
    {
        // The peer's packet carries the peer's call id as dstkey with srckey 0; the reply tuple has
        // srckey = 0x1234, dstkey = 0, so it does not match without the helper's keymap.
        using var t = new TestTable();
        t.Send(Gre(A, B, RawPackets.GreV1(0x1234)));
        t.Info(Gre(B, A, RawPackets.GreV1(0x5678))).Should().Be(ConntrackInfo.New);
        t.Table.Count.Should().Be(2);
    }

    [Fact]
    public void Version_1_with_a_protocol_other_than_ppp_is_invalid()
    {
        // "if (grehdr->protocol != GRE_PROTO_PPP) return false" (proto_gre.c:173).
        using var t = new TestTable();
        var s = t.Send(Gre(A, B, RawPackets.GreV1(0x1234, protocolType: 0x0800)));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        t.Table.Count.Should().Be(0);
    }

    [Fact]
    public void Version_1_header_shorter_than_8_bytes_is_tracked_with_keys_zero()
    {
        // "pgrehdr = skb_header_pointer(skb, dataoff, 8, ...); if (!pgrehdr) return true;" (proto_gre.c:169).
        using var t = new TestTable();
        t.Info(Gre(A, B, [0x20, 0x01, 0x88, 0x0B, 0, 4])).Should().Be(ConntrackInfo.New);
        t.Connections().Single().Original.DestinationPort.Should().Be(0);
    }

    [Fact]
    public void Gre_header_shorter_than_4_bytes_is_tracked_with_keys_zero()
    {
        using var t = new TestTable();
        t.Info(Gre(A, B, [0x00])).Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Gre_tuple_prints_keys_in_hex()
    {
        using var t = new TestTable();
        t.Send(Gre(A, B, RawPackets.GreV1(0xBEEF)));
        t.OracleLines().Should().Equal(
            $"ipv4 gre 47 - src={A} dst={B} srckey=0x0 dstkey=0xbeef src={B} dst={A} srckey=0xbeef dstkey=0x0 [UNREPLIED] mark=0 zone=0");
    }

    [Fact]
    public void Gre_proc_line_carries_the_gre_timeouts()
    {
        // gre_print_conntrack: "timeout=%u, stream_timeout=%u " after the remaining time (proto_gre.c:188).
        using var t = new TestTable();
        t.Send(Gre(A, B, RawPackets.GreV0()));
        var sw = new StringWriter();
        ConnectionFormatter.WriteProcLine(sw, t.Connections().Single());
        sw.ToString().Should().Be(
            $"ipv4     2 gre      47 30 timeout=30, stream_timeout=180 src={A} dst={B} srckey=0x0 dstkey=0x0 [UNREPLIED] src={B} dst={A} srckey=0x0 dstkey=0x0 mark=0 zone=0 use=2");
    }
}
