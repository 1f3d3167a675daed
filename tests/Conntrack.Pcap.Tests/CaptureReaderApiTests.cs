namespace Conntrack.Pcap.Tests;

public class CaptureReaderApiTests
{
    [Fact]
    public void Open_reads_a_capture_file_from_disk_and_closes_it_when_disposed()
    {
        string path = Path.Combine(Path.GetTempPath(), $"conntrack-pcap-{Guid.NewGuid():N}.pcap");
        File.WriteAllBytes(path, new PcapBuilder().Record(1, 2, Frames.Pattern(70)).Record(3, 4, Frames.Pattern(80)).ToArray());
        try
        {
            using (CaptureReader reader = CaptureReader.Open(path))
            {
                reader.ReadNext(out CaptureRecord first).Should().BeTrue();
                first.Data.ToArray().Should().Equal(Frames.Pattern(70));
                reader.ReadNext(out _).Should().BeTrue();
                reader.ReadNext(out _).Should().BeFalse();
            }

            Action delete = () => File.Delete(path);
            delete.Should().NotThrow();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Open_of_a_missing_file_throws_the_file_system_error()
    {
        Action open = () => CaptureReader.Open(Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.pcap"));

        open.Should().Throw<FileNotFoundException>();
    }

    [Fact]
    public void Dispose_closes_the_stream_unless_asked_to_leave_it_open()
    {
        byte[] capture = new PcapBuilder().Record(1, 0, [1]).ToArray();
        var owned = new MemoryStream(capture);
        var borrowed = new MemoryStream(capture);

        new CaptureReader(owned).Dispose();
        new CaptureReader(borrowed, leaveOpen: true).Dispose();

        owned.CanRead.Should().BeFalse();
        borrowed.CanRead.Should().BeTrue();
    }

    [Fact]
    public async Task DisposeAsync_closes_the_stream()
    {
        var stream = new MemoryStream(new PcapBuilder().ToArray());

        await new CaptureReader(stream).DisposeAsync();

        stream.CanRead.Should().BeFalse();
    }

    [Fact]
    public void Reading_after_dispose_throws_ObjectDisposedException()
    {
        var reader = new CaptureReader(new MemoryStream(new PcapBuilder().Record(1, 0, [1]).ToArray()));
        reader.Dispose();

        Action read = () => reader.ReadNext(out _);

        read.Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public async Task Current_holds_the_record_read_by_ReadNextAsync()
    {
        byte[] capture = new PcapNgBuilder().Section().Interface(228).Enhanced(0, 5, Frames.Ipv4(3)).ToArray();
        await using var reader = new CaptureReader(new MemoryStream(capture));

        (await reader.ReadNextAsync()).Should().BeTrue();

        reader.Current.LinkType.Should().Be(LinkType.Ipv4);
        reader.Current.Data.ToArray().Should().Equal(Frames.Ipv4(3));
        reader.Current.TimestampNs.Should().Be(5000);
        (await reader.ReadNextAsync()).Should().BeFalse();
    }

    [Fact]
    public void Current_before_any_read_or_after_the_end_throws_InvalidOperationException()
    {
        using var reader = new CaptureReader(new MemoryStream(new PcapBuilder().ToArray()));

        Action before = () => _ = reader.Current;
        before.Should().Throw<InvalidOperationException>();

        reader.ReadNext(out _).Should().BeFalse();
        Action after = () => _ = reader.Current;
        after.Should().Throw<InvalidOperationException>();
    }

    [Fact]
    public async Task Cancelled_read_throws_OperationCanceledException_and_reading_can_resume()
    {
        byte[] capture = new PcapBuilder().Record(1, 0, Frames.Pattern(10)).Record(2, 0, Frames.Pattern(10)).ToArray();
        await using CaptureReader reader = CaptureContents.CreateReader(capture, bufferSize: 16, maxChunk: 4, yieldingStream: true);
        (await reader.ReadNextAsync()).Should().BeTrue();

        Func<Task> cancelled = async () => await reader.ReadNextAsync(new CancellationToken(canceled: true));
        await cancelled.Should().ThrowAsync<OperationCanceledException>();

        (await reader.ReadNextAsync()).Should().BeTrue();
        reader.Current.Data.ToArray().Should().Equal(Frames.Pattern(10));
        reader.Current.Index.Should().Be(1);
        (await reader.ReadNextAsync()).Should().BeFalse();
    }

    [Fact]
    public void Stream_errors_pass_through_unchanged()
    {
        using var reader = new CaptureReader(new FailingStream());

        Action read = () => reader.ReadNext(out _);

        read.Should().Throw<IOException>().WithMessage("disk on fire");
    }

    [Fact]
    public void Record_data_stays_valid_until_the_next_read_even_when_it_straddles_segments()
    {
        byte[] capture = new PcapBuilder().Record(1, 0, Frames.Pattern(5000, 1)).Record(2, 0, Frames.Pattern(5000, 2)).ToArray();
        using CaptureReader reader = CaptureContents.CreateReader(capture, bufferSize: 100, maxChunk: 333);

        reader.ReadNext(out CaptureRecord first).Should().BeTrue();
        first.Data.ToArray().Should().Equal(Frames.Pattern(5000, 1));
        reader.ReadNext(out CaptureRecord second).Should().BeTrue();
        second.Data.ToArray().Should().Equal(Frames.Pattern(5000, 2));
    }

    private sealed class FailingStream : MemoryStream
    {
        public override int Read(Span<byte> buffer) => throw new IOException("disk on fire");

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            throw new IOException("disk on fire");
    }
}
