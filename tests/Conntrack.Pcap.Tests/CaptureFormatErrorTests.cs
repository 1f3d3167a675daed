using System.Buffers.Binary;

namespace Conntrack.Pcap.Tests;

public class CaptureFormatErrorTests
{
    [Theory]
    [InlineData(new byte[] { 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]
    [InlineData(new byte[] { 0xD4, 0xC3, 0xB2, 0xA2, 0, 0, 0, 0 })]   // pcap magic off by one bit
    [InlineData(new byte[] { (byte)'G', (byte)'E', (byte)'T', (byte)' ', (byte)'/' })]
    public void Unknown_magic_number_is_rejected_at_offset_zero(byte[] capture)
    {
        AssertFormatError(capture, 0, "*offset 0*unknown magic number*");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void File_too_short_for_any_magic_number_is_rejected(int length)
    {
        AssertFormatError(new byte[length], 0, "*offset 0*too short*");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(23)]
    public void Truncated_pcap_file_header_is_rejected(int length)
    {
        byte[] capture = new PcapBuilder().ToArray()[..length];

        AssertFormatError(capture, 0, $"pcap file header at offset 0*after {length} of*24 bytes*");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(11)]
    [InlineData(20)]
    public void Truncated_first_section_header_block_is_rejected(int length)
    {
        byte[] capture = new PcapNgBuilder().Section().ToArray()[..length];

        AssertFormatError(capture, 0, "*section header block at offset 0*");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(7u)]
    [InlineData(8u)]
    public void Pcapng_block_shorter_than_12_bytes_is_rejected(uint totalLength)
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;
        byte[] capture = builder.Block(0x12345678, new byte[8], totalLength: totalLength).ToArray();

        AssertFormatError(capture, offset, $"pcapng block at offset {offset}: total length {totalLength} is less than 12");
    }

    [Theory]
    [InlineData(6u, 13u)]
    [InlineData(6u, 50u)]
    [InlineData(0x12345678u, 30u)]
    public void Pcapng_block_length_that_is_not_a_multiple_of_4_is_rejected(uint blockType, uint totalLength)
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;
        byte[] capture = builder.Block(blockType, new byte[60], totalLength: totalLength).ToArray();

        AssertFormatError(capture, offset, $"*block at offset {offset}: total length {totalLength} is not a multiple of 4");
    }

    [Fact]
    public void Packet_block_whose_trailing_length_differs_is_rejected()
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;
        var packet = new PcapNgBuilder().Section().Interface(1).Enhanced(0, 1, Frames.Pattern(20)).ToArray();
        int epbLength = packet.Length - (int)offset;
        byte[] body = packet[(int)(offset + 8)..^4];
        byte[] capture = builder.Block(6, body, trailerLength: (uint)epbLength + 4).ToArray();

        AssertFormatError(capture, offset, $"*enhanced packet block at offset {offset}: trailing total length {epbLength + 4} does not match*{epbLength}*");
    }

    [Fact]
    public void Skipped_block_whose_trailing_length_differs_is_rejected()
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;
        byte[] capture = builder.Block(5, new byte[20], trailerLength: 36).Enhanced(0, 0, [1]).ToArray();

        AssertFormatError(capture, offset, $"pcapng block at offset {offset}: trailing total length 36 does not match the leading total length 32");
    }

    [Fact]
    public void Section_header_whose_trailing_length_differs_is_rejected()
    {
        var builder = new PcapNgBuilder().Section().Interface(1).Enhanced(0, 0, [1]);
        long offset = builder.Length;
        byte[] section = new PcapNgBuilder().Section(bigEndian: true).ToArray();
        BinaryPrimitives.WriteUInt32BigEndian(section.AsSpan(section.Length - 4), 32);
        byte[] capture = builder.Raw(section).ToArray();

        AssertFormatError(capture, offset, $"*block at offset {offset}: trailing total length 32 does not match the leading total length 28");
    }

    [Fact]
    public void Section_header_with_a_bad_byte_order_magic_is_rejected()
    {
        byte[] capture = new PcapNgBuilder().Section().Interface(1).ToArray();
        capture[8] ^= 0xFF;

        AssertFormatError(capture, 0, "pcapng section header block at offset 0: byte-order magic*");
    }

    [Fact]
    public void Section_header_shorter_than_its_fixed_fields_is_rejected()
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;
        byte[] capture = builder.Block(0x0A0D0D0A, [.. builder.U32(0x1A2B3C4D), 1, 0, 0, 0]).ToArray();

        AssertFormatError(capture, offset, $"pcapng section header block at offset {offset}: total length 20 is too short*");
    }

    [Fact]
    public void Enhanced_packet_block_for_an_undefined_interface_is_rejected()
    {
        var builder = new PcapNgBuilder().Section().Interface(1).Enhanced(0, 0, [1]);
        long offset = builder.Length;
        byte[] capture = builder.Enhanced(1, 0, [1]).ToArray();

        AssertFormatError(capture, offset, $"pcapng enhanced packet block at offset {offset}: interface 1 is not defined*");
    }

    [Fact]
    public void Enhanced_packet_block_before_any_interface_is_rejected()
    {
        var builder = new PcapNgBuilder().Section();
        long offset = builder.Length;

        AssertFormatError(builder.Enhanced(0, 0, [1]).ToArray(), offset, $"*offset {offset}: interface 0 is not defined*");
    }

    [Fact]
    public void Simple_packet_block_before_any_interface_is_rejected()
    {
        var builder = new PcapNgBuilder().Section();
        long offset = builder.Length;

        AssertFormatError(builder.Simple(4, [1, 2, 3, 4]).ToArray(), offset, $"pcapng simple packet block at offset {offset}: interface 0*");
    }

    [Fact]
    public void Packet_block_for_an_undefined_interface_is_rejected()
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;

        AssertFormatError(builder.Packet(3, 0, [1]).ToArray(), offset, $"pcapng packet block at offset {offset}: interface 3*");
    }

    [Fact]
    public void Enhanced_packet_block_whose_captured_length_overruns_the_block_is_rejected()
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;
        byte[] capture = builder.Enhanced(0, 0, Frames.Pattern(20), capturedLength: 25).ToArray();

        AssertFormatError(capture, offset, $"*offset {offset}: captured length 25 exceeds the 20 bytes*");
    }

    [Fact]
    public void Enhanced_packet_block_too_short_for_its_fields_is_rejected()
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;
        byte[] capture = builder.Block(6, new byte[16]).ToArray();

        AssertFormatError(capture, offset, $"pcapng enhanced packet block at offset {offset}: total length 28 is too short*");
    }

    [Fact]
    public void Interface_description_block_too_short_for_its_fields_is_rejected()
    {
        var builder = new PcapNgBuilder().Section();
        long offset = builder.Length;
        byte[] capture = builder.Block(1, [1, 0, 0, 0]).ToArray();

        AssertFormatError(capture, offset, $"pcapng interface description block at offset {offset}: total length 16 is too short*");
    }

    [Fact]
    public void Interface_option_that_overruns_its_block_is_rejected()
    {
        var builder = new PcapNgBuilder().Section();
        long offset = builder.Length;
        byte[] body = [.. builder.U16(1), 0, 0, .. builder.U32(0), .. builder.U16(9), .. builder.U16(40), 6, 0, 0, 0];
        byte[] capture = builder.Block(1, body).ToArray();

        AssertFormatError(capture, offset, $"*interface description block at offset {offset}: option 9 is 40 bytes long*");
    }

    [Fact]
    public void Timestamp_beyond_the_range_of_64_bit_nanoseconds_is_rejected()
    {
        var builder = new PcapNgBuilder().Section().Interface(1, tsResolution: 9);
        long offset = builder.Length;
        byte[] capture = builder.Enhanced(0, ulong.MaxValue, [1]).ToArray();

        AssertFormatError(capture, offset, $"*offset {offset}: timestamp 18446744073709551615 is out of range*");
    }

    [Fact]
    public void Interface_time_offset_beyond_the_range_of_64_bit_nanoseconds_is_rejected()
    {
        var builder = new PcapNgBuilder().Section();
        long offset = builder.Length;

        AssertFormatError(builder.Interface(1, tsOffsetSeconds: long.MaxValue / 100).ToArray(), offset, $"*offset {offset}: if_tsoffset*out of range");
    }

    [Fact]
    public void Pcap_captured_length_above_256_MiB_is_rejected_without_waiting_for_the_data()
    {
        var builder = new PcapBuilder().Record(1, 0, Frames.Pattern(10));
        long offset = builder.Length;
        byte[] capture = builder.Record(2, 0, Frames.Pattern(10), capturedLength: 256 * 1024 * 1024 + 1).ToArray();

        AssertFormatError(capture, offset, $"pcap record at offset {offset}: captured length 268435457 exceeds the 268435456-byte limit");
    }

    [Fact]
    public void Pcap_captured_length_of_exactly_256_MiB_that_the_file_lacks_is_a_truncation_not_an_error()
    {
        var builder = new PcapBuilder().Record(1, 0, Frames.Pattern(10));
        long offset = builder.Length;
        byte[] capture = builder.Record(2, 0, Frames.Pattern(10), capturedLength: 256 * 1024 * 1024).ToArray();

        CaptureContents.Read(capture).TruncatedAt.Should().Be(offset);
    }

    [Fact]
    public void Pcap_original_length_beyond_2_GiB_is_rejected()
    {
        var builder = new PcapBuilder();
        long offset = builder.Length;
        byte[] capture = builder.Record(2, 0, Frames.Pattern(10), originalLength: 0x8000_0000).ToArray();

        AssertFormatError(capture, offset, $"pcap record at offset {offset}: original length 2147483648 is out of range");
    }

    [Fact]
    public void Pcapng_packet_block_longer_than_the_limit_is_rejected_without_waiting_for_the_data()
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;
        byte[] capture = builder.Block(6, new byte[40], totalLength: 0x2000_0000).ToArray();

        AssertFormatError(capture, offset, $"pcapng enhanced packet block at offset {offset}: total length 536870912 exceeds*limit");
    }

    [Fact]
    public async Task Error_is_raised_the_same_way_by_the_async_path()
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        long offset = builder.Length;
        byte[] capture = builder.Enhanced(4, 0, [1]).ToArray();

        Func<Task> read = () => CaptureContents.ReadAsync(capture, bufferSize: 16, maxChunk: 5, yieldingStream: true);

        (await read.Should().ThrowAsync<CaptureFormatException>().WithMessage($"*offset {offset}*"))
            .Which.Offset.Should().Be(offset);
    }

    private static void AssertFormatError(byte[] capture, long offset, string messagePattern)
    {
        // Whole-buffer and byte-by-byte delivery must fail the same way.
        foreach (int maxChunk in new[] { 0, 1 })
        {
            Action read = () => CaptureContents.Read(capture, bufferSize: maxChunk == 0 ? null : 16, maxChunk: maxChunk);

            read.Should().Throw<CaptureFormatException>()
                .WithMessage(messagePattern)
                .Which.Offset.Should().Be(offset);
        }
    }
}
