using Conntrack.Protocols;
using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.SctpChunks;

namespace Conntrack.Tests.Protocols;

/// <summary>
/// Every cell of the kernel's sctp_conntracks[dir][chunk][state], driven by real packets: a recipe reaches the
/// state, then one chunk of the row's type is sent in the direction with tags that pass the vtag rules. The
/// expected states are typed from net/netfilter/nf_conntrack_proto_sctp.c; the same recipes and probes were
/// replayed through Linux 6.18.44 (kernel-ct-replay) and gave exactly these states and verdicts.
/// </summary>
public class SctpStateTableTests
{
    private const uint TagN = 0x0C0C0C0C;

    private static readonly string[] States = ["sNO", "sCL", "sCW", "sCE", "sES", "sSS", "sSR", "sSA", "sHS"];

    private static readonly string[] Chunks =
    [
        "INIT", "INIT_ACK", "ABORT", "SHUTDOWN", "SHUTDOWN_ACK", "ERROR", "COOKIE_ECHO", "COOKIE_ACK", "SHUTDOWN_COMPLETE",
        "HEARTBEAT", "HEARTBEAT_ACK",
    ];

    // sctp_conntracks[IP_CT_DIR_ORIGINAL]
    //  sNO, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS
    private static readonly string[] Original =
    [
        "sCL sCL sCW sCE sES sCL sCL sSA sCW", // init
        "sCL sCL sCW sCE sES sSS sSR sSA sCL", // init_ack
        "sCL sCL sCL sCL sCL sCL sCL sCL sCL", // abort
        "sCL sCL sCW sCE sSS sSS sSR sSA sCL", // shutdown
        "sSA sCL sCW sCE sES sSA sSA sSA sSA", // shutdown_ack
        "sCL sCL sCW sCE sES sSS sSR sSA sCL", // error
        "sCL sCL sCE sCE sES sSS sSR sSA sCL", // cookie_echo
        "sCL sCL sCW sES sES sSS sSR sSA sCL", // cookie_ack
        "sCL sCL sCW sCE sES sSS sSR sCL sCL", // shutdown_comp
        "sHS sCL sCW sCE sES sSS sSR sSA sHS", // heartbeat
        "sCL sCL sCW sCE sES sSS sSR sSA sHS", // heartbeat_ack
    ];

    // sctp_conntracks[IP_CT_DIR_REPLY]
    //  sNO, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS
    private static readonly string[] Reply =
    [
        "sIV sCL sCW sCE sES sSS sSR sSA sIV", // init
        "sIV sCW sCW sCE sES sSS sSR sSA sIV", // init_ack
        "sIV sCL sCL sCL sCL sCL sCL sCL sIV", // abort
        "sIV sCL sCW sCE sSR sSS sSR sSA sIV", // shutdown
        "sIV sCL sCW sCE sES sSA sSA sSA sIV", // shutdown_ack
        "sIV sCL sCW sCL sES sSS sSR sSA sIV", // error
        "sIV sCL sCE sCE sES sSS sSR sSA sIV", // cookie_echo
        "sIV sCL sCW sES sES sSS sSR sSA sIV", // cookie_ack
        "sIV sCL sCW sCE sES sSS sSR sCL sIV", // shutdown_comp
        "sIV sCL sCW sCE sES sSS sSR sSA sHS", // heartbeat
        "sIV sCL sCW sCE sES sSS sSR sSA sES", // heartbeat_ack
    ];

    private static string Expected(int dir, int row, int column) => (dir == 0 ? Original : Reply)[row].Split(' ')[column];

    private static string? Name(string s) => s switch
    {
        "sNO" => null, // no connection yet
        "sCL" => "CLOSED",
        "sCW" => "COOKIE_WAIT",
        "sCE" => "COOKIE_ECHOED",
        "sES" => "ESTABLISHED",
        "sSS" => "SHUTDOWN_SENT",
        "sSR" => "SHUTDOWN_RECD",
        "sSA" => "SHUTDOWN_ACK_SENT",
        "sHS" => "HEARTBEAT_SENT",
        _ => throw new ArgumentOutOfRangeException(nameof(s), s, null),
    };

    /// <summary>Every reachable cell: the reply direction has no NONE state (a connection starts in the original
    /// direction), and ABORT, SHUTDOWN COMPLETE and COOKIE ACK cannot start one (see the chunk validation tests).</summary>
    public static TheoryData<int, string, string> Cells()
    {
        var data = new TheoryData<int, string, string>();
        for (int dir = 0; dir < 2; dir++)
        {
            foreach (string chunk in Chunks)
            {
                foreach (string state in States)
                {
                    if (state == "sNO" && (dir == 1 || chunk is "ABORT" or "SHUTDOWN_COMPLETE" or "COOKIE_ACK"))
                    {
                        continue;
                    }

                    data.Add(dir, chunk, state);
                }
            }
        }

        return data;
    }

    /// <summary>Brings a flow to <paramref name="state"/>; returns the tags then expected in each direction and whether it is assured.</summary>
    private static (uint Orig, uint Reply, bool Assured) Reach(TestTable t, SctpFlow f, string state)
    {
        const uint a = SctpFlow.TagA, b = SctpFlow.TagB;
        byte[][] packets = state switch
        {
            "sNO" => [],
            "sCL" => [f.Init()],
            "sCW" => [f.Init(), f.InitAck()],
            "sCE" => [f.Init(), f.InitAck(), f.CookieEcho()],
            "sES" => [.. f.Handshake()],
            "sSS" => [.. f.Handshake(), f.Orig(b, ShutdownChunk())],
            "sSR" => [.. f.Handshake(), f.Reply(a, ShutdownChunk())],
            "sSA" => [.. f.Handshake(), f.Orig(b, ShutdownChunk()), f.Reply(a, ShutdownAckChunk())],
            "sHS" => [f.Orig(b, HeartbeatChunk())],
            _ => throw new ArgumentOutOfRangeException(nameof(state), state, null),
        };
        t.SendAll(packets).Should().NotContain(ConntrackInfo.Invalid);
        t.SctpState(f.ClientPort).Should().Be(Name(state));
        return state switch
        {
            "sNO" => (0, 0, false),
            "sCL" => (0, a, false),
            "sHS" => (b, 0, false),
            "sCW" or "sCE" => (b, a, false),
            _ => (b, a, true),
        };
    }

    [Theory]
    [MemberData(nameof(Cells))]
    public void Chunk_in_direction_moves_the_state_as_the_kernel_table_says(int dir, string chunk, string state)
    {
        using var t = new TestTable();
        var f = new SctpFlow(10000);
        var (orig, reply, assured) = Reach(t, f, state);
        uint own = dir == 0 ? orig : reply, peer = dir == 0 ? reply : orig;

        // Tags that pass the checks: INIT carries 0; INIT ACK repeats the tag already recorded for the peer.
        uint vtag = chunk == "INIT" ? 0 : own;
        uint initTag = chunk == "INIT" ? TagN : peer != 0 ? peer : TagN;
        byte[] probe = ByName(chunk, initTag);
        var info = t.Send(dir == 0 ? f.Orig(vtag, probe) : f.Reply(vtag, probe)).Info;

        string expected = Expected(dir, Array.IndexOf(Chunks, chunk), Array.IndexOf(States, state));
        if (expected == "sIV")
        {
            info.Should().Be(ConntrackInfo.Invalid);
            t.SctpState(f.ClientPort).Should().Be(Name(state), "an invalid chunk leaves the state alone");
            return;
        }

        info.Should().NotBe(ConntrackInfo.Invalid);
        var c = t.Sctp(f.ClientPort);
        c.Should().NotBeNull();
        c!.Value.StateName.Should().Be(Name(expected));
        c.Value.Status.HasFlag(ConnectionStatus.Assured).Should().Be(assured || expected == "sES",
            "ASSURED is set on entering ESTABLISHED and never cleared");
    }

    [Fact]
    public void Transition_function_matches_the_kernel_table_in_every_cell()
    {
        byte[] types = [Init, InitAck, Abort, Shutdown, ShutdownAck, Error, CookieEcho, CookieAck, ShutdownComplete, Heartbeat, HeartbeatAck];
        for (int dir = 0; dir < 2; dir++)
        {
            for (int row = 0; row < types.Length; row++)
            {
                for (byte state = 0; state < States.Length; state++)
                {
                    string e = Expected(dir, row, state);
                    byte expected = e == "sIV" ? SctpConntrack.Max : (byte)Array.IndexOf(States, e);
                    SctpTracker.NewState(dir, state, types[row]).Should().Be(expected, $"dir {dir}, {Chunks[row]}, {States[state]}");
                }
            }
        }
    }

    [Theory]
    [InlineData(Data)]
    [InlineData(Sack)]
    [InlineData((byte)12)] // ECNE
    [InlineData((byte)63)]
    [InlineData((byte)200)]
    public void Chunk_types_outside_the_table_keep_the_state(byte type)
    {
        for (int dir = 0; dir < 2; dir++)
        {
            for (byte state = 0; state < States.Length; state++)
            {
                SctpTracker.NewState(dir, state, type).Should().Be(state);
            }
        }
    }

    [Fact]
    public void Unused_heartbeat_acked_column_is_zero_as_in_the_kernel_array()
    {
        SctpTracker.NewState(0, SctpConntrack.HeartbeatAcked, Init).Should().Be(SctpConntrack.None);
        SctpTracker.NewState(1, SctpConntrack.HeartbeatAcked, HeartbeatAck).Should().Be(SctpConntrack.None);
    }
}
