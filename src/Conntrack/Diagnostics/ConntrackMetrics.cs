using System.Diagnostics.Metrics;

namespace Conntrack.Diagnostics;

/// <summary>
/// Publishes a table's statistics through <see cref="System.Diagnostics.Metrics"/> (meter
/// <see cref="MeterName"/>), visible in <c>dotnet-counters monitor --counters Conntrack</c> and to any
/// OpenTelemetry exporter. Instruments are observable: they read the per-thread counters only when a
/// listener collects, so the packet path pays nothing.
/// </summary>
public sealed class ConntrackMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Conntrack";

    private readonly Meter _meter;

    /// <summary>Starts publishing <paramref name="table"/>'s statistics, tagged with <paramref name="tableName"/>.</summary>
    /// <param name="table">The table to observe.</param>
    /// <param name="tableName">A tag value telling several tables apart (e.g. the interface they serve).</param>
    /// <param name="meterFactory">The host's meter factory (dependency injection), or null for a standalone meter.</param>
    public ConntrackMetrics(ConntrackTable table, string tableName = "default", IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(table);
        var tags = new KeyValuePair<string, object?>[] { new("conntrack.table", tableName) };
        _meter = meterFactory?.Create(new MeterOptions(MeterName) { Tags = tags }) ?? new Meter(MeterName, null, tags);
        _meter.CreateObservableUpDownCounter("conntrack.entries", () => table.Statistics.Entries, "{connection}", "Confirmed connections in the table.");
        _meter.CreateObservableUpDownCounter("conntrack.unconfirmed", () => table.Statistics.Unconfirmed, "{connection}", "Connections created and not yet confirmed.");
        _meter.CreateObservableUpDownCounter("conntrack.dying", () => table.Statistics.Dying, "{connection}", "Removed connections not yet reusable.");
        _meter.CreateObservableCounter("conntrack.new", () => table.Statistics.New, "{connection}", "Connections created (confirmed or not).");
        _meter.CreateObservableCounter("conntrack.insert_failures", () => table.Statistics.InsertFailed, "{connection}", "Confirmations refused (insert_failed).");
        _meter.CreateObservableCounter("conntrack.invalid", () => table.Statistics.Invalid, "{packet}", "Packets that got no connection (invalid).");
        _meter.CreateObservableCounter("conntrack.drops", () => table.Statistics.Drop, "{packet}", "Packets dropped by conntrack (drop).");
        _meter.CreateObservableCounter("conntrack.early_drops", () => table.Statistics.EarlyDrop, "{connection}", "Unassured connections evicted to make room (early_drop).");
        _meter.CreateObservableCounter("conntrack.errors", () => table.Statistics.Error, "{packet}", "ICMP packets the error handler rejected (error).");
        _meter.CreateObservableCounter("conntrack.clash_resolves", () => table.Statistics.ClashResolve, "{packet}", "Lost insert races resolved (clash_resolve).");
        _meter.CreateObservableCounter("conntrack.search_restarts", () => table.Statistics.SearchRestart, "{lookup}", "Lock-free lookups restarted (search_restart).");
        _meter.CreateObservableCounter("conntrack.ip_input_drops", () => table.Statistics.IpInputDrop, "{packet}", "Packets the kernel's IP input would drop.");
        _meter.CreateObservableCounter("conntrack.events_lost", () => table.Statistics.EventsLost, "{event}", "Events a subscriber's full channel could not take.");
        _meter.CreateObservableCounter("conntrack.expectations_created", () => table.Statistics.ExpectCreate, "{expectation}", "Expectations created (expect_create).");
    }

    /// <summary>Stops publishing.</summary>
    public void Dispose() => _meter.Dispose();
}
