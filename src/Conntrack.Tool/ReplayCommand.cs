using System.CommandLine;
using Conntrack.Pcap;

namespace Conntrack.Tool;

/// <summary>The command line of <c>conntrack-replay</c>: replay (the default), and <c>compare</c>.</summary>
internal static class ReplayCommand
{
    /// <summary>Runs the tool with <paramref name="args"/>, writing the report to <paramref name="stdout"/>.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var fileArgument = new Argument<string?>("FILE")
        {
            Description = "A pcap or pcapng capture. Without it, built-in synthetic traffic is replayed and a summary printed.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var formatOption = new Option<string>("--format")
        {
            Description = "oracle: per-packet states and the sorted table, exactly as ../shared/oracle/kernel-ct-replay prints them; proc: the final table as /proc/net/nf_conntrack lines.",
            DefaultValueFactory = _ => "oracle",
        };
        formatOption.AcceptOnlyFromAmong("oracle", "proc");
        var sysctlOption = new Option<string[]>("--sysctl")
        {
            Description = "A conntrack sysctl by its kernel name, e.g. nf_conntrack_checksum=0 or nf_conntrack_udp_timeout=60 (net.netfilter. prefix optional; net.ipv4.ipfrag_* too). Repeatable.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var clockOption = new Option<string>("--clock")
        {
            Description = "capture: each packet at its capture time (compare with NAME.kernel-x1.txt); frozen: every packet at the first one's time (compare with NAME.kernel.txt, recorded as fast as possible).",
            DefaultValueFactory = _ => "capture",
        };
        clockOption.AcceptOnlyFromAmong("capture", "frozen");
        var timeoutsOption = new Option<bool>("--timeouts") { Description = "Add timeout=<seconds left> to each table line." };
        var acctOption = new Option<bool>("--acct") { Description = "Turn on accounting (nf_conntrack_acct=1) and add orig_packets= orig_bytes= reply_packets= reply_bytes= to each table line." };
        var noPadOption = new Option<bool>("--no-pad") { Description = "Do not zero-pad packets the capture's snap length cut short (they are then LOST, as in the oracle)." };
        var helperOption = new Option<string[]>("--helper")
        {
            Description = "Assign the helper NAME (ftp, tftp, sip, irc, netbios-ns, snmp) to new connections to PROTO (tcp/udp) port PORT or range N-M; NAME alone uses its standard port(s). Repeatable. Adds helper=NAME to table lines and an '# expect' section.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var helpersOption = new Option<bool>("--helpers") { Description = "Assign every built-in helper on its standard port(s), as the oracle's --helpers does." };
        var expectOption = new Option<bool>("--expect") { Description = "Print the '# expect' section without assigning any helper." };
        var eventsOption = new Option<bool>("--events") { Description = "Print the event stream in the format of conntrack -E ([NEW], [UPDATE], [DESTROY]) instead of the per-packet report." };
        var packetsOption = new Option<long>("--packets") { Description = "Synthetic traffic: packets to replay.", DefaultValueFactory = _ => 2_000_000 };
        var flowsOption = new Option<int>("--flows") { Description = "Synthetic traffic: number of flows.", DefaultValueFactory = _ => 10_000 };
        var seedOption = new Option<int>("--seed") { Description = "Synthetic traffic: random seed.", DefaultValueFactory = _ => 1 };

        var root = new RootCommand("conntrack-replay: replays a capture (or synthetic traffic) through the Conntrack engine and prints what Linux conntrack would say about each packet and the final table.")
        {
            fileArgument, formatOption, sysctlOption, clockOption, timeoutsOption, acctOption, noPadOption,
            helperOption, helpersOption, expectOption, eventsOption, packetsOption, flowsOption, seedOption,
        };

        root.SetAction(parse =>
        {
            if (!TryEngineOptions(parse.GetValue(sysctlOption), stderr, out var engine))
            {
                return 2;
            }

            var options = new ReplayOptions
            {
                File = parse.GetValue(fileArgument),
                Format = parse.GetValue(formatOption) ?? "oracle",
                Clock = parse.GetValue(clockOption) == "frozen" ? ClockMode.Frozen : ClockMode.Capture,
                Timeouts = parse.GetValue(timeoutsOption),
                Accounting = parse.GetValue(acctOption),
                NoPad = parse.GetValue(noPadOption),
                Helpers = parse.GetValue(helperOption) ?? [],
                AllHelpers = parse.GetValue(helpersOption),
                Expect = parse.GetValue(expectOption),
                Events = parse.GetValue(eventsOption),
                Engine = engine,
                Packets = parse.GetValue(packetsOption),
                Flows = parse.GetValue(flowsOption),
                Seed = parse.GetValue(seedOption),
            };
            return Replay(options, stdout, stderr);
        });

        var dirsArgument = new Argument<string[]>("DIR")
        {
            Description = "Folders with captures and the kernel's recorded answers beside them (NAME.kernel.txt, NAME.kernel-x1.txt, NAME.kernel-helpers.txt).",
            Arity = ArgumentArity.OneOrMore,
        };
        var verboseOption = new Option<bool>("--verbose", "-v") { Description = "List every difference." };
        var compare = new Command("compare", "Replays every capture with a recorded kernel answer and prints the agreement per capture and per state.")
        {
            dirsArgument, verboseOption,
        };
        compare.SetAction(parse => CorpusReport.Run(parse.GetValue(dirsArgument) ?? [], parse.GetValue(verboseOption), stdout));
        root.Subcommands.Add(compare);

        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        return root.Parse(args).Invoke(config);
    }

    private static bool TryEngineOptions(string[]? sysctls, TextWriter stderr, out ConntrackOptions engine)
    {
        engine = new ConntrackOptions();
        foreach (var assignment in sysctls ?? [])
        {
            int eq = assignment.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                stderr.WriteLine($"conntrack-replay: --sysctl wants NAME=VALUE, got '{assignment}'");
                return false;
            }

            try
            {
                engine.SetSysctl(assignment[..eq], assignment[(eq + 1)..]);
            }
            catch (ArgumentException e)
            {
                stderr.WriteLine($"conntrack-replay: {e.Message}");
                return false;
            }
        }

        return true;
    }

    private static int Replay(ReplayOptions options, TextWriter stdout, TextWriter stderr)
    {
        // The report can be hundreds of thousands of lines: buffer it (Console.Out flushes per write).
        var output = ReferenceEquals(stdout, Console.Out)
            ? new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false), 1 << 16)
            : stdout;
        try
        {
            return options.File is null
                ? new SyntheticTraffic(options, output).Run()
                : new CaptureReplay(options, output, stderr).Run();
        }
        catch (CaptureFormatException e)
        {
            stderr.WriteLine($"conntrack-replay: {options.File}: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            stderr.WriteLine($"conntrack-replay: {options.File}: {e.Message}");
            return 1;
        }
        finally
        {
            output.Flush();
            if (!ReferenceEquals(output, stdout))
            {
                output.Dispose();
            }
        }
    }
}
