using Conntrack.Tests.Support;

namespace Conntrack.Tests.Api;

/// <summary>ConntrackOptions: kernel sysctl names, defaults and validation.</summary>
public class OptionsTests
{
    private static long Get(ConntrackOptions o, string name) => o.GetSysctls().Single(kv => kv.Key == name).Value;

    [Theory]
    // Timeouts: proto_udp.c:28-29, proto_icmp.c:25, proto_icmpv6.c:28, proto_generic.c (600*HZ), proto_gre.c (30/180).
    [InlineData("nf_conntrack_udp_timeout", 30)]
    [InlineData("nf_conntrack_udp_timeout_stream", 120)]
    [InlineData("nf_conntrack_icmp_timeout", 30)]
    [InlineData("nf_conntrack_icmpv6_timeout", 30)]
    [InlineData("nf_conntrack_generic_timeout", 600)]
    [InlineData("nf_conntrack_gre_timeout", 30)]
    [InlineData("nf_conntrack_gre_timeout_stream", 180)]
    // net->ct.sysctl_checksum = 1 (standalone.c:1142); nf_ct_acct / nf_ct_tstamp default false (acct.c:20,
    // timestamp.c:17); tcp_loose = 1, tcp_max_retrans = 3 (proto_tcp.c:1640, 1655).
    [InlineData("nf_conntrack_checksum", 1)]
    [InlineData("nf_conntrack_acct", 0)]
    [InlineData("nf_conntrack_timestamp", 0)]
    [InlineData("nf_conntrack_tcp_loose", 1)]
    [InlineData("nf_conntrack_tcp_max_retrans", 3)]
    [InlineData("nf_conntrack_helper", 0)]
    public void Defaults_are_the_kernel_defaults(string name, long expected)
    {
        Get(new ConntrackOptions(), name).Should().Be(expected);
    }

    [Fact]
    public void Expectation_limit_defaults_to_four_per_256_buckets()
    {
        // nf_ct_expect_hsize = htable_size / 256 (at least 1); nf_ct_expect_max = hsize * 4 (expect.c:782-786).
        new ConntrackOptions { Buckets = 262144 }.EffectiveExpectMax.Should().Be(4096);
        new ConntrackOptions { Buckets = 1000 }.EffectiveExpectMax.Should().Be(12);
        new ConntrackOptions { Buckets = 100 }.EffectiveExpectMax.Should().Be(4);
    }

    [Fact]
    public void Sysctl_accepts_the_net_netfilter_prefix()
    {
        var o = new ConntrackOptions();
        o.SetSysctl("net.netfilter.nf_conntrack_udp_timeout", "77");
        o.UdpTimeout.Should().Be(TimeSpan.FromSeconds(77));
    }

    [Fact]
    public void Unknown_sysctl_is_rejected()
    {
        var act = () => new ConntrackOptions().SetSysctl("nf_conntrack_no_such_thing", "1");
        act.Should().Throw<ArgumentException>();
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("abc")]
    [InlineData("")]
    public void Sysctl_value_that_is_not_a_non_negative_integer_is_rejected(string value)
    {
        var act = () => new ConntrackOptions().SetSysctl("nf_conntrack_udp_timeout", value);
        act.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Every_listed_sysctl_can_be_set_to_its_own_value()
    {
        var o = new ConntrackOptions();
        foreach (var (name, value) in o.GetSysctls().ToList())
        {
            var act = () => o.SetSysctl(name, value.ToString(System.Globalization.CultureInfo.InvariantCulture));
            act.Should().NotThrow(name);
        }
    }

    [Fact]
    public void Table_copies_the_options()
    {
        var o = new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 1 };
        using var t = new TestTable(o);
        o.UdpTimeout = TimeSpan.FromSeconds(1);
        t.Send(PacketBuilder.Udp("192.0.2.1", "192.0.2.2", 1, 2));
        t.Connections().Single().RemainingNs.Should().Be(30 * TestTable.Second, "changing the options after creation has no effect");
        t.Table.Options.UdpTimeout.Should().Be(TimeSpan.FromSeconds(30));
    }

    [Theory]
    [InlineData(0, 64)]
    [InlineData(64, 0)]
    public void Zero_limits_are_rejected(int max, int buckets)
    {
        var act = () => new ConntrackTable(new ConntrackOptions { MaxEntries = max, Buckets = buckets });
        act.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Disposed_table_refuses_new_threads()
    {
        var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64 });
        table.Dispose();
        var act = () =>
        {
            var s = default(PacketState);
            table.In(PacketBuilder.Udp("192.0.2.1", "192.0.2.2", 1, 2), 1, ref s);
        };
        act.Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void Disposed_table_refuses_calls_from_a_thread_that_used_it_before()
    {
        // "Calls after disposal throw ObjectDisposedException" (ConntrackTable.Dispose): also on a thread that
        // already had its context for the table.
        var table = new ConntrackTable(new ConntrackOptions { MaxEntries = 64, Buckets = 64 });
        var packet = PacketBuilder.Udp("192.0.2.1", "192.0.2.2", 1, 2);
        using var used = new ManualResetEventSlim();
        using var disposed = new ManualResetEventSlim();
        Exception? thrown = null;
        var worker = new Thread(() =>
        {
            var s = default(PacketState);
            table.In(packet, 1, ref s);
            table.Release(ref s);
            used.Set();
            disposed.Wait();
            try
            {
                table.In(packet, 2, ref s);
            }
            catch (Exception e)
            {
                thrown = e;
            }
        });
        worker.Start();
        used.Wait();
        table.Dispose();
        disposed.Set();
        worker.Join();
        thrown.Should().BeOfType<ObjectDisposedException>();
    }
}
