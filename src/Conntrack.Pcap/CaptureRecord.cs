namespace Conntrack.Pcap;

/// <summary>
/// One packet record of a capture file: the captured bytes of a frame and what the file says about it.
/// </summary>
/// <remarks>
/// <see cref="Data"/> points into the reader's own buffers, not a copy: it is valid only until the next call to
/// <see cref="CaptureReader.ReadNext(out CaptureRecord)"/> or <see cref="CaptureReader.ReadNextAsync"/>, or until
/// the reader is disposed. Copy the bytes to keep them longer. The type is a <see langword="ref"/> struct so that
/// it cannot be stored on the heap or carried across an <see langword="await"/> by mistake.
/// </remarks>
public readonly ref struct CaptureRecord
{
    internal CaptureRecord(long timestampNs, int originalLength, LinkType linkType, ReadOnlySpan<byte> data, long fileOffset, long index)
    {
        TimestampNs = timestampNs;
        OriginalLength = originalLength;
        LinkType = linkType;
        Data = data;
        FileOffset = fileOffset;
        Index = index;
    }

    /// <summary>
    /// Capture time in nanoseconds since the Unix epoch (UTC), converted from the file's resolution and including
    /// a pcapng interface's <c>if_tsoffset</c>. Simple Packet Blocks carry no time and report 0.
    /// </summary>
    public long TimestampNs { get; }

    /// <summary>
    /// Length of the frame on the wire. It exceeds <c>Data.Length</c> when the capture's snap length cut the frame short.
    /// </summary>
    public int OriginalLength { get; }

    /// <summary>
    /// Link-layer type of <see cref="Data"/>: the file's for pcap, the packet's interface's for pcapng. It may be a
    /// value without a named member; see <see cref="LinkLayer.IsSupported(LinkType)"/>.
    /// </summary>
    public LinkType LinkType { get; }

    /// <summary>The captured bytes of the frame, starting at its link-layer header. Valid until the next read.</summary>
    public ReadOnlySpan<byte> Data { get; }

    /// <summary>Byte offset in the file of this record's header (pcap) or block (pcapng).</summary>
    public long FileOffset { get; }

    /// <summary>0-based number of this record among the file's packet records (Wireshark's frame number minus 1).</summary>
    public long Index { get; }
}
