using Conntrack.Tests.Support;
using static Conntrack.Tests.Protocols.TcpTestKit;
using static Conntrack.Tests.Support.PacketBuilder;

namespace Conntrack.Tests.Protocols;

/// <summary>
/// tcp_in_window(): van Rooij's bounds as the kernel applies them.
/// <code>
///   I.   Upper bound for valid data:      seq &lt;= sender.td_maxend
///   II.  Lower bound for valid data:      seq + len &gt;= sender.td_end - receiver.td_maxwin
///   III. Upper bound for valid (s)ack:    sack &lt;= receiver.td_end
///   IV.  Lower bound for valid (s)ack:    sack &gt;= receiver.td_end - MAXACKWINDOW
/// </code>
/// I and III failing make the packet INVALID; II and IV make it ignored (accepted, nothing updated, no
/// refresh). With the default 65535 windows and no scaling, after the handshake the client's
/// td_maxend is 1001 + 65535 and both td_end are the ISNs + 1.
/// </summary>
public class TcpWindowTests
{
    private static TestTable NewTable(Action<ConntrackOptions>? configure = null)
    {
        var o = new ConntrackOptions { MaxEntries = 4096, Buckets = 1024, HashSeed = 42 };
        configure?.Invoke(o);
        return new TestTable(o);
    }

    private static Flow Established(TestTable t)
    {
        var f = new Flow(t);
        f.Handshake();
        return f;
    }

    [Fact]
    public void Sequence_at_the_upper_bound_is_accepted()
    {
        using var t = NewTable();
        var f = Established(t);
        // td_maxend = 1001 + 65535 (the SYN/ACK's ack plus its window).
        f.Orig(FlagAck | FlagPsh, 1001 + 65535, 5001, payload: 1).Info.Should().Be(ConntrackInfo.Established);
    }

    [Fact]
    public void Sequence_above_the_upper_bound_is_invalid_and_the_connection_continues()
    {
        using var t = NewTable();
        var f = Established(t);
        t.Advance(10);
        // More than the receiver's window past td_maxend (less would be the "overshot" workaround below).
        var s = f.Orig(FlagAck | FlagPsh, 1001 + 65535 + 70_000, 5001, payload: 100);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.TcpOutOfWindow);
        f.TimeoutSeconds().Should().Be(432000 - 10, "an invalid packet does not refresh");
        f.O(FlagAck | FlagPsh, payload: 100).Info.Should().Be(ConntrackInfo.Established);
        f.StateName().Should().Be("ESTABLISHED");
    }

    [Fact]
    public void Data_before_the_lower_bound_is_ignored()
    {
        using var t = NewTable();
        var f = Established(t);
        t.Advance(10);
        // seq + len = 1001 - 65536 - 100 + 100 < td_end - receiver.td_maxwin: "SEQ is under lower bound
        // (already ACKed data retransmitted)". Accepted, but nothing changes.
        var s = f.Orig(FlagAck | FlagPsh, unchecked((uint)(1001 - 65536 - 100)), 5001, payload: 100);
        s.Info.Should().Be(ConntrackInfo.Established);
        f.TimeoutSeconds().Should().Be(432000 - 10, "an ignored packet does not refresh");
    }

    [Fact]
    public void Data_ending_at_the_lower_bound_is_accepted()
    {
        using var t = NewTable();
        var f = Established(t);
        t.Advance(10);
        // end = 1001 - 65535, which is after td_end - td_maxwin - 1.
        f.Orig(FlagAck | FlagPsh, unchecked((uint)(1001 - 65535 - 100)), 5001, payload: 100).Info.Should().Be(ConntrackInfo.Established);
        f.TimeoutSeconds().Should().Be(432000);
    }

    [Fact]
    public void Ack_above_the_upper_bound_is_invalid()
    {
        using var t = NewTable();
        var f = Established(t);
        // The server has sent nothing past 5001: "ACK is over upper bound (ACKed data not seen yet)".
        var s = f.Orig(FlagAck, 1001, 5002);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.TcpOutOfWindow);
        f.Orig(FlagAck, 1001, 5001).Info.Should().Be(ConntrackInfo.Established);
    }

    [Fact]
    public void Ack_below_the_lower_bound_is_ignored()
    {
        using var t = NewTable();
        var f = Established(t);
        t.Advance(5);
        // sack < receiver.td_end - MAXACKWINDOW (66000 while td_maxwin is smaller): "ignored ACK under
        // lower bound (possible overly delayed)".
        f.Orig(FlagAck, 1001, unchecked((uint)(5001 - 66001))).Info.Should().Be(ConntrackInfo.Established);
        f.TimeoutSeconds().Should().Be(432000 - 5);
        // One more and it is in the window.
        f.Orig(FlagAck, 1001, unchecked((uint)(5001 - 66000))).Info.Should().Be(ConntrackInfo.Established);
        f.TimeoutSeconds().Should().Be(432000);
    }

    [Fact]
    public void Sack_block_is_checked_as_the_ack_when_the_receiver_permitted_sack()
    {
        using var t = NewTable();
        var f = new Flow(t);
        f.Handshake(clientOptions: SackPerm, serverOptions: SackPerm);
        f.O(FlagAck | FlagPsh, payload: 1000);
        f.O(FlagAck | FlagPsh, payload: 1000);
        // The server lost the first segment and SACKs the second: the SACK's right edge 3001 is the
        // client's td_end, so bound III holds.
        f.Reply(FlagAck, 5001, 1001, options: Sack((2001, 3001))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        // A SACK edge beyond what the client sent fails bound III although the ack itself is fine.
        var s = f.Reply(FlagAck, 5001, 1001, options: Sack((2001, 3002)));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.TcpOutOfWindow);
    }

    [Fact]
    public void Sack_block_is_not_read_when_the_receiver_did_not_permit_sack()
    {
        using var t = NewTable();
        var f = new Flow(t);
        f.Handshake(serverOptions: SackPerm);
        f.O(FlagAck | FlagPsh, payload: 1000);
        f.Reply(FlagAck, 5001, 1001, options: Sack((2001, 9_000_000))).Info.Should().Be(ConntrackInfo.EstablishedReply);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Sack_advances_the_window_edge_of_the_peer(bool clientPermitsSack)
    {
        // receiver.td_maxend = sack + win: a SACK lets the client send up to its right edge plus the window.
        using var t = NewTable();
        var f = new Flow(t);
        f.Handshake(clientOptions: clientPermitsSack ? SackPerm : null, serverOptions: SackPerm, serverWindow: 1000);
        f.O(FlagAck | FlagPsh, payload: 1000); // 1001..2001 fills the server's window: td_maxend 2001
        f.O(FlagAck | FlagPsh, payload: 1000); // 2001..3001 starts at td_maxend: in
        // The server lost 1001..2001 and SACKs 2001..3001.
        f.Reply(FlagAck, 5001, 1001, window: 1000, options: Sack((2001, 3001))).Info.Should().Be(ConntrackInfo.EstablishedReply);
        // With SACK the client's td_maxend is 3001 + 1000; without, it stays 2001 and 4001 is more than the
        // server's window (1000) beyond it.
        f.Orig(FlagAck | FlagPsh, 4001, 5001, payload: 10).Info
            .Should().Be(clientPermitsSack ? ConntrackInfo.Established : ConntrackInfo.Invalid);
    }

    [Fact]
    public void Window_scaling_applies_when_both_sides_offer_it()
    {
        using var t = NewTable();
        var f = new Flow(t);
        f.Handshake(clientOptions: WScale(7), serverOptions: WScale(7), clientWindow: 1000, serverWindow: 1000);
        // The SYN/ACK's window is not scaled; the server's next ACK is: 1000 << 7 = 128000.
        f.R(FlagAck, window: 1000);
        f.Orig(FlagAck | FlagPsh, 1001 + 100_000, 5001, window: 1000, payload: 100).Info.Should().Be(ConntrackInfo.Established);
        f.Orig(FlagAck | FlagPsh, 1001 + 128_000 + 130_000, 5001, window: 1000, payload: 100).Info.Should().Be(ConntrackInfo.Invalid);
    }

    [Fact]
    public void Window_scaling_is_off_unless_both_sides_offer_it()
    {
        // RFC 1323: "Both sides must send the Window Scale option to enable window scaling in either
        // direction."
        using var t = NewTable();
        var f = new Flow(t);
        f.Handshake(clientOptions: null, serverOptions: WScale(7), clientWindow: 1000, serverWindow: 1000);
        f.R(FlagAck, window: 1000);
        var s = f.Orig(FlagAck | FlagPsh, 1001 + 100_000, 5001, window: 1000, payload: 100);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.TcpOutOfWindow);
        f.Orig(FlagAck | FlagPsh, 1001 + 1000, 5001, window: 1000, payload: 100).Info.Should().Be(ConntrackInfo.Established);
    }

    [Fact]
    public void Window_scale_above_14_is_treated_as_14()
    {
        using var t = NewTable();
        var f = new Flow(t);
        f.Handshake(clientOptions: WScale(30), serverOptions: WScale(30), clientWindow: 4, serverWindow: 4);
        f.R(FlagAck, window: 4); // 4 << 14 = 65536
        f.Orig(FlagAck | FlagPsh, 1001 + 65536, 5001, window: 4, payload: 1).Info.Should().Be(ConntrackInfo.Established);
        // Where td_maxend would be with a shift of 15: more than the receiver's window (65536) past 14's.
        f.Orig(FlagAck | FlagPsh, 1001 + 131_072, 5001, window: 4, payload: 1).Info.Should().Be(ConntrackInfo.Invalid);
    }

    [Fact]
    public void Data_slightly_over_the_window_is_ignored_but_remembered_for_its_ack()
    {
        // "Work around TCPs that send more bytes than allowed by the receive window": when only bound I fails
        // by at most the receiver's window, td_end still moves so that the ACK for the data is accepted.
        using var t = NewTable();
        var f = new Flow(t);
        f.Handshake(serverWindow: 1000);
        f.O(FlagAck | FlagPsh, payload: 1000); // 1001..2001 fills the window (td_maxend 2001)
        f.O(FlagAck | FlagPsh, payload: 100); // starts at 2001 = td_maxend: in
        t.Advance(5);
        f.Orig(FlagAck | FlagPsh, 2101, 5001, payload: 100).Info.Should().Be(ConntrackInfo.Established); // overshot: ignored
        f.TimeoutSeconds().Should().BeApproximately(300 - 5, 0.001, "ignored: no refresh (the data-unacknowledged timeout of the earlier packet runs)");
        f.Reply(FlagAck, 5001, 2201, window: 1000).Info.Should().Be(ConntrackInfo.EstablishedReply);
    }

    [Fact]
    public void Data_far_over_the_window_is_invalid()
    {
        using var t = NewTable();
        var f = new Flow(t);
        f.Handshake(serverWindow: 1000);
        f.O(FlagAck | FlagPsh, payload: 1000);
        var s = f.Orig(FlagAck | FlagPsh, 2002, 5001, payload: 1000);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.TcpOutOfWindow);
        f.Reply(FlagAck, 5001, 3002).Info.Should().Be(ConntrackInfo.Invalid, "the ACK covers data conntrack never accepted");
    }

    [Fact]
    public void Be_liberal_accepts_out_of_window_segments()
    {
        using var t = NewTable(o => o.TcpBeLiberal = true);
        var f = Established(t);
        f.Orig(FlagAck | FlagPsh, 1001 + 10_000_000, 5001, payload: 100).Info.Should().Be(ConntrackInfo.Established);
        f.Orig(FlagAck, 1001, 9_999_999).Info.Should().Be(ConntrackInfo.Established);
    }

    [Fact]
    public void Be_liberal_does_not_excuse_invalid_flags_or_invalid_rst()
    {
        using var t = NewTable(o => o.TcpBeLiberal = true);
        var f = Established(t);
        f.R(FlagAck | FlagPsh, payload: 100);
        f.O(FlagAck);
        f.Orig(FlagSyn | FlagFin, 1001, 0).Info.Should().Be(ConntrackInfo.Invalid);
        f.Reply(FlagRst, ServerIsn + 50, 0).Info.Should().Be(ConntrackInfo.Invalid);
    }

    [Fact]
    public void Be_liberal_off_marks_the_same_segments_invalid()
    {
        using var t = NewTable();
        var f = Established(t);
        f.Orig(FlagAck | FlagPsh, 1001 + 10_000_000, 5001, payload: 100).Info.Should().Be(ConntrackInfo.Invalid);
        f.Orig(FlagAck, 1001, 9_999_999).Info.Should().Be(ConntrackInfo.Invalid);
    }

    [Fact]
    public void Repeated_identical_acks_count_as_retransmissions_and_shorten_the_timeout()
    {
        using var t = NewTable(o => o.TcpTimeoutMaxRetrans = TimeSpan.FromSeconds(77));
        var f = Established(t);
        // The handshake's ACK is the first of the series (retrans = 0).
        f.Orig(FlagAck, 1001, 5001).Info.Should().Be(ConntrackInfo.Established); // retrans 1
        f.Orig(FlagAck, 1001, 5001);                                             // retrans 2
        f.TimeoutSeconds().Should().Be(432000);
        f.Orig(FlagAck, 1001, 5001);                                             // retrans 3 = max_retrans
        f.TimeoutSeconds().Should().Be(77);
        // A different segment resets the count.
        f.O(FlagAck | FlagPsh, payload: 10);
        f.R(FlagAck);
        f.TimeoutSeconds().Should().Be(432000);
    }

    [Fact]
    public void Max_retrans_setting_is_honoured()
    {
        using var t = NewTable(o =>
        {
            o.TcpMaxRetrans = 1;
            o.TcpTimeoutMaxRetrans = TimeSpan.FromSeconds(77);
        });
        var f = Established(t);
        f.Orig(FlagAck, 1001, 5001);
        f.TimeoutSeconds().Should().Be(77);
    }

    [Fact]
    public void Retransmission_timeout_applies_only_when_shorter_than_the_states()
    {
        using var t = NewTable(o => o.TcpTimeoutMaxRetrans = TimeSpan.FromSeconds(200));
        var f = Established(t);
        f.O(FlagFin | FlagAck);
        for (int i = 0; i < 4; i++)
        {
            f.Reply(FlagAck, 5001, 1002);
        }

        f.StateName().Should().Be("CLOSE_WAIT");
        f.TimeoutSeconds().Should().Be(60);
    }

    [Fact]
    public void Keepalive_reply_in_a_picked_up_connection_is_in_window()
    {
        // Mid-stream: the client's keepalive (seq one below what it sent before) and the server's ACK of
        // td_end + 1 ("Likely a reply to a keepalive. Needed for III.").
        using var t = NewTable(o => o.TcpLoose = true);
        var f = new Flow(t);
        f.Orig(FlagAck, 1000, 5000).Info.Should().Be(ConntrackInfo.New);
        f.Reply(FlagAck, 5000, 1000).Info.Should().Be(ConntrackInfo.EstablishedReply);
        f.Orig(FlagAck, 999, 5000).Info.Should().Be(ConntrackInfo.Established);
        f.Reply(FlagAck, 5000, 1000).Info.Should().Be(ConntrackInfo.EstablishedReply);
        f.Conn().Status.Should().HaveFlag(ConnectionStatus.Assured);
    }

    [Fact]
    public void Retransmitted_syn_with_a_higher_sequence_reinitialises_the_sender()
    {
        // RFC 793: "if a TCP is reinitialized ... it must only be sure to use sequence numbers larger than
        // those recently used": a new SYN in SYN_SENT replaces the client's window data.
        using var t = NewTable();
        var f = new Flow(t);
        f.Orig(FlagSyn, 1000, 0);
        f.Orig(FlagSyn, 700_000, 0).Info.Should().Be(ConntrackInfo.New);
        f.Reply(FlagSyn | FlagAck, 5000, 700_001).Info.Should().Be(ConntrackInfo.EstablishedReply);
        f.Orig(FlagAck, 700_001, 5001).Info.Should().Be(ConntrackInfo.Established);
        f.StateName().Should().Be("ESTABLISHED");
    }

    [Fact]
    public void SynAck_acking_the_wrong_sequence_is_invalid()
    {
        using var t = NewTable();
        var f = new Flow(t);
        f.O(FlagSyn);
        var s = f.Reply(FlagSyn | FlagAck, 5000, 999_999);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.TcpOutOfWindow);
        f.StateName().Should().Be("SYN_SENT");
    }
}
