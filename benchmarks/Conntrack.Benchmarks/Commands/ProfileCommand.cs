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
        bool batch = args[1] == "batch32";
        Func<int> body;
        Action cleanup;
        int perCall;
        switch (args[0])
        {
            case "established-tcp" or "established-udp":
            {
                EstablishedFlowsBenchmarkBase b = args[0] == "established-tcp" ? new EstablishedTcpBenchmarks() : new EstablishedUdpBenchmarks();
                b.Flows = flows;
                b.Setup();
                body = batch ? b.Batch32 : b.InConfirm;
                cleanup = b.Cleanup;
                perCall = EstablishedFlowsBenchmarkBase.PacketsPerInvoke;
                break;
            }

            case "new-udp" or "new-tcp":
            {
                var b = new NewConnectionBenchmarks { Protocol = args[0] == "new-udp" ? FlowProtocol.Udp : FlowProtocol.Tcp };
                b.Setup();
                body = batch ? b.Batch32 : b.InConfirm;
                cleanup = b.Cleanup;
                perCall = NewConnectionBenchmarks.PacketsPerInvoke;
                break;
            }

            case "replay-web" or "replay-mixed":
            {
                var b = new ReplayBenchmarks { Capture = args[0] == "replay-web" ? "real-web" : "real-mixed" };
                b.Setup();
                body = batch ? b.Batch32 : b.InConfirm;
                cleanup = b.Cleanup;
                perCall = ReplayBenchmarks.PacketsPerInvoke;
                break;
            }

            case "ovs":
            {
                var b = new OvsWorkloadBenchmarks();
                b.Setup();
                body = batch ? b.Batch32 : b.Batch1;
                cleanup = b.Cleanup;
                perCall = OvsWorkloadBenchmarks.PacketsPerInvoke;
                break;
            }

            default:
                Console.Error.WriteLine($"profile: unknown case '{args[0]}'");
                return 2;
        }

        Console.Error.WriteLine($"# profiling {args[0]} {args[1]} ({flows} flows where that applies) for {seconds} s, pid {Environment.ProcessId}");
        long calls = 0;
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(seconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < end)
        {
            body();
            calls++;
        }

        TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"# {calls * perCall} packets, {elapsed.TotalNanoseconds / (calls * perCall):F1} ns per packet (profiling run, not a benchmark result)"));
        cleanup();
        return 0;
    }
}
