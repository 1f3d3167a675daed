using System.Globalization;

namespace Conntrack.Conformance;

/// <summary>
/// Differences from the kernel that are understood: <c>KnownDifferences.tsv</c>, one per line,
/// <c>case TAB difference TAB cause</c>. The difference is what the comparison prints
/// (<c>packet 12: kernel INVALID, ours NEW</c>, <c>table-missing: LINE</c>) or <c>*</c> for every difference
/// of the case. A listed difference that no longer happens is reported too, so the list stays true.
/// </summary>
internal sealed class KnownDifferences
{
    private readonly Dictionary<string, List<(string Difference, string Cause)>> _byCase = new(StringComparer.Ordinal);

    public static KnownDifferences Load()
    {
        var k = new KnownDifferences();
        string path = Path.Combine(AppContext.BaseDirectory, "KnownDifferences.tsv");
        int n = 0;
        foreach (var raw in File.ReadLines(path))
        {
            n++;
            if (raw.Length == 0 || raw.StartsWith('#'))
            {
                continue;
            }

            var parts = raw.Split('\t');
            if (parts.Length != 3 || parts[2].Trim().Length == 0)
            {
                throw new FormatException(string.Create(CultureInfo.InvariantCulture, $"KnownDifferences.tsv line {n}: want 'case<TAB>difference<TAB>cause'"));
            }

            if (!k._byCase.TryGetValue(parts[0], out var list))
            {
                k._byCase[parts[0]] = list = [];
            }

            list.Add((parts[1], parts[2]));
        }

        return k;
    }

    public IReadOnlyList<(string Difference, string Cause)> For(string caseName) =>
        _byCase.TryGetValue(caseName, out var list) ? list : [];

    public IEnumerable<string> Cases => _byCase.Keys;
}
