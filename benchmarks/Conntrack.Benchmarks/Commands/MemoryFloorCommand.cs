using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Conntrack.Benchmarks.Commands;

/// <summary>
/// <c>memory-floor</c>: what the machine itself charges for the random memory accesses a large table needs,
/// measured without the engine, so that a suite's time at a million flows can be read against it. On a block as
/// large as the 1 M-flow table it measures (1) the latency of one random line (a pointer chase through a random
/// cycle), (2) the cost per item of random lines fetched 32 at a time, as the burst path fetches them, with 1 to 5
/// dependent stages (bucket, node, next node, ...), and (3) two random lines per item on two pages against two
/// lines of the same page. These are properties of the machine (its caches, its TLB and, in a VM, the host's page
/// size), not results of the engine, and are timed with a stopwatch over many millions of accesses.
/// </summary>
internal static unsafe class MemoryFloorCommand
{
    private const int LineSize = 64;
    private const int PageSize = 4096;
    private const int Batch = 32;

    public static int Run(string[] args)
    {
        int megabytes = 256;
        int items = 20_000_000;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--megabytes":
                    megabytes = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--items":
                    items = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--help" or "-h":
                    Console.WriteLine(
                        """
                        Usage: Conntrack.Benchmarks memory-floor [--megabytes M] [--items N]

                        Measures the machine's cost of random memory accesses on a block of M MiB (rounded up to a
                        power of two; default 256, about the size of a 1 M-flow table): the latency of one random
                        line, the cost per item of random lines fetched 32 at a time in 1 to 5 dependent stages, and
                        two lines per item on two pages against two on one page. N items per measurement (default
                        20000000).
                        """);
                    return 0;
                default:
                    Console.Error.WriteLine($"unknown argument {args[i]}");
                    return 2;
            }
        }

        if (!Sse.IsSupported)
        {
            Console.Error.WriteLine("memory-floor needs x86 prefetch instructions.");
            return 1;
        }

        // A power of two of lines, so that a random line is a mask and not a division (which would be timed too).
        nuint bytes = (nuint)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)megabytes) << 20;
        ulong lines = bytes / LineSize;
        var block = (ulong*)NativeMemory.AlignedAlloc(bytes, PageSize);
        try
        {
            LinkRandomCycle(block, lines);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"block {bytes >> 20} MiB on 4 KiB pages, {items} items per line below"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"latency of one random line (pointer chase): {Chase(block, items / 4):F1} ns"));
            for (int stages = 1; stages <= 5; stages++)
            {
                double ns = Stages(block, lines, stages, items);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"random lines, 32 at a time, {stages} dependent stage(s): {ns:F1} ns per item, {ns / stages:F1} ns per line"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"two random lines per item, on two pages: {Pairs(block, lines, samePage: false, items):F1} ns per item"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"two random lines per item, on one page:  {Pairs(block, lines, samePage: true, items):F1} ns per item"));
        }
        finally
        {
            NativeMemory.AlignedFree(block);
        }

        return 0;
    }

    /// <summary>Writes into the first word of every line the index (in words) of the next line of one random cycle.</summary>
    private static void LinkRandomCycle(ulong* block, ulong lines)
    {
        var order = new uint[lines];
        for (uint i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        new Random(1).Shuffle(order);
        for (long i = 0; i < order.Length; i++)
        {
            block[(ulong)order[i] * (LineSize / 8)] = (ulong)order[(i + 1) % order.Length] * (LineSize / 8);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static double Chase(ulong* block, int steps)
    {
        ulong at = 0;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
        {
            at = block[at];
        }

        sw.Stop();
        GC.KeepAlive(at);
        return sw.Elapsed.TotalNanoseconds / steps;
    }

    /// <summary>
    /// Items in batches of 32: every stage prefetches each item's next line, whose address the previous stage's line
    /// gave (the cycle's links are random lines), and the last stage reads it.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    [SkipLocalsInit]
    private static double Stages(ulong* block, ulong lines, int stages, int items)
    {
        ulong* at = stackalloc ulong[Batch];
        ulong x = 88172645463325252UL, sum = 0;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < items; i += Batch)
        {
            for (int j = 0; j < Batch; j++)
            {
                at[j] = NextLine(ref x, lines) * (LineSize / 8);
                Sse.Prefetch0(block + at[j]);
            }

            for (int s = 1; s < stages; s++)
            {
                for (int j = 0; j < Batch; j++)
                {
                    at[j] = block[at[j]];
                    Sse.Prefetch0(block + at[j]);
                }
            }

            for (int j = 0; j < Batch; j++)
            {
                sum += block[at[j]];
            }
        }

        return PerItem(sw, sum, items);
    }

    /// <summary>Two independent random lines per item, 32 items at a time: on two random pages, or two lines of one page.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    [SkipLocalsInit]
    private static double Pairs(ulong* block, ulong lines, bool samePage, int items)
    {
        ulong* first = stackalloc ulong[Batch];
        ulong* second = stackalloc ulong[Batch];
        const ulong LinesPerPage = PageSize / LineSize;
        ulong x = 88172645463325252UL, sum = 0;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < items; i += Batch)
        {
            for (int j = 0; j < Batch; j++)
            {
                ulong a = NextLine(ref x, lines);
                // The other line: half a page away within the same page, or a random line elsewhere.
                ulong b = samePage ? (a & ~(LinesPerPage - 1)) | ((a + (LinesPerPage / 2)) & (LinesPerPage - 1)) : (x >> 17) & (lines - 1);
                first[j] = a * (LineSize / 8);
                second[j] = b * (LineSize / 8);
                Sse.Prefetch0(block + first[j]);
                Sse.Prefetch0(block + second[j]);
            }

            for (int j = 0; j < Batch; j++)
            {
                sum += block[first[j]] + block[second[j]];
            }
        }

        return PerItem(sw, sum, items);
    }

    /// <summary>The next random line (xorshift64; <paramref name="lines"/> is a power of two).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong NextLine(ref ulong x, ulong lines)
    {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x & (lines - 1);
    }

    /// <summary>Stops the clock and returns nanoseconds per item; the sum keeps the reads from being dropped.</summary>
    private static double PerItem(Stopwatch sw, ulong sum, int items)
    {
        sw.Stop();
        GC.KeepAlive(sum);
        return sw.Elapsed.TotalNanoseconds / items;
    }
}
