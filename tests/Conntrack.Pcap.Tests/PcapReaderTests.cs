namespace Conntrack.Pcap.Tests;

public class PcapReaderTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Microsecond_pcap_timestamps_become_nanoseconds_since_the_epoch(bool bigEndian)
    {
        byte[] capture = new PcapBuilder(bigEndian: bigEndian)
            .Record(1_700_000_000, 123_456, Frames.Pattern(60))
            .Record(1_700_000_001, 999_999, Frames.Pattern(70))
            .ToArray();

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Format.Should().Be(CaptureFormat.Pcap);
        contents.Records.Select(r => r.TimestampNs).Should().Equal(1_700_000_000_123_456_000, 1_700_000_001_999_999_000);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Nanosecond_pcap_timestamps_keep_every_nanosecond(bool bigEndian)
    {
        byte[] capture = new PcapBuilder(bigEndian: bigEndian, nanosecond: true)
            .Record(1_418_145_369, 924_505_488, Frames.Pattern(76))
            .ToArray();

        CaptureContents.Read(capture).Records.Single().TimestampNs.Should().Be(1_418_145_369_924_505_488);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Every_magic_in_either_byte_order_yields_the_same_frames_and_lengths(bool bigEndian, bool nanosecond)
    {
        byte[] first = Frames.Pattern(54, seed: 1);
        byte[] second = Frames.Pattern(1514, seed: 2);
        byte[] capture = new PcapBuilder(linkType: 113, bigEndian: bigEndian, nanosecond: nanosecond)
            .Record(1, 2, first, originalLength: 60)
            .Record(3, 4, second)
            .ToArray();

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Records.Should().HaveCount(2);
        contents.Records[0].Data.Should().Equal(first);
        contents.Records[0].OriginalLength.Should().Be(60);
        contents.Records[0].LinkType.Should().Be(LinkType.LinuxSll);
        contents.Records[1].Data.Should().Equal(second);
        contents.Records[1].OriginalLength.Should().Be(1514);
        contents.TruncatedAt.Should().BeNull();
    }

    [Fact]
    public void Record_reports_its_file_offset_and_zero_based_index()
    {
        byte[] capture = new PcapBuilder()
            .Record(1, 0, Frames.Pattern(10))
            .Record(2, 0, Frames.Pattern(20))
            .Record(3, 0, [])
            .ToArray();

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Records.Select(r => r.FileOffset).Should().Equal(24, 24 + 16 + 10, 24 + 16 + 10 + 16 + 20);
        contents.Records.Select(r => r.Index).Should().Equal(0, 1, 2);
        contents.Records[2].Data.Should().BeEmpty();
    }

    [Fact]
    public void Link_type_ignores_the_fcs_bits_in_the_upper_four_bits()
    {
        byte[] capture = new PcapBuilder(linkType: 0xF000_0001).Record(1, 0, Frames.Pattern(60)).ToArray();

        CaptureContents.Read(capture).Records.Single().LinkType.Should().Be(LinkType.Ethernet);
    }

    [Fact]
    public void Unsupported_link_type_is_reported_in_the_record_not_rejected()
    {
        byte[] capture = new PcapBuilder(linkType: 147).Record(1, 0, Frames.Pattern(30)).ToArray();

        RecordCopy record = CaptureContents.Read(capture).Records.Single();

        record.LinkType.Should().Be((LinkType)147);
        LinkLayer.IsSupported(record.LinkType).Should().BeFalse();
    }

    [Fact]
    public void Header_only_pcap_has_no_records_and_is_not_truncated()
    {
        CaptureContents contents = CaptureContents.Read(new PcapBuilder().ToArray());

        contents.Records.Should().BeEmpty();
        contents.TruncatedAt.Should().BeNull();
        contents.Format.Should().Be(CaptureFormat.Pcap);
    }

    [Fact]
    public void Final_record_cut_short_in_its_data_is_ignored_and_its_offset_reported()
    {
        var builder = new PcapBuilder().Record(1, 0, Frames.Pattern(100)).Record(2, 0, Frames.Pattern(100));
        long lastOffset = builder.Length;
        byte[] full = builder.Record(3, 0, Frames.Pattern(100)).ToArray();
        byte[] capture = full[..^40];

        using CaptureReader reader = CaptureContents.CreateReader(capture);
        reader.ReadNext(out _).Should().BeTrue();
        reader.ReadNext(out _).Should().BeTrue();
        reader.TruncatedAt.Should().BeNull("the truncation is only known when the last record is reached");

        reader.ReadNext(out _).Should().BeFalse();
        reader.TruncatedAt.Should().Be(lastOffset);
        reader.ReadNext(out _).Should().BeFalse("reading stays at the end");
    }

    [Fact]
    public void Final_record_cut_short_in_its_header_is_ignored_and_its_offset_reported()
    {
        var builder = new PcapBuilder().Record(1, 0, Frames.Pattern(100));
        long lastOffset = builder.Length;
        byte[] capture = builder.Raw(new byte[10]).ToArray();

        CaptureContents contents = CaptureContents.Read(capture);

        contents.Records.Should().HaveCount(1);
        contents.TruncatedAt.Should().Be(lastOffset);
    }

    [Fact]
    public void Format_is_unknown_until_the_first_read()
    {
        using CaptureReader reader = CaptureContents.CreateReader(new PcapBuilder().Record(1, 0, [1]).ToArray());

        reader.Format.Should().Be(CaptureFormat.Unknown);
        reader.ReadNext(out _).Should().BeTrue();
        reader.Format.Should().Be(CaptureFormat.Pcap);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(100)]
    [InlineData(4096)]
    [InlineData(null)]
    public void Records_larger_than_a_pipe_segment_are_returned_whole(int? bufferSize)
    {
        byte[] big1 = Frames.Pattern(200_000, seed: 1);
        byte[] small = Frames.Pattern(60, seed: 2);
        byte[] big2 = Frames.Pattern(300_001, seed: 3);
        byte[] capture = new PcapBuilder()
            .Record(1, 0, big1).Record(2, 0, small).Record(3, 0, big2).Record(4, 0, small)
            .ToArray();

        CaptureContents contents = CaptureContents.Read(capture, bufferSize);

        contents.Records.Select(r => r.Data.Length).Should().Equal(200_000, 60, 300_001, 60);
        contents.Records[0].Data.Should().Equal(big1);
        contents.Records[1].Data.Should().Equal(small);
        contents.Records[2].Data.Should().Equal(big2);
        contents.Records[3].Data.Should().Equal(small);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(29)]
    public void Records_split_by_a_trickling_stream_at_every_boundary_read_the_same(int maxChunk)
    {
        var builder = new PcapBuilder(bigEndian: true, nanosecond: true);
        for (int i = 0; i < 40; i++)
        {
            builder.Record((uint)i, (uint)(i * 1000), Frames.Pattern(i * 3, seed: i));
        }

        byte[] capture = builder.ToArray();
        CaptureContents expected = CaptureContents.Read(capture);

        CaptureContents trickled = CaptureContents.Read(capture, bufferSize: 16, maxChunk: maxChunk);

        trickled.Should().BeEquivalentTo(expected);
        trickled.Records.Should().HaveCount(40);
    }

    [Fact]
    public async Task Async_reading_yields_the_same_records_as_sync_reading()
    {
        var builder = new PcapBuilder();
        for (int i = 0; i < 50; i++)
        {
            builder.Record((uint)i, 5, Frames.Pattern(i * 37 % 1600, seed: i));
        }

        byte[] capture = builder.Raw(new byte[7]).ToArray();
        CaptureContents expected = CaptureContents.Read(capture);

        CaptureContents actual = await CaptureContents.ReadAsync(capture, bufferSize: 64, maxChunk: 50, yieldingStream: true);

        actual.Should().BeEquivalentTo(expected);
        actual.TruncatedAt.Should().NotBeNull();
    }

    [Fact]
    public void Sync_reading_works_over_a_stream_that_completes_asynchronously()
    {
        var builder = new PcapBuilder();
        for (int i = 0; i < 20; i++)
        {
            builder.Record((uint)i, 0, Frames.Pattern(500, seed: i));
        }

        byte[] capture = builder.ToArray();

        CaptureContents contents = CaptureContents.Read(capture, bufferSize: 256, maxChunk: 300);
        using CaptureReader reader = CaptureContents.CreateReader(capture, bufferSize: 256, maxChunk: 300, yieldingStream: true);
        int count = 0;
        while (reader.ReadNext(out CaptureRecord record))
        {
            record.Data.ToArray().Should().Equal(contents.Records[count].Data);
            count++;
        }

        count.Should().Be(20);
    }
}
