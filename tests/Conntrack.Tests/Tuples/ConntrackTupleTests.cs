using Conntrack.Tests.Support;
using Conntrack.Tuples;

namespace Conntrack.Tests.Tuples;

/// <summary>nf_ct_tuple_equal(): two tuples are the same flow direction only when every field matches.</summary>
public class ConntrackTupleTests
{
    private static readonly InetAddress A = InetAddress.Parse("192.0.2.1");
    private static readonly InetAddress B = InetAddress.Parse("198.51.100.2");
    private static readonly InetAddress C = InetAddress.Parse("203.0.113.3");

    private static ConntrackTuple Base() => ConntrackTuple.ForPorts(A, B, IpProtocol.Udp, 1000, 53, ipv6: false);

    [Fact]
    public void Identical_tuples_are_equal()
    {
        var x = Base();
        var y = Base();
        (x == y).Should().BeTrue();
        x.Equals(y).Should().BeTrue();
        x.Equals((object)y).Should().BeTrue();
        x.GetHashCode().Should().Be(y.GetHashCode());
    }

    [Fact]
    public void Tuples_differing_in_source_address_are_not_equal() =>
        (Base() != ConntrackTuple.ForPorts(C, B, IpProtocol.Udp, 1000, 53, false)).Should().BeTrue();

    [Fact]
    public void Tuples_differing_in_destination_address_are_not_equal() =>
        (Base() != ConntrackTuple.ForPorts(A, C, IpProtocol.Udp, 1000, 53, false)).Should().BeTrue();

    [Fact]
    public void Tuples_differing_in_source_port_are_not_equal() =>
        (Base() != ConntrackTuple.ForPorts(A, B, IpProtocol.Udp, 1001, 53, false)).Should().BeTrue();

    [Fact]
    public void Tuples_differing_in_destination_port_are_not_equal() =>
        (Base() != ConntrackTuple.ForPorts(A, B, IpProtocol.Udp, 1000, 54, false)).Should().BeTrue();

    [Fact]
    public void Tuples_differing_in_protocol_are_not_equal() =>
        (Base() != ConntrackTuple.ForPorts(A, B, IpProtocol.UdpLite, 1000, 53, false)).Should().BeTrue();

    [Fact]
    public void Tuples_differing_only_in_address_family_are_not_equal()
    {
        // The same 16 address bytes as IPv4 and as IPv6 (src.l3num differs in the kernel's tuple).
        (Base() != ConntrackTuple.ForPorts(A, B, IpProtocol.Udp, 1000, 53, ipv6: true)).Should().BeTrue();
    }

    [Fact]
    public void Swapped_ports_are_a_different_tuple() =>
        (Base() != ConntrackTuple.ForPorts(A, B, IpProtocol.Udp, 53, 1000, false)).Should().BeTrue();

    [Fact]
    public void Icmp_tuples_differing_in_type_code_or_id_are_not_equal()
    {
        var x = ConntrackTuple.ForIcmp(A, B, 8, 0, 7, ipv6: false);
        (x == ConntrackTuple.ForIcmp(A, B, 8, 0, 7, false)).Should().BeTrue();
        (x != ConntrackTuple.ForIcmp(A, B, 13, 0, 7, false)).Should().BeTrue();
        (x != ConntrackTuple.ForIcmp(A, B, 8, 1, 7, false)).Should().BeTrue();
        (x != ConntrackTuple.ForIcmp(A, B, 8, 0, 8, false)).Should().BeTrue();
    }

    [Fact]
    public void Icmp_tuple_exposes_type_code_and_id()
    {
        var x = ConntrackTuple.ForIcmp(A, B, 13, 2, 0xBEEF, ipv6: false);
        x.Protocol.Should().Be(IpProtocol.Icmp);
        x.IcmpType.Should().Be(13);
        x.IcmpCode.Should().Be(2);
        x.SourcePort.Should().Be(0xBEEF);
    }

    [Fact]
    public void Icmpv6_tuple_has_protocol_58()
    {
        var v6 = InetAddress.Parse("2001:db8::1");
        ConntrackTuple.ForIcmp(v6, v6, 128, 0, 1, ipv6: true).Protocol.Should().Be(IpProtocol.Icmpv6);
    }

    [Fact]
    public void Address_only_tuple_has_zero_ids()
    {
        var x = ConntrackTuple.ForAddresses(A, B, IpProtocol.Esp, ipv6: false);
        x.SourcePort.Should().Be(0);
        x.DestinationPort.Should().Be(0);
        x.Protocol.Should().Be(IpProtocol.Esp);
    }

    [Fact]
    public void Tuple_prints_as_the_kernel_prints_it()
    {
        Base().ToString().Should().Be("src=192.0.2.1 dst=198.51.100.2 sport=1000 dport=53");
    }

    [Fact]
    public void Tuple_from_a_packet_equals_the_hand_built_tuple()
    {
        using var t = new TestTable();
        t.Send(PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1000, 53));
        t.Table.TryGet(Base(), t.Now, out var info).Should().BeTrue();
        info.Original.Should().Be(Base());
        info.Reply.Should().Be(ConntrackTuple.ForPorts(B, A, IpProtocol.Udp, 53, 1000, false));
    }

    [Fact]
    public void Lookup_by_reply_tuple_finds_the_connection()
    {
        using var t = new TestTable();
        t.Send(PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1000, 53));
        t.Table.TryGet(ConntrackTuple.ForPorts(B, A, IpProtocol.Udp, 53, 1000, false), t.Now, out var info).Should().BeTrue();
        info.Original.Should().Be(Base());
    }
}
