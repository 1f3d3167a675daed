namespace Conntrack.Pcap.Tests;

public class PcapNgReaderTests
{
    [Fact]
    public void Enhanced_packet_blocks_default_to_microsecond_timestamps()
    {
        byte[] frame = Frames.Pattern(61);
        byte[] capture = new PcapNgBuilder().Section().Interface(1)
            .Enhanced(0, 1_700_000_000_123_456UL, frame, originalLength: 1000)
            .ToArray();

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Format.Should().Be(CaptureFormat.PcapNg);
        RecordCopy record = contents.Records.Single();
        record.TimestampNs.Should().Be(1_700_000_000_123_456_000);
        record.Data.Should().Equal(frame);
        record.OriginalLength.Should().Be(1000);
        record.LinkType.Should().Be(LinkType.Ethernet);
        record.Index.Should().Be(0);
    }

    [Fact]
    public void Sections_of_different_byte_order_are_each_read_in_their_own_byte_order()
    {
        var builder = new PcapNgBuilder().Section(bigEndian: false).Interface(1).Enhanced(0, 1_000_000, Frames.Pattern(40, 1));
        long secondSection = builder.Length;
        builder.Section(bigEndian: true).Interface(101).Enhanced(0, 2_000_000, Frames.Pattern(44, 2));
        long lastPacket = builder.Length;
        byte[] capture = builder.Enhanced(0, 3_000_000, Frames.Pattern(48, 3)).ToArray();

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Records.Select(r => r.TimestampNs).Should().Equal(1_000_000_000, 2_000_000_000, 3_000_000_000);
        contents.Records.Select(r => r.LinkType).Should().Equal(LinkType.Ethernet, LinkType.Raw, LinkType.Raw);
        contents.Records.Select(r => r.Data.Length).Should().Equal(40, 44, 48);
        contents.Records[2].Data.Should().Equal(Frames.Pattern(48, 3));
        contents.Records[2].FileOffset.Should().Be(lastPacket);
        secondSection.Should().BeLessThan(lastPacket);
    }

    [Fact]
    public void New_section_forgets_the_interfaces_of_the_previous_section()
    {
        var builder = new PcapNgBuilder().Section().Interface(1).Interface(1).Enhanced(1, 0, [1, 2, 3])
            .Section(bigEndian: true).Interface(1);
        long offending = builder.Length;
        byte[] capture = builder.Enhanced(1, 0, [1, 2, 3]).ToArray();

        Action read = () => CaptureContents.Read(capture);

        read.Should().Throw<CaptureFormatException>()
            .WithMessage($"*offset {offending}*interface 1 is not defined*")
            .Which.Offset.Should().Be(offending);
    }

    [Theory]
    [InlineData((byte)9, 1_234_567_890_123UL, 1_234_567_890_123L)]     // nanoseconds
    [InlineData((byte)6, 1_234_567UL, 1_234_567_000L)]                 // microseconds, written explicitly
    [InlineData((byte)3, 1_700_000_000_123UL, 1_700_000_000_123_000_000L)]
    [InlineData((byte)0, 1_700_000_000UL, 1_700_000_000_000_000_000L)] // seconds
    [InlineData((byte)12, 5_000_123_456UL, 5_000_123L)]                // picoseconds, truncated to ns
    [InlineData((byte)30, ulong.MaxValue, 0L)]                         // absurdly fine: everything rounds to 0
    public void If_tsresol_power_of_ten_sets_the_timestamp_unit(byte resolution, ulong ticks, long expectedNs)
    {
        byte[] capture = new PcapNgBuilder().Section().Interface(1, tsResolution: resolution)
            .Enhanced(0, ticks, Frames.Pattern(20))
            .ToArray();

        CaptureContents.Read(capture).Records.Single().TimestampNs.Should().Be(expectedNs);
    }

    [Theory]
    [InlineData((byte)(0x80 | 20), (3UL << 20) + (1UL << 19), 3_500_000_000L)]  // 2^-20 s units: 3.5 s
    [InlineData((byte)(0x80 | 0), 7UL, 7_000_000_000L)]                         // 2^0: seconds
    [InlineData((byte)(0x80 | 30), 1UL << 30, 1_000_000_000L)]                  // 2^-30 s units: 1 s
    [InlineData((byte)(0x80 | 30), 3UL, 2L)]                                    // 2.79 ns truncated to 2
    public void If_tsresol_power_of_two_sets_the_timestamp_unit(byte resolution, ulong ticks, long expectedNs)
    {
        byte[] capture = new PcapNgBuilder().Section().Interface(1, tsResolution: resolution)
            .Enhanced(0, ticks, Frames.Pattern(20))
            .ToArray();

        CaptureContents.Read(capture).Records.Single().TimestampNs.Should().Be(expectedNs);
    }

    [Theory]
    [InlineData(1_000_000L, 1_001_000_000_000_500L)]
    [InlineData(-1L, 999_000_000_500L)]
    public void If_tsoffset_adds_its_seconds_to_every_timestamp(long offsetSeconds, long expectedNs)
    {
        byte[] capture = new PcapNgBuilder().Section().Interface(1, tsResolution: 9, tsOffsetSeconds: offsetSeconds)
            .Enhanced(0, 1_000_000_000_500UL, Frames.Pattern(20))
            .ToArray();

        CaptureContents.Read(capture).Records.Single().TimestampNs.Should().Be(expectedNs);
    }

    [Fact]
    public void Each_interface_has_its_own_link_type_and_timestamp_unit()
    {
        byte[] capture = new PcapNgBuilder().Section()
            .Interface(1)
            .Interface(113, tsResolution: 9)
            .Interface(228, tsResolution: 3)
            .Enhanced(2, 5, Frames.Pattern(20))
            .Enhanced(0, 5, Frames.Pattern(20))
            .Enhanced(1, 5, Frames.Pattern(20))
            .ToArray();

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Records.Select(r => r.LinkType).Should().Equal(LinkType.Ipv4, LinkType.Ethernet, LinkType.LinuxSll);
        contents.Records.Select(r => r.TimestampNs).Should().Equal(5_000_000, 5_000, 5);
    }

    [Fact]
    public void Obsolete_packet_blocks_are_read_like_enhanced_packet_blocks()
    {
        byte[] frame = Frames.Pattern(57);
        byte[] capture = new PcapNgBuilder().Section().Interface(0).Interface(1)
            .Packet(1, 1_700_000_000_000_001UL, frame, originalLength: 80)
            .ToArray();

        RecordCopy record = CaptureContents.Read(capture).Records.Single();

        record.LinkType.Should().Be(LinkType.Ethernet);
        record.TimestampNs.Should().Be(1_700_000_000_000_001_000);
        record.Data.Should().Equal(frame);
        record.OriginalLength.Should().Be(80);
    }

    [Fact]
    public void Simple_packet_blocks_use_interface_zero_and_have_no_timestamp()
    {
        byte[] capture = new PcapNgBuilder().Section().Interface(101).Interface(1)
            .Simple(61, Frames.Pattern(61))
            .ToArray();

        RecordCopy record = CaptureContents.Read(capture).Records.Single();

        record.LinkType.Should().Be(LinkType.Raw);
        record.TimestampNs.Should().Be(0);
        record.Data.Should().Equal(Frames.Pattern(61), "the padding after the frame is not part of it");
        record.OriginalLength.Should().Be(61);
    }

    [Fact]
    public void Simple_packet_block_of_a_snapped_frame_holds_what_the_block_holds()
    {
        byte[] capture = new PcapNgBuilder().Section().Interface(1)
            .Simple(1500, Frames.Pattern(64))
            .ToArray();

        RecordCopy record = CaptureContents.Read(capture).Records.Single();

        record.Data.Should().Equal(Frames.Pattern(64));
        record.OriginalLength.Should().Be(1500);
    }

    [Fact]
    public void Blocks_other_than_packets_and_interfaces_are_skipped()
    {
        var builder = new PcapNgBuilder();
        builder.Section(options: builder.Option(4, "test shb"u8.ToArray()).Concat(builder.Option(0, [])).ToArray())
            .Block(4, Frames.Pattern(30))                 // name resolution
            .Interface(1)
            .Block(5, Frames.Pattern(28))                 // interface statistics
            .Enhanced(0, 1, Frames.Pattern(20, 1))
            .Block(0x0A, Frames.Pattern(40))              // decryption secrets
            .Block(0x00000BAD, Frames.Pattern(17))        // custom, copyable
            .Block(0x40000BAD, Frames.Pattern(3))         // custom, not copyable
            .Block(0x12345678, [])                        // unknown, empty body
            .Simple(20, Frames.Pattern(20, 2))
            .Block(0x80000001, Frames.Pattern(100));      // systemd journal export
        long last = builder.Length;
        byte[] capture = builder.Packet(0, 2, Frames.Pattern(20, 3)).ToArray();

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Records.Select(r => r.Data).Should().BeEquivalentTo(
            [Frames.Pattern(20, 1), Frames.Pattern(20, 2), Frames.Pattern(20, 3)], o => o.WithStrictOrdering());
        contents.Records.Select(r => r.Index).Should().Equal(0, 1, 2);
        contents.Records[2].FileOffset.Should().Be(last);
        contents.TruncatedAt.Should().BeNull();
    }

    [Fact]
    public void Enhanced_packet_block_options_after_the_data_are_ignored()
    {
        var builder = new PcapNgBuilder().Section().Interface(1);
        byte[] options = [.. builder.Option(1, "a comment"u8.ToArray()), .. builder.Option(2, builder.U32(3)), .. builder.Option(0, [])];
        byte[] capture = builder.Enhanced(0, 9, Frames.Pattern(33), options: options).ToArray();

        CaptureContents.Read(capture).Records.Single().Data.Should().Equal(Frames.Pattern(33));
    }

    [Theory]
    [InlineData(16)]
    [InlineData(1000)]
    [InlineData(null)]
    public void Blocks_larger_than_a_pipe_segment_are_read_and_skipped_whole(int? bufferSize)
    {
        byte[] big = Frames.Pattern(200_000, seed: 5);
        byte[] capture = new PcapNgBuilder().Section().Interface(1)
            .Block(0x00000BAD, Frames.Pattern(300_000))
            .Enhanced(0, 1, big)
            .Block(0x12345678, Frames.Pattern(150_000))
            .Enhanced(0, 2, Frames.Pattern(64, seed: 6))
            .ToArray();

        CaptureContents contents = CaptureContents.Read(capture, bufferSize);

        contents.Records.Should().HaveCount(2);
        contents.Records[0].Data.Should().Equal(big);
        contents.Records[1].Data.Should().Equal(Frames.Pattern(64, seed: 6));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(13)]
    public void Blocks_split_by_a_trickling_stream_at_every_boundary_read_the_same(int maxChunk)
    {
        var builder = new PcapNgBuilder().Section().Interface(1).Interface(113, tsResolution: 9);
        for (int i = 0; i < 30; i++)
        {
            builder.Enhanced((uint)(i % 2), (ulong)i * 1000, Frames.Pattern(i * 5, seed: i));
            if (i % 7 == 0)
            {
                builder.Block(5, Frames.Pattern(i));
                builder.Section(bigEndian: i % 2 == 0).Interface(1).Interface(113, tsResolution: 9);
            }
        }

        byte[] capture = builder.ToArray();
        CaptureContents expected = CaptureContents.Read(capture);

        CaptureContents trickled = CaptureContents.Read(capture, bufferSize: 16, maxChunk: maxChunk);

        trickled.Should().BeEquivalentTo(expected);
        trickled.Records.Should().HaveCount(30);
    }

    [Fact]
    public void Final_packet_block_cut_short_is_ignored_and_its_offset_reported()
    {
        var builder = new PcapNgBuilder().Section().Interface(1).Enhanced(0, 1, Frames.Pattern(100));
        long last = builder.Length;
        byte[] capture = builder.Enhanced(0, 2, Frames.Pattern(100)).ToArray()[..^30];

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Records.Should().HaveCount(1);
        contents.TruncatedAt.Should().Be(last);
    }

    [Fact]
    public void Final_skipped_block_cut_short_is_ignored_and_its_offset_reported()
    {
        var builder = new PcapNgBuilder().Section().Interface(1).Enhanced(0, 1, Frames.Pattern(100));
        long last = builder.Length;
        byte[] capture = builder.Block(5, Frames.Pattern(5000)).ToArray()[..^2];

        CaptureContents contents = CaptureContents.Read(capture, bufferSize: 64);

        contents.Records.Should().HaveCount(1);
        contents.TruncatedAt.Should().Be(last);
    }

    [Fact]
    public void Final_block_header_cut_short_is_ignored_and_its_offset_reported()
    {
        var builder = new PcapNgBuilder().Section().Interface(1).Enhanced(0, 1, Frames.Pattern(100));
        long last = builder.Length;
        byte[] capture = builder.Raw([6, 0, 0, 0, 0x40]).ToArray();

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Records.Should().HaveCount(1);
        contents.TruncatedAt.Should().Be(last);
    }

    [Fact]
    public void Section_without_packets_yields_nothing()
    {
        CaptureContents contents = CaptureContents.Read(new PcapNgBuilder().Section().Interface(1).ToArray());

        contents.Records.Should().BeEmpty();
        contents.TruncatedAt.Should().BeNull();
        contents.Format.Should().Be(CaptureFormat.PcapNg);
    }
}
