using System.Buffers.Binary;

namespace Conntrack.Pcap.Tests;

public class RobustnessTests
{
    private const int Cases = 4000;

    private static readonly uint[] s_interesting =
    [
        0, 1, 3, 4, 7, 8, 11, 12, 13, 16, 20, 24, 28, 32, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x0FFFFFFF, 0x10000000,
        256 * 1024 * 1024, (256 * 1024 * 1024) + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0xFFFFFFFF,
        0x0A0D0D0A, 0x1A2B3C4D, 0x4D3C2B1A, 0xA1B2C3D4, 0xD4C3B2A1, 1, 2, 3, 5, 6,
    ];

    [Fact]
    public void Random_and_mutated_input_either_reads_or_throws_only_CaptureFormatException()
    {
        var random = new Random(20_240_601);
        byte[][] seeds = SeedCaptures();
        int[] bufferSizes = [16, 64, 1000, 0];
        var failures = new List<string>();
        int formatErrors = 0;
        int cleanReads = 0;

        for (int i = 0; i < Cases; i++)
        {
            byte[] input = Mutate(random, seeds);
            int bufferSize = bufferSizes[random.Next(bufferSizes.Length)];
            try
            {
                using CaptureReader reader = CaptureContents.CreateReader(input, bufferSize == 0 ? null : bufferSize);
                int records = 0;
                while (reader.ReadNext(out CaptureRecord record))
                {
                    records++;

                    // A record needs at least 12 file bytes (a pcapng block), so more records than that means a loop.
                    if (records > (input.Length / 12) + 1)
                    {
                        failures.Add($"case {i}: {records} records from {input.Length} bytes");
                        break;
                    }

                    record.Data.Length.Should().BeLessThanOrEqualTo(input.Length);
                    if (LinkLayer.IsSupported(record.LinkType))
                    {
                        FrameKind kind = LinkLayer.Decode(record.LinkType, record.Data, out int offset);
                        if (kind != FrameKind.NonIp && (offset < 0 || offset > record.Data.Length))
                        {
                            failures.Add($"case {i}: IP offset {offset} outside a {record.Data.Length}-byte frame");
                        }
                    }
                }

                cleanReads++;
            }
            catch (CaptureFormatException e)
            {
                formatErrors++;
                if (!e.Message.Contains($"offset {e.Offset}", StringComparison.Ordinal) || e.Offset < 0 || e.Offset > input.Length)
                {
                    failures.Add($"case {i}: offset {e.Offset} badly reported: {e.Message}");
                }
            }
            catch (Exception e)
            {
                failures.Add($"case {i} ({input.Length} bytes: {Convert.ToHexString(input.AsSpan(0, Math.Min(64, input.Length)))}): {e}");
            }
        }

        failures.Should().BeEmpty();
        formatErrors.Should().BeGreaterThan(Cases / 10, "the mutations should break many files");
        cleanReads.Should().BeGreaterThan(Cases / 10, "the mutations should leave many files readable");
    }

    [Fact]
    public async Task Mutated_input_read_asynchronously_throws_only_CaptureFormatException()
    {
        var random = new Random(7);
        byte[][] seeds = SeedCaptures();
        for (int i = 0; i < 300; i++)
        {
            byte[] input = Mutate(random, seeds);
            try
            {
                await CaptureContents.ReadAsync(input, bufferSize: 32, maxChunk: 1 + (i % 50), yieldingStream: i % 3 == 0);
            }
            catch (CaptureFormatException)
            {
            }
        }
    }

    private static byte[][] SeedCaptures()
    {
        var pcap = new PcapBuilder();
        var pcapBigNano = new PcapBuilder(linkType: 113, bigEndian: true, nanosecond: true);
        for (int i = 0; i < 6; i++)
        {
            pcap.Record((uint)i, 0, Frames.Ethernet(0x0800, Frames.Ipv4(i * 10)));
            pcapBigNano.Record((uint)i, 999_999_999, Frames.Pattern(16 + (i * 20), i));
        }

        var pcapng = new PcapNgBuilder().Section().Interface(1).Interface(276, tsResolution: 0x80 | 20, tsOffsetSeconds: 100)
            .Enhanced(0, 1, Frames.Ethernet(0x86DD, Frames.Ipv6(4)))
            .Block(4, Frames.Pattern(20))
            .Enhanced(1, 2, Frames.Pattern(40))
            .Simple(30, Frames.Pattern(30))
            .Section(bigEndian: true).Interface(0, tsResolution: 9)
            .Packet(0, 3, [2, 0, 0, 0, .. Frames.Ipv4()])
            .Block(5, Frames.Pattern(24))
            .Enhanced(0, 4, Frames.Pattern(8));
        return [pcap.ToArray(), pcapBigNano.ToArray(), pcapng.ToArray()];
    }

    private static byte[] Mutate(Random random, byte[][] seeds)
    {
        byte[] seed = seeds[random.Next(seeds.Length)];
        switch (random.Next(7))
        {
            case 0:
                {
                    // Pure noise behind a valid magic number, so the parsers get past detection.
                    var bytes = new byte[random.Next(0, 300)];
                    random.NextBytes(bytes);
                    byte[] magic = random.Next(3) switch { 0 => [0xD4, 0xC3, 0xB2, 0xA1], 1 => [0xA1, 0xB2, 0x3C, 0x4D], _ => [0x0A, 0x0D, 0x0D, 0x0A] };
                    magic.AsSpan(0, Math.Min(4, bytes.Length)).CopyTo(bytes);
                    if (magic[0] == 0x0A && bytes.Length >= 12)
                    {
                        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), random.Next(2) == 0 ? 0x1A2B3C4Du : 0x4D3C2B1Au);
                    }

                    return bytes;
                }

            case 1:
                {
                    var bytes = new byte[random.Next(0, 100)];
                    random.NextBytes(bytes);
                    return bytes;
                }

            case 2:
                return seed[..random.Next(0, seed.Length + 1)];

            default:
                {
                    byte[] bytes = (byte[])seed.Clone();
                    int mutations = random.Next(1, 6);
                    for (int m = 0; m < mutations; m++)
                    {
                        int at = random.Next(bytes.Length);
                        if (random.Next(2) == 0)
                        {
                            bytes[at] ^= (byte)(1 << random.Next(8));
                        }
                        else if (at + 4 <= bytes.Length)
                        {
                            uint value = s_interesting[random.Next(s_interesting.Length)];
                            if (random.Next(2) == 0)
                            {
                                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at & ~3), value);
                            }
                            else
                            {
                                BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(at & ~3), value);
                            }
                        }
                    }

                    return random.Next(4) == 0 ? bytes[..random.Next(bytes.Length + 1)] : bytes;
                }
        }
    }
}
