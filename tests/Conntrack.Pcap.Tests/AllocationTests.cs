namespace Conntrack.Pcap.Tests;

public class AllocationTests
{
    // A few pipe segments, a cancellation source and the like, once per reader (their number depends on how
    // the pipe's pools were left by earlier readers in the process, so this is a loose bound).
    private const long FixedBudget = 16 * 1024;

    // Reading 3000 more records may cost less than this. Any object allocated per record (24 bytes at least)
    // would cost 72 000 bytes; the pipe's pools settle in during a long read for a few bytes per record on
    // average with segments as small as the straddling test's, which is not a per-record allocation.
    private const long PerRecordBudget = 3000 * 4;

    [Fact]
    public void Reading_a_pcap_allocates_nothing_per_record()
    {
        static byte[] Capture(int n)
        {
            var builder = new PcapBuilder();
            for (int i = 0; i < n; i++)
            {
                builder.Record((uint)i, (uint)i, Frames.Ethernet(i % 2 == 0 ? (ushort)0x0800 : (ushort)0x86DD, Frames.Ipv4(i % 1400)));
            }

            return builder.ToArray();
        }

        long small = MeasureReadingAll(Capture(1000), bufferSize: null, expectedRecords: 1000);
        long large = MeasureReadingAll(Capture(4000), bufferSize: null, expectedRecords: 4000);

        small.Should().BeLessThan(FixedBudget);
        (large - small).Should().BeLessThan(PerRecordBudget, "3000 more records must not allocate more");
    }

    [Fact]
    public void Reading_a_pcapng_whose_records_straddle_segments_allocates_nothing_per_record()
    {
        static byte[] Capture(int n)
        {
            var builder = new PcapNgBuilder().Section().Interface(1).Interface(113, tsResolution: 9);
            for (int i = 0; i < n; i++)
            {
                builder.Enhanced((uint)(i % 2), (ulong)i, Frames.Ethernet(0x0800, Frames.Ipv4(i % 1400)));
                if (i % 100 == 0)
                {
                    builder.Block(5, new byte[64]);
                }
            }

            return builder.ToArray();
        }

        long small = MeasureReadingAll(Capture(1000), bufferSize: 512, expectedRecords: 1000);
        long large = MeasureReadingAll(Capture(4000), bufferSize: 512, expectedRecords: 4000);

        small.Should().BeLessThan(FixedBudget);
        (large - small).Should().BeLessThan(PerRecordBudget, "3000 more records must not allocate more");
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
