using Conntrack.Tests.Support;
using Conntrack.Tuples;

namespace Conntrack.Tests.Tuples;

/// <summary>The keyed tuple hash (hash_conntrack_raw: siphash keyed by a random secret, zone mixed in) and zones.</summary>
public class TupleHashAndZoneTests
{
    private static ConntrackTuple Tuple(int i) => ConntrackTuple.ForPorts(
        InetAddress.Parse($"10.0.{i / 250}.{(i % 250) + 1}"), InetAddress.Parse("198.51.100.2"), IpProtocol.Udp,
        (ushort)(1024 + i), 53, ipv6: false);

    [Fact]
    public void Same_seed_gives_the_same_hash()
    {
        var h1 = TupleHasher.CreateWithSeed(99);
        var h2 = TupleHasher.CreateWithSeed(99);
        for (int i = 0; i < 100; i++)
        {
            var t = Tuple(i);
            h1.Hash(in t, 0).Should().Be(h2.Hash(in t, 0));
        }
    }

    [Fact]
    public void Hash_depends_on_the_seed()
    {
        // With a keyed hash, two keys agree on a 32-bit value by chance with probability 2^-32: over 100 tuples
        // at most a stray one may agree.
        var h1 = TupleHasher.CreateWithSeed(1);
        var h2 = TupleHasher.CreateWithSeed(2);
        int same = 0;
        for (int i = 0; i < 100; i++)
        {
            var t = Tuple(i);
            if (h1.Hash(in t, 0) == h2.Hash(in t, 0))
            {
                same++;
            }
        }

        same.Should().BeLessThan(2);
    }

    [Fact]
    public void Random_keys_differ_between_tables()
    {
        var h1 = TupleHasher.CreateRandom();
        var h2 = TupleHasher.CreateRandom();
        int same = 0;
        for (int i = 0; i < 100; i++)
        {
            var t = Tuple(i);
            if (h1.Hash(in t, 0) == h2.Hash(in t, 0))
            {
                same++;
            }
        }

        same.Should().BeLessThan(2);
    }

    [Fact]
    public void Hash_depends_on_the_zone()
    {
        // key.key[0] ^= zoneid (nf_conntrack_core.c:220).
        var h = TupleHasher.CreateWithSeed(5);
        int same = 0;
        for (int i = 0; i < 100; i++)
        {
            var t = Tuple(i);
            if (h.Hash(in t, 0) == h.Hash(in t, 1))
            {
                same++;
            }
        }

        same.Should().BeLessThan(2);
    }

    [Fact]
    public void Hash_depends_on_every_tuple_field()
    {
        var h = TupleHasher.CreateWithSeed(5);
        var a = InetAddress.Parse("192.0.2.1");
        var b = InetAddress.Parse("198.51.100.2");
        var c = InetAddress.Parse("198.51.100.3");
        var baseTuple = ConntrackTuple.ForPorts(a, b, IpProtocol.Udp, 1000, 53, false);
        uint h0 = h.Hash(in baseTuple, 0);
        ConntrackTuple[] variants =
        [
            ConntrackTuple.ForPorts(c, b, IpProtocol.Udp, 1000, 53, false),
            ConntrackTuple.ForPorts(a, c, IpProtocol.Udp, 1000, 53, false),
            ConntrackTuple.ForPorts(a, b, IpProtocol.Udp, 1001, 53, false),
            ConntrackTuple.ForPorts(a, b, IpProtocol.Udp, 1000, 54, false),
            ConntrackTuple.ForPorts(a, b, IpProtocol.UdpLite, 1000, 53, false),
            ConntrackTuple.ForPorts(a, b, IpProtocol.Udp, 1000, 53, true),
        ];
        foreach (var v in variants)
        {
            h.Hash(in v, 0).Should().NotBe(h0, "changing {0} must change the hash", v);
        }
    }

    [Theory]
    [InlineData(0u, 1024u, 0)]
    [InlineData(uint.MaxValue, 1024u, 1023)]      // (2^32 - 1) * n >> 32 = n - 1 for n >= 1
    [InlineData(0x8000_0000u, 1024u, 512)]        // half of the range -> n / 2
    [InlineData(0x4000_0000u, 10u, 2)]            // 2^30 * 10 >> 32 = 2.5 -> 2
    [InlineData(uint.MaxValue, 1u, 0)]
    [InlineData(12345u, 1u, 0)]
    public void Scale_maps_a_hash_onto_the_bucket_range(uint hash, uint size, int expected)
    {
        // reciprocal_scale(val, ep_ro) = (u32)(((u64) val * ep_ro) >> 32).
        TupleHasher.Scale(hash, size).Should().Be(expected);
    }

    [Fact]
    public void Scale_never_leaves_the_range()
    {
        var rng = new Random(3);
        foreach (uint size in new uint[] { 1, 2, 3, 7, 1000, 262144, (uint)int.MaxValue })
        {
            for (int i = 0; i < 10000; i++)
            {
                uint h = (uint)rng.NextInt64(0, 1L << 32);
                TupleHasher.Scale(h, size).Should().BeInRange(0, (int)(size - 1));
            }
        }
    }

    [Fact]
    public void Same_flow_in_two_zones_is_two_connections()
    {
        using var t = new TestTable();
        var q = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1000, 53);
        var s1 = t.Send(q, zone: 1);
        var s2 = t.Send(q, zone: 2);
        s1.Info.Should().Be(ConntrackInfo.New);
        s2.Info.Should().Be(ConntrackInfo.New, "zone 2 has not seen the flow");
        s1.Connection.Should().NotBe(s2.Connection);
        t.Table.Count.Should().Be(2);
        t.Connections().Select(c => c.Zone).Should().BeEquivalentTo(new ushort[] { 1, 2 });
    }

    [Fact]
    public void Reply_in_one_zone_belongs_to_that_zone_only()
    {
        using var t = new TestTable();
        var q = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1000, 53);
        var r = PacketBuilder.Udp("198.51.100.2", "192.0.2.1", 53, 1000);
        var s1 = t.Send(q, zone: 1);
        t.Send(q, zone: 2);
        var reply = t.Send(r, zone: 1);
        reply.Info.Should().Be(ConntrackInfo.EstablishedReply);
        reply.Connection.Should().Be(s1.Connection);
        t.Send(q, zone: 2).Info.Should().Be(ConntrackInfo.New, "the reply in zone 1 must not mark zone 2's connection replied");
        t.Send(q, zone: 1).Info.Should().Be(ConntrackInfo.Established);
    }

    [Fact]
    public void Lookup_by_tuple_is_per_zone()
    {
        using var t = new TestTable();
        t.Send(PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1000, 53), zone: 7);
        var tuple = ConntrackTuple.ForPorts(InetAddress.Parse("192.0.2.1"), InetAddress.Parse("198.51.100.2"), IpProtocol.Udp, 1000, 53, false);
        t.Table.TryGet(tuple, t.Now, out _, zone: 0).Should().BeFalse();
        t.Table.TryGet(tuple, t.Now, out var info, zone: 7).Should().BeTrue();
        info.Zone.Should().Be(7);
    }
}
