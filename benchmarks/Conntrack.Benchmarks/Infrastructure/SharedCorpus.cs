namespace Conntrack.Benchmarks.Infrastructure;

/// <summary>
/// Finds the shared corpus (<c>../shared</c> beside the repository) by walking up from the working directory and
/// from the application's base directory (BenchmarkDotNet runs each benchmark from a generated folder deep under
/// <c>bin/</c>). <c>CONNTRACK_SHARED</c> overrides the search.
/// </summary>
internal static class SharedCorpus
{
    private const string Marker = "pcaps";

    public static string Locate()
    {
        var tried = new List<string>();
        string? env = Environment.GetEnvironmentVariable("CONNTRACK_SHARED");
        if (!string.IsNullOrEmpty(env))
        {
            if (Directory.Exists(Path.Combine(env, Marker)))
            {
                return Path.GetFullPath(env);
            }

            tried.Add(env + " (CONNTRACK_SHARED)");
        }

        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "shared");
                if (Directory.Exists(Path.Combine(candidate, Marker)))
                {
                    return candidate;
                }

                tried.Add(candidate);
            }
        }

        throw new DirectoryNotFoundException(
            "The shared corpus (a folder 'shared' holding 'pcaps', normally beside the repository) was not found. " +
            "Set CONNTRACK_SHARED to its path. Looked in: " + string.Join(", ", tried.Distinct()));
    }

    /// <summary>The path of a capture of the real-stack corpus, e.g. <c>real-web</c>.</summary>
    public static string RealStackCapture(string name)
    {
        string path = Path.Combine(Locate(), "pcaps", "real-stack", name + ".pcap");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Capture {name}.pcap is missing from the shared corpus.", path);
        }

        return path;
    }
}
