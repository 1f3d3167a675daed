using Conntrack.Diagnostics;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Diagnostics;

/// <summary>
/// /proc/net/nf_conntrack lines (ct_seq_show, nf_conntrack_standalone.c:292-378; print_tuple :35-93) and the
/// oracle's normalised table lines (shared/oracle/kernel-ct-replay normalise_table).
/// </summary>
public class FormatterTests
{
    private const long S = TestTable.Second;
    private const string A = "192.0.2.1", B = "198.51.100.2";

    private static TestTable NewTable(bool acct = false, bool tstamp = false) =>
        new(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 9, Accounting = acct, Timestamps = tstamp });

    private static string Proc(ConnectionInfo c)
    {
        var sw = new StringWriter();
        ConnectionFormatter.WriteProcLine(sw, c);
        return sw.ToString();
    }

    [Fact]
    public void Oracle_line_of_an_unreplied_udp_connection()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        t.OracleLines().Should().Equal(
            $"ipv4 udp 17 - src={A} dst={B} sport=5000 dport=53 src={B} dst={A} sport=53 dport=5000 [UNREPLIED] mark=0 zone=0");
    }

    [Fact]
    public void Oracle_line_of_an_assured_udp_stream_has_no_unreplied_flag()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        t.Send(PacketBuilder.Udp(B, A, 53, 5000));
        t.Advance(3);
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        t.OracleLines().Should().Equal(
            $"ipv4 udp 17 - src={A} dst={B} sport=5000 dport=53 src={B} dst={A} sport=53 dport=5000 [ASSURED] mark=0 zone=0");
    }

    [Fact]
    public void Oracle_line_compresses_ipv6_and_shows_the_zone()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.IcmpEcho("2001:db8:0:0:1::10", "2001:db8::20", 7, 1), zone: 5);
        t.OracleLines().Should().Equal(
            "ipv6 icmpv6 58 - src=2001:db8::1:0:0:10 dst=2001:db8::20 type=128 code=0 id=7 " +
            "src=2001:db8::20 dst=2001:db8::1:0:0:10 type=129 code=0 id=7 [UNREPLIED] mark=0 zone=5");
    }

    [Fact]
    public void Oracle_line_with_accounting_and_timeouts_appends_them_in_the_oracle_order()
    {
        // normalise_table: mark, zone, [helper], orig_packets orig_bytes reply_packets reply_bytes, timeout.
        using var t = NewTable(acct: true);
        t.Send(PacketBuilder.Udp(A, B, 5000, 53, payload: 10));  // 38 bytes
        t.Send(PacketBuilder.Udp(A, B, 5000, 53, payload: 2));   // 30 bytes
        t.Advance(4.5);
        t.Send(PacketBuilder.Udp(B, A, 53, 5000, payload: 100)); // 128 bytes
        var line = ConnectionFormatter.ToOracleLine(t.Connections().Single(), new OracleLineOptions(Accounting: true, Timeouts: true));
        line.Should().Be(
            $"ipv4 udp 17 - src={A} dst={B} sport=5000 dport=53 src={B} dst={A} sport=53 dport=5000 mark=0 zone=0 " +
            "orig_packets=2 orig_bytes=68 reply_packets=1 reply_bytes=128 timeout=30");
    }

    [Fact]
    public void Oracle_timeout_is_truncated_to_whole_seconds()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        t.Advance(0.7);
        var line = ConnectionFormatter.ToOracleLine(t.Connections().Single(), new OracleLineOptions(Timeouts: true));
        line.Should().EndWith(" timeout=29", "nf_ct_expires(ct) / HZ truncates 29.3 s");
    }

    [Fact]
    public void Oracle_line_puts_the_helper_after_the_zone_and_before_counters_and_timeout()
    {
        // normalise_table: ... mark=N zone=N [helper=NAME] [orig_packets= orig_bytes= reply_packets= reply_bytes=] [timeout=N].
        var a = Conntrack.Tuples.InetAddress.Parse(A);
        var b = Conntrack.Tuples.InetAddress.Parse(B);
        var info = new ConnectionInfo
        {
            Original = Conntrack.Tuples.ConntrackTuple.ForPorts(a, b, IpProtocol.Tcp, 40000, 21, false),
            Reply = Conntrack.Tuples.ConntrackTuple.ForPorts(b, a, IpProtocol.Tcp, 21, 40000, false),
            Status = ConnectionStatus.Confirmed | ConnectionStatus.SeenReply | ConnectionStatus.Assured,
            StateName = "ESTABLISHED",
            ProtocolName = "tcp",
            HelperName = "ftp",
            Mark = 3,
            Zone = 2,
            RemainingNs = 431999 * S + 500_000_000,
            Accounting = new Conntrack.Extensions.AccountingCounters { OriginalPackets = 5, OriginalBytes = 300, ReplyPackets = 4, ReplyBytes = 250 },
        };
        ConnectionFormatter.ToOracleLine(info, new OracleLineOptions(Helper: true, Accounting: true, Timeouts: true)).Should().Be(
            $"ipv4 tcp 6 ESTABLISHED src={A} dst={B} sport=40000 dport=21 src={B} dst={A} sport=21 dport=40000 [ASSURED] mark=3 zone=2 " +
            "helper=ftp orig_packets=5 orig_bytes=300 reply_packets=4 reply_bytes=250 timeout=431999");
        ConnectionFormatter.ToOracleLine(info).Should().Be(
            $"ipv4 tcp 6 ESTABLISHED src={A} dst={B} sport=40000 dport=21 src={B} dst={A} sport=21 dport=40000 [ASSURED] mark=3 zone=2",
            "without options the line ends at zone=");
    }

    [Fact]
    public void Oracle_line_without_helper_option_has_no_helper_field()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        ConnectionFormatter.ToOracleLine(t.Connections().Single(), new OracleLineOptions(Helper: true)).Should().NotContain("helper=");
    }

    [Fact]
    public void Proc_line_of_an_unreplied_udp_connection()
    {
        // "%-8s %u %-8s %u " then the timeout, the original tuple, [UNREPLIED], the reply tuple, mark, zone, use.
        using var t = NewTable();
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        Proc(t.Connections().Single()).Should().Be(
            $"ipv4     2 udp      17 30 src={A} dst={B} sport=5000 dport=53 [UNREPLIED] src={B} dst={A} sport=53 dport=5000 mark=0 zone=0 use=2");
    }

    [Fact]
    public void Proc_line_puts_assured_after_the_reply_tuple()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        t.Send(PacketBuilder.Udp(B, A, 53, 5000));
        t.Advance(3);
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        Proc(t.Connections().Single()).Should().Be(
            $"ipv4     2 udp      17 120 src={A} dst={B} sport=5000 dport=53 src={B} dst={A} sport=53 dport=5000 [ASSURED] mark=0 zone=0 use=2");
    }

    [Fact]
    public void Proc_line_with_accounting_prints_counters_after_each_tuple()
    {
        // seq_print_acct after each direction's tuple (nf_conntrack_standalone.c:340, 349).
        using var t = NewTable(acct: true);
        t.Send(PacketBuilder.Udp(A, B, 5000, 53, payload: 4)); // 32 bytes
        Proc(t.Connections().Single()).Should().Be(
            $"ipv4     2 udp      17 30 src={A} dst={B} sport=5000 dport=53 packets=1 bytes=32 [UNREPLIED] " +
            $"src={B} dst={A} sport=53 dport=5000 packets=0 bytes=0 mark=0 zone=0 use=2");
    }

    [Fact]
    public void Proc_line_of_icmpv6_prints_full_addresses_and_type_code_id()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.IcmpEcho("2001:db8::1", "2001:db8::2", 0x0102, 1));
        Proc(t.Connections().Single()).Should().Be(
            "ipv6     10 icmpv6   58 30 src=2001:0db8:0000:0000:0000:0000:0000:0001 dst=2001:0db8:0000:0000:0000:0000:0000:0002 type=128 code=0 id=258 " +
            "[UNREPLIED] src=2001:0db8:0000:0000:0000:0000:0000:0002 dst=2001:0db8:0000:0000:0000:0000:0000:0001 type=129 code=0 id=258 mark=0 zone=0 use=2");
    }

    [Fact]
    public void Proc_line_with_timestamps_has_delta_time_before_use()
    {
        // ct_show_delta_time: "delta-time=%llu " seconds since the start (nf_conntrack_standalone.c:223-241).
        using var t = NewTable(tstamp: true);
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        t.Advance(12.5);
        Proc(t.Connections().Single()).Should().EndWith("mark=0 zone=0 delta-time=12 use=2");
    }

    [Fact]
    public void Accounting_counts_ip_length_bytes_not_link_padding()
    {
        // nf_ct_refresh_acct counts skb->len, which ip_rcv_core trimmed to the IP total length.
        using var t = NewTable(acct: true);
        t.Send(RawPackets.Padded(PacketBuilder.Udp(A, B, 5000, 53, payload: 0), 18));
        var a = t.Connections().Single().Accounting!.Value;
        a.OriginalPackets.Should().Be(1);
        a.OriginalBytes.Should().Be(28);
    }

    [Fact]
    public void Accounting_counts_each_direction_separately()
    {
        using var t = NewTable(acct: true);
        t.Send(PacketBuilder.Udp(A, B, 5000, 53, payload: 0));   // 28
        t.Send(PacketBuilder.Udp(B, A, 53, 5000, payload: 20));  // 48
        t.Send(PacketBuilder.Udp(B, A, 53, 5000, payload: 1));   // 29
        var a = t.Connections().Single().Accounting!.Value;
        a.OriginalPackets.Should().Be(1);
        a.OriginalBytes.Should().Be(28);
        a.ReplyPackets.Should().Be(2);
        a.ReplyBytes.Should().Be(77);
    }

    [Fact]
    public void Accounting_ignores_invalid_packets_and_related_errors()
    {
        using var t = NewTable(acct: true);
        var q = PacketBuilder.Udp(A, B, 5000, 53, payload: 0);
        t.Send(q);
        var bad = PacketBuilder.Udp(B, A, 53, 5000, payload: 4);
        bad[^1] ^= 1;
        t.Send(bad);
        t.Send(PacketBuilder.IcmpError(B, A, 3, 3, q));
        var a = t.Connections().Single().Accounting!.Value;
        a.OriginalPackets.Should().Be(1);
        a.ReplyPackets.Should().Be(0);
    }

    [Fact]
    public void Accounting_off_gives_no_counters()
    {
        using var t = NewTable();
        t.Send(PacketBuilder.Udp(A, B, 5000, 53));
        t.Connections().Single().Accounting.Should().BeNull();
    }

    [Fact]
    public void Oracle_state_names_match_the_oracle_vocabulary()
    {
        ConntrackInfo.New.ToOracleString().Should().Be("NEW");
        ConntrackInfo.Established.ToOracleString().Should().Be("ESTABLISHED");
        ConntrackInfo.EstablishedReply.ToOracleString().Should().Be("ESTABLISHED+REPLY");
        ConntrackInfo.Related.ToOracleString().Should().Be("RELATED");
        ConntrackInfo.RelatedReply.ToOracleString().Should().Be("RELATED+REPLY");
        ConntrackInfo.Invalid.ToOracleString().Should().Be("INVALID");
        ConntrackInfo.Untracked.ToOracleString().Should().Be("UNTRACKED");
    }
}
