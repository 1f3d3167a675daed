using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.TcpTestKit;
using static Conntrack.Tests.Support.PacketBuilder;

namespace Conntrack.Tests.Protocols;

public class TcpAllocationTests
{
    [Fact]
    public void Established_tcp_flow_allocates_nothing_per_packet()
    {
        using var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 4096, Buckets = 1024, HashSeed = 42 });
        long now = 1000 * TestTable.Second;
        var state = default(PacketState);

        void Send(byte[] p)
        {
            table.In(p, now, ref state).Should().Be(Verdict.Accept);
            table.Confirm(p, now, ref state);
        }

        Send(Tcp(Client, Server, ClientPort, ServerPort, FlagSyn, 1000, 0, options: [.. WScale(7), .. SackPerm]));
        Send(Tcp(Server, Client, ServerPort, ClientPort, FlagSyn | FlagAck, 5000, 1001, options: [.. WScale(7), .. SackPerm]));
        Send(Tcp(Client, Server, ClientPort, ServerPort, FlagAck, 1001, 5001));

        // Two segments alternating: client data and the server's ACK with a timestamp-like option, both
        // always in window (a retransmission pattern, which also exercises the retrans counter).
        byte[] data = Tcp(Client, Server, ClientPort, ServerPort, FlagAck | FlagPsh, 1001, 5001, payload: 100);
        byte[] ack = Tcp(Server, Client, ServerPort, ClientPort, FlagAck, 5001, 1101,
            options: [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);

        int RunBatch(int n)
        {
            int established = 0;
            for (int i = 0; i < n; i++)
            {
                byte[] p = (i & 1) == 0 ? data : ack;
                table.In(p, now, ref state);
                table.Confirm(p, now, ref state);
                if (state.Info is ConntrackInfo.Established or ConntrackInfo.EstablishedReply)
                {
                    established++;
                }

                now += 1000;
            }

            return established;
        }

        RunBatch(10_000).Should().Be(10_000); // warm-up: tiering, statics
        int ok = 0;
        SteadyStateAllocation.ShouldAllocateNothing(() => ok += RunBatch(100_000), "the TCP path");
        ok.Should().Be(SteadyStateAllocation.Windows * 100_000);
    }
}
