using System.Runtime.CompilerServices;
using Conntrack.Expectations;
using Conntrack.Extensions;
using Conntrack.Helpers;
using Conntrack.Table;
using Conntrack.Tuples;

namespace Conntrack;

// Helpers and expectations: helper assignment to new connections, the helper call at Confirm, expectation
// creation by helpers and their use by new connections (init_conntrack), and their death with the master.
public sealed partial class ConntrackTable
{
    private ExtensionArea<HelperSlot>? _helperSlots;
    private readonly Lock _helperSlotsGate = new();
    private Action<int>? _unlinkExpectation;

    /// <summary>The helpers this table knows and the rules that assign them (see <see cref="HelperRegistry"/>).</summary>
    public HelperRegistry Helpers { get; } = new();

    private ExpectationTable? _expectations;

    /// <summary>
    /// The expectation table, allocated when first needed (a helper or the caller creating an expectation), so a
    /// table that never has one pays nothing for it; the packet path reads <see cref="_expectations"/> directly.
    /// </summary>
    internal ExpectationTable Expectations => Volatile.Read(ref _expectations) ?? AllocateExpectations();

    /// <summary>Whether any expectation exists (the new-connection path's whole cost when none do).</summary>
    private bool HasExpectations => Volatile.Read(ref _expectations) is { Count: > 0 };

    private void InitHelpers() => _unlinkExpectation = UnlinkExpectationLocked;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ExpectationTable AllocateExpectations()
    {
        var fresh = new ExpectationTable(Settings.ExpectMax, Math.Max(1, Settings.Buckets / 256), (ulong)Environment.TickCount64);
        return Interlocked.CompareExchange(ref _expectations, fresh, null) ?? fresh;
    }

    /// <summary>The helper extension, allocated when the first helper or expectation needs it.</summary>
    internal ExtensionArea<HelperSlot> HelperSlots
    {
        get
        {
            var area = Volatile.Read(ref _helperSlots);
            return area ?? AllocateHelperSlots();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ExtensionArea<HelperSlot> AllocateHelperSlots()
    {
        lock (_helperSlotsGate)
        {
            if (_helperSlots is null)
            {
                var area = new ExtensionArea<HelperSlot>(ExtensionId.Helper, Store.Capacity);
                // Slots in use before helpers existed have no helper and no master.
                int hw = Store.HighWater;
                for (int i = 0; i < hw; i++)
                {
                    area.At(i).Reset();
                }

                Volatile.Write(ref _helperSlots, area);
            }

            return _helperSlots;
        }
    }

    /// <summary>
    /// Gives a new connection a helper, as <c>ct helper set</c> does: only before the connection is
    /// confirmed, only if it has none yet, and only if the helper serves its protocol and address family.
    /// </summary>
    /// <returns>True if the helper was assigned.</returns>
    public bool AssignHelper(ref PacketState state, ConntrackHelper helper)
    {
        ArgumentNullException.ThrowIfNull(helper);
        if (!state.IsUnconfirmed || helper.Id == 0)
        {
            return false;
        }

        ref Connection c = ref Entries[state.Connection.Index];
        if (c.Generation != state.Connection.Generation || c.Protocol != helper.Protocol || (c.Original.IsIpv6 && !helper.SupportsIpv6))
        {
            return false;
        }

        return TryAttachHelper(state.Connection.Index, helper);
    }

    private bool TryAttachHelper(int idx, ConntrackHelper helper)
    {
        ref Connection c = ref Entries[idx];
        if (!c.TrySet(ConnectionStatus.Helper))
        {
            return false; // a connection keeps the first helper it is given
        }

        ref HelperSlot slot = ref HelperSlots.At(idx);
        slot.HelperId = helper.Id;
        slot.Data = default;
        return true;
    }

    /// <summary>The rules of <see cref="Helpers"/> for a connection <c>In</c> just created (ctinfo NEW).</summary>
    private void ApplyHelperRules(int idx, ref Connection c)
    {
        var helper = Helpers.Match(c.Protocol, c.Original.DestinationId, c.Original.IsIpv6, Settings.AutomaticHelpers);
        if (helper is not null)
        {
            TryAttachHelper(idx, helper);
        }
    }

    /// <summary>
    /// init_conntrack()'s expectation lookup: a new connection that matches an expectation becomes EXPECTED
    /// (RELATED on its first packets), inherits the master's mark, and uses up the expectation unless it is
    /// permanent. Only a confirmed, live master's expectations count.
    /// </summary>
    private void MatchExpectation(int idx, in ConntrackTuple tuple, ushort zone, long now, ThreadContext ctx)
    {
        var table = Expectations;
        int masterIdx = -1, masterGen = 0, assignHelper = 0;
        lock (table.Gate)
        {
            _expectNow = now;
            for (int i = table.FirstInBucket(tuple); i >= 0;)
            {
                ref Expectation e = ref table.Items[i];
                int next = e.NextInBucket;
                if (e.Deadline - now <= 0)
                {
                    UnlinkExpectationLocked(i);
                }
                else if ((e.Flags & ExpectationFlags.Inactive) == 0 && ExpectationTable.Matches(e, tuple, zone))
                {
                    ref Connection m = ref Entries[e.MasterIndex];
                    if (m.Generation == e.MasterGeneration && (m.Status & ((uint)ConnectionStatus.Confirmed | (uint)ConnectionStatus.Dying)) == (uint)ConnectionStatus.Confirmed)
                    {
                        masterIdx = e.MasterIndex;
                        masterGen = e.MasterGeneration;
                        assignHelper = e.AssignHelperId;
                        if ((e.Flags & ExpectationFlags.Permanent) == 0)
                        {
                            UnlinkExpectationLocked(i);
                        }
                    }

                    break;
                }

                i = next;
            }
        }

        if (masterIdx < 0)
        {
            return;
        }

        ref Connection c = ref Entries[idx];
        c.Status |= (uint)ConnectionStatus.Expected;
        c.Mark = Entries[masterIdx].Mark;
        ref HelperSlot slot = ref HelperSlots.At(idx);
        slot.MasterIndex = masterIdx;
        slot.MasterGeneration = masterGen;
        ctx.Stats.ExpectNew++;
        if (assignHelper != 0 && Helpers.ById(assignHelper) is { } helper)
        {
            TryAttachHelper(idx, helper);
        }
    }

    /// <summary>__nf_ct_expect_find() for a helper: see <see cref="HelperContext.FindExpectation"/>.</summary>
    internal bool FindExpectation(int askerIdx, InetAddress source, InetAddress destination, ushort destinationPort, byte protocol,
        long now, out ExpectationOwner owner)
    {
        owner = default;
        var area = Volatile.Read(ref _helperSlots);
        if (area is null || !HasExpectations)
        {
            return false;
        }

        ref Connection asker = ref Entries[askerIdx];
        var tuple = ConntrackTuple.ForPorts(source, destination, protocol, 0, destinationPort, asker.Original.IsIpv6);
        lock (Expectations.Gate)
        {
            for (int i = Expectations.FirstInBucket(tuple); i >= 0; i = Expectations.Items[i].NextInBucket)
            {
                ref Expectation e = ref Expectations.Items[i];
                if (e.Deadline - now > 0 && ExpectationTable.Matches(e, tuple, asker.Zone))
                {
                    owner = new ExpectationOwner(
                        e.MasterIndex == askerIdx && e.MasterGeneration == asker.Generation,
                        area.At(e.MasterIndex).HelperId == area.At(askerIdx).HelperId,
                        e.Class);
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>refresh_signalling_expectation(): see <see cref="HelperContext.RefreshExpectation"/>.</summary>
    internal bool RefreshExpectation(int masterIdx, int expectClass, InetAddress destination, ushort destinationPort, byte protocol,
        long now, TimeSpan timeout)
    {
        var area = Volatile.Read(ref _helperSlots);
        if (area is null)
        {
            return false;
        }

        lock (Expectations.Gate)
        {
            for (int i = area.At(masterIdx).ExpectationsHead; i >= 0; i = Expectations.Items[i].NextOfMaster)
            {
                ref Expectation e = ref Expectations.Items[i];
                if (e.Class == expectClass && e.Tuple.Destination == destination && e.Tuple.ProtocolField == protocol
                    && e.Tuple.DestinationId == destinationPort && e.Deadline - now > 0)
                {
                    // mod_timer_pending(): only a timer still pending is moved.
                    e.Deadline = now + timeout.Ticks * 100;
                    e.Flags &= ~ExpectationFlags.Inactive;
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>nf_ct_unexpect_related() of one expectation of a master.</summary>
    internal bool RemoveExpectation(int masterIdx, int expectClass, InetAddress destination, ushort destinationPort, byte protocol, long now)
    {
        var area = Volatile.Read(ref _helperSlots);
        if (area is null)
        {
            return false;
        }

        lock (Expectations.Gate)
        {
            _expectNow = now;
            for (int i = area.At(masterIdx).ExpectationsHead; i >= 0; i = Expectations.Items[i].NextOfMaster)
            {
                ref Expectation e = ref Expectations.Items[i];
                if (e.Class == expectClass && e.Tuple.Destination == destination && e.Tuple.ProtocolField == protocol
                    && e.Tuple.DestinationId == destinationPort)
                {
                    UnlinkExpectationLocked(i);
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>nf_ct_refresh(): the timeout only, no accounting; relative while unconfirmed; fixed timeouts stay.</summary>
    internal void RefreshTimeout(int idx, long now, long extra)
    {
        ref Connection c = ref Entries[idx];
        uint status = Volatile.Read(ref c.Status);
        if ((status & (uint)ConnectionStatus.FixedTimeout) == 0)
        {
            Volatile.Write(ref c.Timeout, (status & (uint)ConnectionStatus.Confirmed) != 0 ? now + extra : extra);
        }
    }

    internal bool IsExpected(int idx) => (Volatile.Read(ref Entries[idx].Status) & (uint)ConnectionStatus.Expected) != 0;

    /// <summary>nf_ct_expect_related() on behalf of a helper of connection <paramref name="masterIdx"/>.</summary>
    internal ExpectResult CreateExpectation(int masterIdx, int expectClass, InetAddress? source, ushort? sourcePort,
        InetAddress destination, ushort destinationPort, byte protocol, ExpectationFlags flags, long now,
        bool skipMaster = false, bool assignHelper = false)
    {
        ref HelperSlot slot = ref HelperSlots.At(masterIdx);
        var helper = Helpers.ById(slot.HelperId);
        ref Connection master = ref Entries[masterIdx];
        if (helper is null || (uint)expectClass >= (uint)helper.Policies.Count)
        {
            return ExpectResult.NoHelper;
        }

        bool ipv6 = master.Original.IsIpv6;
        var policy = helper.Policies[expectClass];
        var e = new Expectation
        {
            Tuple = ConntrackTuple.ForPorts(source ?? default, destination, protocol, sourcePort ?? 0, destinationPort, ipv6),
            MaskSource = source is null ? default : (ipv6 ? new InetAddress(ulong.MaxValue, ulong.MaxValue) : new InetAddress(uint.MaxValue, 0)),
            MaskSourcePort = sourcePort is null ? (ushort)0 : ushort.MaxValue,
            Zone = master.Zone,
            Flags = flags,
            Class = (byte)expectClass,
            HelperId = helper.Id,
            AssignHelperId = assignHelper ? helper.Id : 0,
            MasterIndex = masterIdx,
            MasterGeneration = master.Generation,
            Deadline = now + policy.Timeout.Ticks * 100,
        };
        ExpectResult r;
        var table = Expectations;
        int created;
        lock (table.Gate)
        {
            _expectNow = now;
            r = table.TryInsert(ref e, now, policy.MaxExpected, ref slot, _unlinkExpectation!, out created, skipMaster);
            if (r == ExpectResult.Created && Volatile.Read(ref _subscriptions).Length > 0)
            {
                DeliverExpectationEvent(created, Events.ConntrackEventType.ExpectationNew, now);
            }
        }

        if (r == ExpectResult.Created && CurrentContext() is { } ctx)
        {
            ctx.Stats.ExpectCreate++;
        }

        return r;
    }

    /// <summary>The time of the expectation operation in progress (set under the expectation lock), for events.</summary>
    private long _expectNow;

    /// <summary>Removes one expectation; caller holds the expectation lock (nf_ct_unlink_expect).</summary>
    private void UnlinkExpectationLocked(int slot)
    {
        ref Expectation e = ref Expectations.Items[slot];
        if (Volatile.Read(ref _subscriptions).Length > 0)
        {
            DeliverExpectationEvent(slot, Events.ConntrackEventType.ExpectationDestroy, _expectNow);
        }

        Expectations.Remove(slot, ref HelperSlots.At(e.MasterIndex));
        if (CurrentContext() is { } ctx)
        {
            ctx.Stats.ExpectDelete++;
        }
    }

    /// <summary>Removes a master's expectations of one class, or all (-1). Returns how many.</summary>
    internal int RemoveExpectationsOf(int masterIdx, int expectClass, long now)
    {
        var area = Volatile.Read(ref _helperSlots);
        if (area is null || !HasExpectations)
        {
            return 0;
        }

        int removed = 0;
        lock (Expectations.Gate)
        {
            _expectNow = now;
            for (int i = area.At(masterIdx).ExpectationsHead; i >= 0;)
            {
                int next = Expectations.Items[i].NextOfMaster;
                if (expectClass < 0 || Expectations.Items[i].Class == expectClass)
                {
                    UnlinkExpectationLocked(i);
                    removed++;
                }

                i = next;
            }
        }

        return removed;
    }

    internal bool HasExpectation(int masterIdx, int expectClass, ushort destinationPort)
    {
        var area = Volatile.Read(ref _helperSlots);
        if (area is null)
        {
            return false;
        }

        lock (Expectations.Gate)
        {
            for (int i = area.At(masterIdx).ExpectationsHead; i >= 0; i = Expectations.Items[i].NextOfMaster)
            {
                if (Expectations.Items[i].Class == expectClass && Expectations.Items[i].Tuple.DestinationId == destinationPort)
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>Drops expired expectations (the kernel's per-expectation timers, done in garbage collection).</summary>
    private void ExpireExpectations(long now)
    {
        if (!HasExpectations)
        {
            return;
        }

        lock (Expectations.Gate)
        {
            _expectNow = now;
            var items = Expectations.Items;
            for (int i = 0; i < items.Length; i++)
            {
                if (items[i].InUse && items[i].Deadline - now <= 0)
                {
                    UnlinkExpectationLocked(i);
                }
            }
        }
    }

    /// <summary>
    /// nf_confirm()'s helper call: every packet of a helped connection except ICMP errors in the reply
    /// direction. Returns Drop when the helper rejects the packet.
    /// </summary>
    private Verdict RunHelper(ReadOnlySpan<byte> packet, long now, ref PacketState state)
    {
        int idx = state.Connection.Index;
        ref Connection c = ref Entries[idx];
        if (c.Generation != state.Connection.Generation)
        {
            return Verdict.Accept;
        }

        ref HelperSlot slot = ref _helperSlots!.At(idx);
        var helper = Helpers.ById(slot.HelperId);
        if (helper is null)
        {
            return Verdict.Accept;
        }

        ReadOnlySpan<byte> ip = state.IsReassembled && TryGetReassembled(in state, out var whole) ? whole
            : (uint)state.Length <= (uint)packet.Length ? packet[..state.Length] : packet;
        var context = new HelperContext(this, idx, ip, state.Layer4Offset, state.Info, now, slot.Data, in c.Original, in c.Reply);
        HelperVerdict verdict;
        SpinLockInt.Enter(ref c.Lock);
        try
        {
            verdict = helper.Help(ref context);
        }
        finally
        {
            SpinLockInt.Exit(ref c.Lock);
        }

        if (verdict == HelperVerdict.Drop)
        {
            state.Reason = PacketReason.HelperDropped;
            state.HelperMessage = context.DropMessage;
            return Verdict.Drop;
        }

        return Verdict.Accept;
    }

    /// <summary>The expectations alive at <paramref name="now"/> (allocates; for tools and tests).</summary>
    public List<ExpectationInfo> SnapshotExpectations(long now)
    {
        var list = new List<ExpectationInfo>();
        var area = Volatile.Read(ref _helperSlots);
        if (area is null || !HasExpectations)
        {
            return list;
        }

        lock (Expectations.Gate)
        {
            foreach (ref readonly Expectation e in Expectations.Items.AsSpan())
            {
                if (!e.InUse || e.Deadline - now <= 0)
                {
                    continue;
                }

                list.Add(Snapshot(in e, now));
            }
        }

        return list;
    }

    private ExpectationInfo ExpectationSnapshot(int slot, long now) => Snapshot(in Expectations.Items[slot], now);

    private ExpectationInfo Snapshot(in Expectation e, long now)
    {
        var helper = Helpers.ById(e.HelperId);
        return new ExpectationInfo
        {
            Tuple = e.Tuple,
            MaskSource = e.MaskSource,
            MaskSourcePort = e.MaskSourcePort,
            Master = Entries[e.MasterIndex].Original,
            Flags = e.Flags,
            Class = e.Class,
            HelperName = helper?.Name ?? "",
            PolicyName = helper?.Policies[e.Class].Name,
            RemainingNs = e.Deadline - now,
            Zone = e.Zone,
        };
    }

    /// <summary>This thread's context if it is inside this table, else null.</summary>
    private ThreadContext? CurrentContext()
    {
        var ctx = t_context;
        return ctx is not null && ReferenceEquals(ctx.Table, this) && ctx.Depth > 0 ? ctx : null;
    }

    /// <summary>The helper name of a connection, for snapshots.</summary>
    private string? HelperNameOf(int idx)
    {
        var area = Volatile.Read(ref _helperSlots);
        return area is null || (Entries[idx].Status & (uint)ConnectionStatus.Helper) == 0 ? null : Helpers.ById(area.At(idx).HelperId)?.Name;
    }
}
