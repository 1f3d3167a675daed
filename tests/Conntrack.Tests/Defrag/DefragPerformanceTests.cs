using Conntrack.Defrag;
using Conntrack.Packets;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Defrag;

public class DefragPerformanceTests
{
    private const long T0 = 1000L * 1_000_000_000L;

    private sealed class Prepared
    {
        public required byte[][] Packets;
        public required L3Info[] Info;
    }

    private static Prepared Prepare(IEnumerable<byte[]> packets)
    {
        var list = packets.ToArray();
        var info = new L3Info[list.Length];
        for (int i = 0; i < list.Length; i++)
        {
            IpHeaders.CheckInput(list[i], 0, out info[i]).Should().Be(PacketReason.None);
        }

        return new Prepared { Packets = list, Info = info };
    }

    [Fact]
    public void Reassembling_100000_fragments_allocates_nothing_after_warm_up()
    {
        var d = new Defragmenter(new ConntrackOptions());
        var output = new byte[Defragmenter.MaxDatagram];

        // 4-fragment IPv4 and IPv6 datagrams from a few sources, some out of order; buffers are reused.
        var v4 = PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 1000, 7, 5000);
        var v6 = PacketBuilder.Udp("2001:db8::10", "2001:db8:1::20", 1000, 7, 5000);
        var sets = new List<Prepared>();
        for (int k = 0; k < 8; k++)
        {
            var f4 = Fragmenter.Split(v4, 1480, id: (ushort)(100 + k));
            var f6 = Fragmenter.Split(v6, 1448, id: (ushort)(200 + k));
            if ((k & 1) != 0)
            {
                f4.Reverse();
                (f6[0], f6[2]) = (f6[2], f6[0]);
            }

            sets.Add(Prepare(f4));
            sets.Add(Prepare(f6));
        }

        int Run(int fragments)
        {
            int complete = 0, n = 0;
            while (n < fragments)
            {
                // Interleave the datagrams fragment by fragment.
                for (int f = 0; f < 4 && n < fragments; f++)
                {
                    foreach (var s in sets)
                    {
                        if (d.Gather(s.Packets[f], in s.Info[f], 0, T0, output, out _) == DefragResult.Complete)
                        {
                            complete++;
                        }

                        n++;
                    }
                }
            }

            return complete;
        }

        Run(4 * 16 * 10);
        int done = 0;
        SteadyStateAllocation.ShouldAllocateNothing(() => done += Run(100_032), "reassembly"); // 1563 rounds of 16 datagrams x 4 fragments
        done.Should().Be(SteadyStateAllocation.Windows * 1563 * 16);
        d.QueueCount.Should().Be(0);
    }

    [Fact]
    public void Concurrent_reassembly_from_several_threads_gives_every_datagram_intact()
    {
        var d = new Defragmenter(new ConntrackOptions());
        const int Threads = 4, PerThread = 2000;
        int failures = 0;
        var threads = new Thread[Threads];
        for (int t = 0; t < Threads; t++)
        {
            int me = t;
            threads[t] = new Thread(() =>
            {
                var output = new byte[Defragmenter.MaxDatagram];
                bool v6 = (me & 1) != 0;
                for (int i = 0; i < PerThread; i++)
                {
                    byte[] p = v6
                        ? PacketBuilder.Udp($"2001:db8:{me}::1", "2001:db8:ff::1", (ushort)(1000 + i), 7, 3000)
                        : PacketBuilder.Udp($"10.0.{me}.1", "10.255.0.1", (ushort)(1000 + i), 7, 3000);
                    if (!v6)
                    {
                        // The datagram keeps the fragments' IP id.
                        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), (ushort)i);
                        PacketBuilder.FixIpv4Checksum(p);
                    }

                    var frags = Fragmenter.Split(p, 1200, id: (ushort)i);
                    DefragResult r = DefragResult.Held;
                    int len = 0;
                    foreach (var f in frags)
                    {
                        IpHeaders.CheckInput(f, 0, out L3Info l3);
                        r = d.Gather(f, in l3, 0, T0, output, out len);
                    }

                    if (r != DefragResult.Complete || !output.AsSpan(0, len).SequenceEqual(p))
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
            });
            threads[t].Start();
        }

        foreach (var th in threads)
        {
            th.Join();
        }

        failures.Should().Be(0);
        d.QueueCount.Should().Be(0);
        d.MemoryInUse.Should().Be(0);
    }
}
