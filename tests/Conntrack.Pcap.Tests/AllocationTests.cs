namespace Conntrack.Pcap.Tests;

public class AllocationTests
{
    // A few pipe segments, a cancellation source and the like, once per reader; nothing per record.
    private const long Budget = 4096;

    [Fact]
    public void Reading_a_thousand_record_pcap_allocates_nothing_per_record()
    {
        var builder = new PcapBuilder();
        for (int i = 0; i < 1000; i++)
        {
            builder.Record((uint)i, (uint)i, Frames.Ethernet(i % 2 == 0 ? (ushort)0x0800 : (ushort)0x86DD, Frames.Ipv4(i % 1400)));
        }

        long allocated = MeasureReadingAll(builder.ToArray(), bufferSize: null, expectedRecords: 1000);

        allocated.Should().BeLessThan(Budget);
    }

    [Fact]
    public void Reading_a_thousand_record_pcapng_whose_records_straddle_segments_allocates_nothing_per_record()
    {
        var builder = new PcapNgBuilder().Section().Interface(1).Interface(113, tsResolution: 9);
        for (int i = 0; i < 1000; i++)
        {
            builder.Enhanced((uint)(i % 2), (ulong)i, Frames.Ethernet(0x0800, Frames.Ipv4(i % 1400)));
            if (i % 100 == 0)
            {
                builder.Block(5, new byte[64]);
            }
        }

        long allocated = MeasureReadingAll(builder.ToArray(), bufferSize: 512, expectedRecords: 1000);

        allocated.Should().BeLessThan(Budget);
    }

    private static long MeasureReadingAll(byte[] capture, int? bufferSize, int expectedRecords)
    {
        // Warm-up: JIT, the pools behind the pipe, the scratch buffer's final size.
        ReadAll(capture, bufferSize).Should().Be(expectedRecords);
        ReadAll(capture, bufferSize).Should().Be(expectedRecords);

        using CaptureReader reader = CaptureContents.CreateReader(capture, bufferSize);
        reader.ReadNext(out _).Should().BeTrue();      // the reader's first-read setup is not per record

        long before = GC.GetAllocatedBytesForCurrentThread();
        int count = 1 + Drain(reader);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        count.Should().Be(expectedRecords);
        return allocated;
    }

    private static int ReadAll(byte[] capture, int? bufferSize)
    {
        using CaptureReader reader = CaptureContents.CreateReader(capture, bufferSize);
        return Drain(reader);
    }

    private static int Drain(CaptureReader reader)
    {
        int count = 0;
        long ipBytes = 0;
        while (reader.ReadNext(out CaptureRecord record))
        {
            if (LinkLayer.Decode(record.LinkType, record.Data, out int offset) != FrameKind.NonIp)
            {
                ipBytes += record.Data.Length - offset;
            }

            count++;
        }

        return ipBytes > 0 ? count : -1;
    }
}
