using Conntrack.Tests.Support;

namespace Conntrack.Tests;

public class SmokeTests
{
    [Fact]
    public void Udp_query_then_answer_is_new_then_established_reply()
    {
        using var t = new TestTable();
        t.Info(PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 5000, 53)).Should().Be(ConntrackInfo.New);
        t.Info(PacketBuilder.Udp("198.51.100.20", "192.0.2.10", 53, 5000)).Should().Be(ConntrackInfo.EstablishedReply);
        t.Info(PacketBuilder.Udp("192.0.2.10", "198.51.100.20", 5000, 53)).Should().Be(ConntrackInfo.Established);
        t.OracleLines().Should().Equal(
            "ipv4 udp 17 - src=192.0.2.10 dst=198.51.100.20 sport=5000 dport=53 src=198.51.100.20 dst=192.0.2.10 sport=53 dport=5000 mark=0 zone=0");
    }
}
