using Conntrack.Tests.Support;

namespace Conntrack.Tests.Protocols;

/// <summary>ICMPv6 queries and untracked types (nf_conntrack_proto_icmpv6.c:30-229).</summary>
public class Icmpv6TrackerTests
{
    private const long S = TestTable.Second;
    private const string A = "2001:db8::a", B = "2001:db8::b";

    [Fact]
    public void Echo_request_is_new_and_echo_reply_is_established_reply()
    {
        using var t = new TestTable();
        t.Info(PacketBuilder.IcmpEcho(A, B, 42, 1)).Should().Be(ConntrackInfo.New);
        t.Info(PacketBuilder.IcmpEcho(B, A, 42, 1, reply: true)).Should().Be(ConntrackInfo.EstablishedReply);
        var c = t.Connections().Single();
        c.ProtocolName.Should().Be("icmpv6");
        c.Original.IcmpType.Should().Be(128);
        c.Reply.IcmpType.Should().Be(129);
    }

    [Fact]
    public void Node_information_query_creates_a_connection()
    {
        // ICMPV6_NI_QUERY (139) is in valid_new; its reply is 140 (invmap).
        using var t = new TestTable();
        t.Info(PacketBuilder.Icmp(A, B, 139, 0, 3, 0, new byte[16])).Should().Be(ConntrackInfo.New);
        t.Connections().Single().Reply.IcmpType.Should().Be(140);
        t.Info(PacketBuilder.Icmp(B, A, 140, 0, 3, 0, new byte[16])).Should().Be(ConntrackInfo.EstablishedReply);
    }

    [Fact]
    public void Echo_reply_without_request_is_invalid()
    {
        using var t = new TestTable();
        var s = t.Send(PacketBuilder.IcmpEcho(B, A, 42, 1, reply: true));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.CannotCreate);
        t.Table.Count.Should().Be(0);
    }

    [Fact]
    public void Node_information_reply_without_query_is_invalid()
    {
        using var t = new TestTable();
        t.Send(PacketBuilder.Icmp(B, A, 140, 0, 3, 0, new byte[16])).Info.Should().Be(ConntrackInfo.Invalid);
    }

    [Theory]
    [InlineData(130)] // MLD query
    [InlineData(131)] // MLD report
    [InlineData(132)] // MLD done
    [InlineData(133)] // router solicitation
    [InlineData(134)] // router advertisement
    [InlineData(135)] // neighbour solicitation
    [InlineData(136)] // neighbour advertisement
    [InlineData(143)] // MLDv2 report
    [InlineData(151)] // multicast router advertisement
    [InlineData(152)] // multicast router solicitation
    public void Neighbour_discovery_and_mld_are_untracked(byte type)
    {
        // noct_valid_new (proto_icmpv6.c:41-52): nf_ct_set(skb, NULL, IP_CT_UNTRACKED).
        using var t = new TestTable();
        var s = t.Send(PacketBuilder.Icmp("fe80::1", "fe80::2", type, 0, 0, 0, new byte[16]));
        t.LastVerdict.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.Untracked);
        s.Reason.Should().Be(PacketReason.UntrackedIcmpv6);
        t.Table.Count.Should().Be(0);
        t.Table.Statistics.Error.Should().Be(0, "untracked is NF_ACCEPT, not an error");
        t.Table.Statistics.Invalid.Should().Be(0);
    }

    [Fact]
    public void Icmpv6_type_153_is_not_in_the_untracked_set()
    {
        // noct_valid_new stops at ICMPV6_MRDISC_SOL (152); 153 is an informational type with no invmap -> invalid.
        using var t = new TestTable();
        var s = t.Send(PacketBuilder.Icmp(A, B, 153, 0, 0, 0, new byte[8]));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.CannotCreate);
    }

    [Fact]
    public void Icmpv6_connection_lives_30_seconds()
    {
        // nf_ct_icmpv6_timeout = 30*HZ (proto_icmpv6.c:28).
        using var t = new TestTable();
        t.Send(PacketBuilder.IcmpEcho(A, B, 1, 1));
        t.Connections().Single().RemainingNs.Should().Be(30 * S);
    }

    [Fact]
    public void Icmpv6_timeout_follows_its_own_sysctl()
    {
        var o = new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3 };
        o.SetSysctl("nf_conntrack_icmpv6_timeout", "12");
        o.SetSysctl("nf_conntrack_icmp_timeout", "99");
        using var t = new TestTable(o);
        t.Send(PacketBuilder.IcmpEcho(A, B, 1, 1));
        t.Connections().Single().RemainingNs.Should().Be(12 * S);
    }

    [Fact]
    public void Bad_icmpv6_checksum_is_invalid_and_counted_as_error()
    {
        var p = PacketBuilder.IcmpEcho(A, B, 1, 1);
        p[^1] ^= 0x44;
        using var t = new TestTable();
        var s = t.Send(p);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Checksum);
        t.Table.Statistics.Error.Should().Be(1);
    }

    [Fact]
    public void Echo_request_behind_a_hop_by_hop_header_is_tracked()
    {
        var l4 = new byte[] { 128, 0, 0, 0, 0, 9, 0, 1 };
        var p = RawPackets.Ipv6(A, B, RawPackets.NextHopByHop, RawPackets.OptionsHeader(RawPackets.NextIcmpv6, 1, 4, 0, 0, 0, 0),
            RawPackets.NextIcmpv6, l4);
        using var t = new TestTable();
        t.Info(p).Should().Be(ConntrackInfo.New);
    }
}
