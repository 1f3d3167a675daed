using Conntrack.Tests.Support;

namespace Conntrack.Tests.Api;

/// <summary>Product requirement: no managed allocation per packet in steady state.</summary>
public class ZeroAllocationTests
{
    private const int Flows = 1000;

    private static (byte[][] Originals, byte[][] Replies) BuildFlows()
    {
        var o = new byte[Flows][];
        var r = new byte[Flows][];
        for (int i = 0; i < Flows; i++)
        {
            string client = $"10.{i / 250}.{i % 250}.1";
            ushort port = (ushort)(20000 + i);
            o[i] = PacketBuilder.Udp(client, "192.0.2.53", port, 53, payload: 32);
            r[i] = PacketBuilder.Udp("192.0.2.53", client, 53, port, payload: 64);
        }

        return (o, r);
    }

    private static long Push(ConntrackTable table, byte[][] originals, byte[][] replies, int packets, ref long now)
    {
        var state = default(PacketState);
        long established = 0;
        for (int n = 0; n < packets; n++)
        {
            int flow = (n >> 1) % Flows;
            byte[] p = (n & 1) == 0 ? originals[flow] : replies[flow];
            now += 1000; // 1 us per packet
            if (table.In(p, now, ref state) == Verdict.Accept)
            {
                table.Confirm(p, now, ref state);
            }

            if (state.Info is ConntrackInfo.Established or ConntrackInfo.EstablishedReply)
            {
                established++;
            }
        }

        return established;
    }

    [Fact]
    public void One_million_established_udp_packets_allocate_nothing()
    {
        using var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 4096, Buckets = 4096, HashSeed = 1 });
        var (o, r) = BuildFlows();
        long now = 1_000_000_000_000L;

        // Warm-up: create the flows, see replies, let the JIT tier up.
        Push(table, o, r, 4 * Flows, ref now);
        Push(table, o, r, 200_000, ref now);
        table.Count.Should().Be(Flows);

        long established = 0;
        SteadyStateAllocation.ShouldAllocateNothing(
            () => established += Push(table, o, r, 1_000_000 / SteadyStateAllocation.Windows, ref now), "the packet path");
        established.Should().Be(1_000_000, "every measured packet belongs to an established flow");
    }

    [Fact]
    public void Ipv6_and_icmp_established_traffic_allocates_nothing()
    {
        using var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 1024, Buckets = 1024, HashSeed = 1, Accounting = true, Timestamps = true });
        var o = new byte[200][];
        var r = new byte[200][];
        for (int i = 0; i < 100; i++)
        {
            o[i] = PacketBuilder.Udp($"2001:db8::{i + 1:x}", "2001:db8:1::53", (ushort)(30000 + i), 53);
            r[i] = PacketBuilder.Udp("2001:db8:1::53", $"2001:db8::{i + 1:x}", 53, (ushort)(30000 + i));
            o[100 + i] = PacketBuilder.IcmpEcho($"10.9.0.{i + 1}", "192.0.2.1", (ushort)i, 1);
            r[100 + i] = PacketBuilder.IcmpEcho("192.0.2.1", $"10.9.0.{i + 1}", (ushort)i, 1, reply: true);
        }

        long now = 1_000_000_000_000L;
        var state = default(PacketState);
        void Run(int packets)
        {
            for (int n = 0; n < packets; n++)
            {
                int f = (n >> 1) % 200;
                byte[] p = (n & 1) == 0 ? o[f] : r[f];
                now += 1000;
                if (table.In(p, now, ref state) == Verdict.Accept)
                {
                    table.Confirm(p, now, ref state);
                }
            }
        }

        Run(100_000);
        SteadyStateAllocation.ShouldAllocateNothing(() => Run(100_000), "IPv6 and ICMP tracking with accounting and timestamps");
    }

    [Fact]
    public void Collecting_garbage_in_steady_state_allocates_nothing()
    {
        using var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 4096, Buckets = 4096, HashSeed = 1 });
        var (o, r) = BuildFlows();
        long now = 1_000_000_000_000L;
        Push(table, o, r, 4 * Flows, ref now);
        table.CollectGarbage(now, 4096);
        SteadyStateAllocation.ShouldAllocateNothing(
            () =>
            {
                for (int i = 0; i < 100; i++)
                {
                    table.CollectGarbage(now, 512);
                }
            },
            "garbage collection");
    }
}
