using Conntrack.Tests.Support;
using static Conntrack.Tests.Helpers.FtpTestKit;

namespace Conntrack.Tests.Helpers;

/// <summary>The FTP and IRC helpers parse spans: no managed allocation per packet, expectations and drops included.</summary>
public class FtpAllocationTests
{
    private static long Allocated(Action send, int iterations)
    {
        for (int i = 0; i < 2000; i++)
        {
            send(); // warm up: JIT tiers, lazily created structures
        }

        // One clean window decides: see SteadyStateAllocation.
        return SteadyStateAllocation.Measure(() =>
        {
            for (int i = 0; i < iterations / SteadyStateAllocation.Windows; i++)
            {
                send();
            }
        }).Min();
    }

    [Fact]
    public void Ftp_commands_replies_and_partial_drops_allocate_nothing()
    {
        using var t = NewTable();
        var s = new Session(t).Open();
        uint c = s.CNext, sv = s.SNext;
        // Retransmissions of segments that start at a remembered line start: each is parsed again. Those of a
        // direction have one length so that the two remembered positions stay the same.
        var port = TcpWithPayload(Client, Server, 40100, 21, 0x18, c, sv, Bytes("PORT 0192,000,2,10,195,80\r\n"));
        var eprt = TcpWithPayload(Client, Server, 40100, 21, 0x18, c, sv, Bytes("EPRT |1|192.0.2.10|50001|\r\n"));
        var partial = TcpWithPayload(Client, Server, 40100, 21, 0x18, c, sv, Bytes("PORT 192,0,2"));
        var pasv = TcpWithPayload(Server, Client, 21, 40100, 0x18, sv, c, Bytes("227 Passive (198,51,100,20,195,81)............\r\n"));
        var epsv = TcpWithPayload(Server, Client, 21, 40100, 0x18, sv, c, Bytes("229 Entering Extended Passive Mode (|||50002|)\r\n"));
        pasv.Length.Should().Be(epsv.Length);
        port.Length.Should().Be(eprt.Length);
        var drops = 0;
        long bytes = Allocated(() =>
        {
            t.Send(port);
            t.Send(eprt);
            t.Send(partial);
            drops += t.LastVerdict == Verdict.Drop ? 1 : 0;
            t.Send(pasv);
            t.Send(epsv);
        }, 20_000);
        bytes.Should().Be(0);
        drops.Should().Be(22_000);
        PendingPorts(t).Should().Equal(50002);
    }

    [Fact]
    public void Ftp_over_ipv6_allocates_nothing()
    {
        using var t = NewTable();
        var s = new Session(t, Client6, Server6).Open();
        var eprt = TcpWithPayload(Client6, Server6, 40100, 21, 0x18, s.CNext, s.SNext, Bytes("EPRT |2|2001:db8:1::0.0.0.16|50003|\r\n"));
        Allocated(() => t.Send(eprt), 20_000).Should().Be(0);
        PendingPorts(t).Should().Equal(50003);
    }

    [Fact]
    public void Irc_dcc_offers_allocate_nothing()
    {
        using var t = NewTable();
        var s = new Session(t, clientPort: 43001, serverPort: 6667).Handshake();
        var offer = TcpWithPayload(Client, Server, 43001, 6667, 0x18, s.CNext, s.SNext,
            Bytes("PRIVMSG bob :\u0001DCC SEND file 3221225994 50001 1234\u0001\r\n"));
        var chat = TcpWithPayload(Client, Server, 43001, 6667, 0x18, s.CNext, s.SNext,
            Bytes("PRIVMSG bob :\u0001DCC CHAT chat 3221225994 50002\u0001\r\n"));
        Allocated(() =>
        {
            t.Send(offer);
            t.Send(chat);
        }, 20_000).Should().Be(0);
        PendingPorts(t).Should().Equal(50001, 50002);
    }
}
