using System.Reflection;
using System.Text.RegularExpressions;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack.Tests.Support;

/// <summary>
/// The table invariants a concurrency test checks once its threads have stopped: everything
/// <see cref="TableInvariants"/> checks (chains end in their own nulls marker, every hashed entry reachable
/// under both tuples except reply-only clash entries, every slot on exactly one of hash / unconfirmed /
/// dying / free with a matching <see cref="EntryKind"/>, counters equal to what is reachable), plus:
/// the table is quiescent (no thread inside it), and no two live hashed nodes carry the same tuple and zone.
/// </summary>
/// <remarks>
/// Violations are grouped by kind in the failure message (numbers replaced by N) so that one systematic
/// defect with hundreds of instances does not hide a different, rarer one.
/// </remarks>
public static partial class ConcurrencyInvariants
{
    private const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;

    public static void AssertHold(ConntrackTable table, string context)
    {
        var v = Violations(table);
        if (v.Count == 0)
        {
            return;
        }

        var groups = v.GroupBy(Category).OrderByDescending(g => g.Count())
            .Select(g => $"[{g.Count()} x] {g.Key}\n      e.g. " + string.Join("\n      e.g. ", g.Take(3)));
        throw new Xunit.Sdk.XunitException(
            $"Table invariants violated ({context}); {v.Count} violation(s) of {v.GroupBy(Category).Count()} kind(s):\n  " +
            string.Join("\n  ", groups));
    }

    /// <summary>Every violation, ungrouped; empty when the table is consistent.</summary>
    internal static List<string> Violations(ConntrackTable table)
    {
        var errors = new List<string>();
        foreach (ThreadContext ctx in table.Contexts)
        {
            if (Volatile.Read(ref ctx.Hazard) >= 0 || ctx.Depth != 0)
            {
                errors.Add($"context {ctx.Id} (managed thread {ctx.ThreadId}) is still inside the table (holds slot {ctx.Hazard}, depth {ctx.Depth}); the checks need a quiescent table");
            }
        }

        errors.AddRange(TableInvariants.Violations(table));
        DuplicateTuples(table, errors);
        return errors;
    }

    /// <summary>No tuple (with its zone) is carried by two live hashed nodes: clash resolution must prevent it.</summary>
    private static void DuplicateTuples(ConntrackTable table, List<string> errors)
    {
        var entries = table.Entries;
        int highWater = table.Store.HighWater;
        var owner = new Dictionary<(ConntrackTuple, ushort), int>();
        for (int b = 0; b < table.Buckets.Length; b++)
        {
            int node = table.Buckets[b];
            for (int steps = 0; node >= 0 && steps <= 2 * highWater + 2; steps++)
            {
                int idx = node >> 1;
                if (idx >= highWater)
                {
                    break;
                }

                ref Connection c = ref entries[idx];
                bool reply = (node & 1) != 0;
                var status = (ConnectionStatus)c.Status;
                if ((status & (ConnectionStatus.Confirmed | ConnectionStatus.Dying)) == ConnectionStatus.Confirmed)
                {
                    var key = (reply ? c.Reply : c.Original, c.Zone);
                    if (owner.TryGetValue(key, out int other) && other != idx)
                    {
                        errors.Add($"duplicate live entries for tuple {key.Item1} zone {key.Item2}: slots {other} and {idx}");
                    }
                    else
                    {
                        owner[key] = idx;
                    }
                }

                node = reply ? c.NextReply : c.NextOriginal;
            }
        }
    }

    /// <summary>
    /// Diagnosis for a dying list that does not drain: a dying entry waits only while some thread's hazard
    /// pointer names it, so list the dying entries and which of them a thread holds. Racy when called during
    /// traffic, hence a diagnosis attached to behavioural failures rather than an invariant.
    /// </summary>
    public static string DescribeDyingEntries(ConntrackTable table)
    {
        int head = (int)typeof(ConntrackTable).GetField("_dyingHead", Private)!.GetValue(table)!;
        var held = table.Contexts.Select(c => Volatile.Read(ref c.Hazard)).Where(h => h >= 0).ToHashSet();
        var entries = table.Entries;
        int highWater = table.Store.HighWater;
        int n = 0, heldCount = 0;
        for (int idx = head; idx >= 0 && idx < highWater && n <= highWater; idx = entries[idx].ListLink, n++)
        {
            if (held.Contains(idx))
            {
                heldCount++;
            }
        }

        return $"{n} dying entries, {heldCount} of them held by a thread's hazard pointer ({held.Count} hazards published)";
    }

    private static string Category(string violation) => Digits().Replace(violation, "N");

    [GeneratedRegex(@"-?\d+")]
    private static partial Regex Digits();
}
