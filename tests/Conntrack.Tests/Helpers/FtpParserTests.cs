using System.Net;
using Conntrack.Helpers;
using static Conntrack.Tests.Helpers.FtpTestKit;

namespace Conntrack.Tests.Helpers;

/// <summary>The ports of nf_conntrack_ftp.c's parsers and of net/core/utils.c's in6_pton/in4_pton.</summary>
public class FtpParserTests
{
    [Theory]
    [InlineData("1,2,3,4,5,6\r", '\r', 11, new uint[] { 1, 2, 3, 4, 5, 6 })]
    [InlineData("1,2,3,4,5,6)", (char)0, 11, new uint[] { 1, 2, 3, 4, 5, 6 })] // no terminator: any character
    [InlineData(",,,,,\r", '\r', 5, new uint[] { 0, 0, 0, 0, 0, 0 })]
    [InlineData("4294967297,0,0,0,0,0\r", '\r', 20, new uint[] { 1, 0, 0, 0, 0, 0 })] // wraps at 2^32
    [InlineData("1,2,3,4,5,6", '\r', 0, new uint[] { 1, 2, 3, 4, 5, 6 })] // ran out of data
    [InlineData("1,2,3,4,5\r", '\r', 0, new uint[] { 1, 2, 3, 4, 5, 0 })] // too few
    [InlineData("1,2,3,4,5,6,7\r", '\r', 0, new uint[] { 1, 2, 3, 4, 5, 6 })] // too many
    [InlineData("1,2,3,4,5,6\n", '\r', 0, new uint[] { 1, 2, 3, 4, 5, 6 })] // wrong terminator
    public void Try_number_reads_separated_decimals_up_to_the_terminator(string text, char term, int length, uint[] numbers)
    {
        Span<uint> array = stackalloc uint[6];
        FtpParser.TryNumber(Bytes(text), array, (byte)',', (byte)term).Should().Be(length);
        array.ToArray().Should().Equal(numbers);
    }

    [Theory]
    [InlineData("|50000|", 1, '|', 7, 50000)]
    [InlineData("|65536|", 1, '|', 0, 0)] // wraps to 0, which is refused
    [InlineData("|65537|", 1, '|', 7, 1)]
    [InlineData("||", 1, '|', 0, 0)]
    [InlineData("|5x|", 1, '|', 0, 0)]
    [InlineData("|5", 1, '|', 0, 0)]
    public void Get_port_reads_a_non_zero_16_bit_port_up_to_the_delimiter(string text, int start, char delim, int result, int port)
    {
        ushort p = 0;
        FtpParser.GetPort(Bytes(text), start, (byte)delim, ref p).Should().Be(result);
        p.Should().Be((ushort)port);
    }

    [Theory]
    [InlineData("2001:db8:1::10|")]
    [InlineData("::|")]
    [InlineData("::1|")]
    [InlineData("1::|")]
    [InlineData("1:2:3:4:5:6:7:8|")]
    [InlineData("1:2:3:4:5:6:7::|")]
    [InlineData("::2:3:4:5:6:7:8|")]
    [InlineData("2001:DB8::A:b:C|")]
    [InlineData("::ffff:192.0.2.1|")]
    [InlineData("1:2:3:4:5:6:1.2.3.4|")]
    [InlineData("::1.2.3.4|")]
    [InlineData("fe80::1:2|")]
    public void In6_pton_parses_what_inet_pton_parses(string text)
    {
        Span<byte> dst = stackalloc byte[16];
        FtpParser.In6Pton(Bytes(text), text.Length, dst, '|', out int end).Should().Be(1);
        end.Should().Be(text.Length - 1, "it stops at the delimiter");
        new IPAddress(dst).Should().Be(IPAddress.Parse(text.TrimEnd('|')));
    }

    [Theory]
    [InlineData("|")]
    [InlineData(":|")]
    [InlineData(":::|")]
    [InlineData("1::2::3|")]
    [InlineData("1:2:3:4:5:6:7:8:9|")]
    [InlineData("12345::|")]
    [InlineData("1:2|")]
    [InlineData("g::|")]
    [InlineData("::1.2.3|")]
    [InlineData("::1.2.3.256|")]
    [InlineData("::1..3.4|")]
    [InlineData("::1.2.3.4.5|")]
    [InlineData("1.2.3.4|")] // an IPv4 address alone is no IPv6 literal
    [InlineData("1:2:3:4:5:6:7:1.2.3.4|")]
    [InlineData("::x|")]
    public void In6_pton_refuses_malformed_literals(string text)
    {
        Span<byte> dst = stackalloc byte[16];
        dst.Fill(0xAA);
        FtpParser.In6Pton(Bytes(text), text.Length, dst, '|', out _).Should().Be(0);
        dst.ToArray().Should().OnlyContain(b => b == 0xAA, "the destination is written only on success");
    }

    [Theory]
    [InlineData("::1\0rest", 3)] // a NUL ends the literal like the delimiter
    [InlineData("::1", 3)] // so does the end of the length
    [InlineData("::1.2.3.4:5", 9)] // a colon ends an embedded IPv4 address
    public void In6_pton_also_stops_at_a_nul_or_the_end(string text, int end)
    {
        Span<byte> dst = stackalloc byte[16];
        FtpParser.In6Pton(Bytes(text), text.Length, dst, '|', out int e).Should().Be(1);
        e.Should().Be(end);
    }

    [Theory]
    [InlineData("PORT 1,2,3,4,5,6\r\n", 1)]
    [InlineData("port 1,2,3,4,5,6\r\n", 1)]
    [InlineData("PORT", -1)] // a prefix of the pattern: partial
    [InlineData("po", -1)]
    [InlineData("PORX", 0)]
    [InlineData("", -1)] // zero bytes are a prefix of anything (never happens: no payload is not parsed)
    [InlineData("PORT1,2,3,4,5,6\r\n", -1)] // no space: partial
    [InlineData("PORT 1,2,3,4,5,6\n", -1)] // numbers that do not parse: partial
    [InlineData("XPORT 1,2,3,4,5,6\r\n", 0)]
    public void Find_pattern_says_match_no_match_or_partial(string text, int result)
    {
        var cmd = new FtpCommand();
        FtpParser.FindPattern(Bytes(text), "PORT"u8, (byte)' ', (byte)'\r', FtpNumberFormat.Rfc959, ref cmd).Should().Be(result);
    }

    [Fact]
    public void Rfc959_numbers_shift_and_or_without_range_checks()
    {
        var cmd = new FtpCommand();
        FtpParser.TryRfc959(Bytes("0,49152,2,10,451,19\r"), ref cmd, (byte)'\r').Should().Be(19);
        ((ReadOnlySpan<byte>)cmd.Address)[..4].ToArray().Should().Equal(192, 0, 2, 10);
        cmd.Port.Should().Be(0xC313);
    }

    [Fact]
    public void Eprt_writes_only_the_address_of_the_connections_family()
    {
        var v4 = new FtpCommand { Ipv6 = false };
        FtpParser.TryEprt(Bytes("|1|10.0.0.1|21|"), ref v4).Should().Be(15);
        ((ReadOnlySpan<byte>)v4.Address)[..4].ToArray().Should().Equal(10, 0, 0, 1);
        v4.Port.Should().Be(21);

        var v6 = new FtpCommand { Ipv6 = true };
        FtpParser.TryEprt(Bytes("|1|10.0.0.1|21|"), ref v6).Should().Be(0);
        FtpParser.TryEprt(Bytes("|2|::1|21|"), ref v6).Should().Be(10);
        new IPAddress(((ReadOnlySpan<byte>)v6.Address).ToArray()).Should().Be(IPAddress.IPv6Loopback);
    }

    [Fact]
    public void Random_bytes_never_make_the_parsers_throw()
    {
        var rng = new Random(7);
        byte[] alphabet = Bytes("0123456789abcdefABCDEF:.,|!() \r\n\0\u00ffPORTEPRT227 229 ");
        var buffer = new byte[64];
        Span<byte> dst = stackalloc byte[16];
        for (int i = 0; i < 200_000; i++)
        {
            int n = rng.Next(0, buffer.Length + 1);
            for (int k = 0; k < n; k++)
            {
                buffer[k] = rng.Next(8) == 0 ? (byte)rng.Next(256) : alphabet[rng.Next(alphabet.Length)];
            }

            var data = buffer.AsSpan(0, n);
            var cmd = new FtpCommand { Ipv6 = (i & 1) != 0 };
            FtpParser.FindPattern(data, "PORT"u8, (byte)' ', (byte)'\r', FtpNumberFormat.Rfc959, ref cmd);
            FtpParser.FindPattern(data, "EPRT"u8, (byte)' ', (byte)'\r', FtpNumberFormat.Eprt, ref cmd);
            FtpParser.FindPattern(data, "227 "u8, 0, 0, FtpNumberFormat.Rfc1123, ref cmd);
            FtpParser.FindPattern(data, "229 "u8, (byte)'(', (byte)')', FtpNumberFormat.EpsvResponse, ref cmd);
            FtpParser.TryEprt(data, ref cmd);
            FtpParser.TryRfc1123(data, ref cmd);
            FtpParser.TryEpsvResponse(data, ref cmd);
            FtpParser.In6Pton(data, n, dst, '|', out int end);
            end.Should().BeInRange(0, n);
        }
    }
}
