namespace Conntrack;

/// <summary>What to do with the packet, as a netfilter hook would answer.</summary>
public enum Verdict : byte
{
    /// <summary>Let it through (<c>NF_ACCEPT</c>). Invalid packets are accepted too; the policy is the caller's.</summary>
    Accept = 0,

    /// <summary>
    /// Drop it (<c>NF_DROP</c>): the kernel's IP input would have discarded it before conntrack, the table is
    /// full, its entry lost an insert race, or a helper rejected it. <see cref="PacketState.Reason"/> says which.
    /// </summary>
    Drop = 1,

    /// <summary>
    /// The engine kept the packet (<c>NF_STOLEN</c>): a fragment held for reassembly. Do not forward it; the
    /// reassembled datagram is answered when its last fragment arrives.
    /// </summary>
    Stolen = 2,
}
