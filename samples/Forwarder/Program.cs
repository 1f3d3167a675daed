// A stateful forwarder in one page: read packets, ask conntrack about each (In), apply a policy, confirm
// what is forwarded (Confirm), forward. Here "the wire" is a capture file and forwarding means counting;
// in a real forwarder the loop reads from a TUN device, AF_XDP or DPDK and writes to the other side.
//
//   dotnet run --project samples/Forwarder -- capture.pcap
using System.Diagnostics;
using Conntrack;
using Conntrack.Pcap;

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: Forwarder CAPTURE.pcap");
    return 2;
}

using var table = new ConntrackTable(new ConntrackOptions { Checksum = false }); // captures carry offloaded checksums
using var reader = CaptureReader.Open(args[0]);
var state = default(PacketState);   // one per packet in flight; reused here since we handle one at a time
long forwarded = 0, dropped = 0, lastGc = 0;

while (reader.ReadNext(out CaptureRecord record))
{
    if (LinkLayer.Decode(record.LinkType, record.Data, out int offset) == FrameKind.NonIp)
    {
        continue; // ARP and friends are not our business
    }

    ReadOnlySpan<byte> packet = record.Data[offset..];
    long now = record.TimestampNs;

    // 1. Conntrack on the way in.
    Verdict verdict = table.In(packet, now, ref state);

    // 2. Our policy: established and related traffic passes; new connections only to web and DNS ports;
    //    invalid packets never.
    bool allow = verdict == Verdict.Accept && state.Info switch
    {
        ConntrackInfo.Established or ConntrackInfo.EstablishedReply or ConntrackInfo.Related or ConntrackInfo.RelatedReply => true,
        ConntrackInfo.New => IsAllowedNew(table, state, now),
        _ => false,
    };

    // 3. Conntrack on the way out: only forwarded packets create table entries.
    if (allow && table.Confirm(packet, now, ref state) == Verdict.Accept)
    {
        forwarded++; // 4. write the packet to the egress interface here
    }
    else
    {
        table.Release(ref state); // the new connection of a dropped packet is forgotten
        dropped++;
    }

    // Expire connections now and then; the engine reads no clock of its own.
    if (now - lastGc > 100_000_000)
    {
        table.CollectGarbage(now, bucketBudget: 4096);
        lastGc = now;
    }
}

Console.WriteLine($"forwarded {forwarded}, dropped {dropped}, {table.Count} connections tracked");
Console.WriteLine(table.Statistics);
return 0;

static bool IsAllowedNew(ConntrackTable table, PacketState state, long now)
{
    if (!table.TryGetInfo(state.Connection, now, out ConnectionInfo c))
    {
        return false;
    }

    Debug.Assert(!c.IsConfirmed);
    return c.Protocol switch
    {
        IpProtocol.Tcp => c.Original.DestinationPort is 80 or 443,
        IpProtocol.Udp => c.Original.DestinationPort == 53,
        IpProtocol.Icmp or IpProtocol.Icmpv6 => true,
        _ => false,
    };
}
