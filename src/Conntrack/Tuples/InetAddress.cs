using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Conntrack.Tuples;

/// <summary>
/// An IPv4 or IPv6 address held in 16 bytes, the way the kernel's <c>nf_inet_addr</c> holds it:
/// an IPv4 address occupies the first four bytes and the rest are zero. A value type, so tuples never
/// allocate; convert to <see cref="IPAddress"/> only at the edges.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
public readonly struct InetAddress : IEquatable<InetAddress>, ISpanFormattable
{
    // The 16 bytes exactly as they appear on the wire, read in native order: only compared and
    // hashed as words, never interpreted as numbers.
    internal readonly ulong Word0;
    internal readonly ulong Word1;

    internal InetAddress(ulong word0, ulong word1)
    {
        Word0 = word0;
        Word1 = word1;
    }

    /// <summary>Reads a 4-byte IPv4 address from the start of <paramref name="bytes"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static InetAddress FromIpv4(ReadOnlySpan<byte> bytes) =>
        new(MemoryMarshal.Read<uint>(bytes), 0);

    /// <summary>Reads a 16-byte IPv6 address from the start of <paramref name="bytes"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static InetAddress FromIpv6(ReadOnlySpan<byte> bytes) =>
        new(MemoryMarshal.Read<ulong>(bytes), MemoryMarshal.Read<ulong>(bytes[8..]));

    /// <summary>Converts an <see cref="IPAddress"/> (IPv4 or IPv6).</summary>
    public static InetAddress FromIPAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> b = stackalloc byte[16];
        b.Clear();
        if (!address.TryWriteBytes(b, out int written) || (written != 4 && written != 16))
        {
            throw new ArgumentException("Only IPv4 and IPv6 addresses are supported.", nameof(address));
        }

        return written == 4 ? FromIpv4(b) : FromIpv6(b);
    }

    /// <summary>Parses a textual IPv4 or IPv6 address.</summary>
    public static InetAddress Parse(string text) => FromIPAddress(IPAddress.Parse(text));

    /// <summary>Writes the address bytes (4 for IPv4, 16 for IPv6) to <paramref name="destination"/>.</summary>
    public void CopyTo(Span<byte> destination, bool ipv6)
    {
        if (ipv6)
        {
            MemoryMarshal.Write(destination, in Word0);
            MemoryMarshal.Write(destination[8..], in Word1);
        }
        else
        {
            MemoryMarshal.Write(destination, (uint)Word0);
        }
    }

    /// <summary>Converts to <see cref="IPAddress"/> (allocates; for diagnostics and management paths).</summary>
    public IPAddress ToIPAddress(bool ipv6)
    {
        Span<byte> b = stackalloc byte[16];
        CopyTo(b, ipv6);
        return new IPAddress(ipv6 ? b : b[..4]);
    }

    /// <inheritdoc />
    public bool Equals(InetAddress other) => Word0 == other.Word0 && Word1 == other.Word1;

    /// <inheritdoc />
    public override bool Equals([NotNullWhen(true)] object? obj) => obj is InetAddress other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Word0, Word1);

    /// <summary>Equality.</summary>
    public static bool operator ==(InetAddress left, InetAddress right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(InetAddress left, InetAddress right) => !left.Equals(right);

    /// <summary>
    /// Formats as dotted IPv4 when the last 12 bytes are zero (how the engine stores IPv4), else as
    /// compressed IPv6. Use <see cref="TryFormat(Span{char}, out int, bool)"/> to choose explicitly.
    /// </summary>
    public override string ToString() => ToString(ipv6: Word1 != 0 || (Word0 >> 32) != 0);

    /// <summary>Formats as IPv4 or as compressed IPv6 (RFC 5952).</summary>
    public string ToString(bool ipv6)
    {
        Span<char> buf = stackalloc char[MaxFormattedLength];
        TryFormat(buf, out int n, ipv6);
        return new string(buf[..n]);
    }

    /// <summary>The longest text <see cref="TryFormat(Span{char}, out int, bool)"/> writes.</summary>
    public const int MaxFormattedLength = 39;

    /// <summary>
    /// Writes the address without allocating: IPv4 in dotted decimal; IPv6 in the compressed form of
    /// RFC 5952 section 4 (lowercase hex, leading zeros dropped, the longest run of two or more zero
    /// groups — the first such run on a tie — replaced by <c>::</c>), never with embedded IPv4.
    /// </summary>
    public bool TryFormat(Span<char> destination, out int charsWritten, bool ipv6)
    {
        Span<byte> b = stackalloc byte[16];
        CopyTo(b, ipv6);
        return ipv6 ? TryFormatIpv6(b, destination, out charsWritten) : TryFormatIpv4(b, destination, out charsWritten);
    }

    /// <summary>
    /// Writes the address as <see cref="ToString(bool)"/> would (one <c>WriteLine</c> per call
    /// in the tool costs no string).
    /// </summary>
    public void WriteTo(TextWriter writer, bool ipv6)
    {
        ArgumentNullException.ThrowIfNull(writer);
        Span<char> buf = stackalloc char[MaxFormattedLength];
        TryFormat(buf, out int n, ipv6);
        writer.Write(buf[..n]);
    }

    bool ISpanFormattable.TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider) =>
        TryFormat(destination, out charsWritten, ipv6: Word1 != 0 || (Word0 >> 32) != 0);

    string IFormattable.ToString(string? format, IFormatProvider? formatProvider) => ToString();

    private static bool TryFormatIpv4(ReadOnlySpan<byte> b, Span<char> dst, out int written)
    {
        written = 0;
        for (int i = 0; i < 4; i++)
        {
            if (i > 0)
            {
                if (written >= dst.Length)
                {
                    return false;
                }

                dst[written++] = '.';
            }

            if (!b[i].TryFormat(dst[written..], out int n))
            {
                return false;
            }

            written += n;
        }

        return true;
    }

    private static bool TryFormatIpv6(ReadOnlySpan<byte> b, Span<char> dst, out int written)
    {
        written = 0;
        Span<ushort> g = stackalloc ushort[8];
        for (int i = 0; i < 8; i++)
        {
            g[i] = BinaryPrimitives.ReadUInt16BigEndian(b[(i * 2)..]);
        }

        // Longest run of zero groups (length >= 2); the first one wins a tie (RFC 5952 4.2.3).
        int bestStart = -1, bestLen = 0;
        for (int i = 0; i < 8;)
        {
            if (g[i] != 0)
            {
                i++;
                continue;
            }

            int j = i;
            while (j < 8 && g[j] == 0)
            {
                j++;
            }

            if (j - i > bestLen)
            {
                bestStart = i;
                bestLen = j - i;
            }

            i = j;
        }

        if (bestLen < 2)
        {
            bestStart = -1;
        }

        for (int i = 0; i < 8; i++)
        {
            if (i == bestStart)
            {
                if (written + 2 > dst.Length)
                {
                    return false;
                }

                dst[written++] = ':';
                dst[written++] = ':';
                i += bestLen - 1;
                continue;
            }

            if (i > 0 && i != bestStart + bestLen)
            {
                if (written >= dst.Length)
                {
                    return false;
                }

                dst[written++] = ':';
            }

            if (!g[i].TryFormat(dst[written..], out int n, "x"))
            {
                return false;
            }

            written += n;
        }

        return true;
    }
}
