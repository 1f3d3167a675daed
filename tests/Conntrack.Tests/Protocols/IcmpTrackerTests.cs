using Conntrack.Tests.Support;

namespace Conntrack.Tests.Protocols;

/// <summary>ICMP queries: nf_conntrack_icmp_packet(), invmap and valid_new (nf_conntrack_proto_icmp.c:43-106).</summary>
public class IcmpTrackerTests
{
    private const long S = TestTable.Second;
    private const string A = "192.0.2.1", B = "198.51.100.2";

    [Theory]
    [InlineData(8, 0)]   // echo -> echo reply
    [InlineData(13, 14)] // timestamp -> timestamp reply
    [InlineData(15, 16)] // information request -> reply
    [InlineData(17, 18)] // address mask request -> reply
    public void Query_creates_a_connection_and_its_reply_type_is_established_reply(byte request, byte reply)
    {
        using var t = new TestTable();
        t.Info(PacketBuilder.Icmp(A, B, request, 0, 77, 1, new byte[12])).Should().Be(ConntrackInfo.New);
        var c = t.Connections().Should().ContainSingle().Subject;
        c.Original.IcmpType.Should().Be(request);
        c.Reply.IcmpType.Should().Be(reply);
        c.Reply.SourcePort.Should().Be(77, "the identifier is kept in the reply tuple");
        t.Info(PacketBuilder.Icmp(B, A, reply, 0, 77, 1, new byte[12])).Should().Be(ConntrackInfo.EstablishedReply);
    }

    [Fact]
    public void Echo_request_after_a_reply_is_established()
    {
        using var t = new TestTable();
        t.Info(PacketBuilder.IcmpEcho(A, B, 5, 1));
        t.Info(PacketBuilder.IcmpEcho(B, A, 5, 1, reply: true));
        t.Info(PacketBuilder.IcmpEcho(A, B, 5, 2)).Should().Be(ConntrackInfo.Established);
    }

    [Fact]
    public void Different_identifiers_are_different_connections()
    {
        using var t = new TestTable();
        t.Send(PacketBuilder.IcmpEcho(A, B, 5, 1));
        t.Send(PacketBuilder.IcmpEcho(A, B, 6, 1));
        t.Table.Count.Should().Be(2);
    }

    [Fact]
    public void Sequence_number_is_not_part_of_the_tuple()
    {
        using var t = new TestTable();
        t.Send(PacketBuilder.IcmpEcho(A, B, 5, 1));
        t.Send(PacketBuilder.IcmpEcho(A, B, 5, 2));
        t.Table.Count.Should().Be(1);
    }

    [Fact]
    public void Echo_reply_without_request_is_invalid()
    {
        // Echo reply has an invmap entry, so init_conntrack succeeds, but valid_new[0] is 0 -> -NF_ACCEPT.
        using var t = new TestTable();
        var s = t.Send(PacketBuilder.IcmpEcho(B, A, 5, 1, reply: true));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.CannotCreate);
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Table.Count.Should().Be(0);
        t.Table.Statistics.Unconfirmed.Should().Be(0, "the discarded entry is freed");
    }

    [Theory]
    [InlineData(14)]
    [InlineData(16)]
    [InlineData(18)]
    public void Query_reply_types_cannot_start_a_connection(byte type)
    {
        using var t = new TestTable();
        var s = t.Send(PacketBuilder.Icmp(B, A, type, 0, 9, 1, new byte[12]));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.CannotCreate);
    }

    [Theory]
    [InlineData(9)]  // router advertisement: no invmap entry -> init_conntrack returns NULL
    [InlineData(10)] // router solicitation
    [InlineData(6)]  // alternate host address (deprecated, <= 18)
    public void Known_non_query_types_are_invalid(byte type)
    {
        using var t = new TestTable();
        var s = t.Send(PacketBuilder.Icmp(A, B, type, 0, 0, 0, []));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.CannotCreate);
        t.Table.Statistics.Invalid.Should().Be(1);
    }

    [Theory]
    [InlineData(19)]
    [InlineData(40)]
    [InlineData(255)]
    public void Types_above_18_are_invalid(byte type)
    {
        // "if (icmph->type > NR_ICMP_TYPES)" (proto_icmp.c:244): RFC 1122 3.2.2.
        using var t = new TestTable();
        var s = t.Send(PacketBuilder.Icmp(A, B, type, 0, 1, 1, []));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.IcmpUnknownType);
    }

    [Fact]
    public void Unknown_type_counts_as_an_error_not_as_invalid()
    {
        // The error handler returns -NF_ACCEPT: nf_conntrack_handle_icmp counts "error" (core.c:1942) and
        // nf_conntrack_in returns without counting "invalid" (core.c:2032-2034).
        using var t = new TestTable();
        t.Send(PacketBuilder.Icmp(A, B, 19, 0, 1, 1, []));
        t.Table.Statistics.Error.Should().Be(1);
        t.Table.Statistics.Invalid.Should().Be(0);
    }

    [Fact]
    public void Icmp_connection_lives_30_seconds()
    {
        // nf_ct_icmp_timeout = 30*HZ (proto_icmp.c:25).
        using var t = new TestTable();
        t.Send(PacketBuilder.IcmpEcho(A, B, 1, 1));
        t.Connections().Single().RemainingNs.Should().Be(30 * S);
        t.Advance(10);
        t.Send(PacketBuilder.IcmpEcho(B, A, 1, 1, reply: true));
        t.Connections().Single().RemainingNs.Should().Be(30 * S, "the reply refreshes the same 30 s");
        t.Connections().Single().Status.Should().NotHaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Icmp_connection_expires_after_30_seconds()
    {
        using var t = new TestTable();
        t.Send(PacketBuilder.IcmpEcho(A, B, 1, 1));
        t.Advance(30);
        t.Info(PacketBuilder.IcmpEcho(B, A, 1, 1, reply: true)).Should().Be(ConntrackInfo.Invalid);
    }

    [Fact]
    public void Icmp_timeout_follows_the_sysctl()
    {
        var o = new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3 };
        o.SetSysctl("nf_conntrack_icmp_timeout", "7");
        using var t = new TestTable(o);
        t.Send(PacketBuilder.IcmpEcho(A, B, 1, 1));
        t.Connections().Single().RemainingNs.Should().Be(7 * S);
    }

    [Fact]
    public void Bad_icmp_checksum_is_invalid_with_checksum_checking_on()
    {
        var p = PacketBuilder.IcmpEcho(A, B, 1, 1);
        p[^1] ^= 0x10;
        using var t = new TestTable();
        var s = t.Send(p);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Checksum);
    }

    [Fact]
    public void Bad_icmp_checksum_is_accepted_with_checksum_checking_off()
    {
        var p = PacketBuilder.IcmpEcho(A, B, 1, 1);
        p[^1] ^= 0x10;
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3, Checksum = false });
        t.Info(p).Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Icmp_header_shorter_than_8_bytes_is_invalid()
    {
        var p = PacketBuilder.Raw(A, B, IpProtocol.Icmp, [8, 0, 0, 0, 0, 1]);
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3, Checksum = false });
        var s = t.Send(p);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Truncated);
    }

    [Fact]
    public void Icmpv4_inside_ipv6_is_invalid()
    {
        // Protocol 1 over IPv6: nf_conntrack_icmp_packet: "if (state->pf != NFPROTO_IPV4) return -NF_ACCEPT".
        var l4 = new byte[] { 8, 0, 0, 0, 0, 1, 0, 1 };
        var p = RawPackets.Ipv6("2001:db8::1", "2001:db8::2", IpProtocol.Icmp, [], IpProtocol.Icmp, l4);
        using var t = new TestTable();
        var s = t.Send(p);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        t.Table.Count.Should().Be(0);
    }
}
