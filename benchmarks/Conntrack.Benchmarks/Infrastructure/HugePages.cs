using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Conntrack.Benchmarks.Infrastructure;

/// <summary>
/// Experiment support: asks Linux to back the table's big pinned arrays with transparent huge pages
/// (<c>madvise(MADV_HUGEPAGE)</c>; this machine's THP mode is <c>madvise</c>, so the GC heap gets 4 KiB pages
/// unless asked). Must run before the arrays' pages are first touched.
/// </summary>
internal static partial class HugePages
{
    private const int MadvHugePage = 14;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(nint addr, nuint length, int advice);

    public static unsafe bool Advise<T>(T[] array) where T : unmanaged
    {
        if (!OperatingSystem.IsLinux() || array.Length == 0)
        {
            return false;
        }

        nint start = (nint)Unsafe.AsPointer(ref array[0]);
        nint end = start + (nint)((long)array.Length * sizeof(T));
        nint alignedStart = start & ~(nint)4095;
        return madvise(alignedStart, (nuint)(end - alignedStart), MadvHugePage) == 0;
    }

    /// <summary>AnonHugePages from /proc/meminfo, in KiB (-1 when unavailable).</summary>
    public static long AnonHugePagesKiB()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("AnonHugePages:", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan(14).Trim().ToString().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }

        return -1;
    }

    /// <summary>Address of an array's first element modulo 64 (cache-line alignment of its elements).</summary>
    public static unsafe int LineOffset<T>(T[] array) where T : unmanaged => (int)((nint)Unsafe.AsPointer(ref array[0]) & 63);

    /// <summary>Where in its cache line the table's first connection entry starts (0: aligned).</summary>
    public static unsafe int LineOffset(ConntrackTable table) => (int)((nint)Unsafe.AsPointer(ref table.Entries[0]) & 63);
}
