using System.Text;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.ExpectationTests;

public class TftpTests
{
    /// <summary>A TFTP read request from 192.0.2.10:<paramref name="clientPort"/> to 198.51.100.20:69.</summary>
    public static byte[] ReadRequest(ushort clientPort, string file = "boot.img")
    {
        var payload = new List<byte> { 0, 1 };
        payload.AddRange(Encoding.ASCII.GetBytes(file));
        payload.Add(0);
        payload.AddRange(Encoding.ASCII.GetBytes("octet"));
        payload.Add(0);
        return UdpWithPayload("192.0.2.10", "198.51.100.20", clientPort, 69, [.. payload]);
    }

    public static byte[] UdpWithPayload(string src, string dst, ushort sport, ushort dport, byte[] payload)
    {
        var l4 = new byte[8 + payload.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)l4.Length);
        payload.CopyTo(l4, 8);
        return PacketBuilder.Ip(src, dst, IpProtocol.Udp, l4, checksum: true);
    }

    private static TestTable NewTable(ConntrackOptions? options = null)
    {
        var t = new TestTable(options);
        t.Table.Helpers.RegisterBuiltIns();
        t.Table.Helpers.Assign("tftp", IpProtocol.Udp, 69);
        return t;
    }

    private static byte[] Data(ushort serverPort, ushort clientPort) =>
        UdpWithPayload("198.51.100.20", "192.0.2.10", serverPort, clientPort, [0, 3, 0, 1, 0xAA]);

    [Fact]
    public void Read_request_expects_the_servers_answer_from_any_port()
    {
        using var t = NewTable();
        t.Send(ReadRequest(50069));
        var e = t.Table.SnapshotExpectations(t.Now).Should().ContainSingle().Subject;
        e.Tuple.SourceAddress.ToString().Should().Be("198.51.100.20");
        e.Tuple.DestinationAddress.ToString().Should().Be("192.0.2.10");
        e.Tuple.DestinationPort.Should().Be(50069);
        e.MaskSourcePort.Should().Be(0, "any server port");
        e.HelperName.Should().Be("tftp");
        e.Master.DestinationPort.Should().Be(69);
        t.Table.Statistics.ExpectCreate.Should().Be(1);
    }

    [Fact]
    public void The_answer_is_related_and_uses_the_expectation_up()
    {
        using var t = NewTable();
        t.Send(ReadRequest(50069));
        var answer = t.Send(Data(50070, 50069));
        answer.Info.Should().Be(ConntrackInfo.Related);
        t.Table.SnapshotExpectations(t.Now).Should().BeEmpty();
        t.Table.Statistics.ExpectNew.Should().Be(1);
        t.Info(UdpWithPayload("192.0.2.10", "198.51.100.20", 50069, 50070, [0, 4, 0, 1])).Should().Be(ConntrackInfo.EstablishedReply);
        t.Info(Data(50070, 50069)).Should().Be(ConntrackInfo.Established);
    }

    [Fact]
    public void Master_connection_carries_the_helper_and_the_expected_one_none()
    {
        using var t = NewTable();
        t.Send(ReadRequest(50069));
        t.Send(Data(50070, 50069));
        var lines = t.Table.Snapshot(t.Now).Select(c => global::Conntrack.Diagnostics.ConnectionFormatter.ToOracleLine(c, new global::Conntrack.Diagnostics.OracleLineOptions(Helper: true))).Order(StringComparer.Ordinal).ToList();
        lines.Should().Equal(
            "ipv4 udp 17 - src=192.0.2.10 dst=198.51.100.20 sport=50069 dport=69 src=198.51.100.20 dst=192.0.2.10 sport=69 dport=50069 [UNREPLIED] mark=0 zone=0 helper=tftp",
            "ipv4 udp 17 - src=198.51.100.20 dst=192.0.2.10 sport=50070 dport=50069 src=192.0.2.10 dst=198.51.100.20 sport=50069 dport=50070 [UNREPLIED] mark=0 zone=0");
    }

    [Fact]
    public void A_newer_request_replaces_the_pending_expectation()
    {
        using var t = NewTable();
        t.Send(ReadRequest(50069, "a"));
        t.Send(ReadRequest(50069, "b"));
        t.Table.SnapshotExpectations(t.Now).Should().ContainSingle();
        t.Table.Statistics.ExpectCreate.Should().Be(2);
        t.Table.Statistics.ExpectDelete.Should().Be(1);
    }

    [Fact]
    public void Expectations_expire_after_the_policy_timeout()
    {
        using var t = NewTable(new ConntrackOptions { MaxEntries = 4096, Buckets = 1024, HashSeed = 1, UdpTimeout = TimeSpan.FromMinutes(10) });
        t.Send(ReadRequest(50069));
        t.Advance(299);
        t.Table.CollectGarbage(t.Now, 1024);
        t.Table.SnapshotExpectations(t.Now).Should().ContainSingle();
        t.Advance(2);
        t.Table.CollectGarbage(t.Now, 1024);
        t.Table.SnapshotExpectations(t.Now).Should().BeEmpty();
        t.Info(Data(50070, 50069)).Should().Be(ConntrackInfo.New, "the expectation expired after 5 minutes");
    }

    [Fact]
    public void Expectations_die_with_their_master()
    {
        using var t = NewTable();
        var master = t.Send(ReadRequest(50069)).Connection;
        t.Table.Delete(master, t.Now).Should().BeTrue();
        t.Table.SnapshotExpectations(t.Now).Should().BeEmpty();
        t.Info(Data(50070, 50069)).Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void A_full_expectation_table_makes_the_helper_drop_the_request()
    {
        using var t = NewTable(new ConntrackOptions { MaxEntries = 4096, Buckets = 1024, HashSeed = 1, ExpectMax = 1 });
        t.Send(ReadRequest(50069));
        var second = t.Send(ReadRequest(50071));
        t.LastVerdict.Should().Be(Verdict.Drop);
        second.Reason.Should().Be(PacketReason.HelperDropped);
        second.Info.Should().Be(ConntrackInfo.New, "the state is the one conntrack gave at PREROUTING");
        t.Connections().Should().ContainSingle("the dropped request's connection is never confirmed");
    }

    [Fact]
    public void An_ipv6_request_expects_an_ipv6_answer()
    {
        using var t = NewTable();
        var rrq = TftpRrqV6();
        t.Send(rrq);
        var e = t.Table.SnapshotExpectations(t.Now).Should().ContainSingle().Subject;
        e.Tuple.IsIpv6.Should().BeTrue();
        e.MaskSource.ToString(ipv6: true).Should().Be("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    }

    private static byte[] TftpRrqV6() =>
        UdpWithPayload("2001:db8:1::10", "2001:db8:2::20", 50069, 69, [0, 1, (byte)'f', 0, (byte)'o', (byte)'c', (byte)'t', (byte)'e', (byte)'t', 0]);
}
