using System.Buffers.Binary;
using Conntrack.Defrag;
using Conntrack.Packets;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Defrag;

// nf_conntrack_reasm.c (nf_ct_frag6_gather / nf_ct_frag6_queue / nf_ct_frag6_reasm) with the kernel
// recordings (Linux 6.18, kernel-ct-replay) named in the comments.
public class Ipv6DefragTests
{
    private const long S = 1_000_000_000L;
    private const long T0 = 1000 * S;
    private const string Src = "2001:db8::10";
    private const string Dst = "2001:db8:1::20";
    private readonly byte[] _out = new byte[Defragmenter.MaxDatagram];

    private static Defragmenter New(Action<ConntrackOptions>? configure = null)
    {
        var o = new ConntrackOptions();
        configure?.Invoke(o);
        return new Defragmenter(o);
    }

    // 40-byte IPv6 header + 48 bytes of UDP.
    private static byte[] Datagram(ushort sport = 1000) => PacketBuilder.Udp(Src, Dst, sport, 7, 40);

    [Fact]
    public void In_order_fragments_complete_into_the_original_packet_without_fragment_header()
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 32, 16, false), T0, _out, out int len).Should().Be(DefragResult.Complete);
        _out.AsSpan(0, len).ToArray().Should().Equal(p);
        d.QueueCount.Should().Be(0);
        d.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void Out_of_order_fragments_complete_on_the_last_to_arrive()
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 0, 16, true), T0, _out, out int len).Should().Be(DefragResult.Complete);
        _out.AsSpan(0, len).ToArray().Should().Equal(p);
    }

    [Fact]
    public void Reassembled_packet_has_the_first_fragments_header_and_extension_headers_with_next_header_fixed()
    {
        // The unfragmentable part (here a hop-by-hop header) is the first fragment's; the byte at nhoffset
        // (the hop-by-hop header's next header) takes the fragment header's next header; payload_len =
        // unfragmentable extension bytes + data (recording v6_hbh).
        var d = New();
        var p = Fragmenter.Udp6WithHopByHop(Src, Dst, 1000, 7, 40);
        var first = Fragmenter.V6(p, 0, 24, true, unfragmentable: 48, nhOffset: 40);
        first[7] = 9; // a hop limit only the first fragment has
        var last = Fragmenter.V6(p, 24, 24, false, unfragmentable: 48, nhOffset: 40);
        first[40].Should().Be(IpProtocol.Fragment);
        d.Offer(last, T0, _out).Should().Be(DefragResult.Held);
        d.Offer(first, T0, _out, out int len).Should().Be(DefragResult.Complete);
        len.Should().Be(p.Length);
        var r = _out.AsSpan(0, len);
        r[6].Should().Be(IpProtocol.HopByHop);
        r[40].Should().Be(IpProtocol.Udp);
        r[7].Should().Be(9);
        BinaryPrimitives.ReadUInt16BigEndian(r[4..]).Should().Be((ushort)(8 + 48));
        r[8..].ToArray().Should().Equal(p.AsSpan(8).ToArray());
        IpHeaders.CheckInput(r, 6, out L3Info l3).Should().Be(PacketReason.None);
        l3.IsFragment.Should().BeFalse();
        l3.Ipv6FragmentHeaderOffset.Should().Be(-1);
        l3.Protocol.Should().Be(IpProtocol.Udp);
        l3.L4Offset.Should().Be(48);
    }

    [Fact]
    public void Exact_duplicate_is_reported_as_queued_and_the_datagram_completes()
    {
        // "No error for duplicates, pretend they got queued" (recording v6_dup; suricata capture).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Overlap_drops_the_fragment_and_the_whole_datagram()
    {
        // (recording v6_overlap)
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 24, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);
        d.Offer(Fragmenter.V6(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Held);
    }

    [Fact]
    public void Non_last_fragment_not_a_multiple_of_8_kills_the_queue_and_goes_to_conntrack_as_it_is()
    {
        // -EPROTO -> nf_ct_frag6_gather returns 0 -> NF_ACCEPT (recordings v6_odd_first, v6_odd_mid: the
        // passed fragment is tracked, INVALID for lack of a whole UDP datagram).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 13, true), T0, _out).Should().Be(DefragResult.NotFragment);
        d.QueueCount.Should().Be(0);
        d.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void Eight_byte_non_last_fragments_are_reassembled_there_is_no_minimum_size()
    {
        // nf_ct_frag6_queue has no minimum-MTU rule (recording v6_tiny).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 8, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 8, 8, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 32, false), T0, _out, out int len).Should().Be(DefragResult.Complete);
        _out.AsSpan(0, len).ToArray().Should().Equal(p);
    }

    [Fact]
    public void First_fragment_without_the_whole_upper_layer_header_is_passed_through_unqueued()
    {
        // ipv6frag_thdr_truncated() (RFC 8200 4.5): a first fragment holding a destination-options header
        // but no UDP header -> return 0 (recording v6_trunc_first).
        var d = New();
        byte[] udp = Datagram();
        var ext = new byte[8 + 48];
        ext[0] = IpProtocol.Udp;
        ext[2] = 1;
        ext[3] = 4;
        udp.AsSpan(40).CopyTo(ext.AsSpan(8));
        var p = PacketBuilder.Raw(Src, Dst, IpProtocol.DestinationOptions, ext);
        var first = Fragmenter.V6(p, 0, 8, true);
        d.Offer(first, T0, _out).Should().Be(DefragResult.NotFragment);
        d.QueueCount.Should().Be(0);

        // With the UDP header the first fragment is queued.
        d.Offer(Fragmenter.V6(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
    }

    [Theory]
    [InlineData(IpProtocol.Tcp, 16, true)]    // 16 < 20 bytes of TCP header
    [InlineData(IpProtocol.Tcp, 24, false)]
    [InlineData(IpProtocol.Icmpv6, 8, false)]
    [InlineData(IpProtocol.Udp, 8, false)]
    public void Upper_layer_header_sizes_are_tcp_20_udp_8_icmpv6_8(byte protocol, int firstLength, bool passed)
    {
        var d = New();
        var p = PacketBuilder.Raw(Src, Dst, protocol, new byte[64]);
        d.Offer(Fragmenter.V6(p, 0, firstLength, true), T0, _out)
            .Should().Be(passed ? DefragResult.NotFragment : DefragResult.Held);
    }

    [Fact]
    public void Atomic_fragment_alone_is_reassembled_at_once_without_its_fragment_header()
    {
        // nf_ct_frag6_gather has no atomic-fragment shortcut: offset 0, M clear is a complete one-fragment
        // datagram (recording v6_atomic: tracked NEW).
        var d = New();
        var p = Datagram();
        var atomic = Fragmenter.V6(p, 0, 48, false);
        IpHeaders.CheckInput(atomic, 6, out L3Info l3).Should().Be(PacketReason.None);
        l3.IsFragment.Should().BeFalse();
        d.Gather(atomic, in l3, 0, T0, _out, out int len).Should().Be(DefragResult.Complete);
        _out.AsSpan(0, len).ToArray().Should().Equal(p);
    }

    [Fact]
    public void Atomic_fragment_joins_a_queue_with_the_same_id()
    {
        // Recording v6_atomic_q: [0,16) then an atomic [0,48) overlaps -> queue and fragment dropped.
        // Recording v6_atomic_q2: last [32,48), then an atomic [0,32) ends short -> dropped, queue kept.
        var d = New();
        var p = Datagram();
        var atomic = Fragmenter.V6(p, 0, 48, false, id: 10);
        IpHeaders.CheckInput(atomic, 6, out L3Info l3).Should().Be(PacketReason.None);
        d.Offer(Fragmenter.V6(p, 0, 16, true, id: 10), T0, _out).Should().Be(DefragResult.Held);
        d.Gather(atomic, in l3, 0, T0, _out, out _).Should().Be(DefragResult.Dropped);
        d.QueueCount.Should().Be(0);

        var shortAtomic = Fragmenter.V6(p, 0, 32, false, id: 11);
        IpHeaders.CheckInput(shortAtomic, 6, out l3).Should().Be(PacketReason.None);
        d.Offer(Fragmenter.V6(p, 32, 16, false, id: 11), T0, _out).Should().Be(DefragResult.Held);
        d.Gather(shortAtomic, in l3, 0, T0, _out, out _).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V6(p, 0, 32, true, id: 11), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Zero_length_fragment_is_dropped_but_the_queue_stays()
    {
        // "if (end == offset) goto err": no inet_frag_kill for IPv6 (recordings v6_zero, v6_zero_mid).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 0, true), T0, _out).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V6(p, 48, 0, false), T0, _out).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V6(p, 16, 32, false), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Fragment_beyond_the_last_fragment_is_dropped_but_the_queue_stays()
    {
        // (recording v6_beyond; IPv4 discards the datagram)
        var d = New();
        var p = Datagram();
        var beyond = Fragmenter.V6(PacketBuilder.Udp(Src, Dst, 1000, 7, 80), 48, 16, true);
        d.Offer(Fragmenter.V6(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(beyond, T0, _out).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V6(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 16, true), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Second_last_fragment_with_another_end_is_dropped_but_the_queue_stays()
    {
        // (recording v6_twolast)
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 32, 16, false), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 32, 8, false), T0, _out).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V6(p, 0, 32, true), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Fragment_ending_beyond_65535_is_dropped_and_the_queue_stays()
    {
        // (unsigned)end > IPV6_MAXPLEN -> -EINVAL -> NF_DROP, before any queue change (recording v6_oversize).
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        var far = Fragmenter.V6(p, 16, 16, false, fragmentOffset: 65528);
        d.Offer(far, T0, _out).Should().Be(DefragResult.Dropped);
        d.Offer(Fragmenter.V6(p, 16, 32, false), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Datagram_whose_payload_would_exceed_65535_with_its_extension_headers_fails_on_completion()
    {
        // nf_ct_frag6_reasm(): payload_len = unfragmentable extension bytes + len > IPV6_MAXPLEN -> the queue
        // is killed and the fragment reported as queued.
        var d = New();
        var p = Fragmenter.Udp6WithHopByHop(Src, Dst, 1000, 7, 40);
        DefragResult r = DefragResult.Held;
        const int total = 65530; // 8 + 65530 > 65535
        for (int off = 0; off < total; off += 1448)
        {
            int n = Math.Min(1448, total - off);
            var body = new byte[48 + 8 + n];
            p.AsSpan(0, 48).CopyTo(body);
            body[40] = IpProtocol.Fragment;
            body[48] = IpProtocol.Udp;
            BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(50), (ushort)(off | (off + n < total ? 1 : 0)));
            BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(52), 77);
            BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(4), (ushort)(body.Length - 40));
            if (off == 0)
            {
                p.AsSpan(48, 8).CopyTo(body.AsSpan(56)); // the UDP header
            }

            r = d.Offer(body, T0, _out);
            r.Should().NotBe(DefragResult.Dropped);
        }

        r.Should().Be(DefragResult.Held);
        d.QueueCount.Should().Be(0);
        d.MemoryInUse.Should().Be(0);
    }

    [Theory]
    [InlineData(0, 3, false, 0)]   // not-ECT + CE (recording v6_ecn_bad): reported queued, never completes
    [InlineData(1, 3, true, 3)]    // ECT(1) + CE (recording v6_ecn_ok): CE set
    [InlineData(2, 2, true, 2)]
    public void Ecn_codepoints_are_combined_per_rfc3168(byte first, byte last, bool completes, int ecn)
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 16, true, trafficClass: first), T0, _out).Should().Be(DefragResult.Held);
        var r = d.Offer(Fragmenter.V6(p, 16, 32, false, trafficClass: last), T0, _out);
        r.Should().Be(completes ? DefragResult.Complete : DefragResult.Held);
        d.QueueCount.Should().Be(0);
        if (completes)
        {
            int tc = (BinaryPrimitives.ReadUInt16BigEndian(_out) >> 4) & 0xFF;
            (tc & 3).Should().Be(ecn);
        }
    }

    [Fact]
    public void Jumbogram_is_not_reassembled()
    {
        var d = New();
        var f = Fragmenter.V6(Datagram(), 0, 16, true);
        var l3 = new L3Info { IsIpv6 = true, IsFragment = true, Length = f.Length, Ipv6FragmentHeaderOffset = 40 };
        f[4] = 0;
        f[5] = 0;
        d.Gather(f, in l3, 0, T0, _out, out _).Should().Be(DefragResult.NotFragment);
    }

    [Fact]
    public void Fragment_header_cut_short_is_dropped()
    {
        // find_prev_fhdr() finds it, pskb_may_pull(fhoff + 8) fails -> -ENOMEM -> NF_DROP.
        var d = New();
        var f = Fragmenter.V6(Datagram(), 16, 16, true)[..46];
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(4), 6);
        var l3 = new L3Info { IsIpv6 = true, IsFragment = true, Length = f.Length, Ipv6FragmentHeaderOffset = 40 };
        d.Gather(f, in l3, 0, T0, _out, out _).Should().Be(DefragResult.Dropped);
    }

    [Fact]
    public void Key_is_addresses_id_and_zone()
    {
        var d = New();
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 16, true, id: 1), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 32, false, id: 2), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 32, false, id: 1), T0, _out, zone: 3).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 32, false, id: 1), T0, _out).Should().Be(DefragResult.Complete);
    }

    [Fact]
    public void Queue_times_out_after_frag6_timeout_from_its_first_fragment()
    {
        // Recordings t6_timeout/t6_timeout2 (nf_conntrack_frag6_timeout=2, real time).
        var d = New(o => o.Ipv6FragmentTimeout = TimeSpan.FromSeconds(2));
        var p = Datagram();
        d.Offer(Fragmenter.V6(p, 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 16, 16, true), T0 + 3 * S / 2, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V6(p, 32, 16, false), T0 + 5 * S / 2, _out).Should().Be(DefragResult.Held);
        d.Expire(T0 + 5 * S).Should().Be(1);
        d.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void Default_ipv6_timeout_is_60_seconds_and_ipv4_30()
    {
        var d = New();
        d.Offer(Fragmenter.V6(Datagram(), 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Offer(Fragmenter.V4(PacketBuilder.Udp("192.0.2.1", "192.0.2.2", 1, 2, 40), 0, 16, true), T0, _out).Should().Be(DefragResult.Held);
        d.Expire(T0 + 30 * S).Should().Be(1);
        d.Expire(T0 + 60 * S - 1).Should().Be(0);
        d.Expire(T0 + 60 * S).Should().Be(1);
    }
}
