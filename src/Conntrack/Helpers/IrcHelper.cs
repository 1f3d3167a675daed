using System.Buffers.Binary;
using Conntrack.Expectations;
using Conntrack.Tuples;

namespace Conntrack.Helpers;

/// <summary>IRC (nf_conntrack_irc.c): DCC offers sent by a client open the peer's connection. IPv4 only.</summary>
/// <remarks>
/// As the kernel's helper, it reads the client's segments only (the original direction, once a reply has been
/// seen), at most their first 4095 bytes: after optional blanks, a segment must start with <c>PRIVMSG </c>
/// (any case); the first <c> :</c> after that must be followed by <c>\1DCC </c> and one of <c>SEND </c>,
/// <c>CHAT </c>, <c>MOVE </c>, <c>TSEND </c>, <c>SCHAT </c>, then an argument, a space, the address as one
/// decimal number, blanks and the port, with a newline later in the segment. The address must be the
/// client's and the port non-zero ("Forged DCC command" otherwise, ignored). The expectation is from any
/// address and port to the client's address and the offered port; up to 8 per connection (the oldest gives
/// way), 300 s each. If it cannot be added the packet is dropped ("cannot add expectation").
/// </remarks>
public sealed class IrcHelper : ConntrackHelper
{
    private const int MaxSearchSize = 4095;
    private const int MinMatchLength = 5;
    private const string CannotAddExpectation = "cannot add expectation";

    /// <summary>The kernel's IRC helper on TCP port 6667: up to 8 DCC expectations, 300 s each.</summary>
    public IrcHelper()
        : base("irc", IpProtocol.Tcp, 6667, ipv6: false, new ExpectPolicy(null, 8, TimeSpan.FromSeconds(300)))
    {
    }

    /// <inheritdoc />
    public override HelperVerdict Help(ref HelperContext context)
    {
        // Packets from the IRC server are not looked at; until there's been traffic both ways, nothing is.
        if (context.IsReply || context.Info != ConntrackInfo.Established)
        {
            return HelperVerdict.Accept;
        }

        var packet = context.Packet;
        int protoff = context.Layer4Offset;
        if (protoff < 0 || protoff > packet.Length - 20)
        {
            return HelperVerdict.Accept; // not a full TCP header
        }

        int dataoff = protoff + ((packet[protoff + 12] >> 4) * 4);
        if (dataoff >= packet.Length)
        {
            return HelperVerdict.Accept; // no data
        }

        var data = packet.Slice(dataoff, Math.Min(packet.Length - dataoff, MaxSearchSize));
        int limit = data.Length;
        int p = 0;

        // Skip any whitespace.
        while (p < limit - 10 && data[p] is (byte)' ' or (byte)'\r' or (byte)'\n')
        {
            p++;
        }

        // strlen("PRIVMSG x ") = 10
        if (p < limit - 10)
        {
            if (!FtpParser.CaseEquals(data[p..], "PRIVMSG "u8, 8))
            {
                return HelperVerdict.Accept;
            }

            p += 8;
        }

        // strlen(" :\1DCC SENT t AAAAAAAA P\1\n") = 26 = 7 + MINMATCHLEN + strlen("t AAAAAAAA P\1\n")
        while (p < limit - (21 + MinMatchLength))
        {
            // Find the first " :", the start of the message.
            if (data[p] != ' ' || data[p + 1] != ':')
            {
                p++;
                continue;
            }

            p += 2;

            // Then check that place only for the DCC command.
            if (!data[p..].StartsWith("\u0001DCC "u8))
            {
                return HelperVerdict.Accept;
            }

            p += 5;
            int protoLength = MatchDccProtocol(data[p..]);
            if (protoLength == 0)
            {
                continue; // no such DCC type: look for the next " :"
            }

            p += protoLength;
            if (!ParseDcc(data, p, out uint dccIp, out ushort dccPort))
            {
                return HelperVerdict.Accept; // unable to parse the DCC command
            }

            Span<byte> ipBytes = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(ipBytes, dccIp);
            var dccAddress = InetAddress.FromIpv4(ipBytes);

            // The DCC address can be the internal or the external (NATed) address of the client.
            var original = context.Original;
            var reply = context.Reply;
            if ((original.SourceAddress != dccAddress && reply.DestinationAddress != dccAddress) || dccPort == 0)
            {
                return HelperVerdict.Accept; // forged DCC command
            }

            // From anywhere to the client's address (the reply tuple's destination) and the offered port.
            if (context.Expect(0, null, null, reply.DestinationAddress, dccPort, IpProtocol.Tcp) != ExpectResult.Created)
            {
                context.DropMessage = CannotAddExpectation;
                return HelperVerdict.Drop;
            }

            return HelperVerdict.Accept;
        }

        return HelperVerdict.Accept;
    }

    /// <summary>The length of the DCC type at the start of <paramref name="data"/> (case-sensitive), or 0.</summary>
    private static int MatchDccProtocol(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith("SEND "u8) || data.StartsWith("CHAT "u8) || data.StartsWith("MOVE "u8))
        {
            return 5;
        }

        if (data.StartsWith("TSEND "u8) || data.StartsWith("SCHAT "u8))
        {
            return 6;
        }

        return 0;
    }

    /// <summary>
    /// parse_dcc(): skips the argument up to a space (at least 12 bytes must remain), requires a newline
    /// somewhere after it, then reads the address and, after blanks, the port as simple_strtoul() does
    /// (decimal digits, wrapping; no digits is 0), truncated to 32 and 16 bits.
    /// </summary>
    internal static bool ParseDcc(ReadOnlySpan<byte> data, int p, out uint ip, out ushort port)
    {
        ip = 0;
        port = 0;
        int end = data.Length;

        // At least 12: "AAAAAAAA P\1\n".
        while (true)
        {
            if ((uint)p >= (uint)end)
            {
                return false;
            }

            byte c = data[p++];
            if (c == ' ')
            {
                break;
            }

            if (p > end - 12)
            {
                return false;
            }
        }

        // A newline must follow within the packet, since the numbers are read up to the first non-digit.
        if (data[p..].IndexOf((byte)'\n') < 0)
        {
            return false;
        }

        ip = unchecked((uint)StrToUL(data, ref p));

        // Skip blanks between the address and the port.
        while (p < end && data[p] == ' ')
        {
            p++;
        }

        if (p >= end)
        {
            return false;
        }

        port = unchecked((ushort)StrToUL(data, ref p));
        return true;
    }

    /// <summary>simple_strtoul(cp, &amp;end, 10): decimal digits, wrapping at 2^64; no sign, no blanks.</summary>
    private static ulong StrToUL(ReadOnlySpan<byte> data, ref int p)
    {
        ulong result = 0;
        while (p < data.Length && (uint)(data[p] - '0') <= 9)
        {
            result = unchecked((result * 10) + (ulong)(data[p] - '0'));
            p++;
        }

        return result;
    }
}
