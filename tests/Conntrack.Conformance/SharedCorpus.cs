namespace Conntrack.Conformance;

/// <summary>Finds <c>../shared</c> (the corpus and the oracle's recordings) beside the repository.</summary>
internal static class SharedCorpus
{
    private static readonly Lazy<string?> Root = new(Locate);

    /// <summary>The <c>shared</c> folder, or null when it is not beside the repository.</summary>
    public static string? Folder => Root.Value;

    /// <summary>The shared folder; fails the calling test with the places looked at when it is absent.</summary>
    public static string Require()
    {
        return Folder ?? throw new InvalidOperationException(
            "The shared corpus was not found: looked for a 'shared' folder holding pcaps/ and oracle/ beside the repository, " +
            $"walking up from {AppContext.BaseDirectory}. Put ../shared next to the repository checkout.");
    }

    /// <summary>This project's own folder (for recordings kept in the repository).</summary>
    public static string ProjectFolder => AppContext.BaseDirectory;

    private static string? Locate()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { Path.Combine(dir.FullName, "shared"), Path.Combine(dir.FullName, "..", "shared") })
            {
                if (Directory.Exists(Path.Combine(candidate, "pcaps")) && Directory.Exists(Path.Combine(candidate, "oracle")))
                {
                    return Path.GetFullPath(candidate);
                }
            }
        }

        return null;
    }
}
