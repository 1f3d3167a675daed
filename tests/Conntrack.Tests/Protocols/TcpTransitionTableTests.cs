using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.TcpTestKit;

namespace Conntrack.Tests.Protocols;

/// <summary>
/// Every cell of the kernel's tcp_conntracks[dir][index][state]: a connection is driven into the state with
/// hand-built in-window segments, then one segment of the flag class is sent in the direction. The table
/// below is typed from net/netfilter/nf_conntrack_proto_tcp.c (Linux 6.12, unchanged in 6.18); the cells
/// where nf_conntrack_tcp_packet() overrides the table are listed separately, each with the kernel's reason.
/// All 119 reachable cells were also replayed through Linux 6.18 (kernel-ct-replay) with the same segments
/// and gave these answers.
/// </summary>
public class TcpTransitionTableTests
{
    // The kernel's names for the table's cells.
    private const string sNO = "NONE", sSS = "SYN_SENT", sSR = "SYN_RECV", sES = "ESTABLISHED", sFW = "FIN_WAIT",
        sCW = "CLOSE_WAIT", sLA = "LAST_ACK", sTW = "TIME_WAIT", sCL = "CLOSE", sS2 = "SYN_SENT2";
    private const string sIV = "INVALID", sIG = "IGNORE";

    private static readonly string[] States = [sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2];
    private static readonly string[] Classes = ["syn", "synack", "fin", "ack", "rst", "none"];

    /// <summary>tcp_conntracks[2][6][TCP_CONNTRACK_MAX], as in the kernel.</summary>
    private static readonly string[][][] Kernel =
    [
        [
            // ORIGINAL  sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2
            /*syn*/    [sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2],
            /*synack*/ [sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR],
            /*fin*/    [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
            /*ack*/    [sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV],
            /*rst*/    [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
            /*none*/   [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
        ],
        [
            // REPLY     sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2
            /*syn*/    [sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2],
            /*synack*/ [sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR],
            /*fin*/    [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
            /*ack*/    [sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG],
            /*rst*/    [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
            /*none*/   [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
        ],
    ];

    /// <summary>The outcome of one probe: the packet's ctinfo, the state afterwards (null: no connection), and whether the tuple is reversed.</summary>
    public sealed record Outcome(ConntrackInfo Info, string? State, bool Reversed = false);

    /// <summary>
    /// Cells where nf_conntrack_tcp_packet() does more than the table says (dir, class, state).
    /// </summary>
    private static readonly Dictionary<(int Dir, string Class, string State), Outcome> Overrides = new()
    {
        // sTW/sCL -> sSS with IP_CT_TCP_FLAG_CLOSE_INIT set (the client sent FIN first) or the last packet an
        // RST in this direction: "Attempt to reopen a closed/aborted connection. Delete this connection and
        // look up again." The SYN then creates a fresh connection: NEW.
        [(0, "syn", sTW)] = new(ConntrackInfo.New, sSS),
        [(0, "syn", sCL)] = new(ConntrackInfo.New, sSS),
        // "Reopened connection, but server may have switched role": the fresh connection's original
        // direction is the server's.
        [(1, "syn", sTW)] = new(ConntrackInfo.New, sSS, Reversed: true),
        // "If only reply is a RST, we can consider ourselves not to have an established connection [...] we
        // can delete the conntrack immediately." The RST itself is accepted.
        [(0, "rst", sSS)] = new(ConntrackInfo.New, null),
        [(1, "rst", sSS)] = new(ConntrackInfo.EstablishedReply, null),
    };

    /// <summary>States in which the original direction's packets are NEW (no reply seen yet).</summary>
    private static bool ReplySeenIn(string state) => state is not (sNO or sSS);

    public static TheoryData<int, string, string> Cells()
    {
        var data = new TheoryData<int, string, string>();
        for (int dir = 0; dir < 2; dir++)
        {
            foreach (string cls in Classes)
            {
                foreach (string state in States)
                {
                    // Reply/sNO: "Never reached" — a connection only exists in NONE before its first packet.
                    if (dir == 1 && state == sNO)
                    {
                        continue;
                    }

                    data.Add(dir, cls, state);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cells))]
    public void Every_cell_of_the_state_table_behaves_as_the_kernel(int dir, string cls, string state)
    {
        using var t = new TestTable();
        var conn = new Flow(t);
        conn.DriveTo(state);
        if (state != sNO)
        {
            conn.StateName().Should().Be(state, "the setup must reach the state");
        }

        string cell = Kernel[dir][Array.IndexOf(Classes, cls)][Array.IndexOf(States, state)];
        Outcome expected = Overrides.TryGetValue((dir, cls, state), out var o) ? o : FromTable(dir, cell, state);

        var result = conn.Probe(dir, cls);

        result.Info.Should().Be(expected.Info, $"cell [{dir}][{cls}][{state}] = {cell}");
        var conns = t.Connections();
        if (expected.State is null)
        {
            conns.Should().BeEmpty();
            return;
        }

        conns.Should().ContainSingle();
        conns[0].StateName.Should().Be(expected.State, $"cell [{dir}][{cls}][{state}] = {cell}");
        conns[0].Original.SourcePort.Should().Be(expected.Reversed ? ServerPort : ClientPort);
    }

    /// <summary>The plain reading of a cell: sIV invalid and nothing changes; sIG accepted and nothing changes; else the new state.</summary>
    private static Outcome FromTable(int dir, string cell, string state)
    {
        ConntrackInfo accepted = dir == 1 ? ConntrackInfo.EstablishedReply
            : ReplySeenIn(state) ? ConntrackInfo.Established : ConntrackInfo.New;
        return cell switch
        {
            sIV => new(ConntrackInfo.Invalid, state == sNO ? null : state),
            sIG => new(accepted, state),
            _ => new(accepted, cell),
        };
    }

    [Fact]
    public void The_table_in_the_engine_is_the_kernels()
    {
        // The engine's table, cell by cell, against the kernel's as typed above.
        for (int dir = 0; dir < 2; dir++)
        {
            for (int i = 0; i < 6; i++)
            {
                for (int s = 0; s < 10; s++)
                {
                    byte next = Conntrack.Protocols.TcpTracker.NextState(dir, i, s);
                    string name = next switch
                    {
                        10 => sIV,
                        11 => sIG,
                        _ => Conntrack.Protocols.TcpTracker.StateName(next)!,
                    };
                    name.Should().Be(Kernel[dir][i][s], $"tcp_conntracks[{dir}][{Classes[i]}][{States[s]}]");
                }
            }
        }
    }
}
