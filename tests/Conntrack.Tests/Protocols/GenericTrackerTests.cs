using Conntrack.Diagnostics;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Protocols;

/// <summary>
/// Protocols without a tracker of their own: generic_packet() (nf_conntrack_core.c:1947) with
/// nf_ct_generic_timeout = 600*HZ (proto_generic.c), addresses only, never assured. DCCP (33) is tracked
/// generically on the oracle's kernel (no CONFIG_NF_CT_PROTO_DCCP).
/// </summary>
public class GenericTrackerTests
{
    private const long S = TestTable.Second;
    private const string A = "192.0.2.1", B = "198.51.100.2";

    private static byte[] Esp(string src, string dst, uint spi, uint seq = 1)
    {
        var l4 = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(l4, spi);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        return PacketBuilder.Raw(src, dst, IpProtocol.Esp, l4);
    }

    private static byte[] Dccp(string src, string dst, ushort sport, ushort dport)
    {
        var l4 = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        l4[4] = 4; // data offset
        return PacketBuilder.Raw(src, dst, 33, l4);
    }

    [Fact]
    public void Esp_is_tracked_by_addresses_new_then_established_reply()
    {
        using var t = new TestTable();
        t.Info(Esp(A, B, 0x1000)).Should().Be(ConntrackInfo.New);
        t.Info(Esp(B, A, 0x2000)).Should().Be(ConntrackInfo.EstablishedReply, "the SPI is not part of a generic tuple");
        t.Info(Esp(A, B, 0x3000)).Should().Be(ConntrackInfo.Established);
        t.Table.Count.Should().Be(1);
    }

    [Fact]
    public void Generic_connection_lives_600_seconds()
    {
        using var t = new TestTable();
        t.Send(Esp(A, B, 1));
        t.Connections().Single().RemainingNs.Should().Be(600 * S);
        t.Advance(100);
        t.Send(Esp(B, A, 1));
        t.Connections().Single().RemainingNs.Should().Be(600 * S);
    }

    [Fact]
    public void Generic_connection_is_never_assured()
    {
        using var t = new TestTable();
        t.Send(Esp(A, B, 1));
        t.Advance(5);
        t.Send(Esp(B, A, 1));
        t.Advance(5);
        t.Send(Esp(A, B, 1));
        t.Send(Esp(B, A, 1));
        t.Connections().Single().Status.Should().NotHaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Generic_timeout_follows_the_sysctl()
    {
        var o = new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 3 };
        o.SetSysctl("nf_conntrack_generic_timeout", "45");
        using var t = new TestTable(o);
        t.Send(Esp(A, B, 1));
        t.Connections().Single().RemainingNs.Should().Be(45 * S);
    }

    [Fact]
    public void Dccp_is_tracked_generically_without_ports()
    {
        using var t = new TestTable();
        t.Info(Dccp(A, B, 1000, 5001)).Should().Be(ConntrackInfo.New);
        t.Info(Dccp(A, B, 1001, 5002)).Should().Be(ConntrackInfo.New, "different ports, same generic tuple");
        t.Table.Count.Should().Be(1);
        var c = t.Connections().Single();
        c.Original.SourcePort.Should().Be(0);
        c.Original.DestinationPort.Should().Be(0);
        c.RemainingNs.Should().Be(600 * S);
    }

    [Fact]
    public void Dccp_prints_as_unknown_33_without_ports()
    {
        // l4proto_name() of the generic l4proto (255) is "unknown"; print_tuple prints no ports for it.
        using var t = new TestTable();
        t.Send(Dccp(A, B, 1000, 5001));
        t.OracleLines().Should().Equal($"ipv4 unknown 33 - src={A} dst={B} src={B} dst={A} [UNREPLIED] mark=0 zone=0");
    }

    [Fact]
    public void Ipv4_authentication_header_is_tracked_generically()
    {
        // Over IPv4, AH (51) is an upper-layer protocol, not an extension header.
        using var t = new TestTable();
        t.Info(PacketBuilder.Raw(A, B, IpProtocol.Ah, new byte[24])).Should().Be(ConntrackInfo.New);
        t.Connections().Single().Protocol.Should().Be(IpProtocol.Ah);
    }

    [Fact]
    public void Generic_packet_with_no_payload_is_tracked()
    {
        // dataoff == skb->len: "the packet has not data ... but it is tracked anyway" (core.c:389).
        using var t = new TestTable();
        t.Info(PacketBuilder.Raw(A, B, 200, [])).Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Generic_flows_between_different_hosts_are_different_connections()
    {
        using var t = new TestTable();
        t.Send(Esp(A, B, 1));
        t.Send(Esp(A, "198.51.100.3", 1));
        t.Table.Count.Should().Be(2);
    }

    [Fact]
    public void Generic_proc_line_has_no_state_and_no_ports()
    {
        using var t = new TestTable();
        t.Send(Esp(A, B, 1));
        var sw = new StringWriter();
        ConnectionFormatter.WriteProcLine(sw, t.Connections().Single());
        sw.ToString().Should().Be($"ipv4     2 unknown  50 600 src={A} dst={B} [UNREPLIED] src={B} dst={A} mark=0 zone=0 use=2");
    }
}
