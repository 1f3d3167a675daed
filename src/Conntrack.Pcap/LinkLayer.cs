using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace Conntrack.Pcap;

/// <summary>
/// Strips link-layer framing to find the IPv4 or IPv6 packet inside a captured frame.
/// </summary>
/// <remarks>
/// The rules are those of the project's test oracle (<c>kernel-ct-replay</c>), so that a replay classifies every
/// record the way the kernel run did. In particular, Ethernet and Linux cooked frames are classified by their
/// EtherType alone, never by the IP version nibble: a frame whose EtherType says IPv4 but whose header says
/// version 6 is still <see cref="FrameKind.Ipv4"/>, and the engine rejects it later, as the kernel does. The IP
/// packet may be empty (the returned offset may equal the frame length). Nothing here allocates.
/// </remarks>
public static class LinkLayer
{
    private const ushort EtherTypeIpv4 = 0x0800;
    private const ushort EtherTypeIpv6 = 0x86DD;
    private const ushort EtherTypeVlan = 0x8100;      // 802.1Q
    private const ushort EtherTypeQinQ = 0x88A8;      // 802.1ad
    private const ushort EtherTypeQinQLegacy = 0x9100;
    private const int VlanTagLength = 4;

    /// <summary>
    /// Finds the IP packet in a frame of the given link type.
    /// </summary>
    /// <param name="linkType">The frame's link type, as reported in <see cref="CaptureRecord.LinkType"/>.</param>
    /// <param name="frame">The captured bytes of the frame.</param>
    /// <param name="ipOffset">
    /// When the result is <see cref="FrameKind.Ipv4"/> or <see cref="FrameKind.Ipv6"/>, the offset in
    /// <paramref name="frame"/> where the IP header starts (it may equal the frame length); otherwise 0.
    /// </param>
    /// <returns>
    /// <see cref="FrameKind.Ipv4"/> or <see cref="FrameKind.Ipv6"/> for a frame that carries IP (after any
    /// 802.1Q/802.1ad tags), else <see cref="FrameKind.NonIp"/>, which includes frames too short for their link header.
    /// </returns>
    /// <exception cref="NotSupportedException">
    /// <paramref name="linkType"/> is not one of the supported link types; check with <see cref="IsSupported"/> first.
    /// </exception>
    public static FrameKind Decode(LinkType linkType, ReadOnlySpan<byte> frame, out int ipOffset)
    {
        switch (linkType)
        {
            case LinkType.Ethernet:
                if (frame.Length < 14)
                {
                    break;
                }

                return AfterEtherType(frame, BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12)), 14, out ipOffset);

            case LinkType.Raw:
            case LinkType.RawLegacy12:
            case LinkType.RawLegacy14:
                return ByVersion(frame, 0, out ipOffset);

            case LinkType.Ipv4:
                ipOffset = 0;
                return FrameKind.Ipv4;

            case LinkType.Ipv6:
                ipOffset = 0;
                return FrameKind.Ipv6;

            case LinkType.LinuxSll:
                if (frame.Length < 16)
                {
                    break;
                }

                return AfterEtherType(frame, BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(14)), 16, out ipOffset);

            case LinkType.LinuxSll2:
                if (frame.Length < 20)
                {
                    break;
                }

                return AfterEtherType(frame, BinaryPrimitives.ReadUInt16BigEndian(frame), 20, out ipOffset);

            case LinkType.Null:
            case LinkType.Loop:
                // The 4-byte family field is host-endian for Null and its values differ between BSDs
                // (AF_INET6 is 24, 28 or 30), so the oracle ignores it and looks at the IP version instead.
                return ByVersion(frame, 4, out ipOffset);

            default:
                ThrowNotSupported(linkType);
                break;
        }

        ipOffset = 0;
        return FrameKind.NonIp;
    }

    /// <summary>Tells whether <see cref="Decode"/> understands frames of the given link type.</summary>
    /// <param name="linkType">A link type, possibly one that has no named member in <see cref="LinkType"/>.</param>
    /// <returns><see langword="true"/> for Null, Ethernet, the raw IP types (12, 14, 101, 228, 229), Loop, LinuxSll and LinuxSll2.</returns>
    public static bool IsSupported(LinkType linkType) => linkType switch
    {
        LinkType.Null or LinkType.Ethernet or LinkType.RawLegacy12 or LinkType.RawLegacy14 or LinkType.Raw
            or LinkType.Loop or LinkType.LinuxSll or LinkType.Ipv4 or LinkType.Ipv6 or LinkType.LinuxSll2 => true,
        _ => false,
    };

    private static FrameKind AfterEtherType(ReadOnlySpan<byte> frame, ushort etherType, int offset, out int ipOffset)
    {
        // A tag whose 4 bytes are not all there ends the stripping; the tag's TPID then decides (NonIp).
        while ((etherType == EtherTypeVlan || etherType == EtherTypeQinQ || etherType == EtherTypeQinQLegacy)
            && frame.Length - offset >= VlanTagLength)
        {
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(offset + 2));
            offset += VlanTagLength;
        }

        switch (etherType)
        {
            case EtherTypeIpv4:
                ipOffset = offset;
                return FrameKind.Ipv4;
            case EtherTypeIpv6:
                ipOffset = offset;
                return FrameKind.Ipv6;
            default:
                ipOffset = 0;
                return FrameKind.NonIp;
        }
    }

    private static FrameKind ByVersion(ReadOnlySpan<byte> frame, int offset, out int ipOffset)
    {
        if ((uint)offset < (uint)frame.Length)
        {
            switch (frame[offset] >> 4)
            {
                case 4:
                    ipOffset = offset;
                    return FrameKind.Ipv4;
                case 6:
                    ipOffset = offset;
                    return FrameKind.Ipv6;
            }
        }

        ipOffset = 0;
        return FrameKind.NonIp;
    }

    [DoesNotReturn]
    private static void ThrowNotSupported(LinkType linkType) =>
        throw new NotSupportedException(
            $"Link type {(uint)linkType} is not supported (supported: 0 Null, 1 Ethernet, 12/14/101 raw IP, 108 Loop, "
            + "113 Linux cooked v1, 228 raw IPv4, 229 raw IPv6, 276 Linux cooked v2).");
}
