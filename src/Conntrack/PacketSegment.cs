namespace Conntrack;

/// <summary>Where one packet of a burst sits in the burst's receive buffer (from its IP header on).</summary>
/// <param name="Offset">Offset of the IP header in the buffer.</param>
/// <param name="Length">Bytes from there to the end of the frame.</param>
public readonly record struct PacketSegment(int Offset, int Length);
