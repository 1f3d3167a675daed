using System.Buffers.Binary;
using Conntrack.Defrag;
using Conntrack.Packets;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Defrag;

// Each rule cites ip_fragment.c / inet_fragment.c (Linux 6.12 source tree) and, where a capture settled it,
// the kernel recording (Linux 6.18 via kernel-ct-replay) it was checked against.
public class Ipv4DefragTests
{
    private const long S = 1_000_000_000L;
    private const long T0 = 1000 * S;
    private readonly byte[] _out = new byte[Defragmenter.MaxDatagram];

    private static Defragmenter New(Action<ConntrackOptions>? configure = null)
    {
        var o = new ConntrackOptions();
        configure?.Invoke(o);
        return new Defragmenter(o);
    }

    // 48 bytes of UDP: header + 40 bytes of payload.
    private static byte[] Datagram(ushort sport = 1000) => PacketBuilder.Udp("192.0.2.10", "198.51.100.20", sport, 7, 40);

    [Fact]
    public void In_order_fragments_are_held_then_the_last_one_completes_the_datagram()
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 32, 16, false), T0, _out, out int len).Should().Be(DefragResult.Complete);
        len.Should().Be(p.Length);
        _out.AsSpan(20, len - 20).ToArray().Should().Equal(p.AsSpan(20).ToArray());
        d.QueueCount.Should().Be(0);
        d.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void Out_of_order_fragments_complete_on_whichever_arrives_last()
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 16, true), T0, _out, out int len).Should().Be(DefragResult.Complete);
        _out.AsSpan(0, len).ToArray().Should().Equal(p);
    }

    [Fact]
    public void Reassembled_header_is_the_first_fragments_with_length_offset_and_checksum_fixed()
    {
        // ip_frag_reasm(): tot_len = ihl + len, frag_off = 0 (no DF seen), ip_send_check().
        var d = New();
        var p = Datagram();
        var first = Fragmenter.V4(p, 0, 24, true, id: 0x4242);
        first[8] = 17; // a TTL only the first fragment has
        PacketBuilder.FixIpv4Checksum(first);
        var last = Fragmenter.V4(p, 24, 24, false, id: 0x4242);
        d.Offer(last, T0, _out).Should().Be(DefragResult.Held);
        d.Offer(first, T0, _out, out int len).Should().Be(DefragResult.Complete);
        var r = _out.AsSpan(0, len);
        BinaryPrimitives.ReadUInt16BigEndian(r[2..]).Should().Be((ushort)48 + 20);
        BinaryPrimitives.ReadUInt16BigEndian(r[4..]).Should().Be(0x4242);
        BinaryPrimitives.ReadUInt16BigEndian(r[6..]).Should().Be(0);
        r[8].Should().Be(17);
        InternetChecksum.Ipv4HeaderValid(r, 20).Should().BeTrue();
        IpHeaders.CheckInput(r, 4, out L3Info l3).Should().Be(PacketReason.None);
        l3.IsFragment.Should().BeFalse();
        l3.L4Offset.Should().Be(20);
    }

    [Fact]
    public void Reassembled_header_keeps_the_first_fragments_options()
    {
        // The head skb's network header is used as is: options stay (only refragmentation drops uncopied ones).
        byte[] plain = Datagram();
        var p = new byte[plain.Length + 4];
        plain.AsSpan(0, 20).CopyTo(p);
        p[0] = 0x46;
        p[20] = 0x94; // router alert
        p[21] = 4;
        plain.AsSpan(20).CopyTo(p.AsSpan(24));
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        PacketBuilder.FixIpv4Checksum(p);

        var d = New();
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 32, false), T0, _out, out int len).Should().Be(DefragResult.Complete);
        len.Should().Be(p.Length);
        _out.AsSpan(0, len).ToArray().Should().Equal(p);
    }

    [Theory]
    [InlineData(true, true, 0x4000)]   // the largest fragment had DF: DF is kept
    [InlineData(false, true, 0)]       // only the small one had DF: cleared
    [InlineData(false, false, 0)]
    public void Dont_fragment_is_kept_only_if_the_largest_fragment_had_it(bool bigDf, bool smallDf, int expected)
    {
        // if (qp->max_df_size == qp->q.max_size) frag_off = htons(IP_DF) else 0.
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 32, true, dontFragment: bigDf), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 32, 16, false, dontFragment: smallDf), T0, _out, out int len).Should().Be(DefragResult.Complete);
        BinaryPrimitives.ReadUInt16BigEndian(_out.AsSpan(6)).Should().Be((ushort)expected);
        InternetChecksum.Ipv4HeaderValid(_out.AsSpan(0, len), 20).Should().BeTrue();
    }

    [Fact]
    public void Non_last_fragment_is_trimmed_to_a_multiple_of_8()
    {
        // end &= ~7 for MF fragments; kernel recording v4_trim: a 21-byte first fragment then data from 16
        // completes.
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 21, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 32, false), T0, _out, out int len).Should().Be(DefragResult.Complete);
        _out.AsSpan(0, len).ToArray().Should().Equal(p);
    }

    [Fact]
    public void Fragment_of_under_8_bytes_with_more_fragments_discards_the_datagram()
    {
        // Trimmed to nothing: end == offset -> discard_qp (recording v4_tiny).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 4, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
        d.Offer(Fragmenter.V4(p, 16, 32, false), T0, _out).Should().Be(DefragResult.Held);
    }

    [Fact]
    public void Zero_length_last_fragment_discards_the_datagram()
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 48, 0, false), T0, _out).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
        d.Offer(Fragmenter.V4(p, 16, 32, false), T0, _out).Should().Be(DefragResult.Held);
    }

    [Fact]
    public void Empty_first_fragment_is_dropped_and_leaves_no_queue()
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 0, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
        d.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void Exact_duplicate_is_dropped_but_the_datagram_still_completes()
    {
        // IPFRAG_DUP: only the duplicate is freed (recording v4_dup).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V4(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V4(p, 32, 16, false), T0, _out, out int len).Should().Be(DefragResult.Complete);
        _out.AsSpan(0, len).ToArray().Should().Equal(p);
    }

    [Fact]
    public void Duplicate_keeps_the_first_copys_bytes()
    {
        var d = New();
        var p = Datagram();
        var altered = (byte[])p.Clone();
        altered[30] ^= 0xFF;
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(altered, 0, 16, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V4(p, 16, 32, false), T0, _out, out int len).Should().Be(DefragResult.Complete);
        _out.AsSpan(0, len).ToArray().Should().Equal(p);
    }

    [Fact]
    public void Fragment_inside_a_run_is_a_duplicate_even_if_not_identical()
    {
        // [0,16) and [16,32) arrived in order form one run; [8,16) lies inside it (recording v4_contained).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 8, 16, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V4(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Partial_overlap_discards_the_whole_datagram()
    {
        // RFC 5722 style (recording v4_overlap): nothing completes afterwards from the old fragments.
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 24, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
        d.Offer(Fragmenter.V4(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Held);
    }

    [Fact]
    public void Fragment_spanning_two_separate_runs_is_an_overlap_not_a_duplicate()
    {
        // Runs only grow at the tail: [8,16) inserted between [0,8) and [16,24) is a run of its own, so
        // [0,16) meets two runs -> IPFRAG_OVERLAP (recording v4_runs: the datagram never completes).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 8, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 8, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 8, 8, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
    }

    [Fact]
    public void Fragment_beyond_the_last_fragment_discards_the_datagram()
    {
        // "Some bits beyond end -> corruption" (recording v4_beyond).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4Raw("192.0.2.10", "198.51.100.20", 17, 0x1234, 48, true, 16), T0, _out).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
    }

    [Fact]
    public void Second_last_fragment_with_another_end_discards_the_datagram()
    {
        // (recording v4_twolast; IPv6 only drops the fragment, see Ipv6DefragTests).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 32, 8, false), T0, _out).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
    }

    [Fact]
    public void Last_fragment_shorter_than_data_already_held_discards_the_datagram()
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 32, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 8, false), T0, _out).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
    }

    [Fact]
    public void Datagram_longer_than_65535_bytes_is_dropped_when_it_completes()
    {
        // ip_frag_reasm(): ihl + len > 65535 -> -E2BIG (recordings v4_oversize2: 65520 data bytes never
        // tracked; v4_maxsize: 65512 data bytes tracked).
        var d = New();
        var result = FeedBig(d, 65520, 0x77);
        result.Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
        d.MemoryInUse.Should().Be(0);

        FeedBig(d, 65515, 0x78).Should().Be(DefragResult.Complete);
        BinaryPrimitives.ReadUInt16BigEndian(_out.AsSpan(2)).Should().Be(65535);
    }

    private DefragResult FeedBig(Defragmenter d, int total, ushort id)
    {
        DefragResult r = DefragResult.Held;
        for (int off = 0; off < total; off += 1480)
        {
            int n = Math.Min(1480, total - off);
            r = d.Offer(Fragmenter.V4Raw("192.0.2.10", "198.51.100.20", 17, id, off, off + n < total, n), T0, _out);
            if (off + n < total)
            {
                r.Should().Be(DefragResult.Held);
            }
        }

        return r;
    }

    [Theory]
    [InlineData(0, 3, false, 0)]   // not-ECT + CE: invalid, dropped (recording v4_ecn_bad)
    [InlineData(2, 3, true, 3)]    // ECT(0) + CE: CE is set on the datagram (recording v4_ecn_ok)
    [InlineData(1, 2, true, 1)]    // ECT(1) + ECT(0): the first fragment's bits, nothing added
    [InlineData(0, 1, false, 0)]   // not-ECT + ECT(1): invalid
    [InlineData(0, 0, true, 0)]
    public void Ecn_codepoints_of_the_fragments_are_combined_per_rfc3168(byte first, byte last, bool completes, byte ecn)
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true, tos: first), T0, _out).Should().Be(DefragResult.Held);
        var r = d.Offer(Fragmenter.V4(p, 16, 32, false, tos: last), T0, _out, out int len);
        r.Should().Be(completes ? DefragResult.Complete : DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
        if (completes)
        {
            (_out[1] & 3).Should().Be(ecn);
            InternetChecksum.Ipv4HeaderValid(_out.AsSpan(0, len), 20).Should().BeTrue();
        }
    }

    [Fact]
    public void Key_includes_id_protocol_addresses_and_zone()
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 32, false, id: 0x9999), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 32, false), T0, _out, zone: 7).Should().Be(DefragResult.Held);
        var otherProto = Fragmenter.V4(p, 16, 32, false);
        otherProto[9] = IpProtocol.Tcp;
        d.Offer(PacketBuilder.FixIpv4Checksum(otherProto), T0, _out).Should().Be(DefragResult.Held);
        d.QueueCount.Should().Be(4);
        d.Offer(Fragmenter.V4(p, 16, 32, false), T0, _out).Should().Be(DefragResult.Complete);
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out, zone: 7).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Queue_times_out_after_ipfrag_time_from_its_first_fragment_and_later_fragments_do_not_extend_it()
    {
        // The timer is armed once, in inet_frag_create() (recordings t4_timeout/t4_timeout2 with
        // ipfrag_time=2 in real time).
        var d = New(o => o.Ipv4FragmentTimeout = TimeSpan.FromSeconds(2));
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 16, true), T0 + 3 * S / 2, _out).Should().Be(DefragResult.Held);
        d.Expire(T0 + 2 * S - 1).Should().Be(0);
        d.Expire(T0 + 2 * S).Should().Be(1);
        d.QueueCount.Should().Be(0);
        d.MemoryInUse.Should().Be(0);
        d.Offer(Fragmenter.V4(p, 32, 16, false), T0 + 2 * S + 1, _out).Should().Be(DefragResult.Held);
    }

    [Fact]
    public void Expired_queue_is_replaced_on_its_next_fragment_even_before_garbage_collection()
    {
        var d = New(o => o.Ipv4FragmentTimeout = TimeSpan.FromSeconds(30));
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 16, 32, false), T0 + 31 * S, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 0, 16, true), T0 + 32 * S, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Expire_counts_each_expired_datagram_and_leaves_younger_ones()
    {
        var d = New();
        for (int i = 0; i < 10; i++)
        {
            d.Offer(Fragmenter.V4Raw("192.0.2.10", "198.51.100.20", 17, (ushort)i, 0, true, 64), T0 + i * S, _out).Should().Be(DefragResult.Held);
        }

        d.Expire(T0 + 34 * S).Should().Be(5);
        d.QueueCount.Should().Be(5);
        d.Expire(T0 + 100 * S).Should().Be(5);
        d.MemoryInUse.Should().Be(0);
    }

    [Theory]
    [InlineData(63, true)]
    [InlineData(64, false)]
    public void More_than_ipfrag_max_dist_fragments_from_the_source_in_between_restart_the_datagram(int between, bool completes)
    {
        // ip_frag_too_far(): (peer->rid now - rid at this queue's last fragment) > 64 -> ip_frag_reinit()
        // (recordings v4_maxdist_63 completes, v4_maxdist_64 does not).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true, id: 30), T0, _out).Should().Be(DefragResult.Held);
        for (int i = 0; i < between; i++)
        {
            d.Offer(Fragmenter.V4Raw("192.0.2.10", $"198.51.100.{30 + (i % 50)}", 17, (ushort)(100 + i), 0, true, 16), T0, _out)
                .Should().Be(DefragResult.Held);
        }

        d.Offer(Fragmenter.V4(p, 16, 32, false, id: 30), T0, _out).Should().Be(completes ? DefragResult.Complete : DefragResult.Held);
    }

    [Fact]
    public void Restarted_datagram_keeps_the_fragment_that_restarted_it_and_rearms_its_timer()
    {
        // ip_frag_reinit(): flush, clear, mod_timer(now + timeout); the fragment is then queued as usual
        // (recording v4_maxdist_reinit: resending the first fragment completes the datagram).
        var d = New(o => o.Ipv4FragmentTimeout = TimeSpan.FromSeconds(30));
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true, id: 31), T0, _out).Should().Be(DefragResult.Held);
        for (int i = 0; i < 70; i++)
        {
            d.Offer(Fragmenter.V4Raw("192.0.2.10", "198.51.100.99", 17, (ushort)(300 + i), 0, true, 16), T0, _out);
        }

        d.Offer(Fragmenter.V4(p, 16, 32, false, id: 31), T0 + 20 * S, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(p, 0, 16, true, id: 31), T0 + 40 * S, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Fragments_from_other_sources_do_not_count_towards_max_dist()
    {
        // The counter is the source's inet_peer (recording v4_maxdist_othersrc).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true, id: 32), T0, _out).Should().Be(DefragResult.Held);
        for (int i = 0; i < 100; i++)
        {
            d.Offer(Fragmenter.V4Raw("203.0.113.9", "198.51.100.20", 17, (ushort)(500 + i), 0, true, 16), T0, _out);
        }

        d.Offer(Fragmenter.V4(p, 16, 32, false, id: 32), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Max_dist_zero_turns_the_check_off()
    {
        var d = New(o => o.Ipv4FragmentMaxDistance = 0);
        var p = Datagram();
        d.Offer(Fragmenter.V4(p, 0, 16, true, id: 33), T0, _out).Should().Be(DefragResult.Held);
        for (int i = 0; i < 1000; i++)
        {
            d.Offer(Fragmenter.V4Raw("192.0.2.10", "198.51.100.20", 17, (ushort)(1000 + i), 0, true, 16), T0, _out);
        }

        d.Offer(Fragmenter.V4(p, 16, 32, false, id: 33), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Packet_that_is_not_a_fragment_is_passed_through()
    {
        var d = New();
        var p = Datagram();
        IpHeaders.CheckInput(p, 4, out L3Info l3).Should().Be(PacketReason.None);
        d.Gather(p, in l3, 0, T0, _out, out _).Should().Be(DefragResult.NotFragment);
    }
}
