using Conntrack.Tests.Support;
using static Conntrack.Tests.Helpers.FtpTestKit;

namespace Conntrack.Tests.Helpers;

/// <summary>
/// The FTP helper end to end (nf_conntrack_ftp.c). The payload outcomes asserted here were also recorded from the
/// Linux 6.18 kernel (kernel-ct-replay --helpers --reasons, drop messages included) on captures crafted with
/// the same payloads, except what a top-speed replay cannot show (expiry, master deletion, a full table).
/// </summary>
public class FtpHelperTests
{
    private static string P(int port) => $"{port >> 8},{port & 255}";

    // ---- active mode: PORT / EPRT ----

    [Fact]
    public void Port_expects_the_server_from_any_port_to_the_clients_address_and_port()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.C($"PORT 192,0,2,10,{P(50010)}\r\n");
        t.LastVerdict.Should().Be(Verdict.Accept);

        var e = Pending(t).Should().ContainSingle().Subject;
        e.Tuple.SourceAddress.ToString().Should().Be(Server);
        e.MaskSource.ToString(ipv6: false).Should().Be("255.255.255.255");
        e.Tuple.SourcePort.Should().Be(0);
        e.MaskSourcePort.Should().Be(0, "any server port");
        e.Tuple.DestinationAddress.ToString().Should().Be(Client);
        e.Tuple.DestinationPort.Should().Be(50010);
        e.Tuple.Protocol.Should().Be(IpProtocol.Tcp);
        e.HelperName.Should().Be("ftp");
        e.Class.Should().Be(0);
        e.Master.SourcePort.Should().Be(40100);
        e.RemainingNs.Should().Be(300 * TestTable.Second);
    }

    [Fact]
    public void The_data_connection_of_a_port_command_is_related_and_uses_the_expectation_up()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.C($"PORT 192,0,2,10,{P(50010)}\r\n");
        s.Syn(Server, 20, Client, 50010).Info.Should().Be(ConntrackInfo.Related);
        Pending(t).Should().BeEmpty();
        t.Table.Statistics.ExpectNew.Should().Be(1);

        var lines = t.Table.Snapshot(t.Now)
            .Select(c => global::Conntrack.Diagnostics.ConnectionFormatter.ToOracleLine(c, new global::Conntrack.Diagnostics.OracleLineOptions(Helper: true)))
            .Order(StringComparer.Ordinal).ToList();
        lines.Should().Contain(l => l.Contains("sport=20 dport=50010", StringComparison.Ordinal) && !l.Contains("helper=", StringComparison.Ordinal),
            "the expected connection has no helper of its own");
        lines.Should().Contain(l => l.Contains("dport=21 ", StringComparison.Ordinal) && l.EndsWith("helper=ftp", StringComparison.Ordinal));
    }

    [Fact]
    public void A_data_connection_from_another_address_is_not_related()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.C($"PORT 192,0,2,10,{P(50010)}\r\n");
        s.Syn("203.0.113.9", 20, Client, 50010).Info.Should().Be(ConntrackInfo.New);
        Pending(t).Should().ContainSingle();
    }

    [Theory]
    [InlineData("port 192,0,2,10,195,90\r\n")]
    [InlineData("PoRt 192,0,2,10,195,90\r\n")]
    [InlineData("PORT 192,0,2,10,195,90\r\nNOOP\r\n")]
    [InlineData("PORTX 192,0,2,10,195,90\r\n")]
    public void Port_is_matched_case_insensitively_and_anything_up_to_the_first_space_is_skipped(string line)
    {
        using var t = NewTable();
        new Session(t).Open().C(line);
        PendingPorts(t).Should().Equal(195 * 256 + 90);
    }

    [Fact]
    public void Eprt_over_ipv4_expects_the_announced_port()
    {
        using var t = NewTable();
        new Session(t).Open().C("EPRT |1|192.0.2.10|50021|\r\n");
        var e = Pending(t).Should().ContainSingle().Subject;
        e.Tuple.SourceAddress.ToString().Should().Be(Server);
        e.Tuple.DestinationAddress.ToString().Should().Be(Client);
        e.Tuple.DestinationPort.Should().Be(50021);
    }

    [Fact]
    public void Eprt_accepts_any_printable_non_digit_delimiter_in_any_case()
    {
        using var t = NewTable();
        new Session(t).Open().C("eprt !1!192.0.2.10!50026!\r\n");
        PendingPorts(t).Should().Equal(50026);
    }

    [Fact]
    public void Eprt_octets_above_255_spill_into_the_next_octet()
    {
        // 192.0.2.266 is 0xC0000200 | 266 = 192.0.3.10: not the client's address, so ignored (not dropped).
        using var t = NewTable(out var ftp, out _);
        new Session(t).Open().C("EPRT |1|192.0.2.266|50030|\r\n");
        ftp.LastDrop.Should().BeNull();
        Pending(t).Should().BeEmpty();
    }

    [Fact]
    public void Eprt_port_wraps_at_65536()
    {
        using var t = NewTable();
        new Session(t).Open().C($"EPRT |1|192.0.2.10|{65536 + 50025}|\r\n");
        PendingPorts(t).Should().Equal(50025);
    }

    [Fact]
    public void Eprt_over_ipv6_expects_an_ipv6_data_connection()
    {
        using var t = NewTable();
        var s = new Session(t, Client6, Server6).Open();
        s.C("EPRT |2|2001:db8:1::10|50030|\r\n");
        var e = Pending(t).Should().ContainSingle().Subject;
        e.Tuple.IsIpv6.Should().BeTrue();
        e.Tuple.SourceAddress.ToString(ipv6: true).Should().Be(Server6);
        e.MaskSource.ToString(ipv6: true).Should().Be("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        e.Tuple.DestinationAddress.ToString(ipv6: true).Should().Be(Client6);
        e.Tuple.DestinationPort.Should().Be(50030);
        s.Syn(Server6, 20, Client6, 50030).Info.Should().Be(ConntrackInfo.Related);
    }

    [Theory]
    [InlineData("EPRT |2|2001:0db8:0001:0000:0000:0000:0000:0010|50002|\r\n", true)]
    [InlineData("EPRT |2|2001:db8:1::0.0.0.16|50003|\r\n", true)]
    [InlineData("EPRT |2|2001:DB8:1:0:0:0:0:10|50007|\r\n", true)]
    [InlineData("EPRT |2|2001:db8:1::00010|50011|\r\n", true)]
    [InlineData("EPRT |2|2001:db8:1::0000010|50012|\r\n", true)] // leading zeros never fill a word
    [InlineData("EPRT |2|2001:db8:1:0:0:0:0.0.0.16|50016|\r\n", true)]
    [InlineData("EPRT |2|2001:db8:1::10\u000050004|\r\n", true)] // a NUL ends the address like the delimiter
    [InlineData("EPRT |2|2001:db8:1::11|50005|\r\n", false)]
    [InlineData("EPRT |2|::|50017|\r\n", false)]
    [InlineData("EPRT |2|2001:db8:1::010.0.0.16|50025|\r\n", false)] // 10.0.0.16, not 0.0.0.16
    public void Eprt_ipv6_address_forms_follow_in6_pton(string line, bool expected)
    {
        using var t = NewTable(out var ftp, out _);
        new Session(t, Client6, Server6).Open().C(line);
        ftp.LastDrop.Should().BeNull();
        Pending(t).Should().HaveCount(expected ? 1 : 0);
    }

    [Theory]
    [InlineData("EPRT |1|192.0.2.10|50006|\r\n")] // IPv4 family on an IPv6 connection
    [InlineData("EPRT |2|2001:db8:1::1:2:3:4:5:10|50008|\r\n")]
    [InlineData("EPRT |2|2001:db8:1:::10|50009|\r\n")]
    [InlineData("EPRT |2|2001:db8:1::10:|50010|\r\n")]
    [InlineData("EPRT |2|2001:db8:1::0.0.0.256|50014|\r\n")]
    [InlineData("EPRT |2|2001:db8:1::10")]
    [InlineData("EPRT |2|2001:db8:1:0:0:0:0:0:10|50019|\r\n")]
    [InlineData("EPRT |2|2001:db8:1::10::|50020|\r\n")]
    [InlineData("EPRT |2|2001:db8:1::g|50023|\r\n")]
    [InlineData("EPRT |2|2001:db8:1::1.2.3|50024|\r\n")]
    [InlineData("EPRT |2||50026|\r\n")]
    [InlineData("EPRT |2|2001:db8:1::10|\r\n")]
    public void Malformed_ipv6_eprt_is_dropped_as_partial(string line)
    {
        using var t = NewTable(out var ftp, out _);
        new Session(t, Client6, Server6).Open().C(line);
        t.LastVerdict.Should().Be(Verdict.Drop);
        ftp.LastDrop.Should().Be("partial matching of `EPRT'");
        Pending(t).Should().BeEmpty();
    }

    [Fact]
    public void On_ipv6_a_port_address_replaces_only_the_first_four_bytes_of_the_senders()
    {
        // cmd.u3 starts as the client's IPv6 address and PORT writes its first four bytes: 32.1.13.184 is
        // 2001:0db8, so the kernel finds it equal to the client's own address and expects IPv6.
        using var t = NewTable();
        var s = new Session(t, Client6, Server6).Open();
        s.C($"PORT 32,1,13,184,{P(50030)}\r\n");
        var e = Pending(t).Should().ContainSingle().Subject;
        e.Tuple.DestinationAddress.ToString(ipv6: true).Should().Be(Client6);
        e.Tuple.DestinationPort.Should().Be(50030);

        using var t2 = NewTable();
        new Session(t2, Client6, Server6).Open().C($"PORT 192,0,2,10,{P(50031)}\r\n");
        Pending(t2).Should().BeEmpty();
    }

    // ---- passive mode: 227 / 229 ----

    [Fact]
    public void Pasv_reply_expects_the_client_from_any_port_to_the_servers_port()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.C("PASV\r\n");
        s.S($"227 Entering Passive Mode (198,51,100,20,{P(50040)}).\r\n");
        var e = Pending(t).Should().ContainSingle().Subject;
        e.Tuple.SourceAddress.ToString().Should().Be(Client);
        e.MaskSourcePort.Should().Be(0);
        e.Tuple.DestinationAddress.ToString().Should().Be(Server);
        e.Tuple.DestinationPort.Should().Be(50040);
        s.Syn(Client, 41040, Server, 50040).Info.Should().Be(ConntrackInfo.Related);
    }

    [Theory]
    [InlineData("227 =198,51,100,20,195,81\r\n", 50001)]
    [InlineData("227-(198,51,100,20,195,81)\r\n", -1)] // "227-" is not "227 "
    [InlineData("227 (198,51,100,20,195,81\0\r\n", 50001)] // any character ends the numbers of a 227
    [InlineData("227 (10,0,0,1,195,81)\r\n", -1)] // not the server's address
    [InlineData("228 (|||50056|)\r\n", -1)]
    public void Pasv_reply_numbers_start_at_the_first_digit(string reply, int port)
    {
        using var t = NewTable(out var ftp, out _);
        new Session(t).Open().S(reply);
        ftp.LastDrop.Should().BeNull();
        PendingPorts(t).Should().Equal(port < 0 ? [] : [port]);
    }

    [Fact]
    public void A_pasv_reply_longer_than_any_buffer_is_parsed_whole()
    {
        using var t = NewTable();
        new Session(t).Open().S("227 " + new string('x', 3000) + $" (198,51,100,20,{P(50054)})\r\n");
        PendingPorts(t).Should().Equal(50054);
    }

    [Fact]
    public void Epsv_reply_names_no_address_and_means_the_server()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.C("EPSV\r\n");
        s.S("229 Entering Extended Passive Mode (|||50047|)\r\n");
        var e = Pending(t).Should().ContainSingle().Subject;
        e.Tuple.SourceAddress.ToString().Should().Be(Client);
        e.Tuple.DestinationAddress.ToString().Should().Be(Server);
        e.Tuple.DestinationPort.Should().Be(50047);
        s.Syn(Client, 41047, Server, 50047).Info.Should().Be(ConntrackInfo.Related);
    }

    [Fact]
    public void Epsv_reply_over_ipv6_expects_an_ipv6_data_connection()
    {
        using var t = NewTable();
        var s = new Session(t, Client6, Server6).Open();
        s.S("229 Entering Extended Passive Mode (!!!50033!)\r\n");
        var e = Pending(t).Should().ContainSingle().Subject;
        e.Tuple.SourceAddress.ToString(ipv6: true).Should().Be(Client6);
        e.Tuple.DestinationAddress.ToString(ipv6: true).Should().Be(Server6);
        s.Syn(Client6, 43333, Server6, 50033).Info.Should().Be(ConntrackInfo.Related);
    }

    [Fact]
    public void Commands_in_the_wrong_direction_are_not_looked_for()
    {
        using var t = NewTable(out var ftp, out _);
        var s = new Session(t).Open();
        s.C($"227 (198,51,100,20,{P(50055)})\r\n");
        ftp.LastDrop.Should().BeNull();
        s.S($"PORT 198,51,100,20,{P(50155)}\r\n");
        ftp.LastDrop.Should().BeNull();
        Pending(t).Should().BeEmpty();
    }

    // ---- loose=0 ----

    [Fact]
    public void A_port_with_another_address_is_ignored_not_dropped()
    {
        using var t = NewTable(out var ftp, out _);
        var s = new Session(t).Open();
        s.C($"PORT 10,0,0,1,{P(50007)}\r\n");
        t.LastVerdict.Should().Be(Verdict.Accept);
        ftp.LastDrop.Should().BeNull();
        Pending(t).Should().BeEmpty();

        s.C($"PORT 192,0,2,10,{P(50107)}\r\n");
        PendingPorts(t).Should().Equal(new[] { 50107 }, "the ignored line still ended at a remembered line start");
    }

    // ---- kernel arithmetic on hostile numbers ----

    [Theory]
    [InlineData("PORT 192,0,2,999,195,90\r\n", -1)] // 999 spills into the third octet: another address
    [InlineData("PORT 0,49152,2,10,195,91\r\n", 50011)] // 49152 << 16 is 192 << 24: the client's address
    [InlineData("PORT 4294967488,0,2,10,195,92\r\n", 50012)] // 2^32 + 192 wraps to 192
    [InlineData("PORT 192,0,2,10,0,0\r\n", 0)] // port 0 is expected: the kernel does not check
    [InlineData("PORT 192,0,2,10,451,19\r\n", 49939)] // (451 << 8 | 19) & 0xffff
    [InlineData("PORT ,,,,,\r\n", -1)] // empty numbers are zeros: 0.0.0.0 is not the client
    public void Port_numbers_use_the_kernels_unchecked_arithmetic(string line, int port)
    {
        using var t = NewTable(out var ftp, out _);
        new Session(t).Open().C(line);
        ftp.LastDrop.Should().BeNull();
        PendingPorts(t).Should().Equal(port < 0 ? [] : [port]);
    }

    [Theory]
    [InlineData("PORT 192,0,2,10,195,90\n")] // the terminator must be \r
    [InlineData("PORT 192,0,2,10,-1,5\r\n")]
    [InlineData("PORT 192,0,2,10,0xc3,5\r\n")]
    [InlineData("PORT 192,0,2,10,195,\u000093\r\n")]
    [InlineData("PORT 192,0,2,10,195\r\n")]
    [InlineData("PORT 192,0,2,10,195,90,5\r\n")]
    [InlineData("PORTAL\r\n")] // "PORT" then no space in the segment
    [InlineData("PORT\t192,0,2,10,195,90\r\n")]
    [InlineData("PORT   192,0,2,10,195,90\r\n")] // the numbers must follow the first space
    [InlineData("PORT 192,0,2")] // the numbers continue in the next segment
    [InlineData("PO")] // the segment ends inside the command
    [InlineData("P")]
    public void Unparsable_port_lines_are_dropped_as_partial_matches(string line)
    {
        using var t = NewTable(out var ftp, out _);
        var st = new Session(t).Open().C(line);
        t.LastVerdict.Should().Be(Verdict.Drop);
        st.Reason.Should().Be(PacketReason.HelperDropped);
        st.Info.Should().Be(ConntrackInfo.Established, "the state is the one conntrack gave the packet");
        ftp.LastDrop.Should().Be("partial matching of `PORT'");
        Pending(t).Should().BeEmpty();
    }

    [Theory]
    [InlineData("E")]
    [InlineData("EPRT 1|1|192.0.2.10|50022|\r\n")] // a digit is no delimiter
    [InlineData("EPRT |2|192.0.2.10|50023|\r\n")] // IPv6 family on an IPv4 connection
    [InlineData("EPRT |1|192.0.2.10|65536|\r\n")] // wraps to port 0
    [InlineData("EPRT  1 192.0.2.10 50027 \r\n")] // space is no delimiter
    [InlineData("EPRT |1|192.0.2.10|50029\r\n")]
    [InlineData("EPRT |1|192.0.10|50031|\r\n")]
    [InlineData("EPRT .1.192.0.2.10.50032.\r\n")]
    [InlineData("EPRT |1|\r\n")]
    public void Malformed_eprt_lines_are_dropped_as_partial_matches(string line)
    {
        using var t = NewTable(out var ftp, out _);
        new Session(t).Open().C(line);
        t.LastVerdict.Should().Be(Verdict.Drop);
        ftp.LastDrop.Should().Be("partial matching of `EPRT'");
        Pending(t).Should().BeEmpty();
    }

    [Theory]
    [InlineData("227 nothing here\r\n", "227 ")]
    [InlineData("227", "227 ")]
    [InlineData("2", "227 ")]
    [InlineData("227 198,51,100,20,195,84", "227 ")] // the numbers run to the end of the segment
    [InlineData("229 Entering Extended Passive Mode |||50048|\r\n", "229 ")]
    [InlineData("229 (|||0|)\r\n", "229 ")]
    [InlineData("229 (|!|50051|)\r\n", "229 ")]
    public void Unparsable_replies_are_dropped_as_partial_matches(string reply, string pattern)
    {
        using var t = NewTable(out var ftp, out _);
        new Session(t).Open().S(reply);
        t.LastVerdict.Should().Be(Verdict.Drop);
        ftp.LastDrop.Should().Be($"partial matching of `{pattern}'");
        Pending(t).Should().BeEmpty();
    }

    [Fact]
    public void A_nul_inside_the_command_word_is_no_command()
    {
        using var t = NewTable(out var ftp, out _);
        var s = new Session(t).Open();
        s.C($"P\0RT 192,0,2,10,{P(50014)}\r\n");
        ftp.LastDrop.Should().BeNull();
        Pending(t).Should().BeEmpty();
        s.C($"PORT 192,0,2,10,{P(50114)}\r\n");
        PendingPorts(t).Should().Equal(50114);
    }

    // ---- line boundaries by sequence number ----

    [Fact]
    public void The_first_data_segment_of_each_direction_is_never_parsed()
    {
        using var t = NewTable();
        var s = new Session(t).Handshake();
        s.C($"PORT 192,0,2,10,{P(50039)}\r\n");
        Pending(t).Should().BeEmpty();
        s.S($"227 (198,51,100,20,{P(50040)})\r\n");
        Pending(t).Should().BeEmpty();

        s.C($"PORT 192,0,2,10,{P(50139)}\r\n");
        PendingPorts(t).Should().Equal(50139);
        s.S($"227 (198,51,100,20,{P(50140)})\r\n");
        PendingPorts(t).Should().Equal(new[] { 50140 }, "one expectation per control connection: the newest replaces it");
    }

    [Fact]
    public void Only_the_first_line_of_a_segment_is_looked_at()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.C($"NOOP\r\nPORT 192,0,2,10,{P(50015)}\r\n");
        Pending(t).Should().BeEmpty();
    }

    [Fact]
    public void A_segment_without_a_final_newline_makes_the_next_one_unparsed()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.C("NOOP");
        s.C($"\r\nPORT 192,0,2,10,{P(50038)}\r\n");
        Pending(t).Should().BeEmpty();
        s.C($"PORT 192,0,2,10,{P(50138)}\r\n");
        PendingPorts(t).Should().Equal(50138);
    }

    [Fact]
    public void After_a_partial_match_the_rest_of_the_line_is_not_parsed_but_a_retransmission_is()
    {
        using var t = NewTable(out var ftp, out _);
        var s = new Session(t).Open();
        uint start = s.CNext;
        s.C("PO");
        ftp.LastDrop.Should().Be("partial matching of `PORT'");
        s.C($"RT 192,0,2,10,{P(50005)}\r\n");
        ftp.LastDrop.Should().BeNull();
        Pending(t).Should().BeEmpty("the segment does not start where a remembered one ended with a newline");

        s.CAt(start, Bytes($"PORT 192,0,2,10,{P(50005)}\r\n"));
        PendingPorts(t).Should().Equal(new[] { 50005 }, "the sender retransmits the dropped data as a whole line");
    }

    [Fact]
    public void After_a_partial_reply_the_next_reply_is_not_parsed()
    {
        using var t = NewTable(out var ftp, out _);
        var s = new Session(t).Open();
        s.S("227 (198,51,100");
        ftp.LastDrop.Should().Be("partial matching of `227 '");
        s.S($",20,{P(50500)})\r\n");
        s.S($"227 (198,51,100,20,{P(50501)})\r\n");
        PendingPorts(t).Should().Equal(50501);
    }

    [Fact]
    public void A_line_that_arrives_before_the_one_in_front_of_it_is_parsed_when_retransmitted()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        var noop = Bytes("NOOP\r\n");
        var port = Bytes($"PORT 192,0,2,10,{P(50200)}\r\n");
        uint start = s.CNext;
        s.CAt(start + (uint)noop.Length, port);
        Pending(t).Should().BeEmpty();
        s.CAt(start, noop);
        s.CAt(start + (uint)noop.Length, port);
        PendingPorts(t).Should().Equal(50200);
    }

    [Fact]
    public void Two_line_starts_are_remembered_per_direction_and_a_newer_one_replaces_the_older()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        uint q1 = s.CNext;
        s.C("NOOP\r\n");
        uint q2 = s.CNext;
        s.C("NOOP\r\n");
        uint q3 = s.CNext; // remembered: q2 and q3 (q1 was replaced)

        s.CAt(q1, Bytes("NOOP\r\n")); // an old position: not after the oldest remembered one, nothing changes
        s.CAt(q2, Bytes($"PORT 192,0,2,10,{P(50401)}\r\n"));
        PendingPorts(t).Should().Equal(50401);
        s.CAt(q3, Bytes($"PORT 192,0,2,10,{P(50400)}\r\n"));
        PendingPorts(t).Should().Equal(50400);
    }

    [Fact]
    public void Line_starts_survive_sequence_number_wrap_around()
    {
        using var t = NewTable();
        var s = new Session(t) { CNext = 0xFFFFFFF0 }.Open();
        for (int i = 0; i < 4; i++)
        {
            s.C($"PORT 192,0,2,10,{P(50100 + i)}\r\n");
            PendingPorts(t).Should().Equal(50100 + i);
        }
    }

    // ---- expectations ----

    [Fact]
    public void A_newer_port_replaces_the_pending_expectation()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.C($"PORT 192,0,2,10,{P(50034)}\r\n");
        s.C($"PORT 192,0,2,10,{P(50134)}\r\n");
        PendingPorts(t).Should().Equal(50134);
        s.Syn(Server, 20, Client, 50034).Info.Should().Be(ConntrackInfo.New);
        s.Syn(Server, 20, Client, 50134).Info.Should().Be(ConntrackInfo.Related);
    }

    [Fact]
    public void A_newer_pasv_replaces_the_pending_expectation()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.S($"227 (198,51,100,20,{P(50053)})\r\n");
        s.S($"227 (198,51,100,20,{P(50153)})\r\n");
        PendingPorts(t).Should().Equal(50153);
        s.Syn(Client, 41053, Server, 50053).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Repeating_the_same_command_renews_the_expectation()
    {
        using var t = NewTable(out var ftp, out _);
        var s = new Session(t).Open();
        s.C($"PORT 192,0,2,10,{P(50037)}\r\n");
        t.Advance(100);
        s.C($"PORT 192,0,2,10,{P(50037)}\r\n");
        ftp.LastDrop.Should().BeNull();
        Pending(t).Should().ContainSingle().Which.RemainingNs.Should().Be(300 * TestTable.Second);
    }

    [Fact]
    public void An_expectation_that_clashes_with_another_masters_drops_the_packet()
    {
        using var t = NewTable(out var ftp, out _);
        new Session(t, clientPort: 41000).Open().S($"227 (198,51,100,20,{P(50057)})\r\n");
        var b = new Session(t, clientPort: 41001).Open();
        var st = b.S($"227 (198,51,100,20,{P(50057)})\r\n");
        t.LastVerdict.Should().Be(Verdict.Drop);
        st.Reason.Should().Be(PacketReason.HelperDropped);
        ftp.LastDrop.Should().Be("cannot add expectation");
        Pending(t).Should().ContainSingle().Which.Master.SourcePort.Should().Be(41000);

        b.S($"227 (198,51,100,20,{P(50058)})\r\n");
        PendingPorts(t).Should().Equal(50057, 50058);
    }

    [Fact]
    public void A_full_expectation_table_drops_the_command()
    {
        using var t = NewTable(out var ftp, out _, new ConntrackOptions { MaxEntries = 4096, Buckets = 1024, HashSeed = 1, ExpectMax = 1 });
        new Session(t, clientPort: 41000).Open().C($"PORT 192,0,2,10,{P(50060)}\r\n");
        new Session(t, clientPort: 41001).Open().C($"PORT 192,0,2,10,{P(50061)}\r\n");
        t.LastVerdict.Should().Be(Verdict.Drop);
        ftp.LastDrop.Should().Be("cannot add expectation");
        PendingPorts(t).Should().Equal(50060);
    }

    [Fact]
    public void Expectations_expire_after_five_minutes()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        s.C($"PORT 192,0,2,10,{P(50070)}\r\n");
        t.Advance(299);
        t.Table.CollectGarbage(t.Now, 1024);
        Pending(t).Should().ContainSingle();
        t.Advance(2);
        t.Table.CollectGarbage(t.Now, 1024);
        Pending(t).Should().BeEmpty();
        s.Syn(Server, 20, Client, 50070).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Expectations_die_with_their_control_connection()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        var master = s.C($"PORT 192,0,2,10,{P(50080)}\r\n").Connection;
        Pending(t).Should().ContainSingle();
        t.Table.Delete(master, t.Now).Should().BeTrue();
        Pending(t).Should().BeEmpty();
        s.Syn(Server, 20, Client, 50080).Info.Should().Be(ConntrackInfo.New);
    }

    // ---- what the helper looks at ----

    [Fact]
    public void Packets_of_an_unanswered_connection_are_not_looked_at()
    {
        using var t = NewTable(out var ftp, out _);
        // A SYN carrying "P" would be a partial PORT if parsed; it is NEW, so the helper leaves it alone.
        t.Send(TcpWithPayload(Client, Server, 40100, 21, PacketBuilder.FlagSyn, 999, 0, Bytes("P")));
        ftp.Calls.Should().Be(1);
        t.LastVerdict.Should().Be(Verdict.Accept);
        ftp.LastDrop.Should().BeNull();
    }

    [Fact]
    public void Segments_without_payload_are_not_looked_at()
    {
        using var t = NewTable(out var ftp, out _);
        var s = new Session(t).Open();
        s.C([]);
        ftp.LastDrop.Should().BeNull();
        s.C($"PORT 192,0,2,10,{P(50090)}\r\n");
        PendingPorts(t).Should().Equal(50090);
    }

    [Fact]
    public void Random_segments_never_throw_and_only_expect_the_connections_own_addresses()
    {
        string[] atoms = ["PORT ", "EPRT ", "227 ", "229 ", "port ", "(", ")", "|", "|||", "!", ",", ".", ":", "::", "|1|", "|2|",
            "192", "0", "2", "10", "198", "51", "100", "20", "195", "65535", "4294967295", "99999999999", "\r", "\n", "\r\n", "\0", "\u00ff", " ", "x"];
        var rng = new Random(1234);
        foreach (bool v6 in new[] { false, true })
        {
            using var t = NewTable();
            var s = new Session(t, v6 ? Client6 : Client, v6 ? Server6 : Server).Open();
            for (int i = 0; i < 3000; i++)
            {
                var sb = new System.Text.StringBuilder();
                int n = rng.Next(1, 14);
                for (int k = 0; k < n; k++)
                {
                    sb.Append(atoms[rng.Next(atoms.Length)]);
                }

                if (rng.Next(3) != 0)
                {
                    sb.Append("\r\n");
                }

                if (rng.Next(2) == 0)
                {
                    s.C(sb.ToString());
                }
                else
                {
                    s.S(sb.ToString());
                }

                foreach (var e in Pending(t))
                {
                    var pair = (e.Tuple.SourceAddress.ToString(v6), e.Tuple.DestinationAddress.ToString(v6));
                    pair.Should().BeOneOf(v6 ? (Server6, Client6) : (Server, Client), v6 ? (Client6, Server6) : (Client, Server));
                }
            }
        }
    }
}
