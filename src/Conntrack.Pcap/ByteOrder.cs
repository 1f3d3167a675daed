using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Conntrack.Pcap;

/// <summary>Reads fields in a byte order chosen at run time, as both capture formats let the writer choose.</summary>
internal static class ByteOrder
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ushort UInt16(ReadOnlySpan<byte> source, bool bigEndian) =>
        bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(source) : BinaryPrimitives.ReadUInt16LittleEndian(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint UInt32(ReadOnlySpan<byte> source, bool bigEndian) =>
        bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(source) : BinaryPrimitives.ReadUInt32LittleEndian(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long Int64(ReadOnlySpan<byte> source, bool bigEndian) =>
        bigEndian ? BinaryPrimitives.ReadInt64BigEndian(source) : BinaryPrimitives.ReadInt64LittleEndian(source);
}
