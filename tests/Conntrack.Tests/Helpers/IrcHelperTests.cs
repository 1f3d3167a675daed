using Conntrack.Tests.Support;
using static Conntrack.Tests.Helpers.FtpTestKit;

namespace Conntrack.Tests.Helpers;

/// <summary>
/// The IRC helper end to end (nf_conntrack_irc.c). The payload outcomes asserted here were also recorded from the
/// Linux 6.18 kernel (kernel-ct-replay --helpers --reasons, drop messages included) on captures crafted with
/// the same payloads, except what a top-speed replay cannot show (expiry, master deletion, a full table).
/// </summary>
public class IrcHelperTests
{
    /// <summary>192.0.2.10 as the one decimal number DCC uses.</summary>
    private const ulong ClientNumber = (192UL << 24) | (2 << 8) | 10;

    private static Session Irc(TestTable t, ushort clientPort = 43001, string client = Client, string server = Server)
    {
        var s = new Session(t, client, server, clientPort, 6667).Handshake();
        s.C("NICK a\r\n");
        s.S(":srv 001 a :hi\r\n");
        return s;
    }

    private static string Send(string type, ulong ip, ulong port, string argument = "file.txt") =>
        $"PRIVMSG bob :\u0001DCC {type} {argument} {ip} {port} 1234\u0001\r\n";

    [Fact]
    public void Dcc_send_expects_anyone_from_any_port_to_the_clients_address_and_port()
    {
        using var t = NewTable(out _, out var irc);
        var s = Irc(t);
        s.C(Send("SEND", ClientNumber, 50001));
        irc.LastDrop.Should().BeNull();

        var e = Pending(t).Should().ContainSingle().Subject;
        e.Tuple.SourceAddress.ToString().Should().Be("0.0.0.0");
        e.MaskSource.ToString(ipv6: false).Should().Be("0.0.0.0", "any address");
        e.MaskSourcePort.Should().Be(0, "any port");
        e.Tuple.DestinationAddress.ToString().Should().Be(Client);
        e.Tuple.DestinationPort.Should().Be(50001);
        e.HelperName.Should().Be("irc");
        e.RemainingNs.Should().Be(300 * TestTable.Second);

        s.Syn("203.0.113.5", 3333, Client, 50001).Info.Should().Be(ConntrackInfo.Related);
        Pending(t).Should().BeEmpty();
    }

    [Theory]
    [InlineData("SEND")]
    [InlineData("CHAT")]
    [InlineData("MOVE")]
    [InlineData("TSEND")]
    [InlineData("SCHAT")]
    public void Every_dcc_type_the_kernel_knows_opens_a_connection(string type)
    {
        using var t = NewTable();
        Irc(t).C(Send(type, ClientNumber, 50002));
        PendingPorts(t).Should().Equal(50002);
    }

    [Theory]
    [InlineData("privmsg bob :\u0001DCC MOVE f {0} 50003\u0001\r\n", 50003)] // PRIVMSG in any case
    [InlineData("  \r\n PRIVMSG bob :\u0001DCC SEND f {0} 50013\u0001\r\n", 50013)] // leading blanks skipped
    [InlineData("PRIVMSG bob :\u0001DCC SEND f {0}    50016\u0001\r\n", 50016)] // blanks before the port
    [InlineData("PRIVMSG bob :\u0001DCC RESUME f 1 2\u0001 :\u0001DCC SEND f {0} 50014\u0001\r\n", 50014)] // unknown type: the next " :"
    [InlineData("PRIVMSG bob :\u0001DCC SEND f {0} 50024\u0001\r\nPRIVMSG bob :\u0001DCC SEND g {0} 50124\u0001\r\n", 50024)] // only the first
    [InlineData("PRIVMSG bob :\u0001DCC SEND f\0x {0} 50032\u0001\r\n", 50032)] // the argument is any bytes up to a space
    [InlineData("PRIVMSG b :\u0001DCC SEND f {0} 1\n", 1)]
    [InlineData("PRIVMSG bob :\u0001DCC SEND f {0} 50028\u0001\n{1}", 50028)]
    public void Dcc_offers_are_found_as_the_kernel_finds_them(string format, int port)
    {
        using var t = NewTable();
        Irc(t).C(string.Format(System.Globalization.CultureInfo.InvariantCulture, format, ClientNumber, new string('x', 4100)));
        PendingPorts(t).Should().Equal(port);
    }

    [Theory]
    [InlineData("PRIVMSG bob :\u0001dcc send f {0} 50004\u0001\r\n")] // the DCC words are case-sensitive
    [InlineData("PRIVMSG bob :\u0001DCC SEND f {0} 50012\u0001")] // no newline in the segment
    [InlineData("PRIVMSG bob :hello :\u0001DCC SEND f {0} 50015\u0001\r\n")] // the first " :" is not a DCC
    [InlineData("PRIVMSG bob :\u0001DCC SEND f -{0} 50017\u0001\r\n")] // no sign: address 0
    [InlineData("PRIVMSG bob :\u0001DCC SEND f 0x{0:x} 50018\u0001\r\n")] // decimal only
    [InlineData("PRIVMSG bob :\u0001DCC SEND f 192.0.2.10 50019\u0001\r\n")] // not dotted
    [InlineData("PRIVMSG bob :\u0001DCC SEND verylongfilenamewithoutspaces\u0001\r\n")]
    [InlineData("NOTICE bob :\u0001DCC SEND f {0} 50021\u0001\r\n")]
    [InlineData(":a PRIVMSG bob :\u0001DCC SEND f {0} 50022\u0001\r\n")] // PRIVMSG must start the segment
    [InlineData("PRIVMSG b :\u0001DCC SEND f {0}\nabcdefghijklmn")] // port 0 (no digits)
    public void Malformed_or_foreign_messages_are_ignored(string format)
    {
        using var t = NewTable(out _, out var irc);
        Irc(t).C(string.Format(System.Globalization.CultureInfo.InvariantCulture, format, ClientNumber));
        t.LastVerdict.Should().Be(Verdict.Accept);
        irc.LastDrop.Should().BeNull();
        Pending(t).Should().BeEmpty();
    }

    [Fact]
    public void An_offer_for_another_address_is_ignored_as_forged()
    {
        using var t = NewTable(out _, out var irc);
        Irc(t).C(Send("SEND", ClientNumber + 1, 50007));
        irc.LastDrop.Should().BeNull();
        Pending(t).Should().BeEmpty();
    }

    [Fact]
    public void An_offer_of_port_zero_is_ignored()
    {
        using var t = NewTable();
        Irc(t).C(Send("SEND", ClientNumber, 0));
        Pending(t).Should().BeEmpty();
    }

    [Theory]
    [InlineData(ClientNumber, 65536 + 50009, 50009)] // the port is truncated to 16 bits
    [InlineData(ClientNumber + (1UL << 32), 50010, 50010)] // the address to 32 bits
    [InlineData(ClientNumber + (5UL << 40), 50011, 50011)]
    public void Numbers_wrap_as_simple_strtoul_and_the_truncation_make_them(ulong ip, ulong port, int expected)
    {
        using var t = NewTable();
        Irc(t).C(Send("SEND", ip, port));
        PendingPorts(t).Should().Equal(expected);
    }

    [Fact]
    public void An_address_that_wraps_past_2_to_the_64_still_counts()
    {
        // 5 * 2^64 + client: simple_strtoul wraps at 2^64, then the address is truncated to 32 bits.
        var big = System.Numerics.BigInteger.Pow(2, 64) * 5 + ClientNumber;
        using var t = NewTable();
        Irc(t).C($"PRIVMSG bob :\u0001DCC SEND f {big} 50011\u0001\r\n");
        PendingPorts(t).Should().Equal(50011);
    }

    [Fact]
    public void Offers_from_the_server_side_are_not_looked_at()
    {
        using var t = NewTable();
        Irc(t).S(Send("SEND", ClientNumber, 50023));
        Pending(t).Should().BeEmpty();
    }

    [Fact]
    public void The_first_client_segment_after_the_handshake_is_looked_at()
    {
        using var t = NewTable();
        var s = new Session(t, clientPort: 43900, serverPort: 6667).Handshake();
        s.C(Send("SEND", ClientNumber, 50029));
        PendingPorts(t).Should().Equal(50029);
    }

    [Theory]
    [InlineData(4000, true)]
    [InlineData(-1, true)] // the offer's newline is the 4095th byte
    [InlineData(0, false)] // the newline is the 4096th byte: not within the searched part
    [InlineData(4100, false)]
    public void Only_the_first_4095_bytes_of_a_segment_are_searched(int padding, bool found)
    {
        string tail = $" :\u0001DCC SEND f {ClientNumber} 50001\u0001\r\n";
        int pad = padding switch
        {
            -1 => 4095 - 8 - tail.Length,
            0 => 4096 - 8 - tail.Length,
            _ => padding,
        };
        using var t = NewTable();
        Irc(t).C("PRIVMSG " + new string('x', pad) + tail);
        PendingPorts(t).Should().Equal(found ? [50001] : []);
    }

    [Fact]
    public void At_most_eight_offers_are_pending_per_connection_and_the_oldest_gives_way()
    {
        using var t = NewTable(out _, out var irc);
        var s = Irc(t);
        for (int i = 0; i < 10; i++)
        {
            s.C(Send("SEND", ClientNumber, (ulong)(50100 + i), $"f{i}"));
            irc.LastDrop.Should().BeNull();
        }

        PendingPorts(t).Should().Equal(Enumerable.Range(50102, 8));
    }

    [Fact]
    public void An_offer_that_clashes_with_another_connections_drops_the_packet()
    {
        using var t = NewTable(out _, out var irc);
        Irc(t, 43001).C(Send("SEND", ClientNumber, 50033));
        var st = Irc(t, 43002).C(Send("SEND", ClientNumber, 50033));
        t.LastVerdict.Should().Be(Verdict.Drop);
        st.Reason.Should().Be(PacketReason.HelperDropped);
        irc.LastDrop.Should().Be("cannot add expectation");
        Pending(t).Should().ContainSingle().Which.Master.SourcePort.Should().Be(43001);
    }

    [Fact]
    public void Ipv6_connections_get_no_irc_helper()
    {
        using var t = NewTable(out _, out var irc);
        var s = Irc(t, 43001, Client6, Server6);
        s.C("PRIVMSG bob :\u0001DCC SEND f 1 50040\u0001\r\n");
        irc.Calls.Should().Be(0);
        Pending(t).Should().BeEmpty();
    }

    [Fact]
    public void Offers_expire_after_dcc_timeout()
    {
        using var t = NewTable(new ConntrackOptions { MaxEntries = 4096, Buckets = 1024, HashSeed = 1 });
        var s = Irc(t);
        s.C(Send("SEND", ClientNumber, 50050));
        t.Advance(299);
        t.Table.CollectGarbage(t.Now, 1024);
        Pending(t).Should().ContainSingle();
        t.Advance(2);
        t.Table.CollectGarbage(t.Now, 1024);
        Pending(t).Should().BeEmpty();
        s.Syn("203.0.113.5", 3333, Client, 50050).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Offers_die_with_their_irc_connection()
    {
        using var t = NewTable();
        var s = Irc(t);
        var master = s.C(Send("SEND", ClientNumber, 50060)).Connection;
        s.C(Send("CHAT", ClientNumber, 50061));
        Pending(t).Should().HaveCount(2);
        t.Table.Delete(master, t.Now).Should().BeTrue();
        Pending(t).Should().BeEmpty();
        s.Syn("203.0.113.5", 3333, Client, 50060).Info.Should().Be(ConntrackInfo.New);
    }

    [Fact]
    public void Random_segments_never_throw_and_only_expect_the_clients_address()
    {
        string[] atoms = ["PRIVMSG ", "privmsg ", " :", ":", "\u0001DCC ", "SEND ", "CHAT ", "TSEND ", "x ", " ", "\r", "\n", "\0",
            ClientNumber.ToString(System.Globalization.CultureInfo.InvariantCulture), "3221225995", "0", "65535", "99999999999999999999999", "\u00ff"];
        var rng = new Random(99);
        using var t = NewTable();
        var s = Irc(t);
        for (int i = 0; i < 5000; i++)
        {
            var sb = new System.Text.StringBuilder();
            int n = rng.Next(1, 16);
            for (int k = 0; k < n; k++)
            {
                sb.Append(atoms[rng.Next(atoms.Length)]);
            }

            s.C(sb.ToString());
            foreach (var e in Pending(t))
            {
                e.Tuple.DestinationAddress.ToString().Should().Be(Client);
                e.Tuple.DestinationPort.Should().NotBe(0);
            }
        }
    }
}
