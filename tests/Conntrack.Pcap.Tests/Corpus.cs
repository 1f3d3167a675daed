namespace Conntrack.Pcap.Tests;

/// <summary>
/// Finds the shared capture corpus: <c>../shared</c> seen from the repository root (/work/shared beside /work/main),
/// by walking up from the test binaries.
/// </summary>
internal static class Corpus
{
    public const string Missing = "(corpus not found)";

    private static readonly Lazy<string?> s_sharedDirectory = new(Locate);

    /// <summary>The <c>shared</c> directory, which holds <c>pcaps/</c> and <c>oracle/selftest/</c>.</summary>
    public static string SharedDirectory => s_sharedDirectory.Value ?? throw new InvalidOperationException(
        "The capture corpus was not found: no directory above " + AppContext.BaseDirectory
        + " contains shared/pcaps or ../shared/pcaps. The corpus is expected at ../shared/pcaps seen from the repository "
        + "root (read-only, not part of the repository); these tests must not pass without it.");

    public static bool IsPresent => s_sharedDirectory.Value is not null;

    public static string PcapsDirectory => Path.Combine(SharedDirectory, "pcaps");

    public static string SelfTestDirectory => Path.Combine(SharedDirectory, "oracle", "selftest");

    /// <summary>Every capture file, as a path relative to the shared directory; one placeholder if the corpus is missing.</summary>
    public static IEnumerable<string> CaptureFiles()
    {
        if (!IsPresent)
        {
            return [Missing];
        }

        return new[] { PcapsDirectory, SelfTestDirectory }
            .Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*", SearchOption.AllDirectories))
            .Where(f => f.EndsWith(".pcap", StringComparison.Ordinal) || f.EndsWith(".pcapng", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(SharedDirectory, f).Replace('\\', '/'))
            .Order(StringComparer.Ordinal);
    }

    /// <summary>MANIFEST.tsv: path relative to pcaps/ → packet count.</summary>
    public static IReadOnlyDictionary<string, int> ManifestPacketCounts()
    {
        string[] lines = File.ReadAllLines(Path.Combine(PcapsDirectory, "MANIFEST.tsv"));
        string[] header = lines[0].Split('\t');
        int pathColumn = Array.IndexOf(header, "path");
        int packetsColumn = Array.IndexOf(header, "packets");
        if (pathColumn < 0 || packetsColumn < 0)
        {
            throw new InvalidOperationException("MANIFEST.tsv has no 'path' or 'packets' column: " + lines[0]);
        }

        return lines.Skip(1)
            .Where(l => l.Length > 0)
            .Select(l => l.Split('\t'))
            .ToDictionary(c => c[pathColumn], c => int.Parse(c[packetsColumn], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// The per-packet states the kernel oracle recorded for a capture (NAME.kernel.txt beside it), one per record,
    /// or null when there is no such file.
    /// </summary>
    public static string[]? KernelStates(string captureFullPath)
    {
        string kernel = Path.ChangeExtension(captureFullPath, ".kernel.txt");
        if (!File.Exists(kernel))
        {
            return null;
        }

        var states = new List<string>();
        bool inPackets = false;
        foreach (string line in File.ReadLines(kernel))
        {
            if (line.StartsWith('#'))
            {
                inPackets = line == "# per-packet";
                continue;
            }

            if (inPackets && line.Length > 0)
            {
                string[] fields = line.Split('\t');
                int index = int.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture);
                if (index != states.Count + 1)
                {
                    throw new InvalidOperationException($"{kernel}: packet line {index} out of order");
                }

                states.Add(fields[1]);
            }
        }

        return [.. states];
    }

    private static string? Locate()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            foreach (string candidate in new[] { Path.Combine(directory.FullName, "shared"), Path.Combine(directory.FullName, "..", "shared") })
            {
                if (Directory.Exists(Path.Combine(candidate, "pcaps")))
                {
                    return Path.GetFullPath(candidate);
                }
            }
        }

        return null;
    }
}
