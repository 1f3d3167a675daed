namespace Conntrack.Pcap;

/// <summary>What a pcapng Interface Description Block says about the packets of one interface.</summary>
internal readonly struct PcapNgInterface
{
    private const byte DefaultResolution = 6;          // microseconds, when if_tsresol is absent
    private const byte PowerOfTwoFlag = 0x80;
    private const long NanosecondsPerSecond = 1_000_000_000;

    // 10^0 .. 10^19; 10^19 is the largest power of ten a ulong holds.
    private static readonly ulong[] s_powersOfTen =
    [
        1UL, 10UL, 100UL, 1_000UL, 10_000UL, 100_000UL, 1_000_000UL, 10_000_000UL, 100_000_000UL, 1_000_000_000UL,
        10_000_000_000UL, 100_000_000_000UL, 1_000_000_000_000UL, 10_000_000_000_000UL, 100_000_000_000_000UL,
        1_000_000_000_000_000UL, 10_000_000_000_000_000UL, 100_000_000_000_000_000UL, 1_000_000_000_000_000_000UL,
        10_000_000_000_000_000_000UL,
    ];

    private readonly byte _resolution;
    private readonly long _offsetNs;

    /// <param name="linkType">The interface's link type.</param>
    /// <param name="resolution">The raw if_tsresol byte: high bit set means 2^-n seconds, else 10^-n.</param>
    /// <param name="offsetNs">if_tsoffset converted to nanoseconds.</param>
    internal PcapNgInterface(LinkType linkType, byte? resolution, long offsetNs)
    {
        LinkType = linkType;
        _resolution = resolution ?? DefaultResolution;
        _offsetNs = offsetNs;
    }

    internal LinkType LinkType { get; }

    /// <summary>
    /// Converts a 64-bit timestamp in the interface's units to nanoseconds since the epoch, or fails when the result
    /// does not fit in a long (beyond the year 2262). Sub-nanosecond units are truncated towards zero.
    /// </summary>
    internal bool TryToNanoseconds(ulong ticks, out long nanoseconds)
    {
        UInt128 ns;
        if ((_resolution & PowerOfTwoFlag) != 0)
        {
            // ticks < 2^64 and 10^9 < 2^30, so the product fits in 94 bits; the exponent is at most 127.
            ns = ((UInt128)ticks * NanosecondsPerSecond) >> (_resolution & ~PowerOfTwoFlag);
        }
        else if (_resolution <= 9)
        {
            ns = (UInt128)ticks * s_powersOfTen[9 - _resolution];
        }
        else
        {
            int divisorExponent = _resolution - 9;
            ns = divisorExponent < s_powersOfTen.Length ? ticks / s_powersOfTen[divisorExponent] : 0;
        }

        Int128 total = (Int128)ns + _offsetNs;
        if (total > long.MaxValue || total < long.MinValue)
        {
            nanoseconds = 0;
            return false;
        }

        nanoseconds = (long)total;
        return true;
    }
}
