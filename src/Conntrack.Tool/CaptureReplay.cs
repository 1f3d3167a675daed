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

    public CaptureReplay(ReplayOptions options, TextWriter output)
    {
        _options = options;
        _out = output;
    }

    public int Run()
    {
        var engine = _options.Engine.Clone();
        if (_options.Accounting)
        {
            engine.Accounting = true;
        }

        using var table = new ConntrackTable(engine);
        using var reader = CaptureReader.Open(_options.File!);
        bool oracle = _options.Format == "oracle";
        if (oracle)
        {
            _out.Write("# per-packet\n");
        }

        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
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
                    Verdict.Drop => state.Reason == PacketReason.FragmentDropped || IsFragment(kind, ip) ? "FRAG" : "LOST",
                    _ => state.Info.ToOracleString(),
                };
            }

            if (oracle)
            {
                _out.Write(n.ToString(System.Globalization.CultureInfo.InvariantCulture));
                _out.Write('\t');
                _out.Write(result);
                _out.Write('\n');
            }

            counts[result] = counts.GetValueOrDefault(result) + 1;
            if (_options.Clock == ClockMode.Capture && (n & 255) == 0)
            {
                // The kernel's GC worker runs while packets flow; do a small step every 256 packets.
                table.CollectGarbage(ts, 64);
            }
        }

        table.Release(ref state);
        long now = _options.Clock == ClockMode.Frozen ? first : last;
        WriteTable(table, now, oracle);
        _out.Flush();
        if (reader.TruncatedAt is long at)
        {
            Console.Error.WriteLine($"conntrack-replay: warning: truncated last record at offset {at} ignored");
        }

        Console.Error.WriteLine($"conntrack-replay: {n} packets ({string.Join(", ", counts.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"{k.Key} {k.Value}"))}); {table.Count} table entries");
        return 0;
    }

    private void WriteTable(ConntrackTable table, long now, bool oracle)
    {
        var lines = new List<string>();
        var options = new OracleLineOptions(Helper: false, Accounting: _options.Accounting, Timeouts: _options.Timeouts);
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
