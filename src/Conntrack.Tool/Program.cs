using System.CommandLine;
using Conntrack;
using Conntrack.Pcap;
using Conntrack.Tool;

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
    Description = "A conntrack sysctl by its kernel name, e.g. nf_conntrack_checksum=0 or nf_conntrack_udp_timeout=60 (net.netfilter. prefix optional). Repeatable.",
    Arity = ArgumentArity.ZeroOrMore,
    AllowMultipleArgumentsPerToken = false,
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
var packetsOption = new Option<long>("--packets") { Description = "Synthetic traffic: packets to replay.", DefaultValueFactory = _ => 2_000_000 };
var flowsOption = new Option<int>("--flows") { Description = "Synthetic traffic: number of flows.", DefaultValueFactory = _ => 10_000 };
var seedOption = new Option<int>("--seed") { Description = "Synthetic traffic: random seed.", DefaultValueFactory = _ => 1 };

var root = new RootCommand("conntrack-replay: replays a capture (or synthetic traffic) through the Conntrack engine and prints what Linux conntrack would say about each packet and the final table.")
{
    fileArgument, formatOption, sysctlOption, clockOption, timeoutsOption, acctOption, noPadOption,
    packetsOption, flowsOption, seedOption,
};

root.SetAction(parse =>
{
    var engine = new ConntrackOptions();
    foreach (var assignment in parse.GetValue(sysctlOption) ?? [])
    {
        int eq = assignment.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0)
        {
            Console.Error.WriteLine($"conntrack-replay: --sysctl wants NAME=VALUE, got '{assignment}'");
            return 2;
        }

        try
        {
            engine.SetSysctl(assignment[..eq], assignment[(eq + 1)..]);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"conntrack-replay: {e.Message}");
            return 2;
        }
    }

    var options = new ReplayOptions
    {
        File = parse.GetValue(fileArgument),
        Format = parse.GetValue(formatOption) ?? "oracle",
        Clock = parse.GetValue(clockOption) == "frozen" ? ClockMode.Frozen : ClockMode.Capture,
        Timeouts = parse.GetValue(timeoutsOption),
        Accounting = parse.GetValue(acctOption),
        NoPad = parse.GetValue(noPadOption),
        Engine = engine,
        Packets = parse.GetValue(packetsOption),
        Flows = parse.GetValue(flowsOption),
        Seed = parse.GetValue(seedOption),
    };

    using var stdout = new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false), 1 << 16) { AutoFlush = false };
    try
    {
        return options.File is null
            ? new SyntheticTraffic(options, stdout).Run()
            : new CaptureReplay(options, stdout).Run();
    }
    catch (CaptureFormatException e)
    {
        stdout.Flush();
        Console.Error.WriteLine($"conntrack-replay: {options.File}: {e.Message}");
        return 1;
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
    {
        stdout.Flush();
        Console.Error.WriteLine($"conntrack-replay: {options.File}: {e.Message}");
        return 1;
    }
});

return root.Parse(args).Invoke();
