namespace Conntrack.Defrag;

/// <summary>
/// The part of the kernel's <c>inet_peer</c> cache that IPv4 reassembly uses: one counter per source
/// address (<c>peer->rid</c>), stepped by every fragment from that source that reaches
/// <c>ip_frag_too_far</c>, whatever its datagram, destination, protocol or zone (the peer base is per
/// network namespace, keyed by source address and VRF only). A peer lives while a queue refers to it; the
/// kernel keeps it a while longer, which changes nothing since a queue's distance is measured from its
/// own previous fragment.
/// </summary>
internal sealed class InetPeers
{
    private struct Peer
    {
        public uint Address;
        public uint Rid;
        public int Refs;
        public int Next;
    }

    private Peer[] _peers = new Peer[16];
    private int[] _buckets = NewBuckets(16);
    private int _highWater;
    private int _free = -1;

    /// <summary>Finds or creates the peer for <paramref name="address"/> and takes a reference (<c>inet_getpeer_v4</c>).</summary>
    public int Acquire(uint address)
    {
        int b = Bucket(address, _buckets.Length);
        for (int i = _buckets[b]; i >= 0; i = _peers[i].Next)
        {
            if (_peers[i].Address == address)
            {
                _peers[i].Refs++;
                return i;
            }
        }

        int p;
        if (_free >= 0)
        {
            p = _free;
            _free = _peers[p].Next;
        }
        else
        {
            if (_highWater == _peers.Length)
            {
                Grow();
                b = Bucket(address, _buckets.Length);
            }

            p = _highWater++;
        }

        _peers[p] = new Peer { Address = address, Rid = 0, Refs = 1, Next = _buckets[b] };
        _buckets[b] = p;
        return p;
    }

    /// <summary>Drops a reference (<c>inet_putpeer</c>); the last one frees the peer.</summary>
    public void Release(int peer)
    {
        if (--_peers[peer].Refs > 0)
        {
            return;
        }

        int b = Bucket(_peers[peer].Address, _buckets.Length);
        ref int link = ref _buckets[b];
        while (link >= 0)
        {
            if (link == peer)
            {
                link = _peers[peer].Next;
                break;
            }

            link = ref _peers[link].Next;
        }

        _peers[peer].Next = _free;
        _free = peer;
    }

    /// <summary><c>atomic_inc_return(&amp;peer->rid)</c>.</summary>
    public uint NextRid(int peer) => ++_peers[peer].Rid;

    // Called only when every slot is in use (the free list is empty).
    private void Grow()
    {
        int size = _peers.Length * 2;
        Array.Resize(ref _peers, size);
        _buckets = NewBuckets(size);
        for (int i = 0; i < _highWater; i++)
        {
            if (_peers[i].Refs > 0)
            {
                int b = Bucket(_peers[i].Address, size);
                _peers[i].Next = _buckets[b];
                _buckets[b] = i;
            }
        }
    }

    private static int Bucket(uint address, int size) => HashCode.Combine(address) & (size - 1);

    private static int[] NewBuckets(int size)
    {
        var b = new int[size];
        Array.Fill(b, -1);
        return b;
    }
}
