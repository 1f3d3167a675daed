using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ArmCrc32 = System.Runtime.Intrinsics.Arm.Crc32;
using X86Sse42 = System.Runtime.Intrinsics.X86.Sse42;

namespace Conntrack.Protocols;

/// <summary>
/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), the SCTP checksum of RFC 9260 appendix A, as
/// <c>sctp_compute_cksum()</c> computes it: over the whole SCTP packet with the checksum field taken as
/// zero, initial value ~0, final complement, stored little-endian. Uses the CPU's CRC32C instruction when
/// there is one (SSE4.2, ARMv8 CRC), else slicing-by-8 tables.
/// </summary>
internal static class SctpChecksum
{
    private const uint Polynomial = 0x82F63B78;

    /// <summary>Slicing-by-8 tables: <c>Table[k * 256 + b]</c> is the CRC of byte b followed by k zero bytes.</summary>
    private static readonly uint[] Table = BuildTable();

    /// <summary>True when the checksum field (bytes 8-11) of <paramref name="sctp"/> holds its CRC32c.</summary>
    /// <param name="sctp">The SCTP common header and everything after it (at least 12 bytes).</param>
    public static bool Valid(ReadOnlySpan<byte> sctp)
    {
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(sctp[8..]);
        return Compute(sctp) == stored;
    }

    /// <summary>The CRC32c of <paramref name="sctp"/> with its checksum field (bytes 8-11) read as zero.</summary>
    public static uint Compute(ReadOnlySpan<byte> sctp)
    {
        uint crc = Update(~0u, sctp[..8]);
        crc = Update(crc, [0, 0, 0, 0]);
        crc = Update(crc, sctp[12..]);
        return ~crc;
    }

    /// <summary>Continues a raw (not complemented) CRC32c over <paramref name="data"/>.</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        if (X86Sse42.X64.IsSupported)
        {
            return UpdateX64(crc, data);
        }

        if (ArmCrc32.Arm64.IsSupported)
        {
            return UpdateArm64(crc, data);
        }

        return UpdateSoftware(crc, data);
    }

    private static uint UpdateX64(uint crc, ReadOnlySpan<byte> data)
    {
        ulong c = crc;
        while (data.Length >= 8)
        {
            c = X86Sse42.X64.Crc32(c, MemoryMarshal.Read<ulong>(data));
            data = data[8..];
        }

        crc = (uint)c;
        foreach (byte b in data)
        {
            crc = X86Sse42.Crc32(crc, b);
        }

        return crc;
    }

    private static uint UpdateArm64(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = ArmCrc32.Arm64.ComputeCrc32C(crc, MemoryMarshal.Read<ulong>(data));
            data = data[8..];
        }

        foreach (byte b in data)
        {
            crc = ArmCrc32.ComputeCrc32C(crc, b);
        }

        return crc;
    }

    /// <summary>The table-driven CRC (any CPU, any byte order); public for the tests that compare both paths.</summary>
    public static uint UpdateSoftware(uint crc, ReadOnlySpan<byte> data)
    {
        ref uint t = ref MemoryMarshal.GetArrayDataReference(Table);
        while (data.Length >= 8)
        {
            uint lo = crc ^ BinaryPrimitives.ReadUInt32LittleEndian(data);
            uint hi = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
            crc = Unsafe.Add(ref t, (7 * 256) + (int)(lo & 0xFF))
                ^ Unsafe.Add(ref t, (6 * 256) + (int)((lo >> 8) & 0xFF))
                ^ Unsafe.Add(ref t, (5 * 256) + (int)((lo >> 16) & 0xFF))
                ^ Unsafe.Add(ref t, (4 * 256) + (int)(lo >> 24))
                ^ Unsafe.Add(ref t, (3 * 256) + (int)(hi & 0xFF))
                ^ Unsafe.Add(ref t, (2 * 256) + (int)((hi >> 8) & 0xFF))
                ^ Unsafe.Add(ref t, 256 + (int)((hi >> 16) & 0xFF))
                ^ Unsafe.Add(ref t, (int)(hi >> 24));
            data = data[8..];
        }

        foreach (byte b in data)
        {
            crc = Unsafe.Add(ref t, (int)((crc ^ b) & 0xFF)) ^ (crc >> 8);
        }

        return crc;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[8 * 256];
        for (uint b = 0; b < 256; b++)
        {
            uint crc = b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ Polynomial : crc >> 1;
            }

            table[b] = crc;
        }

        for (int k = 1; k < 8; k++)
        {
            for (int b = 0; b < 256; b++)
            {
                uint prev = table[((k - 1) * 256) + b];
                table[(k * 256) + b] = table[(int)(prev & 0xFF)] ^ (prev >> 8);
            }
        }

        return table;
    }
}
