using Conntrack.Tests.Support;

namespace Conntrack.Tests.Table;

/// <summary>
/// Two packets of one new flow both pass In before either is confirmed: __nf_conntrack_confirm finds the
/// first one's entry and calls nf_ct_resolve_clash (core.c:1130-1172): protocols with allow_clash merge the
/// loser into the winner, others drop the packet.
/// </summary>
public class ClashResolutionTests
{
    private static TestTable NewTable(bool accounting = false) =>
        new(new ConntrackOptions { MaxEntries = 64, Buckets = 64, HashSeed = 8, Accounting = accounting });

    private static (Verdict First, Verdict Second, PacketState S1, PacketState S2) Race(TestTable t, byte[] p1, byte[] p2)
    {
        var s1 = default(PacketState);
        var s2 = default(PacketState);
        t.Table.In(p1, t.Now, ref s1).Should().Be(Verdict.Accept);
        t.Table.In(p2, t.Now, ref s2).Should().Be(Verdict.Accept);
        var v1 = t.Table.Confirm(p1, t.Now, ref s1);
        var v2 = t.Table.Confirm(p2, t.Now, ref s2);
        return (v1, v2, s1, s2);
    }

    [Fact]
    public void Second_udp_confirm_of_the_same_flow_merges_into_the_first_entry()
    {
        using var t = NewTable();
        var p = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 5000, 53);
        var (v1, v2, s1, s2) = Race(t, p, p);
        v1.Should().Be(Verdict.Accept);
        v2.Should().Be(Verdict.Accept, "UDP allows clash resolution");
        s2.Connection.Should().Be(s1.Connection, "the loser's packet now belongs to the winner's entry");
        t.Table.Count.Should().Be(1);
        var st = t.Table.Statistics;
        st.ClashResolve.Should().Be(1);
        st.InsertFailed.Should().Be(0);
        st.Drop.Should().Be(0);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Merged_packet_keeps_its_new_state()
    {
        using var t = NewTable();
        var p = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 5000, 53);
        var (_, _, _, s2) = Race(t, p, p);
        s2.Info.Should().Be(ConntrackInfo.New);
        s2.IsUnconfirmed.Should().BeFalse();
    }

    [Fact]
    public void Udp_flow_and_its_reverse_racing_are_merged()
    {
        // nf_ct_match_reverse (core.c:981-1000): the loser's tuples are the winner's swapped.
        using var t = NewTable();
        var q = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 5000, 53);
        var r = PacketBuilder.Udp("198.51.100.2", "192.0.2.1", 53, 5000);
        var (v1, v2, s1, s2) = Race(t, q, r);
        v1.Should().Be(Verdict.Accept);
        v2.Should().Be(Verdict.Accept);
        s2.Connection.Should().Be(s1.Connection);
        t.Table.Count.Should().Be(1);
        t.Table.Statistics.ClashResolve.Should().Be(1);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Merge_adds_the_loser_packet_to_the_winner_accounting()
    {
        // nf_ct_acct_merge (core.c:935-948): one more packet and the loser's bytes in the packet's direction.
        using var t = NewTable(accounting: true);
        var p = PacketBuilder.Udp("192.0.2.1", "198.51.100.2", 5000, 53, payload: 12);
        var (_, _, s1, _) = Race(t, p, p);
        t.Table.TryGetInfo(s1.Connection, t.Now, out var info).Should().BeTrue();
        var a = info.Accounting!.Value;
        a.OriginalPackets.Should().Be(2);
        a.OriginalBytes.Should().Be(2 * 40, "20 IP + 8 UDP + 12 payload, twice");
        a.ReplyPackets.Should().Be(0);
    }

    [Fact]
    public void Icmp_clash_is_not_resolved_and_the_second_packet_is_dropped()
    {
        // ICMP has no allow_clash: "goto drop" counting drop and insert_failed (core.c:1150-1170).
        using var t = NewTable();
        var p = PacketBuilder.IcmpEcho("192.0.2.1", "198.51.100.2", 9, 1);
        var (v1, v2, s1, s2) = Race(t, p, p);
        v1.Should().Be(Verdict.Accept);
        v2.Should().Be(Verdict.Drop);
        s2.Reason.Should().Be(PacketReason.InsertFailed);
        var st = t.Table.Statistics;
        st.InsertFailed.Should().Be(1);
        st.Drop.Should().Be(1);
        st.ClashResolve.Should().Be(0);
        t.Table.Count.Should().Be(1);
        t.Table.TryGetInfo(s1.Connection, t.Now, out _).Should().BeTrue();
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Icmpv6_clash_is_dropped_as_well()
    {
        using var t = NewTable();
        var p = PacketBuilder.IcmpEcho("2001:db8::1", "2001:db8::2", 9, 1);
        var (_, v2, _, _) = Race(t, p, p);
        v2.Should().Be(Verdict.Drop);
    }

    [Fact]
    public void Generic_protocol_clash_is_merged()
    {
        // nf_conntrack_l4proto_generic has .allow_clash = true.
        using var t = NewTable();
        var p = PacketBuilder.Raw("192.0.2.1", "198.51.100.2", IpProtocol.Esp, new byte[8]);
        var (_, v2, s1, s2) = Race(t, p, p);
        v2.Should().Be(Verdict.Accept);
        s2.Connection.Should().Be(s1.Connection);
    }

    [Fact]
    public void Gre_clash_is_merged()
    {
        using var t = NewTable();
        var p = PacketBuilder.Raw("192.0.2.1", "198.51.100.2", IpProtocol.Gre, RawPackets.GreV0());
        var (_, v2, _, _) = Race(t, p, p);
        v2.Should().Be(Verdict.Accept);
        t.Table.Statistics.ClashResolve.Should().Be(1);
    }

    [Fact]
    public void Same_tuple_in_different_zones_does_not_clash()
    {
        using var t = NewTable();
        var p = PacketBuilder.IcmpEcho("192.0.2.1", "198.51.100.2", 9, 1);
        var s1 = default(PacketState);
        var s2 = default(PacketState);
        t.Table.In(p, t.Now, ref s1, zone: 1);
        t.Table.In(p, t.Now, ref s2, zone: 2);
        t.Table.Confirm(p, t.Now, ref s1).Should().Be(Verdict.Accept);
        t.Table.Confirm(p, t.Now, ref s2).Should().Be(Verdict.Accept);
        t.Table.Count.Should().Be(2);
    }
}
