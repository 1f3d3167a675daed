using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;

namespace Conntrack.Tool;

/// <summary>
/// Built-in traffic for a run without a capture: a population of hosts talking TCP (handshake, request,
/// response segments, FIN teardown), UDP (DNS-like query and answer), ICMP echo and ESP, with flows
/// interleaved at random, plus a sprinkle of malformed and unsolicited packets. Packets are built once
/// into one arena with correct checksums and replayed; between passes (outside the timed part) the client
/// addresses are renumbered so that every pass is a fresh set of flows, not a replay of closed ones.
/// </summary>
internal sealed class SyntheticTraffic
{
    private readonly ReplayOptions _options;
    private readonly TextWriter _out;
    private readonly Random _rng;
    private byte[] _arena = new byte[1 << 20];
    private int _used;
    private readonly List<(int Offset, int Length)> _packets = [];

    public SyntheticTraffic(ReplayOptions options, TextWriter output)
    {
        _options = options;
        _out = output;
        _rng = new Random(options.Seed);
    }

    public int Run()
    {
        int flows = Math.Max(1, _options.Flows);
        Generate(flows);
        var engine = _options.Engine.Clone();
        if (engine.MaxEntries < flows * 2)
        {
            engine.MaxEntries = flows * 2;
        }

        using var table = new ConntrackTable(engine);
        var verdicts = new long[8];
        long drops = 0;
        long total = Math.Max(_options.Packets, _packets.Count);
        const long Tick = 10_000; // 10 µs of traffic time per packet: 100 k packets per second of clock
        long now = 1_000_000_000_000;
        var state = default(PacketState);
        var sw = new Stopwatch();
        int pass = 0;
        for (long done = 0; done < total; pass++)
        {
            if (pass > 0)
            {
                Renumber(pass); // outside the timed part
            }

            int count = (int)Math.Min(_packets.Count, total - done);
            sw.Start();
            for (int k = 0; k < count; k++)
            {
                var (off, len) = _packets[k];
                var packet = new ReadOnlySpan<byte>(_arena, off, len);
                Verdict v = table.In(packet, now, ref state);
                if (v == Verdict.Accept)
                {
                    v = table.Confirm(packet, now, ref state);
                }

                if (v != Verdict.Accept)
                {
                    drops++;
                }

                verdicts[(int)state.Info]++;
                now += Tick;
                if ((k & 1023) == 0)
                {
                    table.CollectGarbage(now, 256);
                }
            }

            sw.Stop();
            done += count;
        }

        table.Release(ref state);
        var stats = table.Statistics;
        var ci = CultureInfo.InvariantCulture;
        _out.WriteLine(string.Create(ci, $"synthetic traffic: {total} packets over {flows} flows ({_packets.Count} distinct packets, replayed in a loop; seed {_options.Seed})"));
        _out.WriteLine(string.Create(ci, $"elapsed: {sw.Elapsed.TotalMilliseconds:F1} ms, {total / sw.Elapsed.TotalSeconds / 1e6:F2} M packets/s on one thread (In + Confirm + GC steps)"));
        _out.WriteLine("verdicts:");
        foreach (ConntrackInfo info in Enum.GetValues<ConntrackInfo>())
        {
            _out.WriteLine(string.Create(ci, $"  {info.ToOracleString(),-18} {verdicts[(int)info]}"));
        }

        _out.WriteLine(string.Create(ci, $"  {"dropped",-18} {drops}"));
        _out.WriteLine("statistics:");
        foreach (var line in stats.ToString().Split('\n'))
        {
            _out.WriteLine("  " + line);
        }

        _out.WriteLine(string.Create(ci, $"memory: {table.BytesPerConnection:F1} bytes per tracked connection when full"));
        return 0;
    }

    private void Generate(int flows)
    {
        var conversations = new List<Queue<Action>>();
        for (int f = 0; f < flows; f++)
        {
            int kind = _rng.Next(100);
            var client = $"10.{(f >> 16) & 0xFF}.{(f >> 8) & 0xFF}.{f & 0xFF}";
            var server = $"198.51.100.{1 + _rng.Next(50)}";
            var q = new Queue<Action>();
            ushort sport = (ushort)(1024 + _rng.Next(60000));
            if (kind < 60)
            {
                AddTcp(q, client, server, sport, (ushort)(_rng.Next(2) == 0 ? 443 : 80));
            }
            else if (kind < 90)
            {
                for (int k = 0; k < 1 + _rng.Next(3); k++)
                {
                    q.Enqueue(() => Udp(client, server, sport, 53, 40));
                    q.Enqueue(() => Udp(server, client, 53, sport, 120));
                }
            }
            else if (kind < 96)
            {
                ushort id = (ushort)_rng.Next(65536);
                for (ushort s = 0; s < 3; s++)
                {
                    ushort seq = s;
                    q.Enqueue(() => Icmp(client, server, 8, id, seq));
                    q.Enqueue(() => Icmp(server, client, 0, id, seq));
                }
            }
            else if (kind < 99)
            {
                q.Enqueue(() => Esp(client, server));
                q.Enqueue(() => Esp(server, client));
            }
            else
            {
                // Unsolicited: an echo reply nobody asked for, and a truncated UDP header.
                q.Enqueue(() => Icmp(server, client, 0, 7, 7));
                q.Enqueue(() => Truncated(client, server));
            }

            conversations.Add(q);
        }

        // Interleave: pick a random live conversation for each next packet.
        while (conversations.Count > 0)
        {
            int i = _rng.Next(conversations.Count);
            conversations[i].Dequeue()();
            if (conversations[i].Count == 0)
            {
                conversations[i] = conversations[^1];
                conversations.RemoveAt(conversations.Count - 1);
            }
        }
    }

    private void AddTcp(Queue<Action> q, string c, string s, ushort sport, ushort dport)
    {
        uint cs = (uint)_rng.Next(), ss = (uint)_rng.Next();
        q.Enqueue(() => Tcp(c, s, sport, dport, 0x02, cs, 0, 0));
        q.Enqueue(() => Tcp(s, c, dport, sport, 0x12, ss, cs + 1, 0));
        q.Enqueue(() => Tcp(c, s, sport, dport, 0x10, cs + 1, ss + 1, 0));
        q.Enqueue(() => Tcp(c, s, sport, dport, 0x18, cs + 1, ss + 1, 300));
        uint sent = 0;
        int segments = 1 + _rng.Next(6);
        for (int k = 0; k < segments; k++)
        {
            uint at = sent;
            q.Enqueue(() => Tcp(s, c, dport, sport, 0x10, ss + 1 + at, cs + 301, 1200));
            sent += 1200;
        }

        uint end = sent;
        q.Enqueue(() => Tcp(c, s, sport, dport, 0x10, cs + 301, ss + 1 + end, 0));
        q.Enqueue(() => Tcp(c, s, sport, dport, 0x11, cs + 301, ss + 1 + end, 0));
        q.Enqueue(() => Tcp(s, c, dport, sport, 0x11, ss + 1 + end, cs + 302, 0));
        q.Enqueue(() => Tcp(c, s, sport, dport, 0x10, cs + 302, ss + 2 + end, 0));
    }

    /// <summary>
    /// Moves every client into 10+pass.x.y.z (first octet of the 10/8 addresses), fixing the IPv4 header and
    /// TCP/UDP checksums incrementally (RFC 1624), so the next pass opens new flows.
    /// </summary>
    private void Renumber(int pass)
    {
        byte octet = (byte)(10 + pass % 100);
        foreach (var (off, len) in _packets)
        {
            var p = _arena.AsSpan(off, len);
            int at = p[12] >= 10 && p[12] < 110 && p[16] is < 10 or >= 110 ? 12 : p[16] >= 10 && p[16] < 110 ? 16 : -1;
            if (at < 0)
            {
                continue;
            }

            ushort oldWord = BinaryPrimitives.ReadUInt16BigEndian(p[at..]);
            p[at] = octet;
            ushort newWord = BinaryPrimitives.ReadUInt16BigEndian(p[at..]);
            Adjust(p[10..], oldWord, newWord);
            int l4 = 20;
            int ck = p[9] == 6 ? l4 + 16 : p[9] == 17 ? l4 + 6 : -1;
            if (ck >= 0 && ck + 2 <= p.Length && !(p[9] == 17 && BinaryPrimitives.ReadUInt16BigEndian(p[ck..]) == 0))
            {
                Adjust(p[ck..], oldWord, newWord);
            }
        }
    }

    private static void Adjust(Span<byte> checksum, ushort oldWord, ushort newWord)
    {
        // HC' = ~(~HC + ~m + m')
        uint sum = (ushort)~BinaryPrimitives.ReadUInt16BigEndian(checksum) + (uint)(ushort)~oldWord + newWord;
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(checksum, (ushort)~sum);
    }

    private static ushort Sum(ReadOnlySpan<byte> data, uint initial)
    {
        uint sum = initial;
        for (int i = 0; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }

        if ((data.Length & 1) != 0)
        {
            sum += (uint)data[^1] << 8;
        }

        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    /// <summary>Fills the TCP (16), UDP (6) or ICMP (2) checksum of a finished packet.</summary>
    private static void Layer4Checksum(Span<byte> p, int checksumOffset, bool pseudoHeader)
    {
        var l4 = p[20..];
        uint initial = 0;
        if (pseudoHeader)
        {
            initial = Sum(p.Slice(12, 8), 0);
            initial = (ushort)~initial;
            initial += p[9];
            initial += (uint)l4.Length;
        }

        ushort ck = Sum(l4, initial);
        if (ck == 0 && p[9] == 17)
        {
            ck = 0xFFFF;
        }

        BinaryPrimitives.WriteUInt16BigEndian(l4[checksumOffset..], ck);
    }

    private Span<byte> Reserve(int length)
    {
        if (_used + length > _arena.Length)
        {
            Array.Resize(ref _arena, _arena.Length * 2);
        }

        _packets.Add((_used, length));
        var span = _arena.AsSpan(_used, length);
        _used += length;
        span.Clear();
        return span;
    }

    private Span<byte> Ipv4(string src, string dst, byte protocol, int l4Length)
    {
        var p = Reserve(20 + l4Length);
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p[2..], (ushort)p.Length);
        p[8] = 64;
        p[9] = protocol;
        System.Net.IPAddress.Parse(src).TryWriteBytes(p[12..], out _);
        System.Net.IPAddress.Parse(dst).TryWriteBytes(p[16..], out _);
        uint sum = 0;
        for (int i = 0; i < 20; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(p[i..]);
        }

        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        BinaryPrimitives.WriteUInt16BigEndian(p[10..], (ushort)~sum);
        return p;
    }

    private void Tcp(string src, string dst, ushort sport, ushort dport, byte flags, uint seq, uint ack, int payload)
    {
        var p = Ipv4(src, dst, 6, 20 + payload);
        var t = p[20..];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], ack);
        t[12] = 5 << 4;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 64000);
        Layer4Checksum(p, 16, pseudoHeader: true);
    }

    private void Udp(string src, string dst, ushort sport, ushort dport, int payload)
    {
        var p = Ipv4(src, dst, 17, 8 + payload);
        BinaryPrimitives.WriteUInt16BigEndian(p[20..], sport);
        BinaryPrimitives.WriteUInt16BigEndian(p[22..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(p[24..], (ushort)(8 + payload));
        Layer4Checksum(p, 6, pseudoHeader: true);
    }

    private void Icmp(string src, string dst, byte type, ushort id, ushort seq)
    {
        var p = Ipv4(src, dst, 1, 16);
        p[20] = type;
        BinaryPrimitives.WriteUInt16BigEndian(p[24..], id);
        BinaryPrimitives.WriteUInt16BigEndian(p[26..], seq);
        Layer4Checksum(p, 2, pseudoHeader: false);
    }

    private void Esp(string src, string dst) => Ipv4(src, dst, 50, 32);

    private void Truncated(string src, string dst) => Ipv4(src, dst, 17, 3);
}
