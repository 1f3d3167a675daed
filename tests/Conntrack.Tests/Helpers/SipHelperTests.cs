using Conntrack.Expectations;
using Conntrack.Helpers;
using Conntrack.Tests.Support;
using static Conntrack.Tests.Helpers.SipTestKit;

namespace Conntrack.Tests.Helpers;

/// <summary>
/// The SIP helper over UDP: SDP in requests and answers opening RTP/RTCP expectations, their end with the call,
/// and the packets it drops. Expected results were recorded with the kernel oracle (Linux 6.18, --helpers).
/// </summary>
public class SipHelperTests
{
    private static string Invite(uint cseq = 1, string? body = null, string from = Client, string to = Server) =>
        Request("INVITE", from, to, cseq, body ?? Sdp(from, "m=audio 49170 RTP/AVP 0", "a=rtpmap:0 PCMU/8000"));

    private static string Ok(uint cseq = 1, string? body = null, string method = "INVITE", string server = Server) =>
        Response(200, "OK", method, cseq, body ?? Sdp(server, "m=audio 3456 RTP/AVP 0"));

    // The self-test capture sip_invite.pcap and the kernel's expectation table after it.
    private static readonly string[] SelfTestExpectations =
    [
        "ipv4 udp 17 src=192.0.2.10 dst=198.51.100.20 sport=0 dport=3457 mask-src=255.255.255.255 mask-dst=255.255.255.255 mask-sport=0 mask-dport=65535 master-src=192.0.2.10 master-dst=198.51.100.20 master-sport=5060 master-dport=5060 class=1 helper=sip/audio",
        "ipv4 udp 17 src=198.51.100.20 dst=192.0.2.10 sport=0 dport=49170 mask-src=255.255.255.255 mask-dst=255.255.255.255 mask-sport=0 mask-dport=65535 master-src=192.0.2.10 master-dst=198.51.100.20 master-sport=5060 master-dport=5060 class=1 helper=sip/audio",
        "ipv4 udp 17 src=198.51.100.20 dst=192.0.2.10 sport=0 dport=49171 mask-src=255.255.255.255 mask-dst=255.255.255.255 mask-sport=0 mask-dport=65535 master-src=192.0.2.10 master-dst=198.51.100.20 master-sport=5060 master-dport=5060 class=1 helper=sip/audio",
    ];

    [Fact]
    public void Invite_with_sdp_expects_rtp_and_rtcp_from_the_callee_to_the_offered_port()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Invite())).Info.Should().Be(ConntrackInfo.New);
        t.LastVerdict.Should().Be(Verdict.Accept);
        var exps = t.Expectations().OrderBy(e => e.Tuple.DestinationPort).ToList();
        exps.Should().HaveCount(2);
        foreach (var e in exps)
        {
            e.Tuple.Protocol.Should().Be(IpProtocol.Udp);
            e.Tuple.SourceAddress.Should().Be(InetAddressOf(Server), "sip_direct_media: only from the other signalling endpoint");
            e.MaskSource.Should().Be(InetAddressOf("255.255.255.255"));
            e.Tuple.SourcePort.Should().Be(0);
            e.MaskSourcePort.Should().Be(0, "any source port");
            e.Tuple.DestinationAddress.Should().Be(InetAddressOf(Client));
            e.Class.Should().Be(SipHelper.Audio);
            e.HelperName.Should().Be("sip");
            e.PolicyName.Should().Be("audio");
            e.Flags.Should().Be(ExpectationFlags.None);
            e.RemainingNs.Should().Be(180 * Second);
            e.Master.SourcePort.Should().Be(5060);
        }

        exps.Select(e => (int)e.Tuple.DestinationPort).Should().Equal(49170, 49171);
        sip.LastDrop.Should().BeNull();
        t.Table.Statistics.ExpectCreate.Should().Be(2);
    }

    [Fact]
    public void Self_test_call_ends_with_the_kernels_expectations_and_a_related_first_rtp_packet()
    {
        // sip_invite.pcap: INVITE, 100, 180, 200 OK with SDP, ACK, then RTP both ways twice.
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite())).Info.Should().Be(ConntrackInfo.New);
        t.Send(Sip(Server, Client, Response(100, "Trying", "INVITE", 1))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(Sip(Server, Client, Response(180, "Ringing", "INVITE", 1))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(Sip(Server, Client, Ok())).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.Send(Sip(Client, Server, Request("ACK", Client, Server, 1))).Info.Should().Be(ConntrackInfo.Established);
        t.Send(Udp(Client, Server, 49170, 3456, new byte[172])).Info.Should().Be(ConntrackInfo.Related);
        t.Send(Udp(Server, Client, 3456, 49170, new byte[172])).Info.Should().Be(ConntrackInfo.EstablishedReply,
            "the answer stream belongs to the existing RTP connection; its own expectation stays pending");
        t.Send(Udp(Client, Server, 49170, 3456, new byte[172])).Info.Should().Be(ConntrackInfo.Established);
        t.Send(Udp(Server, Client, 3456, 49170, new byte[172])).Info.Should().Be(ConntrackInfo.EstablishedReply);

        t.ExpectLines().Should().Equal(SelfTestExpectations);
        t.TableLines().Should().Equal(
            "ipv4 udp 17 - src=192.0.2.10 dst=198.51.100.20 sport=49170 dport=3456 src=198.51.100.20 dst=192.0.2.10 sport=3456 dport=49170 mark=0 zone=0",
            "ipv4 udp 17 - src=192.0.2.10 dst=198.51.100.20 sport=5060 dport=5060 src=198.51.100.20 dst=192.0.2.10 sport=5060 dport=5060 mark=0 zone=0 helper=sip");
    }

    [Fact]
    public void Rtp_connection_inherits_nothing_but_its_master_link_and_no_helper()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Invite()));
        int calls = sip.Calls;
        t.Send(Udp(Server, Client, 7000, 49170, new byte[20])).Info.Should().Be(ConntrackInfo.Related);
        t.Send(Udp(Server, Client, 7000, 49170, new byte[20])).Info.Should().Be(ConntrackInfo.Related, "until a reply is seen");
        sip.Calls.Should().Be(calls, "the helper does not run on the expected connection");
        t.Expected().Should().Equal("audio:49171");
        t.Table.Statistics.ExpectNew.Should().Be(1);
    }

    [Theory]
    [InlineData(49171, 49170)]
    [InlineData(1024, 1024)]
    [InlineData(65535, 65534)]
    public void Odd_port_is_rounded_down_to_the_rtp_port(int offered, int rtp)
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite(body: Sdp(Client, $"m=audio {offered} RTP/AVP 0"))));
        t.Expected().Should().Equal($"audio:{rtp}", $"audio:{rtp + 1}");
    }

    [Fact]
    public void Video_and_image_media_have_their_own_classes()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite(body: Sdp(Client, "m=video 51372 RTP/AVP 31", "m=image 60000 udptl t38"))));
        t.Expected().Should().Equal("video:51372", "video:51373", "image:60000", "image:60001");
        t.Expectations().Where(e => e.PolicyName == "image").Should().OnlyContain(e => e.Class == SipHelper.Image);
        t.Expectations().Where(e => e.PolicyName == "video").Should().OnlyContain(e => e.Class == SipHelper.Video);
    }

    [Fact]
    public void Only_three_media_descriptions_are_used_and_unknown_or_inactive_ones_do_not_count()
    {
        using var t = NewTable(out _);
        var sdp = Sdp(Client, "m=text 11000 RTP/AVP 0", "m=audio 0 RTP/AVP 0", "m=Audio 12000 RTP/AVP 0", "m=audio 40000 RTP/AVP 0",
            "m=video 40010 RTP/AVP 0", "m=image 40020 udptl t38", "m=audio 40030 RTP/AVP 0");
        t.Send(Sip(Client, Server, Invite(body: sdp)));
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Expected().Should().Equal("audio:40000", "audio:40001", "video:40010", "video:40011", "image:40020", "image:40021");
    }

    [Fact]
    public void Media_connection_address_overrides_the_sessions()
    {
        using var t = NewTable(out _);
        // The session address is someone else's, the media one the sender's: expected.
        t.Send(Sip(Client, Server, Invite(body: Sdp("192.0.2.99", "m=audio 40000 RTP/AVP 0", $"c=IN IP4 {Client}"))));
        t.Expected().Should().Equal("audio:40000", "audio:40001");
    }

    [Fact]
    public void Media_for_another_address_than_the_senders_is_ignored()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Invite(body: Sdp("192.0.2.99", "m=audio 40000 RTP/AVP 0"))));
        t.LastVerdict.Should().Be(Verdict.Accept);
        sip.LastDrop.Should().BeNull();
        t.Expectations().Should().BeEmpty();
    }

    [Fact]
    public void Media_without_any_connection_address_drops_the_message()
    {
        using var t = NewTable(out var sip);
        var st = t.Send(Sip(Client, Server, Invite(body: Sdp(Client, false, "m=audio 40000 RTP/AVP 0"))));
        st.Info.Should().Be(ConntrackInfo.New);
        t.LastVerdict.Should().Be(Verdict.Drop);
        sip.LastDrop.Should().Be("cannot parse SDP message");
        t.Table.Count.Should().Be(0, "a dropped first packet leaves no connection");
        t.Send(Sip(Client, Server, Request("OPTIONS", Client, Server, 2))).Info.Should().Be(ConntrackInfo.New);
    }

    [Theory]
    [InlineData("1023", "wrong port 1023")]
    [InlineData("70000", "wrong port 70000")]
    [InlineData("4294967295", "wrong port 4294967295")]
    public void Media_port_outside_1024_to_65535_drops_the_message(string port, string message)
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Invite(body: Sdp(Client, $"m=audio {port} RTP/AVP 0"))));
        t.LastVerdict.Should().Be(Verdict.Drop);
        sip.LastDrop.Should().Be(message);
    }

    [Fact]
    public void Media_port_beyond_32_bits_reads_as_zero_and_is_skipped()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Invite(body: Sdp(Client, "m=audio 4294967296 RTP/AVP 0", "m=audio 40000 RTP/AVP 0"))));
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Expected().Should().Equal("audio:40000", "audio:40001");
    }

    [Fact]
    public void Expectations_of_a_message_dropped_later_stay_on_a_confirmed_master_and_go_with_an_unconfirmed_one()
    {
        using var t = NewTable(out var sip);
        var sdp = Sdp(Client, "m=audio 40000 RTP/AVP 0", "m=video 70000 RTP/AVP 0");
        t.Send(Sip(Client, Server, Invite(body: sdp)));
        sip.LastDrop.Should().Be("wrong port 70000");
        t.Expectations().Should().BeEmpty("the unconfirmed master died with its expectations");

        t.Send(Sip(Client, Server, Request("OPTIONS", Client, Server, 1)));
        t.Send(Sip(Client, Server, Invite(cseq: 2, body: sdp)));
        t.LastVerdict.Should().Be(Verdict.Drop);
        t.Expected().Should().Equal("audio:40000", "audio:40001");
    }

    [Fact]
    public void Answer_with_sdp_expects_media_towards_the_callee()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Request("INVITE", Client, Server, 1))); // delayed offer: no SDP
        t.Expectations().Should().BeEmpty();
        t.Send(Sip(Server, Client, Response(183, "Session Progress", "INVITE", 1, Sdp(Server, "m=audio 3456 RTP/AVP 0"))));
        var e = t.Expectations().OrderBy(x => x.Tuple.DestinationPort).First();
        e.Tuple.SourceAddress.Should().Be(InetAddressOf(Client));
        e.Tuple.DestinationAddress.Should().Be(InetAddressOf(Server));
        e.Tuple.DestinationPort.Should().Be(3456);
        t.Send(Sip(Client, Server, Request("ACK", Client, Server, 1, Sdp(Client, "m=audio 49170 RTP/AVP 0"))));
        t.Expected().Should().Equal("audio:3456", "audio:3457", "audio:49170", "audio:49171");
    }

    [Theory]
    [InlineData("UPDATE")]
    [InlineData("PRACK")]
    [InlineData("ACK")]
    public void Update_prack_and_ack_carry_sdp_too(string method)
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Request(method, Client, Server, 1, Sdp(Client, "m=audio 40000 RTP/AVP 0"))));
        t.Expected().Should().Equal("audio:40000", "audio:40001");
    }

    [Theory]
    [InlineData("UPDATE")]
    [InlineData("PRACK")]
    public void Answers_to_update_and_prack_carry_sdp(string method)
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Request("OPTIONS", Client, Server, 1)));
        t.Send(Sip(Server, Client, Response(200, "OK", method, 2, Sdp(Server, "m=audio 30000 RTP/AVP 0"))));
        t.Expected().Should().Equal("audio:30000", "audio:30001");
    }

    [Theory]
    [InlineData("OPTIONS")]
    [InlineData("CANCEL")]
    [InlineData("MESSAGE")]
    [InlineData("INFO")]
    public void Other_methods_are_not_parsed_and_need_no_cseq(string method)
    {
        using var t = NewTable(out var sip);
        var m = Message($"{method} sip:bob@{Server} SIP/2.0", ["Content-Type: application/sdp"], Sdp(Client, "m=audio 40000 RTP/AVP 0"));
        t.Send(Sip(Client, Server, m));
        t.LastVerdict.Should().Be(Verdict.Accept);
        sip.LastDrop.Should().BeNull();
        t.Expectations().Should().BeEmpty();
    }

    [Theory]
    [InlineData("invite sip:bob@x SIP/2.0", true)]
    [InlineData("INVITE \u00c9sip:bob@x SIP/2.0", true)] // Latin-1 letters are letters to the kernel
    [InlineData("INVITE\tsip:bob@x SIP/2.0", false)]
    [InlineData("INVITE 1sip:bob@x SIP/2.0", false)]
    [InlineData("INVITEX sip:bob@x SIP/2.0", false)]
    public void Method_is_matched_case_insensitively_and_must_be_followed_by_a_space_and_a_letter(string firstLine, bool parsed)
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Message(firstLine, ["CSeq: 1 INVITE"], Sdp(Client, "m=audio 40000 RTP/AVP 0"))));
        t.Expectations().Should().HaveCount(parsed ? 2 : 0);
    }

    [Theory]
    [InlineData(null, "cannot parse cseq")]
    [InlineData("CSeq: INVITE", "cannot parse cseq")] // no digits: the header does not parse
    [InlineData("CSeqX: 1 INVITE", "cannot parse cseq")]
    [InlineData("CSeq: 99999999999 INVITE", "cannot get cseq")] // above 2^32-1
    public void Request_without_a_usable_cseq_is_dropped(string? cseq, string message)
    {
        using var t = NewTable(out var sip);
        var headers = cseq is null ? new[] { "Via: SIP/2.0/UDP 192.0.2.10:5060" } : ["Via: SIP/2.0/UDP 192.0.2.10:5060", cseq];
        t.Send(Sip(Client, Server, Message($"BYE sip:bob@{Server} SIP/2.0", headers)));
        t.LastVerdict.Should().Be(Verdict.Drop);
        sip.LastDrop.Should().Be(message);
        t.Table.Count.Should().Be(0);
    }

    [Fact]
    public void Cseq_in_compact_form_does_not_exist()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Message($"INVITE sip:bob@{Server} SIP/2.0", ["v: SIP/2.0/UDP 192.0.2.10", "f: <sip:a@192.0.2.10>", "t: <sip:b@x>", "i: abc", "CSeq: 7 INVITE", "m: <sip:a@192.0.2.10>"], Sdp(Client, "m=audio 40000 RTP/AVP 0"))));
        t.Expected().Should().Equal("audio:40000", "audio:40001");
        t.Send(Sip(Client, Server, Message($"BYE sip:bob@{Server} SIP/2.0", ["c: 8 BYE"])));
        sip.LastDrop.Should().Be("cannot parse cseq");
    }

    [Theory]
    [InlineData("SIP/2.0 abc OK", "cannot get code")]
    [InlineData("SIP/2.0 0 OK", "cannot get code")]
    [InlineData("SIP/2.0 99999999999 OK", "cannot get code")]
    public void Response_without_a_status_code_is_dropped(string firstLine, string message)
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Request("OPTIONS", Client, Server, 1)));
        t.Send(Sip(Server, Client, Message(firstLine, ["CSeq: 1 OPTIONS"]))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        t.LastVerdict.Should().Be(Verdict.Drop);
        sip.LastDrop.Should().Be(message);
        t.TableLines().Single().Should().NotContain("UNREPLIED", "the reply was seen before the helper dropped it");
    }

    [Fact]
    public void Every_response_needs_a_cseq()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Request("OPTIONS", Client, Server, 1)));
        t.Send(Sip(Server, Client, Message("SIP/2.0 200 OK", ["Via: x"])));
        sip.LastDrop.Should().Be("cannot parse cseq");
        t.Send(Sip(Server, Client, Message("sip/2.0 200 OK", ["Via: x"])));
        sip.LastDrop.Should().Be("cannot parse cseq", "the status line is matched case-insensitively");
    }

    [Theory]
    [InlineData("CSeq: 1 invite", 2)]
    [InlineData("CSeq: 1  INVITE", 0)] // the method must follow the number after exactly one character
    [InlineData("CSeq: 1\tINVITE", 2)]
    [InlineData("CSeq: 1 OPTIONS", 0)]
    public void Response_method_is_the_word_after_the_cseq_number(string cseq, int expectations)
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Request("OPTIONS", Client, Server, 1)));
        t.Send(Sip(Server, Client, Message("SIP/2.0 200 OK", [cseq], Sdp(Server, "m=audio 30000 RTP/AVP 0"))));
        t.Expectations().Should().HaveCount(expectations);
    }

    [Fact]
    public void Bye_ends_the_calls_media_expectations()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite()));
        t.Send(Sip(Server, Client, Ok()));
        t.Expectations().Should().HaveCount(4);
        t.Send(Sip(Client, Server, Request("BYE", Client, Server, 2)));
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Expectations().Should().BeEmpty();
        t.Table.Statistics.ExpectDelete.Should().Be(4);
    }

    [Fact]
    public void Bye_from_the_callee_ends_them_too()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite()));
        t.Send(Sip(Server, Client, Request("BYE", Server, Client, 1)));
        t.Expectations().Should().BeEmpty();
    }

    [Fact]
    public void Re_invite_replaces_the_media_expectations()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite()));
        t.Send(Sip(Server, Client, Ok()));
        t.Send(Sip(Client, Server, Invite(cseq: 2, body: Sdp(Client, "m=audio 40100 RTP/AVP 0"))));
        t.Expected().Should().Equal(["audio:40100", "audio:40101"], "the answer's are gone too until it is sent again");
        t.Send(Sip(Server, Client, Ok(cseq: 2, body: Sdp(Server, "m=audio 30100 RTP/AVP 0"))));
        t.Expected().Should().Equal("audio:30100", "audio:30101", "audio:40100", "audio:40101");
    }

    [Theory]
    [InlineData(486, 1, 0)] // the INVITE's failure ends its media
    [InlineData(487, 1, 0)]
    [InlineData(302, 1, 0)]
    [InlineData(486, 4, 2)] // an answer to another request does not
    public void Failure_answer_to_the_last_invite_ends_its_media(int code, uint cseq, int left)
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite()));
        t.Send(Sip(Server, Client, Response(code, "No", "INVITE", cseq)));
        t.Expectations().Should().HaveCount(left);
    }

    [Fact]
    public void Invite_that_is_dropped_does_not_become_the_last_invite()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Invite(cseq: 1)));
        t.Send(Sip(Client, Server, Invite(cseq: 2, body: Sdp(Client, "m=audio 50000 RTP/AVP 0", "m=video 80000 RTP/AVP 0"))));
        sip.LastDrop.Should().Be("wrong port 80000");
        t.Expected().Should().Equal("audio:50000", "audio:50001");
        t.Send(Sip(Server, Client, Response(486, "Busy", "INVITE", 2)));
        t.Expected().Should().Equal(["audio:50000", "audio:50001"], "the INVITE's CSeq is still 1");
        t.Send(Sip(Server, Client, Response(486, "Busy", "INVITE", 1)));
        t.Expectations().Should().BeEmpty();
    }

    [Fact]
    public void Per_class_limit_evicts_the_oldest_expectation()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite(body: Sdp(Client, "m=audio 40000 RTP/AVP 0", "m=audio 40010 RTP/AVP 0", "m=audio 40020 RTP/AVP 0"))));
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Expected().Should().Equal("audio:40010", "audio:40011", "audio:40020", "audio:40021");
    }

    [Fact]
    public void Same_port_for_two_media_types_counts_as_set_up()
    {
        // -EALREADY: identical tuple, other class, same master.
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Invite(body: Sdp(Client, "m=audio 40000 RTP/AVP 0", "m=video 40000 RTP/AVP 0"))));
        t.LastVerdict.Should().Be(Verdict.Accept);
        sip.LastDrop.Should().BeNull();
        t.Expected().Should().Equal("audio:40000", "audio:40001");
    }

    [Fact]
    public void Same_media_offered_on_two_signalling_connections_is_expected_once()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Invite()));
        t.Send(Udp(Client, Server, 5062, 5060, Invite()));
        t.LastVerdict.Should().Be(Verdict.Accept);
        sip.LastDrop.Should().BeNull();
        t.Expectations().Should().HaveCount(2).And.OnlyContain(e => e.Master.SourcePort == 5060);
    }

    [Fact]
    public void Ipv6_call_expects_ipv6_media()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client6, Server6, Invite(from: Client6, to: Server6)));
        t.Send(Sip(Server6, Client6, Ok(body: Sdp(Server6, "m=video 30000 RTP/AVP 0"))));
        t.ExpectLines().Should().Equal(
            "ipv6 udp 17 src=2001:db8:1::10 dst=2001:db8:2::20 sport=0 dport=30000 mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-sport=0 mask-dport=65535 master-src=2001:db8:1::10 master-dst=2001:db8:2::20 master-sport=5060 master-dport=5060 class=2 helper=sip/video",
            "ipv6 udp 17 src=2001:db8:1::10 dst=2001:db8:2::20 sport=0 dport=30001 mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-sport=0 mask-dport=65535 master-src=2001:db8:1::10 master-dst=2001:db8:2::20 master-sport=5060 master-dport=5060 class=2 helper=sip/video",
            "ipv6 udp 17 src=2001:db8:2::20 dst=2001:db8:1::10 sport=0 dport=49170 mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-sport=0 mask-dport=65535 master-src=2001:db8:1::10 master-dst=2001:db8:2::20 master-sport=5060 master-dport=5060 class=1 helper=sip/audio",
            "ipv6 udp 17 src=2001:db8:2::20 dst=2001:db8:1::10 sport=0 dport=49171 mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-sport=0 mask-dport=65535 master-src=2001:db8:1::10 master-dst=2001:db8:2::20 master-sport=5060 master-dport=5060 class=1 helper=sip/audio");
        t.Send(Udp(Server6, Client6, 9000, 49170, new byte[12])).Info.Should().Be(ConntrackInfo.Related);
    }

    [Fact]
    public void Ipv4_sdp_in_an_ipv6_call_has_no_usable_address()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client6, Server6, Invite(from: Client6, to: Server6, body: Sdp(Client, "m=audio 40000 RTP/AVP 0"))));
        sip.LastDrop.Should().Be("cannot parse SDP message");
    }

    [Fact]
    public void Expectations_expire_after_three_minutes()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite()));
        t.Send(Sip(Server, Client, Ok()));
        t.Advance(179);
        t.Expectations().Should().HaveCount(4);
        t.Expectations().Should().OnlyContain(e => e.RemainingNs == 1 * Second);
        t.Advance(1);
        t.Expectations().Should().BeEmpty();
        t.Send(Udp(Server, Client, 7000, 49170, new byte[12])).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Every_sip_message_renews_the_expectations_it_sets_up()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite()));
        t.Advance(20);
        t.Send(Sip(Client, Server, Request("ACK", Client, Server, 1, Sdp(Client, "m=audio 49170 RTP/AVP 0")))).Info.Should().Be(ConntrackInfo.New);
        t.Expectations().Should().OnlyContain(e => e.RemainingNs == 180 * Second, "an identical expectation of the same master is replaced");
    }

    [Fact]
    public void Expectations_die_with_their_master()
    {
        using var t = NewTable(out _);
        var st = t.Send(Sip(Client, Server, Invite()));
        t.Expectations().Should().HaveCount(2);
        t.Table.Delete(st.Connection, t.Now).Should().BeTrue();
        t.Expectations().Should().BeEmpty();
        t.Send(Udp(Server, Client, 7000, 49170, new byte[12])).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Sip_packets_hold_the_master_for_sip_timeout()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Invite()));
        t.Connections().Single().RemainingNs.Should().Be((long)SipHelper.MasterTimeout.TotalSeconds * Second);
        t.Send(Sip(Server, Client, Ok()));
        t.Connections().Single().RemainingNs.Should().Be((long)SipHelper.MasterTimeout.TotalSeconds * Second);
    }

    [Fact]
    public void Icmp_error_from_the_caller_reaches_the_helper_harmlessly()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Request("OPTIONS", Client, Server, 1)));
        var answer = Sip(Server, Client, Ok());
        t.Send(answer);
        t.Expected().Should().Equal("audio:3456", "audio:3457");
        int calls = sip.Calls;
        var error = PacketBuilder.IcmpError(Client, Server, 3, 3, answer);
        t.Send(error).Info.Should().Be(ConntrackInfo.Related);
        t.LastVerdict.Should().Be(Verdict.Accept);
        sip.Calls.Should().Be(calls + 1, "RELATED in the original direction is passed to the helper");
        t.Expected().Should().Equal("audio:3456", "audio:3457");
    }

    [Fact]
    public void Packets_too_short_for_a_sip_message_are_ignored()
    {
        using var t = NewTable(out var sip);
        t.Send(Udp(Client, Server, 5060, 5060, "INVITE sip"));
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Send(Udp(Client, Server, 5060, 5060, ""));
        t.LastVerdict.Should().Be(Verdict.Accept);
        sip.LastDrop.Should().BeNull();
    }

    private static global::Conntrack.Tuples.InetAddress InetAddressOf(string s) => global::Conntrack.Tuples.InetAddress.Parse(s);
}
