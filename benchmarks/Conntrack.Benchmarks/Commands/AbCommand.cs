using System.Globalization;
using System.Reflection;
using System.Runtime.Loader;

namespace Conntrack.Benchmarks.Commands;

/// <summary>
/// <c>ab</c>: compares two builds of the engine in one process. Each build's copy of this application (with its own
/// <c>Conntrack.dll</c>) is loaded into its own <see cref="AssemblyLoadContext"/>, both set up the same case (the
/// bodies <c>profile</c> runs), and the two run in alternating slices, the order swapped every round, so that both see
/// the same machine. This machine's speed drifts, by up to 2× within minutes, so pairs of separate processes (and
/// pairs of BenchmarkDotNet runs) cannot resolve a change of under 10 %; alternated slices in one process can. What it
/// prints is a comparison, not a benchmark result: speed claims are BenchmarkDotNet's.
/// </summary>
internal static class AbCommand
{
    private const int WarmupSlices = 3;

    public static int Run(string[] args)
    {
        bool help = args.Length > 0 && args[0] is "--help" or "-h";
        if (args.Length < 4 || help)
        {
            (help ? Console.Out : Console.Error).WriteLine(
                """
                Usage: Conntrack.Benchmarks ab DIR_A DIR_B CASE METHOD [FLOWS] [ROUNDS] [SLICE_SECONDS] [SETUPS]

                DIR_A and DIR_B are output folders of this project (bin/Release/net10.0), each built against the engine
                to compare; pass the same folder twice for an A/A run, which shows the method's own spread. CASE and
                METHOD are profile's (e.g. established-tcp batch32 1000000). ROUNDS alternated slices of each build,
                spread over SETUPS fresh set-ups of both (new tables, A set up first in even ones, B in odd ones).
                Defaults: FLOWS 1000000, ROUNDS 24, SLICE_SECONDS 0.5, SETUPS 4. Both builds need
                ProfileCommand.CreateCase: to compare an older engine, build it with this commit's benchmarks folder.
                """);
            return help ? 0 : 2;
        }

        int flows = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 1_000_000;
        int rounds = args.Length > 5 ? int.Parse(args[5], CultureInfo.InvariantCulture) : 24;
        double slice = args.Length > 6 ? double.Parse(args[6], CultureInfo.InvariantCulture) : 0.5;
        int setups = args.Length > 7 ? int.Parse(args[7], CultureInfo.InvariantCulture) : 4;
        if (setups < 1 || rounds < setups || slice <= 0)
        {
            Console.Error.WriteLine("ab: SETUPS must be at least 1, ROUNDS at least SETUPS, SLICE_SECONDS positive.");
            return 2;
        }

        MethodInfo? createA = FindCreateCase("A", args[0]);
        MethodInfo? createB = FindCreateCase("B", args[1]);
        if (createA is null || createB is null)
        {
            return 2;
        }

        CultureInfo ci = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(ci,
            $"# ab {args[2]} {args[3]} ({flows} flows where that applies): {rounds} rounds of {slice} s slices over {setups} set-ups, ns per packet"));
        var timesA = new double[rounds];
        var timesB = new double[rounds];
        var differences = new double[rounds];
        int bFaster = 0;
        int round = 0;
        for (int setup = 0; setup < setups; setup++)
        {
            // Where a table's memory lands matters on a VM (the same build set up twice in one process has differed by
            // a third): fresh tables each time, and the first one set up alternates.
            bool aFirst = (setup & 1) == 0;
            var first = Create(aFirst ? createA : createB, args[2], args[3], flows);
            var second = Create(aFirst ? createB : createA, args[2], args[3], flows);
            if (first is null || second is null)
            {
                Console.Error.WriteLine($"ab: unknown case '{args[2]}'");
                return 2;
            }

            var a = aFirst ? first.Value : second.Value;
            var b = aFirst ? second.Value : first.Value;
            for (int i = 0; i < WarmupSlices; i++)
            {
                Slice(a, slice);
                Slice(b, slice);
            }

            int start = round;
            int end = rounds * (setup + 1) / setups;
            for (; round < end; round++)
            {
                if ((round & 1) == 0)
                {
                    timesA[round] = Slice(a, slice);
                    timesB[round] = Slice(b, slice);
                }
                else
                {
                    timesB[round] = Slice(b, slice);
                    timesA[round] = Slice(a, slice);
                }

                differences[round] = timesB[round] - timesA[round];
                bFaster += timesB[round] < timesA[round] ? 1 : 0;
            }

            Console.WriteLine(string.Create(ci,
                $"set-up {setup + 1} ({(aFirst ? "A" : "B")} first): A median {Median(timesA[start..end]):F1}, B median {Median(timesB[start..end]):F1}, B - A median {Median(differences[start..end]):F1}"));
            a.Cleanup();
            b.Cleanup();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }

        Console.WriteLine("A " + args[0] + ": " + Summary(timesA));
        Console.WriteLine("B " + args[1] + ": " + Summary(timesB));
        Console.WriteLine(string.Create(ci, $"B - A, same round: median {Median(differences):F1} ns; B faster in {bFaster} of {rounds} rounds"));
        return 0;
    }

    private static MethodInfo? FindCreateCase(string label, string dir)
    {
        string path = Path.GetFullPath(Path.Combine(dir, "Conntrack.Benchmarks.dll"));
        if (!File.Exists(path))
        {
            Console.Error.WriteLine($"ab: no {path} (build the benchmarks project into {dir} first).");
            return null;
        }

        MethodInfo? create = new BuildContext(label, path).LoadFromAssemblyPath(path)
            .GetType("Conntrack.Benchmarks.Commands.ProfileCommand")?
            .GetMethod(nameof(ProfileCommand.CreateCase), BindingFlags.Public | BindingFlags.Static);
        if (create is null)
        {
            Console.Error.WriteLine($"ab: the build in {dir} has no ProfileCommand.CreateCase; build its engine with this commit's benchmarks folder.");
        }

        return create;
    }

    // The tuple and delegate types are the framework's, shared by every load context, so the result casts here.
    private static (Func<int> Body, Action Cleanup, int PacketsPerCall)? Create(MethodInfo create, string name, string method, int flows) =>
        ((Func<int> Body, Action Cleanup, int PacketsPerCall)?)create.Invoke(null, [name, method, flows]);

    private static double Slice((Func<int> Body, Action Cleanup, int PacketsPerCall) run, double seconds) =>
        ProfileCommand.RunFor(run.Body, run.PacketsPerCall, seconds).NanosecondsPerPacket;

    private static string Summary(double[] times) =>
        string.Create(CultureInfo.InvariantCulture, $"min {times.Min():F1}, median {Median(times):F1}, max {times.Max():F1}");

    private static double Median(double[] values)
    {
        double[] sorted = (double[])values.Clone();
        Array.Sort(sorted);
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[(n / 2) - 1] + sorted[n / 2]) / 2;
    }

    /// <summary>A build's own load context: its assemblies from its folder, the framework's from the default one.</summary>
    private sealed class BuildContext(string name, string mainAssembly) : AssemblyLoadContext(name)
    {
        private readonly AssemblyDependencyResolver _resolver = new(mainAssembly);

        protected override Assembly? Load(AssemblyName assemblyName) =>
            _resolver.ResolveAssemblyToPath(assemblyName) is { } path ? LoadFromAssemblyPath(path) : null;
    }
}
