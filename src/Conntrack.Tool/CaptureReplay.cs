using System.Buffers.Binary;
using Conntrack.Diagnostics;
using Conntrack.Pcap;

namespace Conntrack.Tool;

/// <summary>
/// Replays a capture through a table the way the kernel oracle feeds it to Linux: each IPv4/IPv6 packet
/// goes to <c>In</c> then <c>Confirm</c> in capture order; non-IP frames are reported as NONIP; packets cut
/// short by the snap length are zero-padded to their IP length (as the oracle does, unless --no-pad).
/// </summary>
internal sealed class CaptureReplay
{
    private readonly ReplayOptions _options;
    private readonly TextWriter _out;
    private readonly TextWriter? _log;

    public CaptureReplay(ReplayOptions options, TextWriter output, TextWriter? log = null)
    {
        _options = options;
        _out = output;
        _log = log;
    }

    public int Run()
    {
        var engine = _options.Engine.Clone();
        if (_options.Accounting)
        {
            engine.Accounting = true;
        }

        using var table = new ConntrackTable(engine);
        ConfigureHelpers(table);
        using var events = _options.Events ? table.Subscribe(Events.ConntrackEventType.All, 1 << 16) : null;
        using var reader = CaptureReader.Open(_options.File!);
        bool oracle = _options.Format == "oracle" && events is null;
        if (oracle)
        {
            _out.Write("# per-packet\n");
        }

        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var results = new List<string>();
        var attribution = new FragmentAttribution();
        byte[] padded = new byte[256 * 1024];
        long first = 0, last = 0;
        long n = 0;
        var state = default(PacketState);
        while (reader.ReadNext(out CaptureRecord record))
        {
            if (!LinkLayer.IsSupported(record.LinkType))
            {
                throw new NotSupportedException(
                    $"record {record.Index + 1}: unsupported link type {(uint)record.LinkType} (supported: 0 NULL, 1 Ethernet, 12/14/101 raw IP, 108 LOOP, 113 SLL, 228 IPv4, 229 IPv6, 276 SLL2)");
            }

            if (n == 0)
            {
                first = record.TimestampNs;
            }

            last = record.TimestampNs;
            n++;
            long ts = _options.Clock == ClockMode.Frozen ? first : record.TimestampNs;
            string result;
            FrameKind kind = LinkLayer.Decode(record.LinkType, record.Data, out int ipOffset);
            if (kind == FrameKind.NonIp)
            {
                result = "NONIP";
            }
            else
            {
                ReadOnlySpan<byte> ip = record.Data[ipOffset..];
                int declared = DeclaredLength(kind, ip);
                if (!_options.NoPad && record.OriginalLength > record.Data.Length && declared > ip.Length && declared <= padded.Length)
                {
                    // The capture's snap length cut the packet: the oracle zero-pads it to its IP length.
                    ip.CopyTo(padded);
                    padded.AsSpan(ip.Length, declared - ip.Length).Clear();
                    ip = padded.AsSpan(0, declared);
                }

                var version = kind == FrameKind.Ipv4 ? IpVersion.V4 : IpVersion.V6;
                Verdict v = table.In(ip, version, ts, ref state);
                if (v == Verdict.Accept)
                {
                    table.Confirm(ip, ts, ref state);
                }

                result = v switch
                {
                    Verdict.Stolen => "FRAG",
                    Verdict.Drop => IsFragment(kind, ip) ? "FRAG" : "LOST",
                    _ => state.Info.ToOracleString(),
                };
                if (oracle && FragmentKey(kind, ip) is { } key)
                {
                    attribution.Add(n, key, FragmentFirst(kind, ip), result);
                }
            }

            if (oracle)
            {
                results.Add(result);
            }

            counts[result] = counts.GetValueOrDefault(result) + 1;
            if (events is not null)
            {
                DrainEvents(events);
            }

            if (_options.Clock == ClockMode.Capture && (n & 255) == 0)
            {
                // The kernel's GC worker runs while packets flow; do a small step every 256 packets.
                table.CollectGarbage(ts, 64);
            }
        }

        table.Release(ref state);
        if (oracle)
        {
            attribution.Apply(results);
            var ci = System.Globalization.CultureInfo.InvariantCulture;
            for (int i = 0; i < results.Count; i++)
            {
                _out.Write((i + 1).ToString(ci));
                _out.Write('\t');
                _out.Write(results[i]);
                _out.Write('\n');
            }
        }

        long now = _options.Clock == ClockMode.Frozen ? first : last;
        if (events is not null)
        {
            DrainEvents(events);
            _out.Flush();
            _log?.WriteLine($"conntrack-replay: {n} packets; {events.Lost} events lost");
            return 0;
        }

        WriteTable(table, now, oracle);
        _out.Flush();
        if (reader.TruncatedAt is long at)
        {
            _log?.WriteLine($"conntrack-replay: warning: truncated last record at offset {at} ignored");
        }

        _log?.WriteLine($"conntrack-replay: {n} packets ({string.Join(", ", counts.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"{k.Key} {k.Value}"))}); {table.Count} table entries");
        return 0;
    }

    private readonly StringWriter _line = new(System.Globalization.CultureInfo.InvariantCulture);

    private void DrainEvents(Events.ConntrackSubscription events)
    {
        while (events.Reader.TryRead(out var e))
        {
            _line.GetStringBuilder().Clear();
            ConnectionFormatter.WriteEventLine(_line, e);
            _out.Write(_line.ToString().TrimEnd());
            _out.Write('\n');
        }
    }

    /// <summary>
    /// --helper and --helpers as the oracle applies them: explicit entries first, in order, then every
    /// standard helper; a connection keeps the first helper it is given.
    /// </summary>
    private void ConfigureHelpers(ConntrackTable table)
    {
        if (!_options.ShowHelpers)
        {
            return;
        }

        table.Helpers.RegisterBuiltIns();
        foreach (var spec in _options.Helpers)
        {
            var parts = spec.Split(':');
            if (parts.Length is not (1 or 3) || parts[0].Length == 0)
            {
                throw new ArgumentException($"--helper wants NAME or NAME:PROTO:PORT, got '{spec}'");
            }

            var known = table.Helpers.All.Where(h => string.Equals(h.Name, parts[0], StringComparison.OrdinalIgnoreCase)).ToList();
            if (known.Count == 0)
            {
                throw new ArgumentException($"--helper {spec}: no helper '{parts[0]}' (known: {string.Join(", ", table.Helpers.All.Select(h => h.Name).Distinct())})");
            }

            if (parts.Length == 1)
            {
                foreach (var h in known)
                {
                    table.Helpers.Assign(h.Name, h.Protocol, h.DefaultPort);
                }

                continue;
            }

            byte protocol = parts[1].ToLowerInvariant() switch
            {
                "tcp" => IpProtocol.Tcp,
                "udp" => IpProtocol.Udp,
                _ => throw new ArgumentException($"--helper {spec}: protocol must be tcp or udp"),
            };
            var range = parts[2].Split('-');
            if (range.Length is not (1 or 2) || !ushort.TryParse(range[0], out ushort first) || first == 0
                || (range.Length == 2 && (!ushort.TryParse(range[1], out _) || ushort.Parse(range[1], System.Globalization.CultureInfo.InvariantCulture) < first)))
            {
                throw new ArgumentException($"--helper {spec}: PORT must be a port 1-65535 or a range N-M");
            }

            ushort last = range.Length == 2 ? ushort.Parse(range[1], System.Globalization.CultureInfo.InvariantCulture) : first;
            table.Helpers.Assign(parts[0], protocol, first, last);
        }

        if (_options.AllHelpers)
        {
            table.Helpers.AssignDefaults();
            _log?.WriteLine("conntrack-replay: note: --helpers: no pptp, sane, amanda, RAS or Q.931 helper yet; left out");
        }
    }

    private void WriteTable(ConntrackTable table, long now, bool oracle)
    {
        var lines = new List<string>();
        var options = new OracleLineOptions(Helper: _options.ShowHelpers, Accounting: _options.Accounting, Timeouts: _options.Timeouts);
        var sw = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var c in table.GetConnections(now))
        {
            sw.GetStringBuilder().Clear();
            if (oracle)
            {
                ConnectionFormatter.WriteOracleLine(sw, c, options);
            }
            else
            {
                ConnectionFormatter.WriteProcLine(sw, c);
            }

            lines.Add(sw.ToString());
        }

        lines.Sort(StringComparer.Ordinal);
        if (oracle)
        {
            _out.Write("# table\n");
        }

        foreach (var l in lines)
        {
            _out.Write(l);
            _out.Write('\n');
        }

        if (oracle && _options.ShowExpect)
        {
            var expect = new List<string>();
            foreach (var e in table.SnapshotExpectations(now))
            {
                sw.GetStringBuilder().Clear();
                ConnectionFormatter.WriteOracleExpectLine(sw, e, _options.Timeouts);
                expect.Add(sw.ToString());
            }

            expect.Sort(StringComparer.Ordinal);
            _out.Write("# expect\n");
            foreach (var l in expect)
            {
                _out.Write(l);
                _out.Write('\n');
            }
        }
    }

    /// <summary>The length the IP header claims (IPv6 jumbograms excepted), or -1.</summary>
    private static int DeclaredLength(FrameKind kind, ReadOnlySpan<byte> ip)
    {
        if (kind == FrameKind.Ipv4 && ip.Length >= 20 && ip[0] >> 4 == 4)
        {
            return BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        }

        if (kind == FrameKind.Ipv6 && ip.Length >= 40 && ip[0] >> 4 == 6)
        {
            int plen = BinaryPrimitives.ReadUInt16BigEndian(ip[4..]);
            return plen == 0 ? -1 : 40 + plen;
        }

        return -1;
    }

    /// <summary>
    /// The oracle's reassembly key (frag_key): IPv4 source, destination, protocol and id when MF or an offset is
    /// set; IPv6 source and destination when a fragment header is reachable through hop-by-hop, routing and
    /// destination-options headers. Null for packets that are not fragments.
    /// </summary>
    private static string? FragmentKey(FrameKind kind, ReadOnlySpan<byte> ip)
    {
        if (!IsFragment(kind, ip))
        {
            return null;
        }

        return kind == FrameKind.Ipv4
            ? "4" + Convert.ToHexString(ip.Slice(12, 8)) + ip[9].ToString(System.Globalization.CultureInfo.InvariantCulture) + Convert.ToHexString(ip.Slice(4, 2))
            : "6" + Convert.ToHexString(ip.Slice(8, 32));
    }

    /// <summary>The oracle's frag_first: offset 0 (for IPv6 read where the walk of 0/43/60 headers ends).</summary>
    private static bool FragmentFirst(FrameKind kind, ReadOnlySpan<byte> ip)
    {
        if (kind == FrameKind.Ipv4)
        {
            return (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1FFF) == 0;
        }

        int nh = ip[6], off = 40;
        while (nh is 0 or 43 or 60 && off + 2 <= ip.Length)
        {
            nh = ip[off];
            off += (ip[off + 1] + 1) * 8;
        }

        return off + 4 <= ip.Length && (BinaryPrimitives.ReadUInt16BigEndian(ip[(off + 2)..]) & 0xFFF8) == 0;
    }

    /// <summary>
    /// How the oracle reports fragments. It cannot tell which fragment completed a datagram, so it prints
    /// FRAG for every fragment and gives the state conntrack logged for the datagram (or for a fragment the
    /// kernel passed through unreassembled) to the last packet of that datagram's group: packets with the same
    /// reassembly key, a new group starting when a first fragment arrives and the current group already has one.
    /// The k-th state logged for a key goes to the k-th group of that key. The replay reports the same way, so
    /// its per-packet lines compare with the oracle's.
    /// </summary>
    private sealed class FragmentAttribution
    {
        private readonly Dictionary<string, List<(List<long> Members, bool HasFirst)>> _groups = new(StringComparer.Ordinal);
        private readonly List<(string Key, string State)> _logged = [];

        public void Add(long index, string key, bool first, string state)
        {
            if (!_groups.TryGetValue(key, out var list))
            {
                _groups[key] = list = [];
            }

            if (list.Count == 0 || (first && list[^1].HasFirst))
            {
                list.Add(([], false));
            }

            var g = list[^1];
            g.Members.Add(index);
            list[^1] = (g.Members, g.HasFirst || first);
            if (state != "FRAG")
            {
                _logged.Add((key, state));
            }
        }

        public void Apply(List<string> results)
        {
            foreach (var list in _groups.Values)
            {
                foreach (var (members, _) in list)
                {
                    foreach (var m in members)
                    {
                        results[(int)m - 1] = "FRAG";
                    }
                }
            }

            var used = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (key, state) in _logged)
            {
                int k = used.GetValueOrDefault(key);
                var groups = _groups[key];
                if (k < groups.Count)
                {
                    results[(int)groups[k].Members.Max() - 1] = state;
                    used[key] = k + 1;
                }
            }
        }
    }

    /// <summary>
    /// The oracle's notion of a fragment (frag_key): IPv4 with MF or an offset; IPv6 with a fragment header
    /// reachable through hop-by-hop, routing and destination-options headers. A fragment the kernel never
    /// logged shows as FRAG, not LOST.
    /// </summary>
    private static bool IsFragment(FrameKind kind, ReadOnlySpan<byte> ip)
    {
        if (kind == FrameKind.Ipv4)
        {
            return ip.Length >= 20 && (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3FFF) != 0;
        }

        if (ip.Length < 40)
        {
            return false;
        }

        int nh = ip[6], off = 40;
        while (true)
        {
            if (nh == 44 && off + 8 <= ip.Length)
            {
                return true;
            }

            if (nh is 0 or 43 or 60 && off + 2 <= ip.Length)
            {
                nh = ip[off];
                off += (ip[off + 1] + 1) * 8;
                continue;
            }

            return false;
        }
    }
}
