using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Conntrack.Helpers;

/// <summary>The address bytes of an FTP command (<c>union nf_inet_addr</c>: IPv4 in the first four bytes).</summary>
[InlineArray(16)]
internal struct FtpAddressBytes
{
    private byte _element0;
}

/// <summary>What a command or reply announced (<c>struct nf_conntrack_man</c>): an address and a TCP port.</summary>
internal struct FtpCommand
{
    /// <summary>The connection's family (<c>cmd.l3num</c>): EPRT must name the same one.</summary>
    public bool Ipv6;

    /// <summary>Network order; starts as the sender's own address (a 229 reply names none).</summary>
    public FtpAddressBytes Address;

    /// <summary>Host order.</summary>
    public ushort Port;
}

/// <summary>Which parser a search entry uses (the kernel's <c>getnum</c> pointers).</summary>
internal enum FtpNumberFormat : byte
{
    /// <summary><c>try_rfc959</c>: <c>h1,h2,h3,h4,p1,p2</c> then the terminator.</summary>
    Rfc959,
    /// <summary><c>try_rfc1123</c>: the first digit anywhere, then RFC 959 numbers with any terminator.</summary>
    Rfc1123,
    /// <summary><c>try_eprt</c>: <c>|1|a.b.c.d|port|</c> or <c>|2|ipv6|port|</c>.</summary>
    Eprt,
    /// <summary><c>try_epsv_response</c>: <c>|||port|</c>.</summary>
    EpsvResponse,
}

/// <summary>
/// The parsers of nf_conntrack_ftp.c, byte for byte: <c>find_pattern</c>, <c>try_number</c>, <c>try_rfc959</c>,
/// <c>try_rfc1123</c>, <c>get_port</c>, <c>try_eprt</c>, <c>try_epsv_response</c>, and the kernel's
/// <c>in6_pton</c>/<c>in4_pton</c> (net/core/utils.c) that EPRT uses for IPv6. Each works on a span where the
/// kernel has a pointer and a length, and returns what the kernel returns (0 = no match, else a length). All
/// arithmetic wraps as the kernel's unsigned C arithmetic does; nothing allocates or throws.
/// </summary>
internal static class FtpParser
{
    // in6_pton's token classes (net/core/utils.c).
    private const int In6XDigit = 0x00010000;
    private const int In6Digit = 0x00020000;
    private const int In6ColonMask = 0x00700000;
    private const int In6Colon1 = 0x00100000;
    private const int In6Colon2 = 0x00200000;
    private const int In6Colon12 = 0x00400000;
    private const int In6Dot = 0x00800000;
    private const int In6Delim = 0x10000000;
    private const int In6Null = 0x20000000;
    private const int In6Unknown = 0x40000000;

    /// <summary>The kernel's <c>isdigit</c> (ASCII digits only).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsDigit(byte c) => (uint)(c - '0') <= 9;

    /// <summary>ASCII <c>tolower</c>; the kernel's also folds Latin-1 capitals, which never equal an ASCII letter.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte ToLower(byte c) => (uint)(c - 'A') <= 'Z' - 'A' ? (byte)(c | 0x20) : c;

    /// <summary>
    /// <c>strncasecmp(data, pattern, n) == 0</c> for a pattern without NUL bytes: a NUL in the data ends the
    /// comparison as a mismatch.
    /// </summary>
    internal static bool CaseEquals(ReadOnlySpan<byte> data, ReadOnlySpan<byte> pattern, int n)
    {
        for (int k = 0; k < n; k++)
        {
            byte c1 = data[k], c2 = pattern[k];
            if (c1 == 0)
            {
                return false;
            }

            if (c1 != c2 && ToLower(c1) != ToLower(c2))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// find_pattern(): 1 when <paramref name="pattern"/> starts the data and its numbers parse, 0 when the data
    /// is something else, -1 ("partial") when the data is a prefix of the pattern, the skip character is
    /// missing, or the numbers do not parse.
    /// </summary>
    internal static int FindPattern(ReadOnlySpan<byte> data, ReadOnlySpan<byte> pattern, byte skip, byte term,
        FtpNumberFormat format, ref FtpCommand cmd)
    {
        int dlen = data.Length, plen = pattern.Length;
        if (dlen <= plen)
        {
            // Short packet: try for partial.
            return CaseEquals(data, pattern, dlen) ? -1 : 0;
        }

        if (!CaseEquals(data, pattern, plen))
        {
            return 0;
        }

        int i = plen;
        if (skip != 0)
        {
            // Skip to the skip character; running out of data is a partial match.
            for (i = plen; data[i] != skip; i++)
            {
                if (i == dlen - 1)
                {
                    return -1;
                }
            }

            i++;
        }

        return GetNumber(format, data[i..], ref cmd, term) == 0 ? -1 : 1;
    }

    private static int GetNumber(FtpNumberFormat format, ReadOnlySpan<byte> data, ref FtpCommand cmd, byte term) => format switch
    {
        FtpNumberFormat.Rfc959 => TryRfc959(data, ref cmd, term),
        FtpNumberFormat.Rfc1123 => TryRfc1123(data, ref cmd),
        FtpNumberFormat.Eprt => TryEprt(data, ref cmd),
        _ => TryEpsvResponse(data, ref cmd),
    };

    /// <summary>
    /// try_number(): fills <paramref name="array"/> with decimal numbers separated by <paramref name="sep"/>
    /// (each wrapping at 2^32; empty numbers are 0) and returns the length up to the character that ends
    /// the last one: <paramref name="term"/>, or with a zero term any character. 0 on anything else.
    /// </summary>
    internal static int TryNumber(ReadOnlySpan<byte> data, Span<uint> array, byte sep, byte term)
    {
        array.Clear();
        int size = array.Length;
        int i = 0;
        for (int len = 0; len < data.Length && i < size; len++)
        {
            byte c = data[len];
            if (IsDigit(c))
            {
                array[i] = unchecked((array[i] * 10) + (uint)(c - '0'));
            }
            else if (c == sep)
            {
                i++;
            }
            else
            {
                // Unexpected character: fine if it is the terminator after the last number.
                return (c == term || term == 0) && i == size - 1 ? len : 0;
            }
        }

        return 0;
    }

    /// <summary>try_rfc959(): <c>192,168,1,1,5,6</c>. Out-of-range numbers are shifted and ORed as the kernel does.</summary>
    internal static int TryRfc959(ReadOnlySpan<byte> data, ref FtpCommand cmd, byte term)
    {
        Span<uint> array = stackalloc uint[6];
        int length = TryNumber(data, array, (byte)',', term);
        if (length == 0)
        {
            return 0;
        }

        uint ip = unchecked((array[0] << 24) | (array[1] << 16) | (array[2] << 8) | array[3]);
        BinaryPrimitives.WriteUInt32BigEndian(cmd.Address, ip);
        cmd.Port = unchecked((ushort)((array[4] << 8) | array[5]));
        return length;
    }

    /// <summary>try_rfc1123(): the 227 reply's numbers start at its first digit, wherever that is.</summary>
    internal static int TryRfc1123(ReadOnlySpan<byte> data, ref FtpCommand cmd)
    {
        int i = 0;
        while (i < data.Length && !IsDigit(data[i]))
        {
            i++;
        }

        return i == data.Length ? 0 : TryRfc959(data[i..], ref cmd, 0);
    }

    /// <summary>get_port(): a non-zero decimal port (wrapping at 2^16) up to the delimiter; returns the offset after it.</summary>
    internal static int GetPort(ReadOnlySpan<byte> data, int start, byte delim, ref ushort port)
    {
        ushort tmp = 0;
        for (int i = start; i < data.Length; i++)
        {
            byte c = data[i];
            if (c == delim)
            {
                if (tmp == 0)
                {
                    break;
                }

                port = tmp;
                return i + 1;
            }

            if (!IsDigit(c))
            {
                break; // some other crap
            }

            tmp = unchecked((ushort)((tmp * 10) + (c - '0')));
        }

        return 0;
    }

    /// <summary>
    /// try_eprt(): <c>|1|132.235.1.2|6275|</c> on IPv4 or <c>|2|3ffe::1|6275|</c> on IPv6; the delimiter is any
    /// printable non-digit, and the protocol number must be the connection's family.
    /// </summary>
    internal static int TryEprt(ReadOnlySpan<byte> data, ref FtpCommand cmd)
    {
        if (data.Length <= 3)
        {
            return 0;
        }

        byte delim = data[0];
        if (IsDigit(delim) || delim < 33 || delim > 126 || data[2] != delim)
        {
            return 0;
        }

        if ((!cmd.Ipv6 && data[1] != '1') || (cmd.Ipv6 && data[1] != '2'))
        {
            return 0;
        }

        int length;
        if (data[1] == '1')
        {
            Span<uint> array = stackalloc uint[4];
            length = TryNumber(data[3..], array, (byte)'.', delim);
            if (length != 0)
            {
                uint ip = unchecked((array[0] << 24) | (array[1] << 16) | (array[2] << 8) | array[3]);
                BinaryPrimitives.WriteUInt32BigEndian(cmd.Address, ip);
            }
        }
        else
        {
            length = GetIpv6Address(data[3..], cmd.Address, delim);
        }

        if (length == 0)
        {
            return 0;
        }

        // The start offset includes the initial "|1|" and the address's trailing delimiter.
        return GetPort(data, 3 + length + 1, delim, ref cmd.Port);
    }

    /// <summary>try_epsv_response(): <c>|||6446|</c>; the address is the sender's own.</summary>
    internal static int TryEpsvResponse(ReadOnlySpan<byte> data, ref FtpCommand cmd)
    {
        if (data.Length <= 3)
        {
            return 0;
        }

        byte delim = data[0];
        if (IsDigit(delim) || delim < 33 || delim > 126 || data[1] != delim || data[2] != delim)
        {
            return 0;
        }

        return GetPort(data, 3, delim, ref cmd.Port);
    }

    /// <summary>get_ipv6_addr(): the length of the IPv6 address before <paramref name="term"/>, or 0.</summary>
    internal static int GetIpv6Address(ReadOnlySpan<byte> src, Span<byte> dst, byte term)
    {
        int ret = In6Pton(src, Math.Min(src.Length, 0xffff), dst, term, out int end);
        return ret > 0 ? end : 0;
    }

    /// <summary>xdigit2bin(): the class of one character of an address literal.</summary>
    private static int XDigitToBin(byte c, int delim)
    {
        if (c == delim || c == 0)
        {
            return In6Delim;
        }

        if (c == ':')
        {
            return In6ColonMask;
        }

        if (c == '.')
        {
            return In6Dot;
        }

        int val = IsDigit(c) ? c - '0' : (uint)((c | 0x20) - 'a') <= 5 ? (c | 0x20) - 'a' + 10 : -1;
        if (val >= 0)
        {
            return val | In6XDigit | (val < 10 ? In6Digit : 0);
        }

        return delim == -1 ? In6Delim : In6Unknown;
    }

    /// <summary>
    /// in6_pton(): the kernel's IPv6 literal parser. Ends at <paramref name="delim"/>, a NUL byte or the end of
    /// <paramref name="srclen"/>; <paramref name="end"/> is the offset where it stopped. Returns 1 and writes
    /// <paramref name="dst"/> (16 bytes) on success, 0 otherwise (leaving it untouched).
    /// </summary>
    internal static int In6Pton(ReadOnlySpan<byte> src, int srclen, Span<byte> dst, int delim, out int end)
    {
        Span<byte> dbuf = stackalloc byte[16];
        dbuf.Clear();
        int s = 0, tok = -1, d = 0, dc = -1, w = 0;
        int state = In6Colon12 | In6XDigit | In6Null;

        while (true)
        {
            int c = XDigitToBin(srclen > 0 && s < src.Length ? src[s] : (byte)0, delim);
            if ((c & state) == 0)
            {
                end = s;
                return 0;
            }

            if ((c & (In6Delim | In6ColonMask)) != 0)
            {
                // Process one 16-bit word.
                if ((state & In6Null) == 0)
                {
                    if (d + 2 > dbuf.Length)
                    {
                        end = s;
                        return 0; // cannot happen: the states never allow more than 8 words
                    }

                    dbuf[d++] = (byte)(w >> 8);
                    dbuf[d++] = (byte)w;
                }

                w = 0;
                if ((c & In6Delim) != 0)
                {
                    break; // the last word
                }

                switch (state & In6ColonMask)
                {
                    case In6Colon2:
                        dc = d;
                        state = In6XDigit | In6Delim;
                        if (dc >= dbuf.Length)
                        {
                            state |= In6Null;
                        }

                        break;
                    case In6Colon1 | In6Colon12:
                        state = In6XDigit | In6Colon2;
                        break;
                    case In6Colon1:
                        state = In6XDigit;
                        break;
                    case In6Colon12:
                        state = In6Colon2;
                        break;
                    default:
                        state = 0;
                        break;
                }

                tok = s + 1;
            }
            else if ((c & In6Dot) != 0)
            {
                // An embedded IPv4 address, parsed from the start of the current token.
                int from = tok >= 0 ? tok : s;
                if (d + 4 > dbuf.Length
                    || In4Pton(src, from, srclen + (s - from), dbuf.Slice(d, 4), delim, out s) == 0)
                {
                    end = s;
                    return 0;
                }

                d += 4;
                break;
            }
            else
            {
                w = (w << 4) | (0xff & c);
                state = In6Colon1 | In6Delim;
                if ((w & 0xf000) == 0)
                {
                    state |= In6XDigit;
                }

                if (dc < 0 && d + 2 < dbuf.Length)
                {
                    state |= In6Colon12;
                    state &= ~In6Delim;
                }

                if (d + 2 >= dbuf.Length)
                {
                    state &= ~(In6Colon1 | In6Colon12);
                }
            }

            // cont:
            if ((dc >= 0 && d + 4 < dbuf.Length) || d + 4 == dbuf.Length)
            {
                state |= In6Dot;
            }

            if (d >= dbuf.Length)
            {
                state &= ~(In6XDigit | In6ColonMask);
            }

            s++;
            srclen--;
        }

        int i = 15;
        d--;
        if (dc >= 0)
        {
            while (d >= dc)
            {
                dst[i--] = dbuf[d--];
            }

            while (i >= dc)
            {
                dst[i--] = 0;
            }

            while (i >= 0)
            {
                dst[i--] = dbuf[d--];
            }
        }
        else
        {
            dbuf.CopyTo(dst);
        }

        end = s;
        return 1;
    }

    /// <summary>
    /// in4_pton() from offset <paramref name="start"/>: four dotted decimal octets (each at most 255, leading
    /// zeros allowed) ended by the delimiter, a NUL, a colon or the end of <paramref name="srclen"/>.
    /// </summary>
    internal static int In4Pton(ReadOnlySpan<byte> src, int start, int srclen, Span<byte> dst, int delim, out int end)
    {
        Span<byte> dbuf = stackalloc byte[4];
        int s = start, d = 0, i = 0;
        bool any = false; // the kernel's "w != 0": its w carries the class bits of every digit
        int w = 0;
        while (true)
        {
            int c = XDigitToBin(srclen > 0 && (uint)s < (uint)src.Length ? src[s] : (byte)0, delim);
            if ((c & (In6Digit | In6Dot | In6Delim | In6ColonMask)) == 0)
            {
                end = s;
                return 0;
            }

            if ((c & (In6Dot | In6Delim | In6ColonMask)) != 0)
            {
                if (!any)
                {
                    end = s;
                    return 0;
                }

                dbuf[d++] = (byte)w;
                w = 0;
                any = false;
                i++;
                if ((c & (In6Delim | In6ColonMask)) != 0)
                {
                    if (i != 4)
                    {
                        end = s;
                        return 0;
                    }

                    break;
                }
            }
            else
            {
                w = (w * 10) + (c & 0xff);
                any = true;
                if (w > 255)
                {
                    end = s;
                    return 0;
                }
            }

            // cont:
            if (i >= 4)
            {
                end = s;
                return 0;
            }

            s++;
            srclen--;
        }

        dbuf.CopyTo(dst);
        end = s;
        return 1;
    }
}
