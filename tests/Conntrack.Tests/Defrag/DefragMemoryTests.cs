using Conntrack.Defrag;
using Conntrack.Packets;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Defrag;

// inet_frag_find(): "if (!high_thresh || frag_mem_limit(fqdir) > high_thresh) return NULL" - checked
// before the lookup, so above the threshold no fragment is taken, not even for a queue that exists. The
// charges (queue size + truesize) were measured on the kernel: see FragmentMemory.
public class DefragMemoryTests
{
    private const long S = 1_000_000_000L;
    private const long T0 = 1000 * S;
    private readonly byte[] _out = new byte[Defragmenter.MaxDatagram];

    [Theory]
    [InlineData(0, 832)]
    [InlineData(226, 832)]
    [InlineData(227, 1280)]
    [InlineData(674, 1280)]
    [InlineData(675, 2304)]
    [InlineData(1500, 2304)]
    [InlineData(3746, 4352)]
    [InlineData(65535, 131328)]
    public void Fragment_charge_follows_the_measured_kernel_truesize(int ipLength, int truesize)
    {
        FragmentMemory.Truesize(ipLength).Should().Be(truesize);
    }

    [Fact]
    public void Each_held_fragment_is_charged_its_truesize_plus_the_queue_size()
    {
        var d = new Defragmenter(new ConntrackOptions());
        d.Offer(Fragmenter.V4Raw("192.0.2.1", "192.0.2.2", 17, 1, 0, true, 300), T0, _out).Should().Be(DefragResult.Held);
        d.Ipv4Memory.Should().Be(FragmentMemory.Ipv4QueueSize + 1280);
        d.Offer(Fragmenter.V6(PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1, 2, 1392), 0, 1400, true), T0, _out).Should().Be(DefragResult.Held);
        d.Ipv6Memory.Should().Be(FragmentMemory.Ipv6QueueSize + 2304);
        d.MemoryInUse.Should().Be(200 + 1280 + 184 + 2304);
    }

    [Fact]
    public void Above_the_high_threshold_every_fragment_is_dropped_even_for_existing_queues()
    {
        var d = new Defragmenter(new ConntrackOptions { Ipv4FragmentLowThreshold = 50_000, Ipv4FragmentHighThreshold = 100_000 });
        var p = PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 1000, 7, 40);
        d.Offer(Fragmenter.V4(p, 0, 16, true, id: 1), T0, _out).Should().Be(DefragResult.Held);

        // Each queue of one 320-byte fragment costs 200 + 1280: queues are created while the memory before
        // them is at most 100 000, i.e. 68 in all (the first one above included).
        int held = 1;
        for (int i = 0; i < 500; i++)
        {
            if (d.Offer(Fragmenter.V4Raw("203.0.113.1", "198.51.100.20", 17, (ushort)i, 0, true, 300), T0, _out) == DefragResult.Held)
            {
                held++;
            }
        }

        long perQueue = FragmentMemory.Ipv4QueueSize + FragmentMemory.Truesize(320);
        held.Should().Be((int)(100_000 / perQueue) + 1);
        d.MemoryInUse.Should().BeGreaterThan(100_000);
        d.Offer(Fragmenter.V4(p, 16, 32, false, id: 1), T0, _out).Should().Be(DefragResult.Dropped);

        // IPv6 has its own budget.
        d.Offer(Fragmenter.V6(PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1, 2, 40), 0, 16, true), T0, _out).Should().Be(DefragResult.Held);

        // Timeouts free the memory; fragments are taken again.
        d.Expire(T0 + 30 * S);
        d.Ipv4Memory.Should().Be(0);
        d.Offer(Fragmenter.V4(p, 0, 16, true, id: 1), T0 + 30 * S, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 32, false, id: 1), T0 + 30 * S, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Low_threshold_changes_nothing_there_is_no_eviction()
    {
        int Flood(int low)
        {
            var d = new Defragmenter(new ConntrackOptions { Ipv6FragmentLowThreshold = low, Ipv6FragmentHighThreshold = 100_000 });
            int held = 0;
            for (int i = 0; i < 500; i++)
            {
                var p = PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1, 2, 600);
                if (d.Offer(Fragmenter.V6(p, 0, 600, true, id: (uint)i), T0, _out) == DefragResult.Held)
                {
                    held++;
                }
            }

            d.QueueCount.Should().Be(held);
            return held;
        }

        Flood(0).Should().Be(Flood(100_000));
        Flood(0).Should().Be((int)(100_000 / (FragmentMemory.Ipv6QueueSize + FragmentMemory.Truesize(648))) + 1);
    }

    [Fact]
    public void High_threshold_zero_refuses_every_fragment()
    {
        var d = new Defragmenter(new ConntrackOptions { Ipv4FragmentLowThreshold = 0, Ipv4FragmentHighThreshold = 0 });
        d.Offer(Fragmenter.V4Raw("192.0.2.1", "192.0.2.2", 17, 1, 0, true, 16), T0, _out).Should().Be(DefragResult.Dropped);
        d.MemoryInUse.Should().Be(0);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(600)]
    [InlineData(1480)]
    public void Memory_stays_bounded_under_a_flood_of_datagrams_that_never_complete(int size)
    {
        // Default thresholds (4 MiB): the count is bounded by high_thresh plus one queue and one fragment,
        // and the bytes actually kept never exceed the count.
        var d = new Defragmenter(new ConntrackOptions());
        var rnd = new Random(5);
        long bound = 4 * 1024 * 1024 + FragmentMemory.Ipv4QueueSize + FragmentMemory.Truesize(size + 20);
        for (int i = 0; i < 20_000; i++)
        {
            string src = $"10.{rnd.Next(256)}.{rnd.Next(256)}.{rnd.Next(1, 255)}";
            d.Offer(Fragmenter.V4Raw(src, "198.51.100.20", 17, (ushort)i, rnd.Next(0, 8) * 8, true, size), T0, _out);
            if ((i & 1023) == 0)
            {
                d.MemoryInUse.Should().BeLessThanOrEqualTo(bound);
                d.StoredBytes.Should().BeLessThanOrEqualTo(d.MemoryInUse);
            }
        }

        d.MemoryInUse.Should().BeLessThanOrEqualTo(bound);
        d.MemoryInUse.Should().BeGreaterThan(4 * 1024 * 1024);
        d.StoredBytes.Should().BeLessThanOrEqualTo(d.MemoryInUse);
        int queues = d.QueueCount;
        d.Expire(T0 + 31 * S).Should().Be(queues);
        d.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void Memory_stays_bounded_when_existing_queues_keep_growing()
    {
        // Many queues opened while under the threshold, then each fed more fragments: every fragment is
        // checked against the threshold, so the total stays within one fragment of it.
        var d = new Defragmenter(new ConntrackOptions { Ipv6FragmentLowThreshold = 0, Ipv6FragmentHighThreshold = 200_000 });
        var p = PacketBuilder.Udp("2001:db8::1", "2001:db8::2", 1, 2, 8000);
        for (int round = 0; round < 6; round++)
        {
            for (uint id = 0; id < 100; id++)
            {
                d.Offer(Fragmenter.V6(p, round * 1000, 1000, true, id: id), T0, _out);
            }
        }

        d.MemoryInUse.Should().BeLessThanOrEqualTo(200_000 + FragmentMemory.Ipv6QueueSize + FragmentMemory.Truesize(1048));
        d.StoredBytes.Should().BeLessThanOrEqualTo(d.MemoryInUse);
    }
}
