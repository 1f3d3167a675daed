using FluentAssertions;

namespace Conntrack.Tests.Support;

/// <summary>
/// Measures the managed bytes a steady-state workload allocates on the calling thread, window by window.
/// </summary>
/// <remarks>
/// <see cref="GC.GetAllocatedBytesForCurrentThread"/> is exact for what a thread allocates, but it also jumps by
/// the unused rest of the thread's allocation context (seen: 8,064 to 8,120 bytes) when the runtime retires that
/// context, as a garbage collection started by another thread can: a loop that only sums an array read 8,112
/// bytes in 6 of 80 windows while a second thread allocated without pause (and the test run has many such
/// threads). So one window may read a few kilobytes that nobody allocated. Code that allocates per packet, or
/// anywhere in a window, reads non-zero in every window; the assertion is that some window read exactly zero,
/// with windows long enough to include every periodic piece of work (garbage collection steps and the like).
/// </remarks>
internal static class SteadyStateAllocation
{
    public const int Windows = 5;

    /// <summary>Runs <paramref name="window"/> <see cref="Windows"/> times; returns the bytes each allocated.</summary>
    public static long[] Measure(Action window)
    {
        var bytes = new long[Windows];
        for (int w = 0; w < Windows; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            window();
            bytes[w] = GC.GetAllocatedBytesForCurrentThread() - before;
        }

        return bytes;
    }

    /// <summary>Asserts that the workload allocates nothing (see the remarks for why one clean window decides).</summary>
    public static void ShouldAllocateNothing(Action window, string what)
    {
        long[] bytes = Measure(window);
        bytes.Min().Should().Be(0, $"{what} must not allocate in steady state (bytes per window: {string.Join(", ", bytes)})");
    }
}
