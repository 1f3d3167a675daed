namespace Conntrack.Tool;

/// <summary>
/// The oracle's report format (see ../shared/oracle/README.md): a per-packet section, a table section and,
/// with helpers, an expectation section. Parsed the way ../shared/tools/parity.py parses it.
/// </summary>
internal sealed class OracleOutput
{
    public Dictionary<int, string> Packets { get; } = [];
    public List<string> Table { get; } = [];
    public List<string> Expect { get; } = [];

    public static OracleOutput Parse(string text)
    {
        var o = new OracleOutput();
        string? section = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.StartsWith('#'))
            {
                section = line[1..].Trim();
                continue;
            }

            if (line.Trim().Length == 0)
            {
                continue;
            }

            switch (section)
            {
                case "per-packet":
                    var parts = line.Split('\t');
                    if (parts.Length >= 2 && int.TryParse(parts[0].Trim(), out int index))
                    {
                        o.Packets[index] = parts[1].Trim();
                    }

                    break;
                case "table":
                    o.Table.Add(string.Join(' ', line.Split(' ', StringSplitOptions.RemoveEmptyEntries)));
                    break;
                case "expect":
                    o.Expect.Add(string.Join(' ', line.Split(' ', StringSplitOptions.RemoveEmptyEntries)));
                    break;
            }
        }

        o.Table.Sort(StringComparer.Ordinal);
        o.Expect.Sort(StringComparer.Ordinal);
        return o;
    }
}

/// <summary>One way our replay differs from the kernel's recorded answer.</summary>
/// <param name="Kind"><c>packet</c>, <c>table-missing</c> (in the kernel's table, not ours), <c>table-extra</c>, <c>expect-missing</c>, <c>expect-extra</c>.</param>
/// <param name="Subject">The packet number, or the table/expectation line.</param>
/// <param name="Kernel">The kernel's state for a packet.</param>
/// <param name="Ours">Our state for a packet.</param>
internal readonly record struct OracleDifference(string Kind, string Subject, string Kernel = "", string Ours = "")
{
    public override string ToString() => Kind == "packet" ? $"packet {Subject}: kernel {Kernel}, ours {Ours}" : $"{Kind}: {Subject}";
}

/// <summary>Compares a kernel recording with our replay.</summary>
internal static class OracleComparison
{
    public static List<OracleDifference> Compare(OracleOutput kernel, OracleOutput ours)
    {
        var diffs = new List<OracleDifference>();
        foreach (var (index, state) in kernel.Packets.OrderBy(p => p.Key))
        {
            string got = ours.Packets.GetValueOrDefault(index, "(none)");
            if (got != state)
            {
                diffs.Add(new OracleDifference("packet", index.ToString(System.Globalization.CultureInfo.InvariantCulture), state, got));
            }
        }

        AddSetDifferences(diffs, kernel.Table, ours.Table, "table");
        AddSetDifferences(diffs, kernel.Expect, ours.Expect, "expect");
        return diffs;
    }

    private static void AddSetDifferences(List<OracleDifference> diffs, List<string> kernel, List<string> ours, string what)
    {
        var remaining = new List<string>(ours);
        foreach (var line in kernel)
        {
            if (!remaining.Remove(line))
            {
                diffs.Add(new OracleDifference(what + "-missing", line));
            }
        }

        foreach (var line in remaining)
        {
            diffs.Add(new OracleDifference(what + "-extra", line));
        }
    }
}
