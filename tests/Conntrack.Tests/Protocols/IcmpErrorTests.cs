using System.Buffers.Binary;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Protocols;

/// <summary>
/// ICMP/ICMPv6 errors: nf_conntrack_icmpv4_error(), nf_conntrack_icmpv6_error(), nf_conntrack_icmpv6_redirect()
/// and nf_conntrack_inet_error() (proto_icmp.c:109-258, proto_icmpv6.c:134-229). An error is RELATED to the
/// connection of the packet it quotes, +REPLY when it travels in that connection's reply direction.
/// </summary>
public class IcmpErrorTests
{
    private const string Client = "192.0.2.10", Server = "198.51.100.20", Router = "203.0.113.1", Other = "203.0.113.99";

    private static byte[] ClientUdp() => PacketBuilder.Udp(Client, Server, 5000, 53);

    private static byte[] ServerUdp() => PacketBuilder.Udp(Server, Client, 53, 5000);

    [Fact]
    public void Port_unreachable_back_to_the_client_is_related_reply()
    {
        // The server answers the client's datagram with 3/3 quoting it: inverted quoted tuple = reply tuple.
        using var t = new TestTable();
        var created = t.Send(ClientUdp());
        var s = t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, ClientUdp()));
        t.LastVerdict.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.RelatedReply);
        s.Connection.Should().Be(created.Connection);
    }

    [Fact]
    public void Error_about_the_reply_direction_sent_to_the_server_is_related()
    {
        // The server's reply is quoted in an error sent to the server: the lookup hits the original tuple.
        using var t = new TestTable();
        var created = t.Send(ClientUdp());
        t.Send(ServerUdp());
        var s = t.Send(PacketBuilder.IcmpError(Client, Server, 3, 3, ServerUdp()));
        s.Info.Should().Be(ConntrackInfo.Related);
        s.Connection.Should().Be(created.Connection);
    }

    [Fact]
    public void Time_exceeded_from_a_router_about_udp_is_related_reply()
    {
        using var t = new TestTable();
        t.Send(ClientUdp());
        t.Send(PacketBuilder.IcmpError(Router, Client, 11, 0, ClientUdp())).Info.Should().Be(ConntrackInfo.RelatedReply);
    }

    [Fact]
    public void Time_exceeded_about_an_echo_request_is_related_reply()
    {
        // Quoted echo request inverts to an echo reply tuple: the connection's reply direction.
        using var t = new TestTable();
        var echo = PacketBuilder.IcmpEcho(Client, Server, 0x1234, 1);
        var created = t.Send(echo);
        var s = t.Send(PacketBuilder.IcmpError(Router, Client, 11, 0, echo));
        s.Info.Should().Be(ConntrackInfo.RelatedReply);
        s.Connection.Should().Be(created.Connection);
    }

    [Fact]
    public void Port_unreachable_quoting_a_tcp_syn_is_related_reply()
    {
        // Depends on the TCP tracker accepting the SYN (hence "Tcp" in the name: excluded from the core run).
        using var t = new TestTable();
        var syn = PacketBuilder.Tcp(Client, Server, 40000, 80, PacketBuilder.FlagSyn, 1000, 0);
        var created = t.Send(syn);
        created.Info.Should().Be(ConntrackInfo.New, "precondition: the SYN created a connection");
        var s = t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, syn));
        s.Info.Should().Be(ConntrackInfo.RelatedReply);
        s.Connection.Should().Be(created.Connection);
    }

    [Fact]
    public void Error_does_not_refresh_or_reply_the_connection()
    {
        // nf_conntrack_in returns right after the error handler set the connection (core.c:2037): no packet
        // function runs, so neither the timeout nor SEEN_REPLY changes.
        using var t = new TestTable();
        t.Send(ClientUdp());
        t.Advance(10);
        t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, ClientUdp()));
        var c = t.Connections().Single();
        c.RemainingNs.Should().Be(20 * TestTable.Second);
        c.Status.Should().NotHaveFlag(ConnectionStatus.SeenReply);
    }

    [Fact]
    public void Error_for_an_unknown_flow_is_invalid_and_counted_as_error()
    {
        using var t = new TestTable();
        var s = t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, ClientUdp()));
        t.LastVerdict.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.IcmpErrorNoConnection);
        t.Table.Statistics.Error.Should().Be(1);
        t.Table.Statistics.Invalid.Should().Be(0);
        t.Table.Count.Should().Be(0, "an error never creates a connection");
    }

    [Fact]
    public void Error_quoting_an_expired_flow_is_invalid()
    {
        using var t = new TestTable();
        t.Send(ClientUdp());
        t.Advance(31);
        t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, ClientUdp())).Reason.Should().Be(PacketReason.IcmpErrorNoConnection);
    }

    [Fact]
    public void Error_addressed_to_a_host_other_than_the_connection_endpoint_is_invalid()
    {
        // "outer daddr != inner" (proto_icmp.c:168-189): inner reply B->T, outer B->X must not be RELATED.
        using var t = new TestTable();
        t.Send(ClientUdp());
        var s = t.Send(PacketBuilder.IcmpError(Server, Other, 3, 3, ClientUdp()));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.IcmpErrorAddressMismatch);
        t.Table.Statistics.Error.Should().Be(1);
    }

    [Fact]
    public void Error_quoting_a_non_first_fragment_is_invalid()
    {
        // ipv4_get_l4proto on the quoted header: frag_off & IP_OFFSET -> -1 (core.c:358).
        using var t = new TestTable();
        t.Send(ClientUdp());
        var quoted = ClientUdp();
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(6), 0x0001);
        PacketBuilder.FixIpv4Checksum(quoted);
        var s = t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, quoted));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.IcmpErrorNoConnection);
    }

    [Fact]
    public void Error_quoting_a_first_fragment_is_related()
    {
        // MF set, offset 0: the quoted header still has its ports.
        using var t = new TestTable();
        t.Send(ClientUdp());
        var quoted = ClientUdp();
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(6), 0x2000);
        PacketBuilder.FixIpv4Checksum(quoted);
        t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, quoted)).Info.Should().Be(ConntrackInfo.RelatedReply);
    }

    [Fact]
    public void Error_with_a_quote_too_short_for_the_ports_is_invalid()
    {
        using var t = new TestTable();
        t.Send(ClientUdp());
        var s = t.Send(PacketBuilder.Icmp(Server, Client, 3, 3, 0, 0, ClientUdp()[..22]));
        s.Info.Should().Be(ConntrackInfo.Invalid);
    }

    [Fact]
    public void Error_with_a_bad_checksum_is_invalid()
    {
        using var t = new TestTable();
        t.Send(ClientUdp());
        var e = PacketBuilder.IcmpError(Server, Client, 3, 3, ClientUdp());
        e[^1] ^= 0x01;
        t.Send(e).Reason.Should().Be(PacketReason.Layer4Checksum);
    }

    [Theory]
    [InlineData(4, 0)]  // source quench
    [InlineData(5, 1)]  // redirect
    [InlineData(12, 0)] // parameter problem
    public void Every_icmp_error_type_is_matched_to_the_quoted_flow(byte type, byte code)
    {
        // icmp_is_err(): 3, 4, 5, 11, 12.
        using var t = new TestTable();
        t.Send(ClientUdp());
        t.Send(PacketBuilder.IcmpError(Router, Client, type, code, ClientUdp())).Info.Should().Be(ConntrackInfo.RelatedReply);
    }

    [Fact]
    public void Related_errors_are_counted_as_related_icmp_errors_not_as_kernel_errors()
    {
        using var t = new TestTable();
        t.Send(ClientUdp());
        t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, ClientUdp()));
        t.Table.Statistics.RelatedIcmpErrors.Should().Be(1);
        t.Table.Statistics.Error.Should().Be(0);
    }

    [Fact]
    public void Icmp_error_in_a_different_zone_is_invalid()
    {
        using var t = new TestTable();
        t.Send(ClientUdp(), zone: 3);
        t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, ClientUdp()), zone: 4).Info.Should().Be(ConntrackInfo.Invalid);
        t.Send(PacketBuilder.IcmpError(Server, Client, 3, 3, ClientUdp()), zone: 3).Info.Should().Be(ConntrackInfo.RelatedReply);
    }

    // ---- ICMPv6

    private const string C6 = "2001:db8:1::10", S6 = "2001:db8:2::20", R6 = "2001:db8:3::1";

    [Fact]
    public void Icmpv6_port_unreachable_is_related_reply()
    {
        using var t = new TestTable();
        var q = PacketBuilder.Udp(C6, S6, 5000, 53);
        var created = t.Send(q);
        var s = t.Send(PacketBuilder.IcmpError(S6, C6, 1, 4, q));
        s.Info.Should().Be(ConntrackInfo.RelatedReply);
        s.Connection.Should().Be(created.Connection);
    }

    [Fact]
    public void Icmpv6_packet_too_big_about_the_reply_direction_is_related()
    {
        using var t = new TestTable();
        var q = PacketBuilder.Udp(C6, S6, 5000, 53);
        var r = PacketBuilder.Udp(S6, C6, 53, 5000);
        t.Send(q);
        t.Send(r);
        t.Send(PacketBuilder.IcmpError(R6, S6, 2, 0, r)).Info.Should().Be(ConntrackInfo.Related);
    }

    [Fact]
    public void Icmpv6_time_exceeded_about_an_echo_request_is_related_reply()
    {
        using var t = new TestTable();
        var echo = PacketBuilder.IcmpEcho(C6, S6, 77, 1);
        t.Send(echo);
        t.Send(PacketBuilder.IcmpError(R6, C6, 3, 0, echo)).Info.Should().Be(ConntrackInfo.RelatedReply);
    }

    [Fact]
    public void Icmpv6_error_for_an_unknown_flow_is_invalid()
    {
        using var t = new TestTable();
        var s = t.Send(PacketBuilder.IcmpError(S6, C6, 1, 4, PacketBuilder.Udp(C6, S6, 5000, 53)));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.IcmpErrorNoConnection);
        t.Table.Statistics.Error.Should().Be(1);
    }

    [Fact]
    public void Icmpv6_error_to_another_host_is_invalid()
    {
        using var t = new TestTable();
        var q = PacketBuilder.Udp(C6, S6, 5000, 53);
        t.Send(q);
        t.Send(PacketBuilder.IcmpError(S6, "2001:db8:9::9", 1, 4, q)).Reason.Should().Be(PacketReason.IcmpErrorAddressMismatch);
    }

    [Fact]
    public void Icmpv6_error_quoting_a_packet_with_extension_headers_is_related()
    {
        // The quoted packet is walked with ipv6_skip_exthdr as well (get_l4proto from nf_ct_get_tuplepr).
        using var t = new TestTable();
        var q = RawPackets.Ipv6Udp(C6, S6, RawPackets.NextDestOpts, RawPackets.OptionsHeader(RawPackets.NextUdp, 1, 4, 0, 0, 0, 0), 5000, 53);
        t.Send(q).Info.Should().Be(ConntrackInfo.New);
        t.Send(PacketBuilder.IcmpError(S6, C6, 1, 4, q)).Info.Should().Be(ConntrackInfo.RelatedReply);
    }

    [Fact]
    public void Icmpv6_error_quoting_a_non_first_fragment_is_invalid()
    {
        using var t = new TestTable();
        var q = PacketBuilder.Udp(C6, S6, 5000, 53);
        t.Send(q);
        var frag = RawPackets.Ipv6(C6, S6, RawPackets.NextFragment, RawPackets.FragmentHeader(RawPackets.NextUdp, 1, false), 0,
            RawPackets.UdpSegment(5000, 53));
        t.Send(PacketBuilder.IcmpError(S6, C6, 1, 4, frag)).Info.Should().Be(ConntrackInfo.Invalid);
    }

    // Redirect (RFC 4861 4.5): 8-byte ICMPv6 header, target, destination, then options; the redirected-header
    // option is type 4 with length in 8-octet units, 6 reserved bytes, then the quoted packet.
    private static byte[] Redirect(string from, string to, byte[] quoted, byte optionType = 4, byte hopLimit = 255, byte code = 0)
    {
        var body = new byte[32 + 8 + quoted.Length];
        System.Net.IPAddress.Parse("fe80::99").GetAddressBytes().CopyTo(body, 0);  // target
        System.Net.IPAddress.Parse(S6).GetAddressBytes().CopyTo(body, 16);         // destination
        body[32] = optionType;
        body[33] = (byte)((8 + quoted.Length + 7) / 8);
        quoted.CopyTo(body, 40);
        var l4 = new byte[8 + body.Length];
        l4[0] = 137;
        l4[1] = code;
        body.CopyTo(l4, 8);
        return RawPackets.Ipv6(from, to, RawPackets.NextIcmpv6, [], RawPackets.NextIcmpv6, l4, hopLimit);
    }

    [Fact]
    public void Redirect_with_the_redirected_header_option_is_related_reply()
    {
        using var t = new TestTable();
        var q = PacketBuilder.Udp(C6, S6, 5000, 53);
        var created = t.Send(q);
        var s = t.Send(Redirect("fe80::1", C6, q));
        s.Info.Should().Be(ConntrackInfo.RelatedReply);
        s.Connection.Should().Be(created.Connection);
    }

    [Fact]
    public void Redirect_with_a_hop_limit_below_255_is_invalid()
    {
        // "if (hl != 255 || !(ipv6_addr_type(saddr) & IPV6_ADDR_LINKLOCAL))" (proto_icmpv6.c:157).
        using var t = new TestTable();
        var q = PacketBuilder.Udp(C6, S6, 5000, 53);
        t.Send(q);
        var s = t.Send(Redirect("fe80::1", C6, q, hopLimit: 254));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        t.Table.Statistics.Error.Should().Be(1);
    }

    [Fact]
    public void Redirect_from_a_global_source_is_invalid()
    {
        using var t = new TestTable();
        var q = PacketBuilder.Udp(C6, S6, 5000, 53);
        t.Send(q);
        t.Send(Redirect(R6, C6, q)).Info.Should().Be(ConntrackInfo.Invalid);
    }

    [Fact]
    public void Redirect_whose_first_option_is_not_the_redirected_header_is_not_an_error()
    {
        // nd_opt_type != ND_OPT_REDIRECT_HDR -> NF_ACCEPT; then the redirect is looked up as a query, which
        // has no invmap entry -> invalid (counted invalid, not error).
        using var t = new TestTable();
        var q = PacketBuilder.Udp(C6, S6, 5000, 53);
        t.Send(q);
        var s = t.Send(Redirect("fe80::1", C6, q, optionType: 2));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.CannotCreate);
        t.Table.Statistics.Error.Should().Be(0);
    }

    [Fact]
    public void Redirect_with_a_non_zero_code_is_not_an_error()
    {
        using var t = new TestTable();
        var q = PacketBuilder.Udp(C6, S6, 5000, 53);
        t.Send(q);
        var s = t.Send(Redirect("fe80::1", C6, q, code: 1));
        s.Reason.Should().Be(PacketReason.CannotCreate);
        t.Table.Statistics.Error.Should().Be(0);
    }

    [Fact]
    public void Redirect_without_options_is_invalid()
    {
        // "if (!nd_opt || nd_opt->nd_opt_len == 0)" -> "redirect without options" (proto_icmpv6.c:166).
        var l4 = new byte[40];
        l4[0] = 137;
        using var t = new TestTable();
        var s = t.Send(RawPackets.Ipv6("fe80::1", C6, RawPackets.NextIcmpv6, [], RawPackets.NextIcmpv6, l4, 255));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.Layer4Malformed);
        t.Table.Statistics.Error.Should().Be(1);
    }
}
