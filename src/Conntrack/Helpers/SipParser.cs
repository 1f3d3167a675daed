using Conntrack.Tuples;

namespace Conntrack.Helpers;

/// <summary>SIP headers the parser can locate (<c>enum sip_header_types</c>).</summary>
internal enum SipHeaderType
{
    CSeq,
    From,
    To,
    Contact,
    ViaUdp,
    ViaTcp,
    Expires,
    ContentLength,
    CallId,
}

/// <summary>SDP lines the parser can locate (<c>enum sdp_header_types</c>).</summary>
internal enum SdpHeaderType
{
    Unspecified,
    Version,
    Owner,
    Connection,
    Media,
}

/// <summary>
/// The text parsing of nf_conntrack_sip.c, byte for byte: header lookup with compact forms and continuation
/// lines, SIP URIs, numbers, SDP lines and the kernel's <c>in4_pton</c>/<c>in6_pton</c>. Every function works
/// on one message (<c>dptr</c> .. <c>dptr + datalen</c>) with offsets into it, never reads outside it and
/// never allocates. Results follow the kernel: 1 found, 0 not found, -1 found but unparsable.
/// </summary>
internal static class SipParser
{
    /// <summary>The port a SIP URI without one stands for.</summary>
    public const ushort DefaultPort = 5060;

    private enum MatchKind : byte
    {
        Digits,
        SkipUserInfoAddress,
        Address,
        CallId,
        Media,
        SdpAddress,
    }

    // ------------------------------------------------------------------ ctype (lib/ctype.c, Latin-1)

    /// <summary>The kernel's isalpha(): ASCII letters and the Latin-1 letters 0xC0-0xFF except 0xD7 and 0xF7.</summary>
    public static bool IsAlpha(byte c) => (uint)((c | 0x20) - 'a') <= 'z' - 'a' || (c >= 0xC0 && c != 0xD7 && c != 0xF7);

    /// <summary>isdigit(): '0' to '9' only.</summary>
    public static bool IsDigit(byte c) => (uint)(c - '0') <= 9;

    private static bool IsAlnum(byte c) => IsAlpha(c) || IsDigit(c);

    /// <summary>strncasecmp(buffer + offset, needle, needle.Length) == 0 for an ASCII needle; the caller checks bounds.</summary>
    private static bool EqualsIgnoreCase(ReadOnlySpan<byte> b, int offset, ReadOnlySpan<byte> needle)
    {
        for (int i = 0; i < needle.Length; i++)
        {
            int c1 = b[offset + i], c2 = needle[i];
            if (c1 == c2)
            {
                continue;
            }

            // Latin-1 capitals lower to 0xE0-0xFE, never to an ASCII byte, so ASCII folding is exact here.
            if ((uint)(c1 - 'A') <= 'Z' - 'A')
            {
                c1 += 'a' - 'A';
            }

            if ((uint)(c2 - 'A') <= 'Z' - 'A')
            {
                c2 += 'a' - 'A';
            }

            if (c1 != c2)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>strncmp(buffer + offset, needle, needle.Length) == 0; the caller checks bounds.</summary>
    private static bool EqualsExact(ReadOnlySpan<byte> b, int offset, ReadOnlySpan<byte> needle) =>
        b.Slice(offset, needle.Length).SequenceEqual(needle);

    // ------------------------------------------------------------------ header tables

    private static ReadOnlySpan<byte> Name(SipHeaderType t) => t switch
    {
        SipHeaderType.CSeq => "CSeq"u8,
        SipHeaderType.From => "From"u8,
        SipHeaderType.To => "To"u8,
        SipHeaderType.Contact => "Contact"u8,
        SipHeaderType.ViaUdp or SipHeaderType.ViaTcp => "Via"u8,
        SipHeaderType.Expires => "Expires"u8,
        SipHeaderType.ContentLength => "Content-Length"u8,
        _ => "Call-Id"u8,
    };

    private static ReadOnlySpan<byte> CompactName(SipHeaderType t) => t switch
    {
        SipHeaderType.From => "f"u8,
        SipHeaderType.To => "t"u8,
        SipHeaderType.Contact => "m"u8,
        SipHeaderType.ViaUdp or SipHeaderType.ViaTcp => "v"u8,
        SipHeaderType.ContentLength => "l"u8,
        SipHeaderType.CallId => "i"u8,
        _ => default,
    };

    private static ReadOnlySpan<byte> Search(SipHeaderType t) => t switch
    {
        SipHeaderType.From or SipHeaderType.To or SipHeaderType.Contact => "sip:"u8,
        SipHeaderType.ViaUdp => "UDP "u8,
        SipHeaderType.ViaTcp => "TCP "u8,
        _ => default,
    };

    private static MatchKind Match(SipHeaderType t) => t switch
    {
        SipHeaderType.From or SipHeaderType.To or SipHeaderType.Contact => MatchKind.SkipUserInfoAddress,
        SipHeaderType.ViaUdp or SipHeaderType.ViaTcp => MatchKind.Address,
        SipHeaderType.CallId => MatchKind.CallId,
        _ => MatchKind.Digits,
    };

    private static ReadOnlySpan<byte> SdpName(SdpHeaderType t) => t switch
    {
        SdpHeaderType.Version => "v="u8,
        SdpHeaderType.Owner => "o="u8,
        SdpHeaderType.Connection => "c="u8,
        SdpHeaderType.Media => "m="u8,
        _ => default,
    };

    private static ReadOnlySpan<byte> SdpSearch(SdpHeaderType t, bool ipv6) => t switch
    {
        SdpHeaderType.Owner or SdpHeaderType.Connection => ipv6 ? "IN IP6 "u8 : "IN IP4 "u8,
        _ => default,
    };

    private static MatchKind SdpMatch(SdpHeaderType t) => t switch
    {
        SdpHeaderType.Owner or SdpHeaderType.Connection => MatchKind.SdpAddress,
        SdpHeaderType.Media => MatchKind.Media,
        _ => MatchKind.Digits,
    };

    private static int MatchLength(MatchKind kind, ReadOnlySpan<byte> b, int p, bool ipv6, ref int shift) => kind switch
    {
        MatchKind.Digits => DigitsLength(b, p),
        MatchKind.SkipUserInfoAddress => SkipUserInfoAddressLength(b, p, ipv6, ref shift),
        MatchKind.Address => AddressLength(b, p, ipv6),
        MatchKind.CallId => CallIdLength(b, p),
        MatchKind.Media => MediaLength(b, p),
        _ => SdpAddressLength(b, p, ipv6),
    };

    // ------------------------------------------------------------------ match_len functions

    /// <summary>string_len(): letters.</summary>
    public static int StringLength(ReadOnlySpan<byte> b, int p)
    {
        int len = 0;
        while (p < b.Length && IsAlpha(b[p]))
        {
            p++;
            len++;
        }

        return len;
    }

    /// <summary>digits_len().</summary>
    public static int DigitsLength(ReadOnlySpan<byte> b, int p)
    {
        int len = 0;
        while (p < b.Length && IsDigit(b[p]))
        {
            p++;
            len++;
        }

        return len;
    }

    private static bool IsWordChar(byte c) =>
        IsAlnum(c) || c == '!' || c == '"' || c == '%' || (c >= '(' && c <= '+') || c == ':' || c == '<' || c == '>'
        || c == '?' || (c >= '[' && c <= ']') || c == '_' || c == '`' || c == '{' || c == '}' || c == '~'
        || (c >= '-' && c <= '/') || c == '\'';

    private static int WordLength(ReadOnlySpan<byte> b, int p)
    {
        int len = 0;
        while (p < b.Length && IsWordChar(b[p]))
        {
            p++;
            len++;
        }

        return len;
    }

    /// <summary>callid_len(): word, or word@word.</summary>
    private static int CallIdLength(ReadOnlySpan<byte> b, int p)
    {
        int len = WordLength(b, p);
        p += len;
        if (len == 0 || p == b.Length || b[p] != '@')
        {
            return len;
        }

        p++;
        len++;
        int domain = WordLength(b, p);
        return domain == 0 ? 0 : len + domain;
    }

    /// <summary>media_len(): the media type, one space and the port's digits.</summary>
    private static int MediaLength(ReadOnlySpan<byte> b, int p)
    {
        int len = StringLength(b, p);
        p += len;
        if (p >= b.Length || b[p] != ' ')
        {
            return 0;
        }

        len++;
        p++;
        return len + DigitsLength(b, p);
    }

    /// <summary>epaddr_len(): an address (IPv6 in brackets) and an optional valid port.</summary>
    private static int AddressLength(ReadOnlySpan<byte> b, int p, bool ipv6)
    {
        int start = p;
        if (!ParseSipAddress(b, p, b.Length, ipv6, delimited: true, out _, out p))
        {
            return 0;
        }

        return ParsePort(b, p, b.Length, out _, out p) ? p - start : 0;
    }

    /// <summary>skp_epaddr_len(): skips user info up to '@' on the same line, then epaddr_len().</summary>
    private static int SkipUserInfoAddressLength(ReadOnlySpan<byte> b, int p, bool ipv6, ref int shift)
    {
        int start = p, saved = shift;
        while (p < b.Length && b[p] != '@' && b[p] != '\r' && b[p] != '\n')
        {
            shift++;
            p++;
        }

        if (p < b.Length && b[p] == '@')
        {
            p++;
            shift++;
        }
        else
        {
            p = start;
            shift = saved;
        }

        return AddressLength(b, p, ipv6);
    }

    /// <summary>sdp_addr_len(): an address without brackets.</summary>
    private static int SdpAddressLength(ReadOnlySpan<byte> b, int p, bool ipv6) =>
        ParseSdpAddress(b, p, b.Length, ipv6, out _, out int end) ? end - p : 0;

    // ------------------------------------------------------------------ addresses and numbers

    /// <summary>
    /// sip_parse_addr(): an IPv4 address, or an IPv6 address that must be in brackets when
    /// <paramref name="delimited"/>. <paramref name="end"/> is just after it (after ']' for IPv6).
    /// </summary>
    public static bool ParseSipAddress(ReadOnlySpan<byte> b, int p, int limit, bool ipv6, bool delimited,
        out InetAddress address, out int end)
    {
        address = default;
        end = p;
        Span<byte> raw = stackalloc byte[16];
        raw.Clear();
        if (!ipv6)
        {
            if (!In4Pton(b, p, limit - p, raw, out end))
            {
                return false;
            }

            address = InetAddress.FromIpv4(raw);
            return true;
        }

        if (p < limit && b[p] == '[')
        {
            p++;
        }
        else if (delimited)
        {
            return false;
        }

        if (!In6Pton(b, p, limit - p, raw, out end))
        {
            return false;
        }

        if (end < limit && b[end] == ']')
        {
            end++;
        }
        else if (delimited)
        {
            return false;
        }

        address = InetAddress.FromIpv6(raw);
        return true;
    }

    /// <summary>sdp_parse_addr(): an IPv4 or IPv6 address as SDP writes it (no brackets).</summary>
    public static bool ParseSdpAddress(ReadOnlySpan<byte> b, int p, int limit, bool ipv6, out InetAddress address, out int end)
    {
        Span<byte> raw = stackalloc byte[16];
        raw.Clear();
        bool ok = ipv6 ? In6Pton(b, p, limit - p, raw, out end) : In4Pton(b, p, limit - p, raw, out end);
        address = !ok ? default : ipv6 ? InetAddress.FromIpv6(raw) : InetAddress.FromIpv4(raw);
        return ok;
    }

    /// <summary>
    /// sip_parse_port(): nothing but ':' means the default port; ':' must be followed by 1 to 5 digits
    /// forming 1024..65535 and by at least one more byte before <paramref name="limit"/>.
    /// </summary>
    public static bool ParsePort(ReadOnlySpan<byte> b, int p, int limit, out ushort port, out int end)
    {
        port = 0;
        end = p;
        if (p >= limit)
        {
            return false;
        }

        if (b[p] != ':')
        {
            port = DefaultPort;
            return true;
        }

        p++;
        uint value = 0;
        int len = 0;
        while (p < limit && IsDigit(b[p]))
        {
            value = (value * 10) + (uint)(b[p] - '0');
            p++;
            len++;
            if (len > 5)
            {
                return false;
            }
        }

        if (len == 0 || p >= limit || value < 1024 || value > 65535)
        {
            return false;
        }

        port = (ushort)value;
        end = p;
        return true;
    }

    /// <summary>
    /// sip_strtouint(): leading decimal digits within <paramref name="length"/> bytes. More than 11 digits or a
    /// value above 2^32-1 gives 0 with <paramref name="end"/> at the start, as does no digit at all.
    /// </summary>
    public static uint StrToUInt(ReadOnlySpan<byte> b, int p, int length, out int end)
    {
        const int Max = 11; // sizeof("4294967295")
        int start = p;
        long olen = length;
        int len = length > Max ? Max : length;
        ulong result = 0;
        while (olen > 0 && p < b.Length && IsDigit(b[p]))
        {
            if (len == 0)
            {
                end = start;
                return 0;
            }

            result = (result * 10) + (uint)(b[p] - '0');
            if (result > uint.MaxValue)
            {
                end = start;
                return 0;
            }

            p++;
            len--;
            olen--;
        }

        end = p;
        return (uint)result;
    }

    private const int Xdigit = 0x00010000, Digit = 0x00020000, ColonMask = 0x00700000, Colon1 = 0x00100000,
        Colon2 = 0x00200000, Colon12 = 0x00400000, Dot = 0x00800000, Delim = 0x10000000, Null = 0x20000000;

    /// <summary>xdigit2bin() with delim -1: NUL, 0xFF and anything not hex, ':' or '.' delimit.</summary>
    private static int XDigitToBin(int c)
    {
        if (c == 0xFF || c == 0)
        {
            return Delim;
        }

        if (c == ':')
        {
            return ColonMask;
        }

        if (c == '.')
        {
            return Dot;
        }

        int val = (uint)(c - '0') <= 9 ? c - '0' : (uint)((c | 0x20) - 'a') <= 5 ? (c | 0x20) - 'a' + 10 : -1;
        if (val >= 0)
        {
            return val | Xdigit | (val < 10 ? Digit : 0);
        }

        return Delim;
    }

    /// <summary>in4_pton(src, srclen, dst, -1, &amp;end): dotted quad; the byte after it must delimit.</summary>
    public static bool In4Pton(ReadOnlySpan<byte> b, int src, int srclen, Span<byte> dst, out int end)
    {
        Span<byte> dbuf = stackalloc byte[4];
        int s = src, d = 0, i = 0, w = 0;
        bool ok = false;
        srclen = Math.Max(srclen, 0);
        while (true)
        {
            int c = XDigitToBin(srclen > 0 ? b[s] : 0);
            if ((c & (Digit | Dot | Delim | ColonMask)) == 0)
            {
                break;
            }

            if ((c & (Dot | Delim | ColonMask)) != 0)
            {
                if (w == 0)
                {
                    break;
                }

                dbuf[d++] = (byte)w;
                w = 0;
                i++;
                if ((c & (Delim | ColonMask)) != 0)
                {
                    ok = i == 4;
                    break;
                }
            }
            else
            {
                w = unchecked((w * 10) + c);
                if ((w & 0xffff) > 255)
                {
                    break;
                }
            }

            if (i >= 4)
            {
                break;
            }

            s++;
            srclen--;
        }

        end = s;
        if (ok)
        {
            dbuf.CopyTo(dst);
        }

        return ok;
    }

    /// <summary>in6_pton(src, srclen, dst, -1, &amp;end): the kernel's state machine, including embedded IPv4.</summary>
    public static bool In6Pton(ReadOnlySpan<byte> b, int src, int srclen, Span<byte> dst, out int end)
    {
        Span<byte> dbuf = stackalloc byte[16];
        dbuf.Clear();
        const int Size = 16;
        int s = src, tok = -1, d = 0, dc = -1, w = 0;
        int state = Colon12 | Xdigit | Null;
        srclen = Math.Max(srclen, 0);
        while (true)
        {
            int c = XDigitToBin(srclen > 0 ? b[s] : 0);
            if ((c & state) == 0)
            {
                end = s;
                return false;
            }

            if ((c & (Delim | ColonMask)) != 0)
            {
                // process one 16-bit word
                if ((state & Null) == 0)
                {
                    dbuf[d++] = (byte)(w >> 8);
                    dbuf[d++] = (byte)w;
                }

                w = 0;
                if ((c & Delim) != 0)
                {
                    break; // the last word
                }

                switch (state & ColonMask)
                {
                    case Colon2:
                        dc = d;
                        state = Xdigit | Delim;
                        if (dc >= Size)
                        {
                            state |= Null;
                        }

                        break;
                    case Colon1 | Colon12:
                        state = Xdigit | Colon2;
                        break;
                    case Colon1:
                        state = Xdigit;
                        break;
                    case Colon12:
                        state = Colon2;
                        break;
                    default:
                        state = 0;
                        break;
                }

                tok = s + 1;
            }
            else if ((c & Dot) != 0)
            {
                // tok is always set here: a dot is only accepted after a colon.
                int from = tok >= 0 ? tok : s;
                if (d + 4 > Size || !In4Pton(b, from, srclen + (s - from), dbuf[d..], out s))
                {
                    end = s;
                    return false;
                }

                d += 4;
                break;
            }
            else
            {
                w = (w << 4) | (0xff & c);
                state = Colon1 | Delim;
                if ((w & 0xf000) == 0)
                {
                    state |= Xdigit;
                }

                if (dc < 0 && d + 2 < Size)
                {
                    state |= Colon12;
                    state &= ~Delim;
                }

                if (d + 2 >= Size)
                {
                    state &= ~(Colon1 | Colon12);
                }
            }

            // cont:
            if ((dc >= 0 && d + 4 < Size) || d + 4 == Size)
            {
                state |= Dot;
            }

            if (d >= Size)
            {
                state &= ~(Xdigit | ColonMask);
            }

            s++;
            srclen--;
        }

        end = s;
        int k = 15;
        d--;
        if (dc >= 0)
        {
            while (d >= dc)
            {
                dst[k--] = dbuf[d--];
            }

            while (k >= dc)
            {
                dst[k--] = 0;
            }

            while (k >= 0)
            {
                dst[k--] = dbuf[d--];
            }
        }
        else
        {
            dbuf.CopyTo(dst);
        }

        return true;
    }

    // ------------------------------------------------------------------ SIP headers

    /// <summary>sip_follow_continuation(): from a line break to the first non-blank of a continuation line, or -1.</summary>
    private static int FollowContinuation(ReadOnlySpan<byte> b, int p, int limit)
    {
        if (++p >= limit)
        {
            return -1;
        }

        if (b[p - 1] == '\r' && b[p] == '\n')
        {
            if (++p >= limit)
            {
                return -1;
            }
        }

        if (b[p] != ' ' && b[p] != '\t')
        {
            return -1;
        }

        for (; p < limit; p++)
        {
            if (b[p] != ' ' && b[p] != '\t')
            {
                break;
            }
        }

        return p;
    }

    /// <summary>sip_skip_whitespace(): blanks and at most one continuation line; -1 at the limit.</summary>
    private static int SkipWhitespace(ReadOnlySpan<byte> b, int p, int limit)
    {
        for (; p < limit; p++)
        {
            if (b[p] == ' ' || b[p] == '\t')
            {
                continue;
            }

            if (b[p] != '\r' && b[p] != '\n')
            {
                break;
            }

            p = FollowContinuation(b, p, limit);
            break;
        }

        return p >= 0 && p < limit ? p : -1;
    }

    /// <summary>
    /// ct_sip_header_search(): a case-insensitive needle within a header value and its continuation lines.
    /// As in the kernel, a needle ending exactly at <paramref name="limit"/> is not found.
    /// </summary>
    private static int HeaderSearch(ReadOnlySpan<byte> b, int p, int limit, ReadOnlySpan<byte> needle)
    {
        for (limit -= needle.Length; p < limit; p++)
        {
            if (b[p] == '\r' || b[p] == '\n')
            {
                p = FollowContinuation(b, p, limit);
                if (p < 0)
                {
                    break;
                }

                continue;
            }

            if (EqualsIgnoreCase(b, p, needle))
            {
                return p;
            }
        }

        return -1;
    }

    /// <summary>
    /// ct_sip_get_header(): the first header of the type on a line after <paramref name="dataOffset"/>;
    /// <paramref name="matchOffset"/>/<paramref name="matchLength"/> delimit its parsed value.
    /// </summary>
    public static int GetHeader(ReadOnlySpan<byte> b, int dataOffset, SipHeaderType type, bool ipv6,
        out int matchOffset, out int matchLength)
    {
        matchOffset = 0;
        matchLength = 0;
        int limit = b.Length, shift = 0;
        var name = Name(type);
        var cname = CompactName(type);
        for (int p = dataOffset; p < limit; p++)
        {
            // Find the beginning of a line.
            if (b[p] != '\r' && b[p] != '\n')
            {
                continue;
            }

            if (++p >= limit)
            {
                break;
            }

            if (b[p - 1] == '\r' && b[p] == '\n')
            {
                if (++p >= limit)
                {
                    break;
                }
            }

            // Skip continuation lines.
            if (b[p] == ' ' || b[p] == '\t')
            {
                continue;
            }

            // Compact headers must be followed by a non-alphabetic character.
            if (limit - p >= name.Length && EqualsIgnoreCase(b, p, name))
            {
                p += name.Length;
            }
            else if (!cname.IsEmpty && limit - p >= cname.Length + 1 && EqualsIgnoreCase(b, p, cname) && !IsAlpha(b[p + cname.Length]))
            {
                p += cname.Length;
            }
            else
            {
                continue;
            }

            // Find and skip the colon.
            p = SkipWhitespace(b, p, limit);
            if (p < 0)
            {
                break;
            }

            if (b[p] != ':' || ++p >= limit)
            {
                break;
            }

            // Skip whitespace after the colon.
            p = SkipWhitespace(b, p, limit);
            if (p < 0)
            {
                break;
            }

            matchOffset = p;
            var search = Search(type);
            if (!search.IsEmpty)
            {
                p = HeaderSearch(b, p, limit, search);
                if (p < 0)
                {
                    return -1;
                }

                p += search.Length;
            }

            matchLength = MatchLength(Match(type), b, p, ipv6, ref shift);
            if (matchLength == 0)
            {
                return -1;
            }

            matchOffset = p + shift;
            return 1;
        }

        return 0;
    }

    /// <summary>ct_sip_next_header(): the next value after a ',' in the same header.</summary>
    private static int NextHeader(ReadOnlySpan<byte> b, int dataOffset, SipHeaderType type, bool ipv6,
        ref int matchOffset, ref int matchLength)
    {
        int limit = b.Length, shift = 0;
        int p = HeaderSearch(b, dataOffset, limit, ","u8);
        if (p < 0)
        {
            return 0;
        }

        var search = Search(type);
        p = HeaderSearch(b, p, limit, search);
        if (p < 0)
        {
            return 0;
        }

        p += search.Length;
        matchOffset = p;
        matchLength = MatchLength(Match(type), b, p, ipv6, ref shift);
        if (matchLength == 0)
        {
            return -1;
        }

        matchOffset += shift;
        return 1;
    }

    /// <summary>ct_sip_walk_headers(): the next parsable value, within the current header first when <paramref name="inHeader"/>.</summary>
    private static int WalkHeaders(ReadOnlySpan<byte> b, int dataOffset, SipHeaderType type, bool ipv6, ref bool inHeader,
        bool trackHeader, out int matchOffset, out int matchLength)
    {
        matchOffset = 0;
        matchLength = 0;
        int ret;
        if (trackHeader && inHeader)
        {
            while (true)
            {
                ret = NextHeader(b, dataOffset, type, ipv6, ref matchOffset, ref matchLength);
                if (ret > 0)
                {
                    return ret;
                }

                if (ret == 0)
                {
                    break;
                }

                dataOffset = matchOffset;
            }

            inHeader = false;
        }

        while (true)
        {
            ret = GetHeader(b, dataOffset, type, ipv6, out matchOffset, out matchLength);
            if (ret > 0)
            {
                break;
            }

            if (ret == 0)
            {
                return ret;
            }

            dataOffset = matchOffset;
        }

        if (trackHeader)
        {
            inHeader = true;
        }

        return 1;
    }

    /// <summary>
    /// ct_sip_parse_header_uri() without a header stream: the first parsable header of the type, its address
    /// and port (5060 when none). -1 when the address or port after the match does not parse.
    /// </summary>
    public static int ParseHeaderUri(ReadOnlySpan<byte> b, SipHeaderType type, bool ipv6,
        out int matchOffset, out int matchLength, out InetAddress address, out ushort port)
    {
        int dataOffset = 0;
        bool inHeader = false;
        return ParseHeaderUri(b, ref dataOffset, trackOffset: false, type, ipv6, ref inHeader, trackHeader: false,
            out matchOffset, out matchLength, out address, out port);
    }

    /// <summary>
    /// ct_sip_parse_header_uri() over a stream of headers: <paramref name="dataOffset"/> moves past each
    /// address, <paramref name="inHeader"/> remembers being inside a comma-separated list.
    /// </summary>
    public static int ParseHeaderUri(ReadOnlySpan<byte> b, ref int dataOffset, bool trackOffset, SipHeaderType type, bool ipv6,
        ref bool inHeader, bool trackHeader, out int matchOffset, out int matchLength, out InetAddress address, out ushort port)
    {
        address = default;
        port = 0;
        int ret = WalkHeaders(b, trackOffset ? dataOffset : 0, type, ipv6, ref inHeader, trackHeader, out matchOffset, out matchLength);
        if (ret == 0)
        {
            return 0;
        }

        int limit = b.Length;
        if (!ParseSipAddress(b, matchOffset, limit, ipv6, delimited: true, out address, out int c))
        {
            return -1;
        }

        if (!ParsePort(b, c, limit, out port, out c))
        {
            return -1;
        }

        if (trackOffset)
        {
            dataOffset = c;
        }

        return 1;
    }

    /// <summary>
    /// ct_sip_parse_request(): the address and port of the Request-URI's <c>sip:</c> URI (used by NAT only in the
    /// kernel; kept for completeness and tests). 1 found, 0 no URI, -1 a malformed one.
    /// </summary>
    public static int ParseRequest(ReadOnlySpan<byte> b, bool ipv6, out int matchOffset, out int matchLength,
        out InetAddress address, out ushort port)
    {
        matchOffset = 0;
        matchLength = 0;
        address = default;
        port = 0;
        int limit = b.Length, shift = 0;

        // Skip the method and the following whitespace.
        int p = StringLength(b, 0);
        if (p == 0)
        {
            return 0;
        }

        if (++p >= limit)
        {
            return 0;
        }

        // Find the SIP URI.
        for (; p < limit - 4; p++)
        {
            if (b[p] == '\r' || b[p] == '\n')
            {
                return -1;
            }

            if (EqualsIgnoreCase(b, p, "sip:"u8))
            {
                p += 4;
                break;
            }
        }

        if (SkipUserInfoAddressLength(b, p, ipv6, ref shift) == 0)
        {
            return 0;
        }

        p += shift;
        if (!ParseSipAddress(b, p, limit, ipv6, delimited: true, out address, out int end))
        {
            return -1;
        }

        if (!ParsePort(b, end, limit, out port, out end))
        {
            return -1;
        }

        if (end == p)
        {
            return 0;
        }

        matchOffset = p;
        matchLength = end - p;
        return 1;
    }

    /// <summary>
    /// ct_sip_parse_param(): the value of <paramref name="name"/> (e.g. <c>transport=</c>) up to ';' within the
    /// current list element (up to ',').
    /// </summary>
    public static bool ParseParam(ReadOnlySpan<byte> b, int dataOffset, ReadOnlySpan<byte> name, out int matchOffset, out int matchLength)
    {
        matchOffset = 0;
        matchLength = 0;
        int limit = HeaderSearch(b, dataOffset, b.Length, ","u8);
        if (limit < 0)
        {
            limit = b.Length;
        }

        int start = HeaderSearch(b, dataOffset, limit, name);
        if (start < 0)
        {
            return false;
        }

        start += name.Length;
        int end = HeaderSearch(b, start, limit, ";"u8);
        if (end < 0)
        {
            end = limit;
        }

        matchOffset = start;
        matchLength = end - start;
        return true;
    }

    /// <summary>
    /// ct_sip_parse_numerical_param(): 1 with the value, 0 absent (<paramref name="value"/> unchanged), -1 no
    /// number after the name (<paramref name="value"/> becomes 0).
    /// </summary>
    public static int ParseNumericalParam(ReadOnlySpan<byte> b, int dataOffset, ReadOnlySpan<byte> name, ref uint value)
    {
        int limit = HeaderSearch(b, dataOffset, b.Length, ","u8);
        if (limit < 0)
        {
            limit = b.Length;
        }

        int start = HeaderSearch(b, dataOffset, limit, name);
        if (start < 0)
        {
            return 0;
        }

        start += name.Length;
        value = StrToUInt(b, start, limit - start, out int end);
        return start == end ? -1 : 1;
    }

    /// <summary>
    /// ct_sip_parse_transport(): the <c>transport=</c> parameter must name the connection's own protocol;
    /// absent, the connection's protocol is assumed.
    /// </summary>
    public static bool ParseTransport(ReadOnlySpan<byte> b, int dataOffset, byte connectionProtocol, out byte protocol)
    {
        if (ParseParam(b, dataOffset, "transport="u8, out int off, out _))
        {
            // strncasecmp over three bytes stops early at a NUL or mismatch, so it never reads past a short message.
            if (StartsWithIgnoreCase(b, off, "TCP"u8))
            {
                protocol = IpProtocol.Tcp;
            }
            else if (StartsWithIgnoreCase(b, off, "UDP"u8))
            {
                protocol = IpProtocol.Udp;
            }
            else
            {
                protocol = 0;
                return false;
            }

            return protocol == connectionProtocol;
        }

        protocol = connectionProtocol;
        return true;
    }

    /// <summary>strncasecmp() that treats the end of the message as a mismatch (the kernel's would read on).</summary>
    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> b, int offset, ReadOnlySpan<byte> needle) =>
        offset + needle.Length <= b.Length && EqualsIgnoreCase(b, offset, needle);

    // ------------------------------------------------------------------ SDP

    /// <summary>ct_sdp_header_search(): a case-sensitive needle on the current line (same end quirk as above).</summary>
    private static int SdpHeaderSearch(ReadOnlySpan<byte> b, int p, int limit, ReadOnlySpan<byte> needle)
    {
        for (limit -= needle.Length; p < limit; p++)
        {
            if (b[p] == '\r' || b[p] == '\n')
            {
                break;
            }

            if (EqualsExact(b, p, needle))
            {
                return p;
            }
        }

        return -1;
    }

    /// <summary>
    /// ct_sip_get_sdp_header(): the first SDP line of <paramref name="type"/> after <paramref name="dataOffset"/>,
    /// stopping (0) at a line of <paramref name="term"/> if given.
    /// </summary>
    public static int GetSdpHeader(ReadOnlySpan<byte> b, int dataOffset, SdpHeaderType type, SdpHeaderType term, bool ipv6,
        out int matchOffset, out int matchLength)
    {
        matchOffset = 0;
        matchLength = 0;
        int limit = b.Length, shift = 0;
        var name = SdpName(type);
        var tname = SdpName(term);
        for (int p = dataOffset; p < limit; p++)
        {
            if (b[p] != '\r' && b[p] != '\n')
            {
                continue;
            }

            if (++p >= limit)
            {
                break;
            }

            if (b[p - 1] == '\r' && b[p] == '\n')
            {
                if (++p >= limit)
                {
                    break;
                }
            }

            if (term != SdpHeaderType.Unspecified && limit - p >= tname.Length && EqualsIgnoreCase(b, p, tname))
            {
                break;
            }
            else if (limit - p >= name.Length && EqualsIgnoreCase(b, p, name))
            {
                p += name.Length;
            }
            else
            {
                continue;
            }

            matchOffset = p;
            var search = SdpSearch(type, ipv6);
            if (!search.IsEmpty)
            {
                p = SdpHeaderSearch(b, p, limit, search);
                if (p < 0)
                {
                    return -1;
                }

                p += search.Length;
            }

            matchLength = MatchLength(SdpMatch(type), b, p, ipv6, ref shift);
            if (matchLength == 0)
            {
                return -1;
            }

            matchOffset = p + shift;
            return 1;
        }

        return 0;
    }

    /// <summary>ct_sip_parse_sdp_addr(): an SDP line's address (a <c>c=</c> line's).</summary>
    public static int ParseSdpAddressHeader(ReadOnlySpan<byte> b, int dataOffset, SdpHeaderType type, SdpHeaderType term, bool ipv6,
        out int matchOffset, out int matchLength, out InetAddress address)
    {
        address = default;
        int ret = GetSdpHeader(b, dataOffset, type, term, ipv6, out matchOffset, out matchLength);
        if (ret <= 0)
        {
            return ret;
        }

        return ParseSdpAddress(b, matchOffset, matchOffset + matchLength, ipv6, out address, out _) ? 1 : -1;
    }
}
