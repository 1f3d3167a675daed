using System.Diagnostics.CodeAnalysis;

namespace Conntrack.Pcap;

/// <summary>
/// The capture file is not a well-formed pcap or pcapng file. The message names the byte offset of the header,
/// record or block at fault, which <see cref="Offset"/> also gives.
/// </summary>
/// <remarks>
/// A final record cut short by the end of the file is not reported this way: the reader stops there and
/// sets <see cref="CaptureReader.TruncatedAt"/>.
/// </remarks>
public sealed class CaptureFormatException : Exception
{
    /// <summary>Creates an exception for a problem at the given byte offset.</summary>
    /// <param name="message">What is wrong; by convention it names <paramref name="offset"/> too.</param>
    /// <param name="offset">Byte offset in the file of the header, record or block at fault.</param>
    public CaptureFormatException(string message, long offset)
        : base(message)
    {
        Offset = offset;
    }

    /// <summary>Byte offset in the file of the header, record or block at fault.</summary>
    public long Offset { get; }

    /// <summary>Throws an exception whose message reads "<paramref name="what"/> at offset N: <paramref name="problem"/>".</summary>
    [DoesNotReturn]
    internal static void Throw(string what, long offset, string problem) =>
        throw new CaptureFormatException($"{what} at offset {offset}: {problem}", offset);
}
