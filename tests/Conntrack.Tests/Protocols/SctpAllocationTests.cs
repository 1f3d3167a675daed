using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.SctpChunks;

namespace Conntrack.Tests.Protocols;

public class SctpAllocationTests
{
    [Fact]
    public void Sctp_association_allocates_nothing_per_packet_with_crc_checking_on()
    {
        using var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 4096, Buckets = 1024, HashSeed = 42 });
        long now = 1000 * TestTable.Second;
        var state = default(PacketState);
        var f = new SctpFlow(17001);
        foreach (byte[] p in f.Handshake())
        {
            table.In(p, now, ref state).Should().Be(Verdict.Accept);
            table.Confirm(p, now, ref state);
        }

        // Data, SACK, heartbeats and an invalid packet (wrong tag): every path of the chunk loop but INIT.
        byte[][] packets =
        [
            f.Orig(SctpFlow.TagB, DataChunk(), DataChunk(2)),
            f.Reply(SctpFlow.TagA, SackChunk()),
            f.Reply(SctpFlow.TagA, HeartbeatChunk()),
            f.Orig(SctpFlow.TagB, HeartbeatAckChunk()),
            f.Orig(SctpFlow.TagA, DataChunk()),
        ];

        int RunBatch(int n)
        {
            int tracked = 0;
            for (int i = 0; i < n; i++)
            {
                byte[] p = packets[i % packets.Length];
                table.In(p, now, ref state);
                table.Confirm(p, now, ref state);
                if (state.Info != ConntrackInfo.Invalid)
                {
                    tracked++;
                }

                now += 1000;
            }

            return tracked;
        }

        RunBatch(10_000).Should().Be(8_000); // warm-up: tiering, statics
        int ok = 0;
        SteadyStateAllocation.ShouldAllocateNothing(() => ok += RunBatch(100_000), "the SCTP path");
        ok.Should().Be(SteadyStateAllocation.Windows * 80_000);
    }
}
