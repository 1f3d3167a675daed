using System.Runtime.CompilerServices;
using Conntrack.Events;
using Conntrack.Expectations;
using Conntrack.Extensions;
using Conntrack.Table;

namespace Conntrack;

// The event cache (nf_conntrack_ecache.c): event bits accumulate on a connection while its packets are
// processed and are delivered when a packet of it passes Confirm; DESTROY is delivered when it is removed.
// All of it is skipped while nobody subscribes.
public sealed partial class ConntrackTable
{
    private ConntrackSubscription[] _subscriptions = [];
    private readonly Lock _subscriptionsGate = new();
    private ExtensionArea<EventCacheSlot>? _ecache;
    private int _pendingDestroyHead = -1;
    private int _pendingDestroyCount;
    private long _eventsLost;
    private SpinLockInt _pendingDestroyLock;

    /// <summary>
    /// Subscribes to events matching <paramref name="mask"/>, delivered through a bounded channel of
    /// <paramref name="capacity"/> events. At most 32 subscriptions per table.
    /// </summary>
    public ConntrackSubscription Subscribe(ConntrackEventType mask = ConntrackEventType.All, int capacity = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        if (!Settings.Events)
        {
            throw new InvalidOperationException("Events are off for this table (nf_conntrack_events=0).");
        }

        lock (_subscriptionsGate)
        {
            int used = 0;
            foreach (var s in _subscriptions)
            {
                used |= 1 << s.Bit;
            }

            int bit = 0;
            while (bit < 32 && (used & (1 << bit)) != 0)
            {
                bit++;
            }

            if (bit == 32)
            {
                throw new InvalidOperationException("At most 32 subscriptions per table.");
            }

            if (_ecache is null)
            {
                var area = new ExtensionArea<EventCacheSlot>(ExtensionId.EventCache, Store.Capacity);
                int hw = Store.HighWater;
                for (int i = 0; i < hw; i++)
                {
                    area.At(i) = default;
                }

                Volatile.Write(ref _ecache, area);
            }

            var sub = new ConntrackSubscription(this, mask, capacity, bit);
            Volatile.Write(ref _subscriptions, [.. _subscriptions, sub]);
            return sub;
        }
    }

    internal void Unsubscribe(ConntrackSubscription subscription)
    {
        lock (_subscriptionsGate)
        {
            Volatile.Write(ref _subscriptions, _subscriptions.Where(s => !ReferenceEquals(s, subscription)).ToArray());
        }
    }

    /// <summary>nf_conntrack_event_cache(): remembers an event for the next delivery. Free when nobody listens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void CacheEvent(int idx, ConntrackEventType type)
    {
        if (_ecache is { } e)
        {
            Interlocked.Or(ref e.At(idx).Cache, (uint)type);
        }
    }

    /// <summary>Whether a connection has cached events waiting for delivery.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool HasCachedEvents(int idx) => _ecache is { } e && Volatile.Read(ref e.At(idx).Cache) != 0;

    /// <summary>nf_ct_deliver_cached_events(): sends what accumulated, for a confirmed, live connection.</summary>
    private void DeliverCachedEvents(int idx, long now)
    {
        var area = _ecache;
        if (area is null)
        {
            return;
        }

        ref Connection c = ref Entries[idx];
        if ((Volatile.Read(ref c.Status) & ((uint)ConnectionStatus.Confirmed | (uint)ConnectionStatus.Dying)) != (uint)ConnectionStatus.Confirmed)
        {
            return;
        }

        uint bits = Interlocked.Exchange(ref area.At(idx).Cache, 0);
        if (bits == 0)
        {
            return;
        }

        var types = (ConntrackEventType)bits;
        ConntrackEvent e = default;
        bool built = false;
        foreach (var s in Volatile.Read(ref _subscriptions))
        {
            if ((s.Mask & types) == 0)
            {
                continue;
            }

            if (!built)
            {
                e = new ConntrackEvent { Types = types, Connection = Snapshot(idx, now), Timestamp = now };
                built = true;
            }

            if (!s.TryDeliver(in e))
            {
                Interlocked.Increment(ref _eventsLost);
            }
        }
    }

    /// <summary>
    /// The DESTROY event of a connection being removed. Returns false when some subscriber could not take
    /// it: the connection then waits on the pending-destroy list (the kernel's ecache dying list).
    /// </summary>
    private bool DeliverDestroy(int idx, long now)
    {
        var area = _ecache;
        var subs = Volatile.Read(ref _subscriptions);
        if (area is null || subs.Length == 0)
        {
            return true;
        }

        ref EventCacheSlot slot = ref area.At(idx);
        uint targets = slot.PendingDestroy;
        bool first = targets == 0;
        var e = new ConntrackEvent
        {
            Types = ConntrackEventType.Destroy | (ConntrackEventType)Interlocked.Exchange(ref slot.Cache, 0),
            Connection = Snapshot(idx, now),
            Timestamp = now,
        };
        uint failed = 0;
        foreach (var s in subs)
        {
            if ((s.Mask & ConntrackEventType.Destroy) == 0 || (!first && (targets & (1u << s.Bit)) == 0))
            {
                continue;
            }

            if (!s.TryDeliver(in e))
            {
                failed |= 1u << s.Bit;
                Interlocked.Increment(ref _eventsLost);
            }
        }

        slot.PendingDestroy = failed;
        return failed == 0;
    }

    /// <summary>Puts a removed connection whose DESTROY is undelivered aside until it can be delivered.</summary>
    private void DeferDestroy(int idx)
    {
        _pendingDestroyLock.Enter();
        Entries[idx].ListLink = _pendingDestroyHead;
        _pendingDestroyHead = idx;
        _pendingDestroyCount++;
        _pendingDestroyLock.Exit();
    }

    /// <summary>Retries undelivered DESTROY events; delivered ones move on to the dying list.</summary>
    private void RedeliverDestroys(long now)
    {
        if (Volatile.Read(ref _pendingDestroyHead) < 0)
        {
            return;
        }

        _pendingDestroyLock.Enter();
        int head = _pendingDestroyHead;
        _pendingDestroyHead = -1;
        _pendingDestroyCount = 0;
        _pendingDestroyLock.Exit();
        for (int idx = head; idx >= 0;)
        {
            int next = Entries[idx].ListLink;
            if (DeliverDestroy(idx, now))
            {
                Retire(idx);
            }
            else
            {
                DeferDestroy(idx);
            }

            idx = next;
        }
    }

    /// <summary>IPEXP_NEW / IPEXP_DESTROY for an expectation slot.</summary>
    private void DeliverExpectationEvent(int slot, ConntrackEventType type, long now)
    {
        var subs = Volatile.Read(ref _subscriptions);
        if (subs.Length == 0)
        {
            return;
        }

        ConntrackEvent e = default;
        bool built = false;
        foreach (var s in subs)
        {
            if ((s.Mask & type) == 0)
            {
                continue;
            }

            if (!built)
            {
                e = new ConntrackEvent { Types = type, Expectation = ExpectationSnapshot(slot, now), IsExpectation = true, Timestamp = now };
                built = true;
            }

            if (!s.TryDeliver(in e))
            {
                Interlocked.Increment(ref _eventsLost);
            }
        }
    }
}

/// <summary>The event cache extension of one connection (<c>struct nf_conntrack_ecache</c>).</summary>
internal struct EventCacheSlot
{
    /// <summary>Event bits not yet delivered.</summary>
    public uint Cache;

    /// <summary>Subscribers (by bit) that still owe this removed connection its DESTROY.</summary>
    public uint PendingDestroy;
}
