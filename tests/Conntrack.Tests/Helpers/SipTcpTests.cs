using static Conntrack.Tests.Helpers.SipTestKit;

namespace Conntrack.Tests.Helpers;

/// <summary>
/// SIP over TCP (sip_help_tcp): only established segments, each complete message of a segment (headers, an
/// empty line, Content-Length bytes of body) in turn; nothing is reassembled across segments. Expected results
/// were recorded with the kernel oracle (Linux 6.18, --helpers).
/// </summary>
public class SipTcpTests
{
    private static string Invite(uint cseq = 1, int port = 40000, bool contentLength = true)
    {
        var body = Sdp(Client, $"m=audio {port} RTP/AVP 0");
        return Message($"INVITE sip:bob@{Server} SIP/2.0",
            ["Via: SIP/2.0/TCP 192.0.2.10:5060", $"CSeq: {cseq} INVITE", "Content-Type: application/sdp"], body, contentLength);
    }

    private static string Options(uint cseq = 1) => Message($"OPTIONS sip:bob@{Server} SIP/2.0", [$"CSeq: {cseq} OPTIONS"]);

    [Fact]
    public void Invite_over_tcp_expects_udp_media()
    {
        using var t = NewTable(out _, out var sip);
        var s = new TcpSession(t).Handshake();
        s.C(Invite()).Info.Should().Be(ConntrackInfo.Established);
        t.LastVerdict.Should().Be(Verdict.Accept);
        var e = t.Expectations().OrderBy(x => x.Tuple.DestinationPort).ToList();
        e.Select(x => (int)x.Tuple.DestinationPort).Should().Equal(40000, 40001);
        e.Should().OnlyContain(x => x.Tuple.Protocol == IpProtocol.Udp && x.Master.Protocol == IpProtocol.Tcp && x.Master.SourcePort == 40100);
        s.S(Response(200, "OK", "INVITE", 1, Sdp(Server, "m=audio 30000 RTP/AVP 0")));
        t.Expected().Should().Equal("audio:30000", "audio:30001", "audio:40000", "audio:40001");
        sip.LastDrop.Should().BeNull();
    }

    [Fact]
    public void Several_messages_in_one_segment_are_each_processed()
    {
        using var t = NewTable(out _, out _);
        var s = new TcpSession(t).Handshake();
        s.C(Options() + Invite(2) + Message($"BYE sip:bob@{Server} SIP/2.0", ["CSeq: 3 BYE"]) + Invite(4, 41000));
        t.Expected().Should().Equal("audio:41000", "audio:41001");
    }

    [Fact]
    public void Message_split_over_two_segments_is_not_seen()
    {
        using var t = NewTable(out _, out _);
        var s = new TcpSession(t).Handshake();
        var m = Invite();
        s.C(m[..100]);
        s.C(m[100..]);
        t.LastVerdict.Should().Be(Verdict.Accept);
        t.Expectations().Should().BeEmpty();
    }

    [Fact]
    public void Body_shorter_than_content_length_ends_the_segment_silently()
    {
        using var t = NewTable(out _, out var sip);
        var s = new TcpSession(t).Handshake();
        var m = Invite(2);
        s.C(Options() + Invite(1, 42000) + m[..^10]);
        t.LastVerdict.Should().Be(Verdict.Accept);
        sip.LastDrop.Should().BeNull();
        t.Expected().Should().Equal("audio:42000", "audio:42001");
    }

    [Fact]
    public void Message_without_content_length_is_not_processed()
    {
        using var t = NewTable(out _, out _);
        var s = new TcpSession(t).Handshake();
        s.C(Invite(contentLength: false));
        t.Expectations().Should().BeEmpty();
    }

    [Fact]
    public void Content_length_of_a_later_message_frames_the_first_with_it()
    {
        // The first message has no Content-Length; the search finds the BYE's, so both are one message, an INVITE.
        using var t = NewTable(out _, out _);
        var s = new TcpSession(t).Handshake();
        s.C(Invite(contentLength: false) + Message($"BYE sip:bob@{Server} SIP/2.0", ["CSeq: 2 BYE"]));
        t.Expected().Should().Equal("audio:40000", "audio:40001");
    }

    [Fact]
    public void Bad_message_drops_the_segment_after_earlier_messages_took_effect()
    {
        using var t = NewTable(out _, out var sip);
        var s = new TcpSession(t).Handshake();
        s.C(Invite(1) + Message("INVITE sip:x SIP/2.0", []) + Invite(2, 40100));
        t.LastVerdict.Should().Be(Verdict.Drop);
        sip.LastDrop.Should().Be("cannot parse cseq");
        t.Expected().Should().Equal("audio:40000", "audio:40001");
    }

    [Fact]
    public void Compact_content_length_frames_messages()
    {
        using var t = NewTable(out _, out _);
        var s = new TcpSession(t).Handshake();
        var body = Sdp(Client, "m=audio 43000 RTP/AVP 0");
        s.C(Crlf($"INVITE sip:bob@{Server} SIP/2.0\nCSeq: 1 INVITE\nl: {body.Length}\n\n") + body);
        t.Expected().Should().Equal("audio:43000", "audio:43001");
    }

    [Fact]
    public void Only_established_segments_are_parsed()
    {
        using var t = NewTable(out _, out var sip);
        // No handshake: the connection is picked up mid-stream, and its first segment is NEW.
        t.Send(Tcp(Client, Server, 40200, 5060, Support.PacketBuilder.FlagAck | Support.PacketBuilder.FlagPsh, 1000, 5000, Bytes(Invite())))
            .Info.Should().Be(ConntrackInfo.New);
        t.Expectations().Should().BeEmpty();
        sip.Calls.Should().Be(1);
    }

    [Fact]
    public void Segments_without_data_or_too_short_are_ignored()
    {
        using var t = NewTable(out _, out var sip);
        var s = new TcpSession(t).Handshake();
        s.C("INVITE x");
        t.LastVerdict.Should().Be(Verdict.Accept);
        sip.LastDrop.Should().BeNull();
        t.Expectations().Should().BeEmpty();
    }
}
