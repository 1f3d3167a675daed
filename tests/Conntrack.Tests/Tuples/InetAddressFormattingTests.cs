using System.Globalization;
using Conntrack.Diagnostics;
using Conntrack.Tuples;

namespace Conntrack.Tests.Tuples;

/// <summary>
/// Address text: RFC 5952 section 4 for the oracle's compressed IPv6, the kernel's %pI4 and %pI6
/// (lib/vsprintf.c: eight groups of four lowercase hex digits) for /proc.
/// </summary>
public class InetAddressFormattingTests
{
    [Theory]
    // RFC 5952 4.1: leading zeros suppressed; 4.3: lowercase.
    [InlineData("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1")]
    [InlineData("2001:DB8:AAAA:BBBB:CCCC:DDDD:EEEE:0001", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1")]
    // 4.2.1: "::" shortens as much as possible.
    [InlineData("2001:db8:0:0:0:0:2:1", "2001:db8::2:1")]
    // 4.2.2: a single 16-bit 0 field is not shortened.
    [InlineData("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1")]
    // 4.2.3: the longest run is shortened...
    [InlineData("2001:0:0:1:0:0:0:1", "2001:0:0:1::1")]
    // ...and of equal runs, the first.
    [InlineData("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1")]
    [InlineData("::", "::")]
    [InlineData("::1", "::1")]
    [InlineData("1::", "1::")]
    [InlineData("2001:db8:1:0:0:0:0:0", "2001:db8:1::")]
    [InlineData("fe80::1:2", "fe80::1:2")]
    [InlineData("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0")]
    [InlineData("0:1:0:1:0:1:0:1", "0:1:0:1:0:1:0:1")]
    [InlineData("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8")]
    [InlineData("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]
    public void Ipv6_is_compressed_per_rfc_5952(string input, string expected)
    {
        InetAddress.Parse(input).ToString(ipv6: true).Should().Be(expected);
    }

    [Theory]
    [InlineData("2001:db8::1")]
    [InlineData("2001:db8:0:0:1:0:0:1")]
    [InlineData("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]
    public void TryFormat_writes_the_same_text_without_allocating_a_string(string input)
    {
        var a = InetAddress.Parse(input);
        Span<char> buf = stackalloc char[InetAddress.MaxFormattedLength];
        a.TryFormat(buf, out int n, ipv6: true).Should().BeTrue();
        new string(buf[..n]).Should().Be(a.ToString(ipv6: true));
    }

    [Fact]
    public void TryFormat_into_a_too_small_buffer_fails()
    {
        var a = InetAddress.Parse("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff");
        Span<char> buf = stackalloc char[10];
        a.TryFormat(buf, out _, ipv6: true).Should().BeFalse();
    }

    [Theory]
    [InlineData("192.0.2.1")]
    [InlineData("0.0.0.0")]
    [InlineData("255.255.255.255")]
    [InlineData("10.0.0.10")]
    public void Ipv4_is_dotted_decimal(string text)
    {
        InetAddress.Parse(text).ToString(ipv6: false).Should().Be(text);
        InetAddress.Parse(text).ToString().Should().Be(text);
    }

    [Fact]
    public void Ipv4_round_trips_through_ipaddress()
    {
        var a = InetAddress.Parse("203.0.113.77");
        a.ToIPAddress(ipv6: false).ToString().Should().Be("203.0.113.77");
        InetAddress.FromIPAddress(a.ToIPAddress(false)).Should().Be(a);
    }

    [Theory]
    [InlineData("2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001")]
    [InlineData("::1", "0000:0000:0000:0000:0000:0000:0000:0001")]
    [InlineData("fe80::abcd:12", "fe80:0000:0000:0000:0000:0000:abcd:0012")]
    public void Proc_lines_print_ipv6_in_full_form(string address, string expected)
    {
        var a = InetAddress.Parse(address);
        var tuple = ConntrackTuple.ForPorts(a, a, IpProtocol.Udp, 1, 2, ipv6: true);
        var sw = new StringWriter(CultureInfo.InvariantCulture);
        ConnectionFormatter.WriteTuple(sw, tuple, compressIpv6: false);
        sw.ToString().Should().Be($"src={expected} dst={expected} sport=1 dport=2 ");
    }

    [Fact]
    public void Compressed_tuple_uses_rfc_5952()
    {
        var a = InetAddress.Parse("2001:db8:0:0:1:0:0:1");
        var tuple = ConntrackTuple.ForPorts(a, a, IpProtocol.Udp, 1, 2, ipv6: true);
        var sw = new StringWriter(CultureInfo.InvariantCulture);
        ConnectionFormatter.WriteTuple(sw, tuple, compressIpv6: true);
        sw.ToString().Should().Be("src=2001:db8::1:0:0:1 dst=2001:db8::1:0:0:1 sport=1 dport=2 ");
    }
}
