using Conntrack.Tool;
using Xunit.Abstractions;

namespace Conntrack.Conformance;

/// <summary>
/// Replays every capture that has a recorded kernel answer — the oracle's self-tests, the shared corpus,
/// and the recordings kept in this project (other sysctl settings) — and requires the same per-packet
/// states, table and expectations as the Linux kernel, apart from the differences listed with their cause
/// in KnownDifferences.tsv.
/// </summary>
public class KernelConformanceTests
{
    private static readonly Lazy<KnownDifferences> Known = new(KnownDifferences.Load);
    private readonly ITestOutputHelper _output;

    public KernelConformanceTests(ITestOutputHelper output) => _output = output;

    public static IEnumerable<object[]> Cases()
    {
        foreach (var c in AllCases())
        {
            yield return [c.Name];
        }
    }

    internal static List<OracleCase> AllCases()
    {
        var list = new List<OracleCase>();
        if (SharedCorpus.Folder is { } shared)
        {
            list.AddRange(OracleCorpus.Discover(Path.Combine(shared, "oracle", "selftest")));
            list.AddRange(OracleCorpus.Discover(Path.Combine(shared, "pcaps")));
        }

        string recordings = Path.Combine(SharedCorpus.ProjectFolder, "Recordings");
        if (Directory.Exists(recordings) && SharedCorpus.Folder is not null)
        {
            list.AddRange(RecordedCases(recordings));
        }

        return list;
    }

    /// <summary>
    /// Recordings made with other oracle options live in this project (the captures stay in ../shared):
    /// <c>Recordings/NAME.case</c> names the capture (relative to ../shared) and the replay arguments, and
    /// <c>Recordings/NAME.kernel.txt</c> holds the kernel's answer.
    /// </summary>
    private static IEnumerable<OracleCase> RecordedCases(string folder)
    {
        foreach (var spec in Directory.EnumerateFiles(folder, "*.case").Order(StringComparer.Ordinal))
        {
            var lines = File.ReadAllLines(spec).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
            string capture = Path.Combine(SharedCorpus.Require(), lines[0].Trim());
            string recording = Path.ChangeExtension(spec, ".kernel.txt");
            var args = new List<string> { capture, "--format", "oracle" };
            args.AddRange(lines.Skip(1).SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)));
            yield return new OracleCase(capture, recording, "recordings/" + Path.GetFileNameWithoutExtension(spec), [.. args]);
        }
    }

    [Fact]
    public void The_shared_corpus_is_present()
    {
        SharedCorpus.Require();
        AllCases().Should().HaveCountGreaterThan(200, "the self-tests and the corpus hold over 200 recordings");
    }

    [Fact]
    public void Every_known_difference_names_an_existing_case()
    {
        var names = AllCases().Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        Known.Value.Cases.Where(c => !names.Contains(c)).Should().BeEmpty("KnownDifferences.tsv must only name cases that exist");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Replay_matches_the_kernel(string name)
    {
        var c = AllCases().Single(x => x.Name == name);
        var (kernel, _, diffs, errors) = OracleCorpus.Run(c);
        errors.Should().BeEmpty("the replay must run to completion");
        kernel.Packets.Should().NotBeEmpty("the recording must hold per-packet states");

        var known = Known.Value.For(name);
        bool all = known.Any(k => k.Difference == "*");
        var unexplained = all ? [] : diffs.Select(d => d.ToString()).Where(d => !known.Any(k => k.Difference == d)).ToList();
        var stale = all ? [] : known.Where(k => !diffs.Any(d => d.ToString() == k.Difference)).Select(k => k.Difference).ToList();
        _output.WriteLine($"{name}: {kernel.Packets.Count - diffs.Count(d => d.Kind == "packet")}/{kernel.Packets.Count} packets agree, {diffs.Count} differences, {known.Count} known");
        foreach (var d in diffs)
        {
            _output.WriteLine("  " + d);
        }

        unexplained.Should().BeEmpty("every difference from the kernel must be fixed or listed with its cause in KnownDifferences.tsv");
        stale.Should().BeEmpty("a listed difference that no longer happens must be removed from KnownDifferences.tsv");
        if (all)
        {
            diffs.Should().NotBeEmpty("a case listed with '*' that now agrees completely must be removed from KnownDifferences.tsv");
        }
    }
}
