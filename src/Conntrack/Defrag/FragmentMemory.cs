using System.Numerics;

namespace Conntrack.Defrag;

/// <summary>
/// What the kernel charges against <c>ipfrag_high_thresh</c> / <c>nf_conntrack_frag6_high_thresh</c>
/// (<c>fqdir->mem</c>): the size of each queue structure (<c>inet_frags.qsize</c>, added in
/// <c>inet_frag_alloc</c>) and the <c>truesize</c> of each queued fragment (added in <c>ip_frag_queue</c> /
/// <c>nf_ct_frag6_queue</c>).
/// </summary>
/// <remarks>
/// A fragment's truesize depends on how the driver allocated its buffer. This model was measured on the
/// oracle (Linux 6.18, Ethernet frames arriving over a veth): with the default 4 MiB threshold the number
/// of never-completed single-fragment datagrams the kernel accepts before it refuses new fragments gives
/// 1032 bytes per datagram for IP packets of up to 226 bytes, 1480 up to 674 bytes and 2504 up to at least
/// 1500 bytes (IPv4; IPv6 the same less 16 bytes per queue). That is <c>sizeof(struct ipq)</c> = 200 or
/// <c>sizeof(struct frag_queue)</c> = 184, plus <c>SKB_TRUESIZE</c> of a head buffer holding the frame
/// (14-byte Ethernet header, 16 bytes of headroom, <c>SKB_DATA_ALIGN</c>) and <c>skb_shared_info</c> (320),
/// rounded to the small-head cache (576) or a power-of-two kmalloc size, plus <c>sk_buff</c> itself (256).
/// </remarks>
internal static class FragmentMemory
{
    /// <summary><c>sizeof(struct ipq)</c> on x86-64.</summary>
    public const int Ipv4QueueSize = 200;

    /// <summary><c>sizeof(struct frag_queue)</c> on x86-64.</summary>
    public const int Ipv6QueueSize = 184;

    /// <summary>The largest truesize any fragment can have (a 65 575-byte IPv6 packet).</summary>
    public static readonly int MaxTruesize = Truesize(65535 + 40);

    /// <summary>The smallest truesize a fragment can have.</summary>
    public static readonly int MinTruesize = Truesize(0);

    /// <summary>The truesize of a received fragment whose IP packet is <paramref name="ipLength"/> bytes.</summary>
    public static int Truesize(int ipLength)
    {
        int data = (ipLength + 14 + 16 + 63) & ~63;
        int size = data + 320;
        int bucket = size <= 576 ? 576 : (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(size, 1024));
        return bucket + 256;
    }
}
