using System.Globalization;
using Conntrack.Diagnostics;

namespace Conntrack.Benchmarks.Infrastructure;

/// <summary>One line describing a table's state and counters, for benchmark logs and command diagnostics.</summary>
internal static class TableReport
{
    public static string Describe(ConntrackTable table)
    {
        ConntrackStatistics s = table.Statistics;
        return string.Create(CultureInfo.InvariantCulture,
            $"entries={s.Entries} max={s.MaxEntries} buckets={s.Buckets} unconfirmed={s.Unconfirmed} dying={s.Dying} " +
            $"new={s.New} insert={s.Insert} insert_failed={s.InsertFailed} clash_resolve={s.ClashResolve} drop={s.Drop} " +
            $"early_drop={s.EarlyDrop} invalid={s.Invalid} ip_input_drop={s.IpInputDrop} search_restart={s.SearchRestart} " +
            $"chain_too_long={s.ChainTooLong} bytes_per_slot={table.BytesPerConnection}");
    }
}
