using Conntrack.Tests.Support;

namespace Conntrack.Tests.Table;

/// <summary>
/// The chain-length cap at confirmation: "max_chainlen = MIN_CHAINLEN + get_random_u32_below(MAX_CHAINLEN)"
/// with MIN_CHAINLEN 50 and MAX_CHAINLEN 80 - 50 (nf_conntrack_core.c:99-100, 1238), and
/// "if (chainlen++ > max_chainlen) goto chaintoolong" (core.c:1244-1258). A chain of k nodes is refused only
/// when k - 1 > max_chainlen, so chains of up to 51 nodes are always accepted and more than 80 never.
/// </summary>
public class ChainLengthTests
{
    private static byte[] Flow(int i) => PacketBuilder.Udp("10.0.0.1", "192.0.2.1", (ushort)(1000 + i), 53);

    [Fact]
    public void Chains_of_up_to_51_nodes_are_always_accepted()
    {
        // One bucket: each connection puts two nodes in it. The 26th insert walks 50 nodes: 49 > 50 is false.
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 1000, Buckets = 1, HashSeed = 2 });
        var refused = new List<int>();
        for (int i = 0; i < 26; i++)
        {
            t.Send(Flow(i));
            if (t.LastVerdict != Verdict.Accept)
            {
                refused.Add(i);
            }
        }

        refused.Should().BeEmpty("the kernel's cap is at least 50 (MIN_CHAINLEN); refused inserts: [{0}]", string.Join(", ", refused));
        t.Table.Statistics.ChainTooLong.Should().Be(0);
        t.Table.Count.Should().Be(26);
    }

    [Fact]
    public void Chains_longer_than_81_nodes_are_always_refused()
    {
        // max_chainlen is at most 50 + 29 = 79: walking 81 nodes reaches chainlen 80 > 79.
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 1000, Buckets = 1, HashSeed = 2 });
        int accepted = 0;
        for (int i = 0; i < 60; i++)
        {
            t.Send(Flow(i));
            if (t.LastVerdict == Verdict.Accept)
            {
                accepted++;
            }
        }

        accepted.Should().BeLessThanOrEqualTo(41, "a 42nd connection would make a chain of 82 nodes");
        var st = t.Table.Statistics;
        st.ChainTooLong.Should().Be(60 - accepted);
        st.InsertFailed.Should().Be(60 - accepted, "chaintoolong also counts insert_failed (core.c:1257-1258)");
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Refused_insert_drops_the_packet_with_reason_chain_too_long()
    {
        using var t = new TestTable(new ConntrackOptions { MaxEntries = 1000, Buckets = 1, HashSeed = 2 });
        PacketState last = default;
        for (int i = 0; i < 60 && t.LastVerdict == Verdict.Accept; i++)
        {
            last = t.Send(Flow(i));
        }

        t.LastVerdict.Should().Be(Verdict.Drop);
        last.Reason.Should().Be(PacketReason.ChainTooLong);
    }
}
