using Conntrack.Helpers;
using Conntrack.Tuples;

namespace Conntrack.Tests.Helpers;

/// <summary>
/// The text parsing of nf_conntrack_sip.c (SipParser) on its own: the kernel's in4_pton/in6_pton with
/// delim -1, sip_parse_port, sip_strtouint, header lookup (full and compact names, continuation lines, the
/// quirks that end a search), SDP lines and the Request-URI. Cases marked "oracle" were checked against Linux 6.18.
/// </summary>
public class SipParserTests
{
    private static byte[] B(string s) => SipTestKit.Bytes(s);

    private static string? V4(string text)
    {
        var b = B(text);
        Span<byte> dst = stackalloc byte[16];
        return SipParser.In4Pton(b, 0, b.Length, dst, out _) ? new System.Net.IPAddress(dst[..4]).ToString() : null;
    }

    private static string? V6(string text, out int end)
    {
        var b = B(text);
        Span<byte> dst = stackalloc byte[16];
        return SipParser.In6Pton(b, 0, b.Length, dst, out end) ? new System.Net.IPAddress(dst).ToString() : null;
    }

    private static string? V6(string text) => V6(text, out _);

    [Theory]
    [InlineData("192.0.2.10", "192.0.2.10")]
    [InlineData("192.0.2.10 rest", "192.0.2.10")]
    [InlineData("192.0.2.10:5060", "192.0.2.10")]
    [InlineData("192.0.2.10/127", "192.0.2.10")]
    [InlineData("192.0.2.10g", "192.0.2.10")] // not a hex digit: a delimiter
    [InlineData("192.000.002.010", "192.0.2.10")] // leading zeros, decimal (oracle)
    [InlineData("0.0.0.0", "0.0.0.0")]
    [InlineData("255.255.255.255", "255.255.255.255")]
    public void In4pton_accepts_a_dotted_quad_up_to_any_delimiter(string text, string expected) =>
        V4(text).Should().Be(expected);

    [Theory]
    [InlineData("")]
    [InlineData("1.2.3")]
    [InlineData("1..2.3")]
    [InlineData(".1.2.3")]
    [InlineData("256.1.1.1")]
    [InlineData("1.2.3.4.5")]
    [InlineData("1.2.3.4.")]
    [InlineData("192.0.2.10abc")] // a hex letter is neither a digit nor a delimiter (oracle: no expectation)
    [InlineData("1.2.3.1000")]
    [InlineData("a.b.c.d")]
    public void In4pton_rejects_malformed_addresses(string text) => V4(text).Should().BeNull();

    [Fact]
    public void In4pton_stops_at_the_given_length_and_reports_where()
    {
        var b = B("10.1.2.3999");
        Span<byte> dst = stackalloc byte[4];
        SipParser.In4Pton(b, 0, 8, dst, out int end).Should().BeTrue();
        end.Should().Be(8);
        dst.ToArray().Should().Equal(10, 1, 2, 3);
    }

    [Theory]
    [InlineData("2001:db8::1", "2001:db8::1")]
    [InlineData("::", "::")]
    [InlineData("::1", "::1")]
    [InlineData("1::", "1::")]
    [InlineData("2001:db8:0:0:0:0:0:2", "2001:db8::2")]
    [InlineData("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8")]
    [InlineData("::ffff:192.0.2.1", "::ffff:192.0.2.1")]
    [InlineData("64:ff9b::192.0.2.33", "64:ff9b::c000:221")]
    [InlineData("2001:DB8::A", "2001:db8::a")]
    [InlineData("2001:db8::1]:5060", "2001:db8::1")]
    public void In6pton_follows_the_kernels_state_machine(string text, string expected) =>
        V6(text).Should().Be(expected);

    [Theory]
    [InlineData("")]
    [InlineData(":::")]
    [InlineData("1:2:3:4:5:6:7:8:9")]
    [InlineData("12345::")]
    [InlineData("1::2::3")]
    [InlineData(":1")]
    [InlineData("1.2.3.4")]
    public void In6pton_rejects_malformed_addresses(string text) => V6(text).Should().BeNull();

    [Fact]
    public void In6pton_reports_the_delimiter_position()
    {
        V6("[2001:db8::1]"[1..], out int end).Should().Be("2001:db8::1");
        end.Should().Be(11);
    }

    [Fact]
    public void Sip_ipv6_addresses_need_brackets_sdp_ones_have_none()
    {
        var bracketed = B("[2001:db8::5]:5070;x");
        SipParser.ParseSipAddress(bracketed, 0, bracketed.Length, ipv6: true, delimited: true, out var a, out int end).Should().BeTrue();
        a.Should().Be(InetAddress.Parse("2001:db8::5"));
        end.Should().Be(13);

        var bare = B("2001:db8::5 ");
        SipParser.ParseSipAddress(bare, 0, bare.Length, ipv6: true, delimited: true, out _, out _).Should().BeFalse();
        SipParser.ParseSdpAddress(bare, 0, bare.Length, ipv6: true, out var s, out _).Should().BeTrue();
        s.Should().Be(InetAddress.Parse("2001:db8::5"));
    }

    [Theory]
    [InlineData(":5070;", true, 5070)]
    [InlineData(">", true, 5060)] // no port: the SIP default
    [InlineData(":1024>", true, 1024)]
    [InlineData(":65535>", true, 65535)]
    [InlineData(":05070>", true, 5070)]
    [InlineData(":005060>", false, 0)] // more than five digits
    [InlineData(":80>", false, 0)]
    [InlineData(":65536>", false, 0)]
    [InlineData(":>", false, 0)]
    [InlineData(":5070", false, 0)] // the port reaches the end of the message
    [InlineData("", false, 0)] // nothing after the address at all
    public void Port_after_an_address_is_optional_but_strict(string text, bool ok, int port)
    {
        var b = B(text);
        SipParser.ParsePort(b, 0, b.Length, out ushort p, out _).Should().Be(ok);
        if (ok)
        {
            p.Should().Be((ushort)port);
        }
    }

    [Theory]
    [InlineData("123 INVITE", 123u, 3)]
    [InlineData("4294967295", 4294967295u, 10)]
    [InlineData("4294967296", 0u, 0)] // overflow: 0 and no digits consumed (oracle: "cannot get cseq")
    [InlineData("00000000001", 1u, 11)]
    [InlineData("000000000001", 0u, 0)] // twelve digits
    [InlineData("x1", 0u, 0)]
    [InlineData("", 0u, 0)]
    public void Strtouint_reads_at_most_eleven_digits_within_bounds(string text, uint value, int consumed)
    {
        var b = B(text);
        SipParser.StrToUInt(b, 0, b.Length, out int end).Should().Be(value);
        end.Should().Be(consumed);
    }

    [Fact]
    public void Strtouint_never_reads_past_its_length()
    {
        var b = B("12345");
        SipParser.StrToUInt(b, 0, 2, out int end).Should().Be(12);
        end.Should().Be(2);
    }

    private static (int Ret, string Value) Header(string message, SipHeaderType type, bool ipv6 = false)
    {
        var b = B(message);
        int ret = SipParser.GetHeader(b, 0, type, ipv6, out int off, out int len);
        return (ret, ret > 0 ? message.Substring(off, len) : "");
    }

    [Theory]
    [InlineData("X\r\nCSeq: 12 INVITE\r\n", 1, "12")]
    [InlineData("X\r\ncseq:12 INVITE\r\n", 1, "12")]
    [InlineData("X\r\nCSeq \t : \t 12\r\n", 1, "12")] // blanks and tabs around the colon (oracle)
    [InlineData("X\r\nCSeq:\r\n  7 INVITE\r\n", 1, "7")] // value on a continuation line
    [InlineData("X\nCSeq: 3\n", 1, "3")] // LF line ends
    [InlineData("X\rCSeq: 3\r", 1, "3")] // CR line ends
    [InlineData("CSeq: 1 INVITE\r\n", 0, "")] // a header must follow a line break
    [InlineData("X\r\n CSeq: 1\r\n", 0, "")] // a continuation line is not a header
    [InlineData("X\r\nCSeqX: 1\r\nCSeq: 2\r\n", 0, "")] // a longer name ends the search (oracle: "cannot parse cseq")
    [InlineData("X\r\nCSeq: INVITE\r\nCSeq: 2\r\n", -1, "")] // found, but no number
    [InlineData("X\r\nCSeq", 0, "")]
    [InlineData("X\r\nCSeq:", 0, "")]
    public void Header_lookup_follows_the_kernel(string message, int ret, string value)
    {
        var (r, v) = Header(message, SipHeaderType.CSeq);
        r.Should().Be(ret);
        v.Should().Be(value);
    }

    [Theory]
    [InlineData("X\r\nl: 42\r\n", 1, "42")]
    [InlineData("X\r\nL:42\r\n", 1, "42")]
    [InlineData("X\r\nlx: 42\r\nContent-Length: 7\r\n", 1, "7")] // compact form only before a non-letter
    [InlineData("X\r\nContent-length  :  9\r\n", 1, "9")]
    public void Compact_header_names_need_a_non_letter_after_them(string message, int ret, string value)
    {
        var (r, v) = Header(message, SipHeaderType.ContentLength);
        r.Should().Be(ret);
        v.Should().Be(value);
    }

    [Theory]
    [InlineData("X\r\nContact: <sip:alice@192.0.2.10:5070>\r\n", "192.0.2.10:5070")]
    [InlineData("X\r\nm: <sip:192.0.2.10>\r\n", "192.0.2.10")]
    [InlineData("X\r\nContact: \"A\" <SIP:alice@192.0.2.10;transport=udp>\r\n", "192.0.2.10")]
    [InlineData("X\r\nContact: <sip:a@b@192.0.2.10:6000>\r\n", "b@192.0.2.10:6000")] // user info up to the first '@' only: "b@..." is no address
    public void Contact_value_is_the_uri_address_and_port(string message, string value)
    {
        var (r, v) = Header(message, SipHeaderType.Contact);
        if (value.Contains('@', StringComparison.Ordinal))
        {
            r.Should().Be(-1);
        }
        else
        {
            r.Should().Be(1);
            v.Should().Be(value);
        }
    }

    [Fact]
    public void Via_value_follows_the_transport()
    {
        Header("X\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=1\r\n", SipHeaderType.ViaUdp).Should().Be((1, "192.0.2.10:5062"));
        Header("X\r\nv: SIP/2.0/TCP 192.0.2.10\r\n", SipHeaderType.ViaUdp).Should().Be((-1, ""));
        Header("X\r\nv: SIP/2.0/TCP 192.0.2.10\r\n", SipHeaderType.ViaTcp).Should().Be((1, "192.0.2.10"));
        Header("X\r\nVia: SIP/2.0/UDP [2001:db8::1]:5060\r\n", SipHeaderType.ViaUdp, ipv6: true).Should().Be((1, "[2001:db8::1]:5060"));
    }

    [Fact]
    public void Call_id_is_a_word_or_word_at_word()
    {
        Header("X\r\nCall-ID: a84b4c76e66710@192.0.2.10\r\n", SipHeaderType.CallId).Should().Be((1, "a84b4c76e66710@192.0.2.10"));
        Header("X\r\ni: abc@\r\n", SipHeaderType.CallId).Should().Be((-1, ""));
    }

    [Fact]
    public void A_search_string_ending_exactly_at_the_end_is_not_found()
    {
        // ct_sip_header_search stops len bytes before the limit, one position early.
        var b = B("X\r\nContact: <sip:192.0.2.1;a=1>;transport=");
        SipParser.ParseParam(b, 12, "transport="u8, out _, out _).Should().BeFalse();
        var c = B("X\r\nContact: <sip:192.0.2.1;a=1>;transport=u");
        SipParser.ParseParam(c, 12, "transport="u8, out int off, out int len).Should().BeTrue();
        (off + len).Should().Be(c.Length);
    }

    [Fact]
    public void Contact_list_walks_each_uri_of_every_contact_header()
    {
        var m = B("SIP/2.0 200 OK\r\nContact: <sip:192.0.2.1:5070>, <sip:192.0.2.2:5071>\r\nX: y\r\nm: <sip:192.0.2.3>\r\n\r\n");
        int offset = 0;
        bool inHeader = false;
        var found = new List<string>();
        while (SipParser.ParseHeaderUri(m, ref offset, true, SipHeaderType.Contact, false, ref inHeader, true, out _, out _, out var a, out ushort p) > 0)
        {
            found.Add($"{a}:{p}");
        }

        found.Should().Equal("192.0.2.1:5070", "192.0.2.2:5071", "192.0.2.3:5060");
    }

    [Fact]
    public void Numerical_parameter_is_read_within_the_list_element()
    {
        // Searches start inside the header (after the contact's address); a line break that is not a
        // continuation ends them.
        var m = B("X\r\nContact: <sip:192.0.2.1>;expires=60, <sip:192.0.2.2>;expires=30\r\nExpires: 5\r\n");
        uint v = 7;
        SipParser.ParseNumericalParam(m, 12, "expires="u8, ref v).Should().Be(1);
        v.Should().Be(60);
        v = 7;
        SipParser.ParseNumericalParam(m, 0, "expires="u8, ref v).Should().Be(0, "the first line ends the search");
        v.Should().Be(7, "an absent parameter leaves the value alone");
        int second = SipTestKit.Bytes("X\r\nContact: <sip:192.0.2.1>;expires=60, <").Length;
        SipParser.ParseNumericalParam(m, second, "expires="u8, ref v).Should().Be(1);
        v.Should().Be(30);
        var bad = B("X\r\nContact: <sip:192.0.2.1>;expires=abc\r\n");
        SipParser.ParseNumericalParam(bad, 12, "expires="u8, ref v).Should().Be(-1);
        v.Should().Be(0);
    }

    [Theory]
    [InlineData(";transport=udp>", true, IpProtocol.Udp)]
    [InlineData(";TRANSPORT=UDP>", true, IpProtocol.Udp)]
    [InlineData(";transport=tcp>", false, IpProtocol.Tcp)]
    [InlineData(";transport=sctp>", false, 0)]
    [InlineData(">", true, IpProtocol.Udp)]
    public void Transport_must_be_the_connections_own(string text, bool ok, byte protocol)
    {
        var b = B("X\r\nContact: <sip:192.0.2.1" + text + "\r\n");
        SipParser.ParseTransport(b, 12, IpProtocol.Udp, out byte p).Should().Be(ok);
        p.Should().Be(protocol);
    }

    private static (int Ret, string Value) SdpLine(string message, SdpHeaderType type, SdpHeaderType term, int from = 0, bool ipv6 = false)
    {
        var b = B(message);
        int ret = SipParser.GetSdpHeader(b, from, type, term, ipv6, out int off, out int len);
        return (ret, ret > 0 ? message.Substring(off, len) : "");
    }

    [Fact]
    public void Sdp_lines_are_found_after_a_line_break()
    {
        const string M = "INVITE x\r\n\r\nv=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 49170 RTP/AVP 0\r\nc=IN IP4 192.0.2.11\r\n";
        SdpLine(M, SdpHeaderType.Version, SdpHeaderType.Unspecified).Should().Be((1, "0"));
        SdpLine(M, SdpHeaderType.Connection, SdpHeaderType.Media).Should().Be((1, "192.0.2.10"));
        SdpLine(M, SdpHeaderType.Media, SdpHeaderType.Unspecified).Should().Be((1, "audio 49170"));
        int media = M.IndexOf("audio", StringComparison.Ordinal);
        SdpLine(M, SdpHeaderType.Connection, SdpHeaderType.Media, media).Should().Be((1, "192.0.2.11"));
    }

    [Fact]
    public void Sdp_session_connection_search_stops_at_the_first_media_line()
    {
        const string M = "X\r\nv=0\r\nm=audio 1 RTP\r\nc=IN IP4 192.0.2.10\r\n";
        SdpLine(M, SdpHeaderType.Connection, SdpHeaderType.Media).Should().Be((0, ""));
    }

    [Fact]
    public void Sdp_connection_of_the_other_family_is_unparsable()
    {
        SdpLine("X\r\nc=IN IP6 2001:db8::1\r\n", SdpHeaderType.Connection, SdpHeaderType.Unspecified).Should().Be((-1, ""));
        SdpLine("X\r\nc=IN IP6 2001:db8::1\r\n", SdpHeaderType.Connection, SdpHeaderType.Unspecified, ipv6: true).Should().Be((1, "2001:db8::1"));
        SdpLine("X\r\nc=in ip4 192.0.2.1\r\n", SdpHeaderType.Connection, SdpHeaderType.Unspecified).Should().Be((-1, ""), "IN IP4 is case-sensitive");
        SdpLine("X\r\nC=IN IP4 192.0.2.1\r\n", SdpHeaderType.Connection, SdpHeaderType.Unspecified).Should().Be((1, "192.0.2.1"), "the line type is not");
    }

    [Theory]
    [InlineData("m=audio 49170 RTP", 1, "audio 49170")]
    [InlineData("m=audio  49170 RTP", 1, "audio ")] // two spaces: no digits, the port is then missing
    [InlineData("m=audio", -1, "")]
    [InlineData("m=49170", -1, "")]
    public void Media_line_is_type_space_digits(string line, int ret, string value) =>
        SdpLine("X\r\n" + line + "\r\n", SdpHeaderType.Media, SdpHeaderType.Unspecified).Should().Be((ret, value));

    [Theory]
    [InlineData("INVITE sip:bob@198.51.100.20 SIP/2.0\r\n", 1, "198.51.100.20", 5060)]
    [InlineData("INVITE sip:bob@198.51.100.20:5070;x SIP/2.0\r\n", 1, "198.51.100.20", 5070)]
    [InlineData("ACK SIP:198.51.100.20 SIP/2.0\r\n", 1, "198.51.100.20", 5060)]
    [InlineData("INVITE tel:123\r\nsip:1.2.3.4 x", -1, "", 0)] // the line ends before a sip: URI
    [InlineData("INVITE sip:bob@example.com SIP/2.0\r\n", 0, "", 0)]
    [InlineData("INVITE sip:bob@198.51.100.20:80 SIP/2.0\r\n", 0, "", 0)]
    [InlineData("123 sip:1.2.3.4 x", 0, "", 0)]
    public void Request_uri_address(string line, int ret, string address, int port)
    {
        var b = B(line);
        SipParser.ParseRequest(b, false, out _, out _, out var a, out ushort p).Should().Be(ret);
        if (ret > 0)
        {
            a.ToString().Should().Be(address);
            p.Should().Be((ushort)port);
        }
    }

    [Fact]
    public void Latin1_letters_are_letters_as_in_the_kernels_ctype()
    {
        SipParser.IsAlpha(0xC9).Should().BeTrue();
        SipParser.IsAlpha(0xFF).Should().BeTrue();
        SipParser.IsAlpha(0xD7).Should().BeFalse("multiplication sign");
        SipParser.IsAlpha(0xF7).Should().BeFalse("division sign");
        SipParser.IsAlpha(0xAA).Should().BeFalse();
        SipParser.IsAlpha((byte)'@').Should().BeFalse();
        SipParser.IsAlpha((byte)'[').Should().BeFalse();
        SipParser.StringLength(B("ab\u00e9c1"), 0).Should().Be(4);
    }

    [Fact]
    public void Parsing_never_reads_outside_the_message_whatever_the_offsets()
    {
        var rnd = new Random(5);
        var alphabet = B("CSeq:Contact Via v= c=IN IP4 IP6 m=audio 1.2:3[]@ sip: \r\n\t,;=0123456789abcdef\u00ff\0");
        for (int n = 0; n < 20_000; n++)
        {
            var b = new byte[rnd.Next(0, 64)];
            for (int i = 0; i < b.Length; i++)
            {
                b[i] = alphabet[rnd.Next(alphabet.Length)];
            }

            bool v6 = (n & 1) == 1;
            int from = b.Length == 0 ? 0 : rnd.Next(b.Length);
            foreach (SipHeaderType h in Enum.GetValues<SipHeaderType>())
            {
                SipParser.GetHeader(b, from, h, v6, out int off, out int len);
                (off + len).Should().BeLessThanOrEqualTo(b.Length);
            }

            foreach (SdpHeaderType s in Enum.GetValues<SdpHeaderType>())
            {
                SipParser.GetSdpHeader(b, from, s, SdpHeaderType.Media, v6, out int off, out int len);
                (off + len).Should().BeLessThanOrEqualTo(b.Length);
            }

            SipParser.ParseRequest(b, v6, out _, out _, out _, out _);
            int offset = 0;
            bool inHeader = false;
            for (int k = 0; k < 10 && SipParser.ParseHeaderUri(b, ref offset, true, SipHeaderType.Contact, v6, ref inHeader, true, out _, out _, out _, out _) > 0; k++)
            {
            }

            uint v = 0;
            SipParser.ParseNumericalParam(b, from, "expires="u8, ref v);
            SipParser.ParseTransport(b, from, IpProtocol.Udp, out _);
        }
    }
}
