using Conntrack.Expectations;
using Conntrack.Helpers;
using static Conntrack.Tests.Helpers.SipTestKit;

namespace Conntrack.Tests.Helpers;

/// <summary>
/// REGISTER (sip_direct_signalling=1): a permanent, inactive signalling expectation from the registrar to the
/// registered contact, activated by the registrar's 2xx answer and removed by other final answers. Expected
/// results were recorded with the kernel oracle (Linux 6.18, --helpers).
/// </summary>
public class SipRegisterTests
{
    private static string Register(uint cseq, string contact, string? expires = "3600", string from = Client)
    {
        var extra = new List<string> { "Contact: " + contact };
        if (expires is not null)
        {
            extra.Add("Expires: " + expires);
        }

        return Request("REGISTER", from, Server, cseq, "", [.. extra]);
    }

    private static string Answer(int code, uint cseq, params string[] extra) => Response(code, "X", "REGISTER", cseq, "", extra);

    [Fact]
    public void Register_expects_calls_from_the_registrar_to_the_contact_but_inactive()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Register(10, "<sip:alice@192.0.2.10:5070>")));
        t.LastVerdict.Should().Be(Verdict.Accept);
        var e = t.Expectations().Should().ContainSingle().Subject;
        e.Class.Should().Be(SipHelper.Signalling);
        e.PolicyName.Should().Be("signalling");
        e.Flags.Should().Be(ExpectationFlags.Permanent | ExpectationFlags.Inactive);
        e.Tuple.SourceAddress.ToString().Should().Be(Server);
        e.MaskSourcePort.Should().Be(0);
        e.Tuple.DestinationAddress.ToString().Should().Be(Client);
        e.Tuple.DestinationPort.Should().Be(5070);
        e.Tuple.Protocol.Should().Be(IpProtocol.Udp);
        t.ExpectLines().Should().Equal(
            "ipv4 udp 17 src=198.51.100.20 dst=192.0.2.10 sport=0 dport=5070 mask-src=255.255.255.255 mask-dst=255.255.255.255 mask-sport=0 mask-dport=65535 master-src=192.0.2.10 master-dst=198.51.100.20 master-sport=5060 master-dport=5060 [PERMANENT] [INACTIVE] class=0 helper=sip/signalling");

        // Inactive: the registrar's call from another port is not related yet.
        t.Send(Sip(Server, Client, Response(200, "OK", "OPTIONS", 99)));
        t.Send(Udp(Server, Client, 5080, 5070, Request("INVITE", Server, Client, 1))).Info.Should().Be(ConntrackInfo.New);
        sip.LastDrop.Should().BeNull();
    }

    [Fact]
    public void Registrars_2xx_activates_it_and_calls_from_the_registrar_are_related_every_time()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Register(10, "<sip:alice@192.0.2.10:5070>")));
        t.Send(Sip(Server, Client, Answer(100, 10)));
        t.Expectations().Single().Flags.Should().HaveFlag(ExpectationFlags.Inactive, "a provisional answer changes nothing");
        t.Send(Sip(Server, Client, Answer(200, 10, "Contact: <sip:alice@192.0.2.10:5070>;expires=600")));
        t.ExpectLines().Should().Equal(
            "ipv4 udp 17 src=198.51.100.20 dst=192.0.2.10 sport=0 dport=5070 mask-src=255.255.255.255 mask-dst=255.255.255.255 mask-sport=0 mask-dport=65535 master-src=192.0.2.10 master-dst=198.51.100.20 master-sport=5060 master-dport=5060 [PERMANENT] class=0 helper=sip/signalling");

        t.Send(Udp(Server, Client, 5080, 5070, Request("INVITE", Server, Client, 1))).Info.Should().Be(ConntrackInfo.Related);
        t.Send(Udp(Server, Client, 5081, 5070, Request("INVITE", Server, Client, 1))).Info.Should().Be(ConntrackInfo.Related, "permanent");
        t.Expectations().Should().ContainSingle();
        t.Send(Udp("203.0.113.5", Client, 5080, 5070, Request("INVITE", "203.0.113.5", Client, 1))).Info.Should().Be(ConntrackInfo.New,
            "sip_direct_signalling: only the registrar");
    }

    [Theory]
    [InlineData(401)]
    [InlineData(403)]
    [InlineData(500)]
    [InlineData(99)]
    public void Other_final_answers_remove_it(int code)
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Register(10, "<sip:alice@192.0.2.10:5070>")));
        t.Send(Sip(Server, Client, Answer(code, 10)));
        t.Expectations().Should().BeEmpty();
    }

    [Fact]
    public void A_2xx_listing_no_matching_contact_or_a_zero_expiry_removes_it()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Register(10, "<sip:alice@192.0.2.10:5070>")));
        t.Send(Sip(Server, Client, Answer(200, 10, "Contact: <sip:alice@192.0.2.10:5071>;expires=60")));
        t.Expectations().Should().BeEmpty("another port");

        t.Send(Sip(Client, Server, Register(11, "<sip:alice@192.0.2.10:5070>")));
        t.Send(Sip(Server, Client, Answer(200, 11, "Contact: <sip:alice@192.0.2.10:5070>")));
        t.Expectations().Should().BeEmpty("no Expires and no expires= parameter: zero");
    }

    [Fact]
    public void The_2xx_may_list_several_contacts_and_headers()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Register(3, "<sip:u@192.0.2.10:5080>", expires: "100")));
        t.Send(Sip(Server, Client, Answer(200, 3, "Contact: <sip:u@host.example>;expires=100",
            "Contact: <sip:u@192.0.2.250:5080>;expires=100, <sip:u@192.0.2.10:5080>;expires=50")));
        t.Expectations().Single().Flags.Should().Be(ExpectationFlags.Permanent);
    }

    [Fact]
    public void Late_answer_to_an_earlier_register_is_ignored()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Register(10, "<sip:alice@192.0.2.10:5070>")));
        t.Send(Sip(Client, Server, Register(11, "<sip:alice@192.0.2.10:5070>")));
        t.Send(Sip(Server, Client, Answer(401, 10)));
        t.Expectations().Should().ContainSingle();
        t.Send(Sip(Server, Client, Answer(401, 11)));
        t.Expectations().Should().BeEmpty();
    }

    [Theory]
    [InlineData("<sip:alice@192.0.2.10:5070>", "0")] // Expires: 0 releases the binding
    [InlineData("<sip:alice@192.0.2.10:5070>;expires=0", "3600")]
    [InlineData("<sip:alice@192.0.2.10:5070>", null)]
    [InlineData("<sip:alice@192.0.2.99:5070>", "3600")] // third-party registration
    [InlineData("<sip:alice@192.0.2.10:5070;transport=tcp>", "3600")] // over another transport
    [InlineData("<sip:alice@example.com>", "3600")]
    [InlineData("<sip:alice@192.0.2.10:005070>", "3600")] // more than five port digits: not an address
    public void Register_without_a_usable_own_contact_creates_nothing(string contact, string? expires)
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Register(10, contact, expires)));
        t.LastVerdict.Should().Be(Verdict.Accept);
        sip.LastDrop.Should().BeNull();
        t.Expectations().Should().BeEmpty();
    }

    [Fact]
    public void Contact_expires_parameter_wins_over_the_expires_header()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Register(10, "<sip:alice@192.0.2.10:5070>;expires=60", expires: "0")));
        t.Expectations().Should().ContainSingle();
    }

    [Fact]
    public void Unparsable_expires_parameter_drops_the_register()
    {
        using var t = NewTable(out var sip);
        t.Send(Sip(Client, Server, Register(10, "<sip:alice@192.0.2.10:5070>;expires=abc")));
        t.LastVerdict.Should().Be(Verdict.Drop);
        sip.LastDrop.Should().Be("cannot parse expires");
    }

    [Fact]
    public void Contact_without_a_port_and_in_compact_form_means_5060()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Message("REGISTER sip:x SIP/2.0", ["CSeq: 3 REGISTER", "m: <SIP:192.0.2.10>", "Expires: 100"])));
        t.Expectations().Single().Tuple.DestinationPort.Should().Be(5060);
    }

    [Fact]
    public void Explicit_udp_transport_is_fine_on_udp()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Message("REGISTER sip:x SIP/2.0", ["CSeq: 3 REGISTER", "Contact: <sip:192.0.2.10:5090;transport=UDP>;expires=20"])));
        t.Expectations().Single().Tuple.DestinationPort.Should().Be(5090);
    }

    [Fact]
    public void Ipv6_contact_is_bracketed()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client6, Server6, Request("REGISTER", Client6, Server6, 7, "", "Contact: <sip:u@[2001:db8:1::10]:5062>", "Expires: 60")));
        t.ExpectLines().Should().Equal(
            "ipv6 udp 17 src=2001:db8:2::20 dst=2001:db8:1::10 sport=0 dport=5062 mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-sport=0 mask-dport=65535 master-src=2001:db8:1::10 master-dst=2001:db8:2::20 master-sport=5060 master-dport=5060 [PERMANENT] [INACTIVE] class=0 helper=sip/signalling");
    }

    [Fact]
    public void A_second_register_replaces_the_expectation()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Register(10, "<sip:alice@192.0.2.10:5070>")));
        t.Send(Sip(Client, Server, Register(11, "<sip:alice@192.0.2.10:5072>")));
        t.Expected().Should().Equal("signalling:5072");
    }

    [Fact]
    public void Media_flush_leaves_the_registration_alone()
    {
        using var t = NewTable(out _);
        t.Send(Sip(Client, Server, Register(10, "<sip:alice@192.0.2.10:5070>")));
        t.Send(Sip(Client, Server, Request("INVITE", Client, Server, 11, Sdp(Client, "m=audio 40000 RTP/AVP 0"))));
        t.Send(Sip(Client, Server, Request("BYE", Client, Server, 12)));
        t.Expected().Should().Equal("signalling:5070");
    }
}
