using Conntrack.Table;

namespace Conntrack.Protocols;

/// <summary>TCP (nf_conntrack_proto_tcp.c). Until the state machine lands, TCP is tracked by its ports with the generic timeout.</summary>
internal static class TcpTracker
{
    public static TrackResult Packet(ConntrackTable table, ref PacketContext p, ref Connection c) =>
        GenericTracker.Packet(table, ref p, ref c);

    public static bool CanEarlyDrop(byte state) => false;

    public static string? StateName(byte state) => null;
}
