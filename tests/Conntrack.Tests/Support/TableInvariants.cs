using System.Reflection;
using Conntrack.Table;

namespace Conntrack.Tests.Support;

/// <summary>
/// Walks every structure of a quiescent table (no call in progress on any thread) and lists what is
/// inconsistent: hash chains, nulls markers, unconfirmed lists, the dying list, the free list, entry kinds,
/// and the counters derived from them.
/// </summary>
public static class TableInvariants
{
    private const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;

    /// <summary>Throws with every violation found.</summary>
    public static void AssertHold(ConntrackTable table, string context = "")
    {
        var v = Violations(table);
        if (v.Count > 0)
        {
            // Grouped by kind of violation (digits stripped), so that one frequent kind cannot hide another.
            var groups = v.GroupBy(e => System.Text.RegularExpressions.Regex.Replace(e, "[0-9]+", "#"))
                .OrderBy(g => g.Count())
                .Select(g => $"[{g.Count()}x] {g.Key}\n      e.g. {string.Join("\n      e.g. ", g.Take(3))}");
            throw new Xunit.Sdk.XunitException(
                $"Table invariants violated{(context.Length > 0 ? " (" + context + ")" : "")}: {v.Count} violation(s)\n  " +
                string.Join("\n  ", groups));
        }
    }

    private static T Field<T>(object o, string name)
    {
        var f = o.GetType().GetField(name, Private)
            ?? throw new InvalidOperationException($"{o.GetType().Name} has no field {name} (the checker needs updating)");
        return (T)f.GetValue(o)!;
    }

    /// <summary>All violations (empty when the table is consistent).</summary>
    internal static List<string> Violations(ConntrackTable table)
    {
        var errors = new List<string>();
        var entries = table.Entries;
        int highWater = table.Store.HighWater;
        int stepLimit = (2 * highWater) + 2;

        // Where each slot was found: 'H' hash (both nodes), 'U' unconfirmed, 'D' dying, 'F' free.
        var seenOriginal = new int[highWater];   // bucket + 1 where the original node was found, or 0
        var seenReply = new int[highWater];
        var listOf = new char[highWater];

        // ---- hash chains
        for (int b = 0; b < table.Buckets.Length; b++)
        {
            int node = table.Buckets[b];
            int steps = 0;
            while (node >= 0)
            {
                if (++steps > stepLimit)
                {
                    errors.Add($"bucket {b}: chain does not end (cycle?)");
                    break;
                }

                int idx = node >> 1;
                bool reply = (node & 1) != 0;
                if (idx >= highWater)
                {
                    errors.Add($"bucket {b}: node {node} names slot {idx} beyond the high-water mark {highWater}");
                    break;
                }

                ref Connection c = ref entries[idx];
                if (c.Kind != EntryKind.Hashed)
                {
                    errors.Add($"bucket {b}: slot {idx} is in a chain but its kind is {c.Kind}");
                }

                var seen = reply ? seenReply : seenOriginal;
                if (seen[idx] != 0)
                {
                    errors.Add($"slot {idx}: {(reply ? "reply" : "original")} node found twice (buckets {seen[idx] - 1} and {b})");
                }

                seen[idx] = b + 1;
                var tuple = reply ? c.Reply : c.Original;
                int home = table.BucketOf(table.Hasher.Hash(in tuple, c.Zone));
                if (home != b)
                {
                    errors.Add($"slot {idx}: {(reply ? "reply" : "original")} node in bucket {b}, but its tuple hashes to bucket {home}");
                }

                node = reply ? c.NextReply : c.NextOriginal;
            }

            if (node < 0 && node != ConntrackTable.NullsMarker(b) && steps <= stepLimit)
            {
                errors.Add($"bucket {b}: chain ends in {node}, not in its own nulls marker {ConntrackTable.NullsMarker(b)}");
            }
        }

        int hashed = 0;
        for (int i = 0; i < highWater; i++)
        {
            ref Connection c = ref entries[i];
            if (c.Kind != EntryKind.Hashed)
            {
                continue;
            }

            hashed++;
            listOf[i] = 'H';
            var status = (ConnectionStatus)c.Status;
            bool replyOnly = c.NextOriginal == ConntrackTable.UnhashedMarker;
            if (replyOnly && (status & ConnectionStatus.NatClash) == 0)
            {
                errors.Add($"slot {i}: original node unhashed but the entry is not a clash loser (status {status})");
            }

            if (!replyOnly && seenOriginal[i] == 0)
            {
                errors.Add($"slot {i}: hashed, but its original node is in no chain (unreachable under its original tuple)");
            }

            if (seenReply[i] == 0)
            {
                errors.Add($"slot {i}: hashed, but its reply node is in no chain (unreachable under its reply tuple)");
            }

            if ((status & ConnectionStatus.Confirmed) == 0 || (status & ConnectionStatus.Dying) != 0)
            {
                errors.Add($"slot {i}: hashed with status {status} (expected confirmed, not dying)");
            }
        }

        // ---- unconfirmed lists
        int unconfirmed = 0;
        foreach (ThreadContext ctx in table.Contexts)
        {
            int prev = ConntrackTable.UnhashedMarker, n = 0;
            for (int idx = ctx.UnconfirmedHead; idx >= 0; idx = entries[idx].NextOriginal)
            {
                if (idx >= highWater || ++n > stepLimit)
                {
                    errors.Add($"context {ctx.Id}: unconfirmed list broken at {idx}");
                    break;
                }

                ref Connection c = ref entries[idx];
                if (listOf[idx] != '\0')
                {
                    errors.Add($"slot {idx}: on the unconfirmed list of context {ctx.Id} and also on list '{listOf[idx]}'");
                }

                listOf[idx] = 'U';
                if (c.Kind != EntryKind.Unconfirmed)
                {
                    errors.Add($"slot {idx}: on an unconfirmed list with kind {c.Kind}");
                }

                if (c.ListLink != ctx.OwnerTag)
                {
                    errors.Add($"slot {idx}: on context {ctx.Id}'s unconfirmed list but names context {ThreadContext.IdOfOwnerTag(c.ListLink)}");
                }

                if (c.NextReply != prev)
                {
                    errors.Add($"slot {idx}: unconfirmed back link {c.NextReply}, expected {prev}");
                }

                if (((ConnectionStatus)c.Status & ConnectionStatus.Confirmed) != 0)
                {
                    errors.Add($"slot {idx}: unconfirmed but has the Confirmed bit");
                }

                prev = idx;
            }

            if (n != ctx.UnconfirmedCount)
            {
                errors.Add($"context {ctx.Id}: UnconfirmedCount {ctx.UnconfirmedCount} but {n} entries on its list");
            }

            unconfirmed += n;
        }

        // ---- dying list
        int dyingHead = Field<int>(table, "_dyingHead");
        int dyingCount = Field<int>(table, "_dyingCount");
        int dying = 0;
        for (int idx = dyingHead; idx >= 0; idx = entries[idx].ListLink)
        {
            if (idx >= highWater || ++dying > stepLimit)
            {
                errors.Add($"dying list broken at {idx}");
                break;
            }

            if (listOf[idx] != '\0')
            {
                errors.Add($"slot {idx}: on the dying list and also on list '{listOf[idx]}'");
            }

            listOf[idx] = 'D';
            if (entries[idx].Kind != EntryKind.Dying)
            {
                errors.Add($"slot {idx}: on the dying list with kind {entries[idx].Kind}");
            }
        }

        if (dying != dyingCount)
        {
            errors.Add($"dying count {dyingCount} but {dying} entries on the dying list");
        }

        // ---- free list
        int freeHead = Field<int>(table.Store, "_freeHead");
        int free = 0;
        for (int idx = freeHead; idx >= 0; idx = entries[idx].ListLink)
        {
            if (idx >= highWater || ++free > stepLimit)
            {
                errors.Add($"free list broken at {idx}");
                break;
            }

            if (listOf[idx] != '\0')
            {
                errors.Add($"slot {idx}: on the free list and also on list '{listOf[idx]}'");
            }

            listOf[idx] = 'F';
            if (entries[idx].Kind != EntryKind.Free)
            {
                errors.Add($"slot {idx}: on the free list with kind {entries[idx].Kind}");
            }
        }

        if (free != table.Store.FreeCount)
        {
            errors.Add($"FreeCount {table.Store.FreeCount} but {free} slots on the free list");
        }

        // ---- every slot on exactly one list
        for (int i = 0; i < highWater; i++)
        {
            if (listOf[i] == '\0')
            {
                errors.Add($"slot {i}: on no list (kind {entries[i].Kind}): leaked");
            }
        }

        // ---- counters
        if (table.Count != hashed)
        {
            errors.Add($"Count {table.Count} but {hashed} hashed entries");
        }

        var stats = table.Statistics;
        if (stats.Entries != hashed)
        {
            errors.Add($"Statistics.Entries {stats.Entries} but {hashed} hashed entries");
        }

        if (stats.Unconfirmed != unconfirmed)
        {
            errors.Add($"Statistics.Unconfirmed {stats.Unconfirmed} but {unconfirmed} entries on unconfirmed lists");
        }

        if (stats.Dying != dying)
        {
            errors.Add($"Statistics.Dying {stats.Dying} but {dying} entries on the dying list");
        }

        int count = Field<int>(table, "_count");
        if (count != hashed + unconfirmed)
        {
            errors.Add($"nf_conntrack_count {count} but {hashed} hashed + {unconfirmed} unconfirmed");
        }

        return errors;
    }
}
