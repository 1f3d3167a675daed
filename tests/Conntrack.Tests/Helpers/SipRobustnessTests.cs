using System.Diagnostics;
using System.Text;
using Conntrack.Tests.Support;
using static Conntrack.Tests.Helpers.SipTestKit;

namespace Conntrack.Tests.Helpers;

/// <summary>
/// Hostile input: random bytes, mutated and truncated messages, huge and pathological packets. The helper must
/// never throw, never create an expectation that is not for the sender's own address, and stay linear in time;
/// in steady state it must not allocate.
/// </summary>
public class SipRobustnessTests
{
    private static readonly string ValidInvite = Request("INVITE", Client, Server, 1,
        Sdp(Client, "m=audio 49170 RTP/AVP 0", "m=video 51372 RTP/AVP 31", "c=IN IP4 192.0.2.10", "m=image 60000 udptl t38"),
        "Contact: <sip:alice@192.0.2.10:5070>", "Expires: 60");

    private static readonly string ValidRegister = Request("REGISTER", Client, Server, 2, "", "Contact: <sip:alice@192.0.2.10:5070>;expires=60, <sip:alice@192.0.2.10:5071>", "Expires: 60");

    private static readonly byte[] Tokens = Bytes(":\r\n \t@[].,;=0159af\0\u00ffsip:m=c=v=IN IP4 audio SIP/2.0 CSeq l:");

    /// <summary>Every expectation must be for a sender's own address, from its peer.</summary>
    private static void AssertSane(TestTable t)
    {
        foreach (var e in t.Expectations())
        {
            string dst = e.Tuple.DestinationAddress.ToString();
            string src = e.Tuple.SourceAddress.ToString();
            (dst == Client && src == Server || dst == Server && src == Client).Should().BeTrue($"{src} -> {dst} is no endpoint pair");
            e.Tuple.DestinationPort.Should().BeGreaterThanOrEqualTo(1024);
        }
    }

    [Fact]
    public void Random_bytes_never_throw_nor_expect_anything()
    {
        using var t = NewTable(out _, out _);
        var rnd = new Random(1);
        var s = new TcpSession(t).Handshake();
        for (int n = 0; n < 3000; n++)
        {
            var payload = new byte[rnd.Next(0, 1500)];
            rnd.NextBytes(payload);
            t.Send(Udp(Client, Server, 5060, 5060, payload));
            t.Send(Udp(Server, Client, 5060, 5060, payload));
            if (n % 10 == 0)
            {
                s.C(Encoding.Latin1.GetString(payload));
                s.S(""); // acknowledge, so that the window keeps moving
            }
        }

        t.Expectations().Should().BeEmpty();
    }

    [Fact]
    public void Mutated_messages_never_throw_and_expect_only_their_senders_address()
    {
        var rnd = new Random(2);
        using var t = NewTable(out _, out _);
        var s = new TcpSession(t).Handshake();
        var templates = new[]
        {
            Bytes(ValidInvite), Bytes(ValidRegister), Bytes(Response(200, "OK", "INVITE", 1, Sdp(Server, "m=audio 3456 RTP/AVP 0"))),
            Bytes(Response(200, "OK", "REGISTER", 2, "", "Contact: <sip:alice@192.0.2.10:5070>;expires=60")),
        };
        for (int n = 0; n < 20_000; n++)
        {
            int k = rnd.Next(templates.Length);
            var m = new List<byte>(templates[k]);
            for (int i = rnd.Next(1, 6); i > 0 && m.Count > 0; i--)
            {
                int at = rnd.Next(m.Count);
                switch (rnd.Next(4))
                {
                    case 0: m[at] = Tokens[rnd.Next(Tokens.Length)]; break;
                    case 1: m.Insert(at, Tokens[rnd.Next(Tokens.Length)]); break;
                    case 2: m.RemoveRange(at, Math.Min(rnd.Next(1, 10), m.Count - at)); break;
                    default: m.RemoveRange(at, m.Count - at); break;
                }
            }

            var payload = m.ToArray();
            bool fromServer = k == 2 || k == 3;
            if (n % 4 == 0)
            {
                if (fromServer)
                {
                    s.S(Encoding.Latin1.GetString(payload));
                    s.C("");
                }
                else
                {
                    s.C(Encoding.Latin1.GetString(payload));
                    s.S("");
                }
            }
            else
            {
                // A new signalling connection now and then, so that drops of first packets are exercised too.
                ushort port = (ushort)(5060 + (n % 3));
                t.Send(fromServer ? Udp(Server, Client, 5060, port, payload) : Udp(Client, Server, port, 5060, payload));
            }

            if (n % 500 == 0)
            {
                AssertSane(t);
            }
        }

        AssertSane(t);
        t.Table.Helpers.All.Should().NotBeEmpty();
    }

    [Fact]
    public void Every_truncation_of_a_valid_message_is_handled()
    {
        var full = Bytes(ValidInvite);
        for (int len = 0; len <= full.Length; len++)
        {
            using var t = NewTable(out var sip, out _);
            t.Send(Udp(Client, Server, 5060, 5060, full.AsSpan(0, len)));
            AssertSane(t);
            if (len == full.Length)
            {
                t.Expected().Should().Equal("audio:49170", "audio:49171", "video:51372", "video:51373", "image:60000", "image:60001");
                sip.LastDrop.Should().BeNull();
            }
        }
    }

    [Fact]
    public void Huge_pathological_packets_are_processed_in_linear_time()
    {
        using var t = NewTable(out _, out _);
        var s = new TcpSession(t).Handshake();
        string big = new('x', 60_000);
        var hostile = new[]
        {
            "INVITE sip:x SIP/2.0\r\n" + string.Concat(Enumerable.Repeat("\r\n", 30_000)),
            "INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n" + string.Concat(Enumerable.Repeat("m=text 1 x\r\n", 5_000)),
            "INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n" + string.Concat(Enumerable.Repeat("c=IN IP4 1.2.3.4\r\nm=audio 0 x\r\n", 2_000)),
            "INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\nVia: " + string.Concat(Enumerable.Repeat("SIP/2.0/UDP x,", 4_000)),
            "REGISTER sip:x SIP/2.0\r\nCSeq: 1 REGISTER\r\nContact: " + string.Concat(Enumerable.Repeat("<sip:u@host>, ", 4_000)),
            "SIP/2.0 200 OK\r\nCSeq: 0 REGISTER\r\nContact: " + string.Concat(Enumerable.Repeat("<sip:192.0.2.10:5070>,\r\n ", 3_000)) + "\r\nExpires: 5\r\n",
            "SIP/2.0 200 OK\r\nCSeq: 0 REGISTER\r\n" + string.Concat(Enumerable.Repeat("Contact: <sip:u@host>;expires=1\r\n", 1_500)),
            "INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n" + string.Concat(Enumerable.Repeat("CSeq\r\n \r\n ", 6_000)),
            "INVITE " + big,
            string.Concat(Enumerable.Repeat("OPTIONS x SIP/2.0\r\nl:0\r\n\r\n", 2_000)),
            string.Concat(Enumerable.Repeat("\nl:0\r\n\r\n", 7_000)),
        };
        var sw = Stopwatch.StartNew();
        for (int round = 0; round < 5; round++)
        {
            foreach (var h in hostile)
            {
                var payload = Bytes(h.Length > 65_000 ? h[..65_000] : h);
                t.Send(Udp(Client, Server, 5060, 5060, payload));
                t.Send(Udp(Server, Client, 5060, 5060, payload));
                s.C(h.Length > 60_000 ? h[..60_000] : h);
                s.S("");
            }
        }

        sw.Stop();
        sw.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20), "about 165 packets of up to 64 KB");
        AssertSane(t);
    }

    [Fact]
    public void Steady_state_calls_allocate_nothing()
    {
        using var t = NewTable(out _, out _);
        var invite = Sip(Client, Server, Request("INVITE", Client, Server, 1, Sdp(Client, "m=audio 49170 RTP/AVP 0", "m=video 51372 RTP/AVP 31")));
        var ok = Sip(Server, Client, Response(200, "OK", "INVITE", 1, Sdp(Server, "m=audio 3456 RTP/AVP 0")));
        var bye = Sip(Client, Server, Request("BYE", Client, Server, 2));
        var register = Sip(Client, Server, ValidRegister);
        var registered = Sip(Server, Client, Response(200, "OK", "REGISTER", 2, "", "Contact: <sip:alice@192.0.2.10:5070>;expires=60"));
        var badPort = Sip(Client, Server, Request("INVITE", Client, Server, 3, Sdp(Client, "m=audio 70000 RTP/AVP 0")));
        var s = new TcpSession(t).Handshake();
        var tcpPayload = Encoding.Latin1.GetString(invite.AsSpan(28)) + Encoding.Latin1.GetString(bye.AsSpan(28));

        void Round()
        {
            t.Send(invite);
            t.Send(ok);
            t.Send(bye);
            t.Send(register);
            t.Send(registered);
            t.Send(badPort);
        }

        for (int i = 0; i < 200; i++)
        {
            Round();
        }

        SteadyStateAllocation.ShouldAllocateNothing(
            () =>
            {
                for (int i = 0; i < 2_000; i++)
                {
                    Round();
                }
            },
            "the SIP helper");
        s.C(tcpPayload); // the TCP path once, for coverage of its framing under the same table
    }
}
