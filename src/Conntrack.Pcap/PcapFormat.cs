using System.Buffers.Binary;

namespace Conntrack.Pcap;

/// <summary>
/// Layout of classic libpcap files: a 24-byte file header, then records of a 16-byte header and the frame.
/// See https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html.
/// </summary>
internal static class PcapFormat
{
    internal const int FileHeaderLength = 24;
    internal const int RecordHeaderLength = 16;

    private const uint MagicMicroseconds = 0xA1B2C3D4;
    private const uint MagicNanoseconds = 0xA1B23C4D;

    // The upper 4 bits of the link-type field say whether frames carry an FCS and how long it is (draft section 4).
    private const uint LinkTypeMask = 0x0FFFFFFF;

    /// <summary>Recognises the 4 magic bytes of a pcap file in either byte order.</summary>
    internal static bool TryReadMagic(ReadOnlySpan<byte> magic, out bool bigEndian, out bool nanosecond)
    {
        uint little = BinaryPrimitives.ReadUInt32LittleEndian(magic);
        uint big = BinaryPrimitives.ReadUInt32BigEndian(magic);
        bigEndian = big is MagicMicroseconds or MagicNanoseconds;
        nanosecond = little == MagicNanoseconds || big == MagicNanoseconds;
        return bigEndian || little is MagicMicroseconds or MagicNanoseconds;
    }

    internal static LinkType ReadLinkType(ReadOnlySpan<byte> fileHeader, bool bigEndian) =>
        (LinkType)(ByteOrder.UInt32(fileHeader.Slice(20), bigEndian) & LinkTypeMask);

    internal static void ReadRecordHeader(
        ReadOnlySpan<byte> header, bool bigEndian, out uint seconds, out uint fraction, out uint capturedLength, out uint originalLength)
    {
        header = header.Slice(0, RecordHeaderLength);
        seconds = ByteOrder.UInt32(header, bigEndian);
        fraction = ByteOrder.UInt32(header.Slice(4), bigEndian);
        capturedLength = ByteOrder.UInt32(header.Slice(8), bigEndian);
        originalLength = ByteOrder.UInt32(header.Slice(12), bigEndian);
    }

    /// <summary>
    /// Cannot overflow: 2^32 s in ns plus 2^32 µs in ns is below 2^63. An out-of-range fraction (≥ 1 s) is added
    /// as it stands rather than rejected, as the oracle does.
    /// </summary>
    internal static long ToNanoseconds(uint seconds, uint fraction, bool nanosecond) =>
        (seconds * 1_000_000_000L) + (nanosecond ? fraction : fraction * 1_000L);
}
