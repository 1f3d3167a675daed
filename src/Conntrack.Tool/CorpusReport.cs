using System.Globalization;

namespace Conntrack.Tool;

/// <summary>One capture with one recorded kernel answer.</summary>
/// <param name="Capture">Path of the capture.</param>
/// <param name="Recording">Path of the kernel's answer.</param>
/// <param name="Name">Short name for reports: the capture's path under its corpus root and the clock.</param>
/// <param name="Arguments">The replay tool's arguments that reproduce the recording's conditions.</param>
internal sealed record OracleCase(string Capture, string Recording, string Name, string[] Arguments)
{
    public override string ToString() => Name;
}

/// <summary>Finds the recorded cases of a corpus and replays them in-process.</summary>
internal static class OracleCorpus
{
    /// <summary>
    /// Every capture under <paramref name="root"/> with a recording beside it: <c>NAME.kernel.txt</c> (replayed
    /// with the clock frozen), <c>NAME.kernel-x1.txt</c> (capture clock), <c>NAME.kernel-helpers.txt</c> (frozen,
    /// helpers on); a <c>NAME.args</c> file adds options to all of them, as ../shared/tools/parity.py does.
    /// </summary>
    public static List<OracleCase> Discover(string root)
    {
        var cases = new List<OracleCase>();
        var full = Path.GetFullPath(root);
        foreach (var file in Directory.EnumerateFiles(full, "*.txt", SearchOption.AllDirectories))
        {
            foreach (var (suffix, extra, tag) in Suffixes)
            {
                if (!file.EndsWith(suffix, StringComparison.Ordinal))
                {
                    continue;
                }

                string stem = file[..^suffix.Length];
                string? capture = new[] { ".pcap", ".pcapng", ".cap" }.Select(e => stem + e).FirstOrDefault(File.Exists);
                if (capture is null)
                {
                    continue;
                }

                var args = new List<string> { capture, "--format", "oracle", "--sysctl", "nf_conntrack_checksum=0" };
                args.AddRange(extra);
                if (File.Exists(stem + ".args"))
                {
                    args.AddRange(File.ReadAllText(stem + ".args").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
                }

                string name = Path.GetRelativePath(Path.GetDirectoryName(full)!, capture).Replace('\\', '/') + " " + tag;
                cases.Add(new OracleCase(capture, file, name, [.. args]));
            }
        }

        cases.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return cases;
    }

    private static readonly (string Suffix, string[] Extra, string Tag)[] Suffixes =
    [
        (".kernel.txt", ["--clock", "frozen"], "[frozen]"),
        (".kernel-x1.txt", [], "[x1]"),
        (".kernel-helpers.txt", ["--clock", "frozen", "--helpers"], "[helpers]"),
    ];

    /// <summary>Replays a case and compares it with its recording.</summary>
    public static (OracleOutput Kernel, OracleOutput Ours, List<OracleDifference> Differences, string Errors) Run(OracleCase c)
    {
        var stdout = new StringWriter(CultureInfo.InvariantCulture);
        var stderr = new StringWriter(CultureInfo.InvariantCulture);
        int rc = ReplayCommand.Run(c.Arguments, stdout, stderr);
        var kernel = OracleOutput.Parse(File.ReadAllText(c.Recording));
        var ours = OracleOutput.Parse(stdout.ToString());
        string errors = rc == 0 ? "" : $"exit {rc}: {stderr}";
        return (kernel, ours, OracleComparison.Compare(kernel, ours), errors);
    }
}

/// <summary><c>conntrack-replay compare DIR...</c>: the agreement table per capture and per state.</summary>
internal static class CorpusReport
{
    public static int Run(string[] roots, bool verbose, TextWriter output)
    {
        var ci = CultureInfo.InvariantCulture;
        long packets = 0, agree = 0;
        int tables = 0, tablesAgree = 0, failures = 0;
        var perState = new SortedDictionary<string, (long Total, long Agree)>(StringComparer.Ordinal);
        var confusion = new Dictionary<string, long>(StringComparer.Ordinal);
        output.WriteLine("capture\tpackets\tagree\ttable");
        foreach (var root in roots)
        {
            foreach (var c in OracleCorpus.Discover(root))
            {
                var (kernel, ours, diffs, errors) = OracleCorpus.Run(c);
                int n = kernel.Packets.Count;
                int bad = diffs.Count(d => d.Kind == "packet");
                bool tableOk = diffs.All(d => d.Kind == "packet");
                packets += n;
                agree += n - bad;
                tables++;
                tablesAgree += tableOk ? 1 : 0;
                if (errors.Length > 0)
                {
                    failures++;
                }

                foreach (var (index, state) in kernel.Packets)
                {
                    var (t, a) = perState.GetValueOrDefault(state);
                    bool same = ours.Packets.GetValueOrDefault(index) == state;
                    perState[state] = (t + 1, a + (same ? 1 : 0));
                    if (!same)
                    {
                        string key = $"{state}->{ours.Packets.GetValueOrDefault(index, "(none)")}";
                        confusion[key] = confusion.GetValueOrDefault(key) + 1;
                    }
                }

                output.WriteLine(string.Create(ci, $"{c.Name}\t{n}\t{n - bad}\t{(tableOk ? "ok" : "DIFF")}{(errors.Length > 0 ? "\tFAILED " + errors.Split('\n')[0] : "")}"));
                if (verbose)
                {
                    foreach (var d in diffs)
                    {
                        output.WriteLine("    " + d);
                    }
                }
            }
        }

        output.WriteLine();
        output.WriteLine("kernel state\tpackets\tagree");
        foreach (var (state, (t, a)) in perState)
        {
            output.WriteLine(string.Create(ci, $"{state}\t{t}\t{a}"));
        }

        if (confusion.Count > 0)
        {
            output.WriteLine("mismatches (kernel->ours): " + string.Join(", ", confusion.OrderByDescending(k => k.Value).Take(15).Select(k => $"{k.Key} x{k.Value}")));
        }

        output.WriteLine(string.Create(ci, $"agreement: packets {agree}/{packets} = {100.0 * agree / Math.Max(1, packets):F3}%, tables {tablesAgree}/{tables}, failed runs {failures}"));
        output.Flush();
        return 0;
    }
}
