using System.Diagnostics;
using System.Globalization;
using Conntrack.Benchmarks.Infrastructure;
using Conntrack.Benchmarks.Suites;

namespace Conntrack.Benchmarks.Commands;

/// <summary>
/// <c>profile</c>: runs one benchmark case's body in a loop for a while in this process, so that a sampling
/// profiler (perf with <c>DOTNET_PerfMapEnabled=1</c>) or <c>dotnet-counters</c> can watch it. The time it prints
/// is only a sanity check for the profile; speed claims come from the BenchmarkDotNet suites.
/// </summary>
internal static class ProfileCommand
{
    public static int Run(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine(
                "Usage: Conntrack.Benchmarks profile established-tcp|established-udp|new-udp|new-tcp|replay-web|replay-mixed|ovs " +
                "inconfirm|batch32 (ovs: batch1|batch32) [flows, default 1000000] [seconds, default 10]");
            return 2;
        }

        int flows = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1_000_000;
        double seconds = args.Length > 3 ? double.Parse(args[3], CultureInfo.InvariantCulture) : 10;
        if (CreateCase(args[0], args[1], flows) is not { } created)
        {
            Console.Error.WriteLine($"profile: unknown case '{args[0]}'");
            return 2;
        }

        var (body, cleanup, perCall) = created;

        Console.Error.WriteLine($"# profiling {args[0]} {args[1]} ({flows} flows where that applies) for {seconds} s, pid {Environment.ProcessId}");
        var (packets, nsPerPacket) = RunFor(body, perCall, seconds);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"# {packets} packets, {nsPerPacket:F1} ns per packet (profiling run, not a benchmark result)"));
        cleanup();
        return 0;
    }

    /// <summary>
    /// Calls <paramref name="body"/> (at least once) until <paramref name="seconds"/> have passed: the packets it
    /// handled and the time per packet. Used by <c>profile</c> and by each slice of <c>ab</c>.
    /// </summary>
    internal static (long Packets, double NanosecondsPerPacket) RunFor(Func<int> body, int packetsPerCall, double seconds)
    {
        long calls = 0;
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(seconds * Stopwatch.Frequency);
        do
        {
            body();
            calls++;
        }
        while (Stopwatch.GetTimestamp() < end);

        long packets = calls * packetsPerCall;
        return (packets, Stopwatch.GetElapsedTime(start).TotalNanoseconds / packets);
    }

    /// <summary>
    /// One case's body, set up: what <c>profile</c> runs, and what <c>ab</c> finds by reflection in each build it
    /// compares (so its signature must stay: only framework types cross between the builds' load contexts).
    /// Returns null for an unknown case.
    /// </summary>
    /// <param name="name">established-tcp, established-udp, new-udp, new-tcp, replay-web, replay-mixed or ovs.</param>
    /// <param name="method">batch32, or inconfirm (ovs: batch1), the suite's per-packet method.</param>
    /// <param name="flows">Flows in the table, for the established cases.</param>
    public static (Func<int> Body, Action Cleanup, int PacketsPerCall)? CreateCase(string name, string method, int flows)
    {
        bool batch = method == "batch32";
        switch (name)
        {
            case "established-tcp" or "established-udp":
            {
                EstablishedFlowsBenchmarkBase b = name == "established-tcp" ? new EstablishedTcpBenchmarks() : new EstablishedUdpBenchmarks();
                b.Flows = flows;
                b.Setup();
                return (batch ? b.Batch32 : b.InConfirm, b.Cleanup, EstablishedFlowsBenchmarkBase.PacketsPerInvoke);
            }

            case "new-udp" or "new-tcp":
            {
                var b = new NewConnectionBenchmarks { Protocol = name == "new-udp" ? FlowProtocol.Udp : FlowProtocol.Tcp };
                b.Setup();
                return (batch ? b.Batch32 : b.InConfirm, b.Cleanup, NewConnectionBenchmarks.PacketsPerInvoke);
            }

            case "replay-web" or "replay-mixed":
            {
                var b = new ReplayBenchmarks { Capture = name == "replay-web" ? "real-web" : "real-mixed" };
                b.Setup();
                return (batch ? b.Batch32 : b.InConfirm, b.Cleanup, ReplayBenchmarks.PacketsPerInvoke);
            }

            case "ovs":
            {
                var b = new OvsWorkloadBenchmarks();
                b.Setup();
                return (batch ? b.Batch32 : b.Batch1, b.Cleanup, OvsWorkloadBenchmarks.PacketsPerInvoke);
            }

            default:
                return null;
        }
    }
}
