using System.Buffers.Binary;

namespace Conntrack.Pcap;

/// <summary>
/// Layout of pcapng blocks. Every block is: type (4), total length (4), body, total length again (4).
/// See https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html.
/// </summary>
internal static class PcapNgFormat
{
    internal const uint SectionHeaderBlock = 0x0A0D0D0A;   // a palindrome, so it reads the same in both byte orders
    internal const uint InterfaceDescriptionBlock = 1;
    internal const uint PacketBlock = 2;                   // obsolete, still written by old tools
    internal const uint SimplePacketBlock = 3;
    internal const uint EnhancedPacketBlock = 6;

    internal const int BlockHeaderLength = 8;              // type + total length
    internal const int BlockTrailerLength = 4;             // the copy of the total length
    internal const int MinBlockLength = BlockHeaderLength + BlockTrailerLength;
    internal const int SectionHeaderPrefixLength = 12;     // type, length, byte-order magic: enough to know the byte order
    internal const int MinSectionHeaderLength = 28;        // + version (4) + section length (8)
    internal const int PacketFieldsLength = 20;            // EPB/PB fields before the packet data

    private const uint ByteOrderMagic = 0x1A2B3C4D;
    private const ushort OptionEnd = 0;
    private const ushort OptionTimestampResolution = 9;    // if_tsresol
    private const ushort OptionTimestampOffset = 14;       // if_tsoffset
    private const long NanosecondsPerSecond = 1_000_000_000;

    /// <summary>Reads the byte-order magic of a Section Header Block, which fixes the byte order of its whole section.</summary>
    internal static bool TryReadByteOrder(ReadOnlySpan<byte> sectionHeaderPrefix, out bool bigEndian)
    {
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(sectionHeaderPrefix.Slice(BlockHeaderLength));
        bigEndian = magic == BinaryPrimitives.ReverseEndianness(ByteOrderMagic);
        return bigEndian || magic == ByteOrderMagic;
    }

    internal static string Describe(uint blockType) => blockType switch
    {
        SectionHeaderBlock => "pcapng section header block",
        InterfaceDescriptionBlock => "pcapng interface description block",
        PacketBlock => "pcapng packet block",
        SimplePacketBlock => "pcapng simple packet block",
        EnhancedPacketBlock => "pcapng enhanced packet block",
        _ => "pcapng block",
    };

    /// <summary>Minimum total length of a block of the given type, so that its fixed fields can be read unchecked.</summary>
    internal static int MinLength(uint blockType) => blockType switch
    {
        SectionHeaderBlock => MinSectionHeaderLength,
        InterfaceDescriptionBlock => MinBlockLength + 8,                 // link type, reserved, snap length
        PacketBlock or EnhancedPacketBlock => MinBlockLength + PacketFieldsLength,
        SimplePacketBlock => MinBlockLength + 4,                         // original length
        _ => MinBlockLength,
    };

    /// <summary>Parses an Interface Description Block body (the bytes between the header and the trailer).</summary>
    internal static PcapNgInterface ParseInterface(ReadOnlySpan<byte> body, bool bigEndian, long blockOffset)
    {
        var linkType = (LinkType)ByteOrder.UInt16(body, bigEndian);
        byte? resolution = null;
        long offsetNs = 0;

        // Options are (code u16, length u16, value padded to 4). Fewer than 4 bytes left cannot start an option,
        // and some writers leave such slack, so it ends the list as opt_endofopt would.
        int position = 8;
        while (body.Length - position >= 4)
        {
            ushort code = ByteOrder.UInt16(body.Slice(position), bigEndian);
            int length = ByteOrder.UInt16(body.Slice(position + 2), bigEndian);
            if (code == OptionEnd)
            {
                break;
            }

            position += 4;
            if (length > body.Length - position)
            {
                CaptureFormatException.Throw(
                    Describe(InterfaceDescriptionBlock), blockOffset,
                    $"option {code} is {length} bytes long but only {body.Length - position} bytes of the block remain");
            }

            ReadOnlySpan<byte> value = body.Slice(position, length);
            if (code == OptionTimestampResolution && length >= 1)
            {
                resolution = value[0];
            }
            else if (code == OptionTimestampOffset && length >= 8)
            {
                long seconds = ByteOrder.Int64(value, bigEndian);
                if (seconds > long.MaxValue / NanosecondsPerSecond || seconds < long.MinValue / NanosecondsPerSecond)
                {
                    CaptureFormatException.Throw(
                        Describe(InterfaceDescriptionBlock), blockOffset,
                        $"if_tsoffset of {seconds} seconds is out of range");
                }

                offsetNs = seconds * NanosecondsPerSecond;
            }

            // The padding of the last option may be missing; the loop condition copes with that.
            position += Math.Min((length + 3) & ~3, body.Length - position);
        }

        return new PcapNgInterface(linkType, resolution, offsetNs);
    }

    /// <summary>Reads the fixed fields of an Enhanced Packet Block or an obsolete Packet Block.</summary>
    internal static void ReadPacketFields(
        uint blockType, ReadOnlySpan<byte> body, bool bigEndian,
        out uint interfaceId, out ulong ticks, out uint capturedLength, out uint originalLength)
    {
        body = body.Slice(0, PacketFieldsLength);
        interfaceId = blockType == PacketBlock
            ? ByteOrder.UInt16(body, bigEndian)              // followed by a 16-bit drops count
            : ByteOrder.UInt32(body, bigEndian);
        ticks = ((ulong)ByteOrder.UInt32(body.Slice(4), bigEndian) << 32) | ByteOrder.UInt32(body.Slice(8), bigEndian);
        capturedLength = ByteOrder.UInt32(body.Slice(12), bigEndian);
        originalLength = ByteOrder.UInt32(body.Slice(16), bigEndian);
    }
}
