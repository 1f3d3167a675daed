using System.Buffers.Binary;

namespace Conntrack.Pcap.Tests;

/// <summary>Writes classic pcap files byte by byte, including deliberately broken ones.</summary>
internal sealed class PcapBuilder
{
    private readonly MemoryStream _out = new();
    private readonly bool _bigEndian;

    public PcapBuilder(uint linkType = 1, bool bigEndian = false, bool nanosecond = false, uint snapLength = 262144)
    {
        _bigEndian = bigEndian;
        U32(nanosecond ? 0xA1B23C4Du : 0xA1B2C3D4u);
        U16(2);
        U16(4);
        U32(0);             // thiszone
        U32(0);             // sigfigs
        U32(snapLength);
        U32(linkType);
    }

    /// <summary>Offset at which the next record will start.</summary>
    public long Length => _out.Length;

    public PcapBuilder Record(uint seconds, uint fraction, byte[] data, uint? originalLength = null, uint? capturedLength = null)
    {
        U32(seconds);
        U32(fraction);
        U32(capturedLength ?? (uint)data.Length);
        U32(originalLength ?? (uint)data.Length);
        _out.Write(data);
        return this;
    }

    public PcapBuilder Raw(ReadOnlySpan<byte> bytes)
    {
        _out.Write(bytes);
        return this;
    }

    public byte[] ToArray() => _out.ToArray();

    private void U16(ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        if (_bigEndian)
        {
            BinaryPrimitives.WriteUInt16BigEndian(b, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        }

        _out.Write(b);
    }

    private void U32(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        if (_bigEndian)
        {
            BinaryPrimitives.WriteUInt32BigEndian(b, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        }

        _out.Write(b);
    }
}

/// <summary>Writes pcapng files block by block, including deliberately broken ones. Starts with no section.</summary>
internal sealed class PcapNgBuilder
{
    private readonly MemoryStream _out = new();
    private bool _bigEndian;

    /// <summary>Offset at which the next block will start.</summary>
    public long Length => _out.Length;

    public PcapNgBuilder Section(bool bigEndian = false, byte[]? options = null)
    {
        _bigEndian = bigEndian;
        var body = new List<byte>();
        body.AddRange(U32(0x1A2B3C4D));
        body.AddRange(U16(1));
        body.AddRange(U16(0));
        body.AddRange(U64(ulong.MaxValue));         // section length unknown
        if (options is not null)
        {
            body.AddRange(options);
        }

        return Block(0x0A0D0D0A, [.. body]);
    }

    public PcapNgBuilder Interface(ushort linkType, byte? tsResolution = null, long? tsOffsetSeconds = null, uint snapLength = 0)
    {
        var body = new List<byte>();
        body.AddRange(U16(linkType));
        body.AddRange(U16(0));
        body.AddRange(U32(snapLength));
        if (tsResolution is { } resolution)
        {
            body.AddRange(Option(9, [resolution]));
        }

        if (tsOffsetSeconds is { } offset)
        {
            body.AddRange(Option(14, U64((ulong)offset)));
        }

        if (tsResolution is not null || tsOffsetSeconds is not null)
        {
            body.AddRange(Option(0, []));
        }

        return Block(1, [.. body]);
    }

    public PcapNgBuilder Enhanced(
        uint interfaceId, ulong ticks, byte[] data, uint? originalLength = null, byte[]? options = null, uint? capturedLength = null)
    {
        var body = new List<byte>();
        body.AddRange(U32(interfaceId));
        body.AddRange(U32((uint)(ticks >> 32)));
        body.AddRange(U32((uint)ticks));
        body.AddRange(U32(capturedLength ?? (uint)data.Length));
        body.AddRange(U32(originalLength ?? (uint)data.Length));
        body.AddRange(data);
        body.AddRange(new byte[Pad(data.Length)]);
        if (options is not null)
        {
            body.AddRange(options);
        }

        return Block(6, [.. body]);
    }

    public PcapNgBuilder Packet(ushort interfaceId, ulong ticks, byte[] data, uint? originalLength = null)
    {
        var body = new List<byte>();
        body.AddRange(U16(interfaceId));
        body.AddRange(U16(0));                        // drops
        body.AddRange(U32((uint)(ticks >> 32)));
        body.AddRange(U32((uint)ticks));
        body.AddRange(U32((uint)data.Length));
        body.AddRange(U32(originalLength ?? (uint)data.Length));
        body.AddRange(data);
        return Block(2, [.. body]);
    }

    public PcapNgBuilder Simple(uint originalLength, byte[] data)
    {
        var body = new List<byte>();
        body.AddRange(U32(originalLength));
        body.AddRange(data);
        return Block(3, [.. body]);
    }

    /// <summary>Any block: the body is zero-padded to 4 bytes; the lengths can be forced to wrong values.</summary>
    public PcapNgBuilder Block(uint type, byte[] body, uint? totalLength = null, uint? trailerLength = null)
    {
        int padded = body.Length + Pad(body.Length);
        uint length = (uint)(12 + padded);
        _out.Write(U32(type));
        _out.Write(U32(totalLength ?? length));
        _out.Write(body);
        _out.Write(new byte[padded - body.Length]);
        _out.Write(U32(trailerLength ?? totalLength ?? length));
        return this;
    }

    public PcapNgBuilder Raw(ReadOnlySpan<byte> bytes)
    {
        _out.Write(bytes);
        return this;
    }

    /// <summary>An option (code, length, value padded to 4) in the current section's byte order.</summary>
    public byte[] Option(ushort code, byte[] value)
    {
        var bytes = new List<byte>();
        bytes.AddRange(U16(code));
        bytes.AddRange(U16((ushort)value.Length));
        bytes.AddRange(value);
        bytes.AddRange(new byte[Pad(value.Length)]);
        return [.. bytes];
    }

    public byte[] U16(ushort value)
    {
        var b = new byte[2];
        if (_bigEndian)
        {
            BinaryPrimitives.WriteUInt16BigEndian(b, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        }

        return b;
    }

    public byte[] U32(uint value)
    {
        var b = new byte[4];
        if (_bigEndian)
        {
            BinaryPrimitives.WriteUInt32BigEndian(b, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        }

        return b;
    }

    public byte[] U64(ulong value)
    {
        var b = new byte[8];
        if (_bigEndian)
        {
            BinaryPrimitives.WriteUInt64BigEndian(b, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        }

        return b;
    }

    public byte[] ToArray() => _out.ToArray();

    private static int Pad(int length) => (4 - (length % 4)) % 4;
}

/// <summary>Frames and payloads for the tests.</summary>
internal static class Frames
{
    /// <summary>Bytes whose values depend on their position and a seed, so a misplaced byte shows.</summary>
    public static byte[] Pattern(int length, int seed = 0)
    {
        var bytes = new byte[length];
        for (int i = 0; i < length; i++)
        {
            bytes[i] = (byte)((i * 31) + (seed * 7) + (i >> 8));
        }

        return bytes;
    }

    /// <summary>An Ethernet frame: zero MACs, the EtherType, then the payload.</summary>
    public static byte[] Ethernet(ushort etherType, byte[] payload)
    {
        var frame = new byte[14 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), etherType);
        payload.CopyTo(frame, 14);
        return frame;
    }

    /// <summary>A minimal IPv4 header (20 bytes, version 4) followed by <paramref name="payloadLength"/> zero bytes.</summary>
    public static byte[] Ipv4(int payloadLength = 0)
    {
        var packet = new byte[20 + payloadLength];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;
        packet[9] = 17;
        return packet;
    }

    /// <summary>A minimal IPv6 header (40 bytes, version 6).</summary>
    public static byte[] Ipv6(int payloadLength = 0)
    {
        var packet = new byte[40 + payloadLength];
        packet[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)payloadLength);
        packet[6] = 17;
        packet[7] = 64;
        return packet;
    }
}
