using Conntrack.Protocols;
using Conntrack.Tests.Support;
using Conntrack.Tuples;

namespace Conntrack.Tests.Tuples;

/// <summary>
/// nf_ct_get_tuple() (<see cref="L4Dispatch.TryBuildTuple"/>): the tuple read from a packet's headers, each field
/// read once its header's length is checked, never beyond the packet.
/// </summary>
public class TupleBuildingTests
{
    private static bool Build(byte[] packet, int nhoff, bool ipv6, byte protocol, int dataoff, out ConntrackTuple tuple)
    {
        using var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 16, Buckets = 16 });
        return L4Dispatch.TryBuildTuple(table, packet, nhoff, ipv6, protocol, dataoff, out tuple);
    }

    [Theory]
    [InlineData("192.0.2.1", "198.51.100.2", false, 20)]
    [InlineData("2001:db8::1", "2001:db8::2", true, 40)]
    public void Udp_ports_and_addresses_come_out_in_host_order(string src, string dst, bool ipv6, int l4)
    {
        byte[] p = PacketBuilder.Udp(src, dst, 0x1234, 0xABCD);
        Build(p, 0, ipv6, IpProtocol.Udp, l4, out ConntrackTuple t).Should().BeTrue();
        t.Should().Be(ConntrackTuple.ForPorts(InetAddress.Parse(src), InetAddress.Parse(dst), IpProtocol.Udp, 0x1234, 0xABCD, ipv6));
        t.SourcePort.Should().Be(0x1234);
        t.DestinationPort.Should().Be(0xABCD);
    }

    [Fact]
    public void Tcp_tuple_equals_the_one_built_from_its_fields()
    {
        byte[] p = PacketBuilder.Tcp("10.0.0.1", "10.0.0.2", 40000, 443, 0x02, 1, 0);
        Build(p, 0, false, IpProtocol.Tcp, 20, out ConntrackTuple t).Should().BeTrue();
        t.Should().Be(ConntrackTuple.ForPorts(InetAddress.Parse("10.0.0.1"), InetAddress.Parse("10.0.0.2"), IpProtocol.Tcp, 40000, 443, false));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(-20)]
    [InlineData(int.MinValue)]
    [InlineData(9)]
    [InlineData(int.MaxValue)]
    public void A_network_header_offset_outside_the_packet_gives_no_tuple(int nhoff)
    {
        byte[] p = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1, 2, payload: 0);
        Build(p, nhoff, false, IpProtocol.Udp, 20, out _).Should().BeFalse();
        Build(p, nhoff, true, IpProtocol.Udp, 20, out _).Should().BeFalse();
    }

    [Theory]
    [InlineData(25)] // three bytes of ports
    [InlineData(28)] // at the end
    [InlineData(29)] // past the end
    [InlineData(-1)]
    public void Ports_not_all_in_the_packet_give_no_tuple(int dataoff)
    {
        byte[] p = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1, 2, payload: 0); // 28 bytes
        p.Length.Should().Be(28);
        Build(p, 0, false, IpProtocol.Udp, dataoff, out _).Should().BeFalse();
    }
}
