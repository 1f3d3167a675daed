using System.Buffers.Binary;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Protocols;

/// <summary>nf_conntrack_udp_packet() and udp_error() (nf_conntrack_proto_udp.c:45-131).</summary>
public class UdpTrackerTests
{
    private const long S = TestTable.Second;

    private static byte[] Query(int payload = 8) => PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 5000, 53, payload);

    private static byte[] Answer(int payload = 8) => PacketBuilder.Udp("198.51.100.20", "192.0.2.10", 53, 5000, payload);

    private static ConnectionInfo Only(TestTable t) => t.Connections().Should().ContainSingle().Subject;

    [Fact]
    public void First_packet_is_new()
    {
        using var t = new TestTable();
        t.Info(Query()).Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Second_packet_before_any_reply_is_new_again()
    {
        using var t = new TestTable();
        t.Info(Query());
        t.Info(Query()).Should().Be(ConntrackInfo.New);
        t.Table.Count.Should().Be(1);
    }

    [Fact]
    public void Reply_is_established_reply_and_later_originals_are_established()
    {
        using var t = new TestTable();
        t.Info(Query()).Should().Be(ConntrackInfo.New);
        t.Info(Answer()).Should().Be(ConntrackInfo.EstablishedReply);
        t.Info(Query()).Should().Be(ConntrackInfo.Established);
        t.Info(Answer()).Should().Be(ConntrackInfo.EstablishedReply);
    }

    [Fact]
    public void Unreplied_connection_lives_30_seconds()
    {
        // udp_timeouts[UDP_CT_UNREPLIED] = 30*HZ (nf_conntrack_proto_udp.c:28).
        using var t = new TestTable();
        t.Send(Query());
        Only(t).RemainingNs.Should().Be(30 * S);
        Only(t).Status.Should().HaveFlag(ConnectionStatus.Confirmed).And.NotHaveFlag(ConnectionStatus.SeenReply);
    }

    [Fact]
    public void Unreplied_connection_is_gone_after_30_seconds()
    {
        using var t = new TestTable();
        t.Send(Query());
        t.Advance(29.999);
        t.Connections().Should().HaveCount(1);
        t.Advance(0.001);
        t.Connections().Should().BeEmpty("the deadline has been reached");
        t.Info(Query()).Should().Be(ConntrackInfo.New, "a new packet starts a new connection");
    }

    [Fact]
    public void Each_unreplied_packet_restarts_the_30_seconds()
    {
        using var t = new TestTable();
        t.Send(Query());
        t.Advance(20);
        t.Send(Query());
        Only(t).RemainingNs.Should().Be(30 * S);
    }

    [Fact]
    public void First_reply_keeps_the_30_second_timeout()
    {
        // SEEN_REPLY is set only after the packet function ran (nf_conntrack_core.c:2079), so the first reply
        // refreshes with UDP_CT_UNREPLIED.
        using var t = new TestTable();
        t.Send(Query());
        t.Advance(3);
        t.Send(Answer());
        var c = Only(t);
        c.RemainingNs.Should().Be(30 * S);
        c.Status.Should().HaveFlag(ConnectionStatus.SeenReply).And.NotHaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Replied_flow_within_two_seconds_of_creation_stays_at_30_seconds_and_unassured()
    {
        // stream_ts = creation + 2 s; time_after(jiffies, stream_ts) is false at 1.5 s.
        using var t = new TestTable();
        t.Send(Query());
        t.Advance(1);
        t.Send(Answer());
        t.Advance(0.5);
        t.Send(Query());
        var c = Only(t);
        c.RemainingNs.Should().Be(30 * S);
        c.Status.Should().NotHaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Replied_flow_at_exactly_two_seconds_is_not_yet_a_stream()
    {
        // time_after() is strict: at creation + 2 s exactly the flow is not yet a stream.
        using var t = new TestTable();
        t.Send(Query());
        t.Advance(1);
        t.Send(Answer());
        t.Advance(1);
        t.Send(Query());
        var c = Only(t);
        c.RemainingNs.Should().Be(30 * S);
        c.Status.Should().NotHaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Replied_flow_still_active_after_two_seconds_becomes_an_assured_120_second_stream()
    {
        // "Still active after two seconds? Extend timeout." -> UDP_CT_REPLIED = 120*HZ and ASSURED (proto_udp.c:109-124).
        using var t = new TestTable();
        t.Send(Query());
        t.Advance(1);
        t.Send(Answer());
        t.Advance(1.5);
        t.Send(Query());
        var c = Only(t);
        c.RemainingNs.Should().Be(120 * S);
        c.Status.Should().HaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Stream_timeout_is_counted_from_creation_not_from_the_reply()
    {
        // A reply at 5 s (well after stream_ts) still gets 30 s because SEEN_REPLY was not yet set; the next
        // packet gets 120 s at once.
        using var t = new TestTable();
        t.Send(Query());
        t.Advance(5);
        t.Send(Answer());
        Only(t).RemainingNs.Should().Be(30 * S);
        t.Advance(0.1);
        t.Send(Answer());
        Only(t).RemainingNs.Should().Be(120 * S);
        Only(t).Status.Should().HaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Stream_keeps_120_seconds_on_every_later_packet()
    {
        using var t = new TestTable();
        t.Send(Query());
        t.Advance(3);
        t.Send(Answer());
        t.Send(Query());
        t.Advance(100);
        t.Send(Query());
        Only(t).RemainingNs.Should().Be(120 * S);
    }

    [Fact]
    public void Udp_timeouts_follow_the_sysctls()
    {
        var o = new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3 };
        o.SetSysctl("net.netfilter.nf_conntrack_udp_timeout", "10");
        o.SetSysctl("nf_conntrack_udp_timeout_stream", "200");
        using var t = new TestTable(o);
        t.Send(Query());
        Only(t).RemainingNs.Should().Be(10 * S);
        t.Advance(3);
        t.Send(Answer());
        t.Send(Query());
        Only(t).RemainingNs.Should().Be(200 * S);
    }

    [Fact]
    public void Length_field_larger_than_the_datagram_is_invalid()
    {
        // "ntohs(hdr->len) > udplen" -> truncated/malformed (proto_udp.c:60).
        var p = Query();
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), (ushort)(p.Length - 20 + 1));
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3, Checksum = false });
        var s = t.Send(p);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Malformed);
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Table.Count.Should().Be(0, "the new entry of an invalid packet is discarded");
        t.Table.Statistics.Invalid.Should().Be(1);
    }

    [Fact]
    public void Length_field_below_8_is_invalid()
    {
        var p = Query();
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), 7);
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3, Checksum = false });
        var s = t.Send(p);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Malformed);
    }

    [Fact]
    public void Length_field_smaller_than_the_datagram_is_valid()
    {
        // Only "len > udplen" and "len < 8" are errors; trailing bytes after the UDP length are allowed.
        var p = Query(payload: 8);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), 10);
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3, Checksum = false });
        t.Send(p).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Header_shorter_than_8_bytes_is_invalid()
    {
        // Ports readable (4 bytes) but no full header: skb_header_pointer(sizeof(udphdr)) fails -> "short packet".
        var p = PacketBuilder.Raw("192.0.2.10", "198.51.100.20", IpProtocol.Udp, [0x13, 0x88, 0, 53, 0, 6]);
        using var t = new TestTable();
        var s = t.Send(p);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Truncated);
    }

    [Fact]
    public void Fewer_than_4_bytes_of_header_cannot_make_a_tuple()
    {
        var p = PacketBuilder.Raw("192.0.2.10", "198.51.100.20", IpProtocol.Udp, [0x13, 0x88, 0]);
        using var t = new TestTable();
        var s = t.Send(p);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Truncated);
        t.Table.Statistics.Invalid.Should().Be(1);
    }

    [Fact]
    public void Bad_checksum_is_invalid_when_checksum_checking_is_on()
    {
        var p = Query();
        p[^1] ^= 0x5A;
        using var t = new TestTable();
        var s = t.Send(p);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Checksum);
        t.Table.Count.Should().Be(0);
    }

    [Fact]
    public void Bad_checksum_is_accepted_when_checksum_checking_is_off()
    {
        var p = Query();
        p[^1] ^= 0x5A;
        var o = new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3 };
        o.SetSysctl("nf_conntrack_checksum", "0");
        using var t = new TestTable(o);
        t.Send(p).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Zero_checksum_means_no_checksum_and_is_valid()
    {
        // "if (!hdr->check) return false" (proto_udp.c:66): even with nf_conntrack_checksum=1.
        using var t = new TestTable();
        t.Send(PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 5000, 53, checksum: false)).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Zero_checksum_over_ipv6_is_also_accepted_by_conntrack()
    {
        // udp_error does not distinguish IPv6 (RFC 8200 forbids it, but that is the socket layer's check).
        using var t = new TestTable();
        t.Send(PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 5000, 53, checksum: false)).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Invalid_reply_does_not_mark_the_connection_replied()
    {
        using var t = new TestTable();
        t.Send(Query());
        var bad = Answer();
        bad[^1] ^= 0x5A;
        t.Send(bad).Info.Should().Be(ConntrackInfo.Invalid);
        Only(t).Status.Should().NotHaveFlag(ConnectionStatus.SeenReply);
        t.Info(Query()).Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Ipv6_udp_flow_is_tracked_both_ways()
    {
        using var t = new TestTable();
        t.Info(PacketBuilder.Udp("2001:db8::10", "2001:db8::20", 5000, 53)).Should().Be(ConntrackInfo.New);
        t.Info(PacketBuilder.Udp("2001:db8::20", "2001:db8::10", 53, 5000)).Should().Be(ConntrackInfo.EstablishedReply);
        Only(t).IsIpv6.Should().BeTrue();
    }

    [Fact]
    public void Unconfirmed_connection_reports_its_relative_timeout()
    {
        using var t = new TestTable();
        var s = default(PacketState);
        t.Table.In(Query(), t.Now, ref s);
        t.Table.TryGetInfo(s.Connection, t.Now, out var info).Should().BeTrue();
        info.IsConfirmed.Should().BeFalse();
        info.RemainingNs.Should().Be(30 * S);
        t.Table.Release(ref s);
    }
}
