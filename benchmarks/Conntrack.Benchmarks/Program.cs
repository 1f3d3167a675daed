using BenchmarkDotNet.Running;
using Conntrack.Benchmarks.Commands;

namespace Conntrack.Benchmarks;

/// <summary>
/// Entry point. <c>throughput ...</c> runs the Open vSwitch conntrack benchmark workload, <c>memory ...</c> the
/// bytes-per-connection measurement, <c>memory-floor</c> the machine's own cost of random memory accesses, <c>profile</c> one case's body for a profiler,
/// <c>ab</c> two builds of the engine against each other in one process, <c>compare-batch [capture...]</c> checks that the burst path gives the
/// per-packet path's verdicts on the real captures; anything else goes to BenchmarkDotNet (e.g. <c>--filter '*Established*'</c>,
/// <c>--list flat</c>, <c>--job short</c>).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0)
        {
            switch (args[0])
            {
                case "throughput":
                    return ThroughputCommand.Run(args[1..]);
                case "memory":
                    return MemoryCommand.Run(args[1..]);
                case "profile":
                    return ProfileCommand.Run(args[1..]);
                case "memory-floor":
                    return MemoryFloorCommand.Run(args[1..]);
                case "ab":
                    return AbCommand.Run(args[1..]);
                case "compare-batch":
                    foreach (string capture in args.Length > 1 ? args[1..] : ["real-web", "real-mixed"])
                    {
                        var loaded = Infrastructure.LoadedCapture.Load(Infrastructure.SharedCorpus.RealStackCapture(capture));
                        Console.WriteLine(capture + ": " + Suites.ReplayBenchmarks.CompareBatchWithPerPacket(loaded));
                    }

                    return 0;
            }
        }

        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
