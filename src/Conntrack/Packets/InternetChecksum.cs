using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Conntrack.Packets;

/// <summary>The ones'-complement Internet checksum (RFC 1071) over spans, with IPv4/IPv6 pseudo-headers.</summary>
internal static class InternetChecksum
{
    /// <summary>
    /// Adds the 16-bit big-endian words of <paramref name="data"/> to <paramref name="sum"/> (an odd final
    /// byte is padded with zero). The result is unfolded; call <see cref="Fold"/>.
    /// </summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        // Summing 32-bit big-endian words into a 64-bit accumulator is equivalent to summing 16-bit words
        // once folded (ones'-complement arithmetic is associative over word size).
        int i = 0;
        for (; i + 4 <= data.Length; i += 4)
        {
            sum += BinaryPrimitives.ReadUInt32BigEndian(data[i..]);
        }

        if (i + 2 <= data.Length)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
            i += 2;
        }

        if (i < data.Length)
        {
            sum += (ulong)data[i] << 8;
        }

        return sum;
    }

    /// <summary>Folds a wide sum to 16 bits (not complemented).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fold(ulong sum)
    {
        sum = (sum & 0xFFFFFFFF) + (sum >> 32);
        sum = (sum & 0xFFFFFFFF) + (sum >> 32);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>True when an IPv4 header of <paramref name="headerLength"/> bytes sums to 0xFFFF (checksum correct).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Ipv4HeaderValid(ReadOnlySpan<byte> header, int headerLength)
    {
        if (headerLength == 20)
        {
            // The common case, unrolled: five 32-bit words.
            ref byte p = ref MemoryMarshal.GetReference(header);
            ulong s = (ulong)BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ref p))
                + BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 4)))
                + BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 8)))
                + BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 12)))
                + BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 16)));
            return Fold(s) == 0xFFFF;
        }

        return Fold(Add(0, header[..headerLength])) == 0xFFFF;
    }

    /// <summary>
    /// Verifies a layer-4 checksum that covers a pseudo-header (addresses, protocol, length) plus
    /// <paramref name="covered"/> bytes of the segment, as <c>nf_checksum</c> does.
    /// </summary>
    public static bool Layer4Valid(ReadOnlySpan<byte> ipPacket, bool ipv6, byte protocol, ReadOnlySpan<byte> l4, int covered)
    {
        ulong sum = 0;
        if (ipv6)
        {
            sum = Add(sum, ipPacket.Slice(8, 32));
        }
        else
        {
            sum = Add(sum, ipPacket.Slice(12, 8));
        }

        sum += protocol;
        sum += (uint)l4.Length;
        sum = Add(sum, l4[..covered]);
        return Fold(sum) == 0xFFFF;
    }

    /// <summary>Verifies a checksum over the bytes alone (ICMPv4 has no pseudo-header).</summary>
    public static bool PlainValid(ReadOnlySpan<byte> data) => Fold(Add(0, data)) == 0xFFFF;
}
