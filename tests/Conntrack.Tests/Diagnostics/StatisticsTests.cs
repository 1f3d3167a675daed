using Conntrack.Tests.Support;

namespace Conntrack.Tests.Diagnostics;

/// <summary>
/// Counters with the kernel's names (struct ip_conntrack_stat; ctnetlink_ct_stat_cpu_fill_info,
/// nf_conntrack_netlink.c:2500-2512) and where nf_conntrack_core.c increments them.
/// </summary>
public class StatisticsTests
{
    private static TestTable NewTable() => new(new ConntrackOptions { MaxEntries = 100, Buckets = 128, HashSeed = 4 });

    [Fact]
    public void Fresh_table_reports_its_limits_and_zero_counters()
    {
        using var t = NewTable();
        var s = t.Table.Statistics;
        s.MaxEntries.Should().Be(100);
        s.Buckets.Should().Be(128);
        s.Entries.Should().Be(0);
        s.Invalid.Should().Be(0);
        s.Drop.Should().Be(0);
    }

    [Fact]
    public void Statistics_text_has_one_line_per_counter_with_kernel_names()
    {
        using var t = NewTable();
        var lines = t.Table.Statistics.ToString().Split('\n');
        var names = lines.Select(l => l.Split(' ')[0]).ToList();
        // The names ctnetlink and /proc/net/stat/nf_conntrack use for the kernel's counters.
        names.Should().Contain(["found", "invalid", "insert", "insert_failed", "drop", "early_drop", "error",
            "search_restart", "clash_resolve", "chaintoolong", "expect_new", "expect_create", "expect_delete"]);
        names.Should().OnlyHaveUniqueItems();
        lines.Should().AllSatisfy(l => l.Split(' ').Should().HaveCount(2));
    }

    [Fact]
    public void Statistics_text_carries_the_values()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1, 2));
        t.Send(PacketBuilder.Raw("192.0.2.1", "198.51.100.2", IpProtocol.Udp, [1, 2]));
        t.Send(PacketBuilder.Raw("192.0.2.1", "198.51.100.2", IpProtocol.Udp, [1, 2, 3]));
        var text = t.Table.Statistics.ToString();
        text.Split('\n').Should().Contain("invalid 2").And.Contain("entries 1").And.Contain("max 100");
    }

    [Fact]
    public void Invalid_counts_packets_that_got_no_connection()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.IcmpEcho("192.0.2.1", "198.51.100.2", 1, 1, reply: true)); // cannot create
        var bad = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1, 2);
        bad[^1] ^= 1;
        t.Send(bad);                                                                   // bad checksum
        t.Table.Statistics.Invalid.Should().Be(2);
    }

    [Fact]
    public void Ip_input_drops_are_not_conntrack_invalid()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.Udp("::1", "2001:db8::1", 1, 2));
        var s = t.Table.Statistics;
        s.IpInputDrop.Should().Be(1);
        s.Invalid.Should().Be(0);
        s.Drop.Should().Be(0, "conntrack's drop counter is for packets conntrack itself dropped");
    }

    [Fact]
    public void Untracked_icmpv6_counts_neither_invalid_nor_error()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.Icmp("fe80::1", "fe80::2", 135, 0, 0, 0, new byte[16]));
        var s = t.Table.Statistics;
        s.Untracked.Should().Be(1);
        s.Invalid.Should().Be(0);
        s.Error.Should().Be(0);
    }

    [Fact]
    public void New_counts_allocated_connections_including_ones_never_confirmed()
    {
        using var t = NewTable();
        var p = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1, 2);
        var st = default(PacketState);
        t.Table.In(p, t.Now, ref st);
        t.Table.Release(ref st);
        t.Send(p);
        t.Send(p);
        t.Table.Statistics.New.Should().Be(2);
    }

    [Fact]
    public void Confirming_on_the_packet_path_does_not_count_insert()
    {
        // 6.12 increments "insert" only in nf_conntrack_hash_check_insert() (ctnetlink-created entries,
        // nf_conntrack_core.c:906); __nf_conntrack_confirm (core.c:1175-1303) has no NF_CT_STAT_INC(net, insert),
        // so `conntrack -S` shows insert=0 on a forwarding box.
        using var t = NewTable();
        t.Send(PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 1, 2));
        t.Send(PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 3, 4));
        t.Table.Statistics.Insert.Should().Be(0, "the kernel's packet path never counts insert (nf_conntrack_core.c:906 is ctnetlink only)");
    }

    [Fact]
    public void Statistics_are_summed_over_threads()
    {
        using var t = NewTable();
        var threads = Enumerable.Range(0, 4).Select(k => new Thread(() =>
        {
            for (int i = 0; i < 25; i++)
            {
                var bad = PacketBuilder.Raw("192.0.2.1", "198.51.100.2", IpProtocol.Udp, [1]);
                var s = default(PacketState);
                t.Table.In(bad, t.Now, ref s);
            }
        })).ToList();
        threads.ForEach(th => th.Start());
        threads.ForEach(th => th.Join());
        t.Table.Statistics.Invalid.Should().Be(100);
    }
}
