using Conntrack.Table;

namespace Conntrack.Protocols;

/// <summary>SCTP (nf_conntrack_proto_sctp.c). Until the state machine lands, SCTP is tracked by its ports with the generic timeout.</summary>
internal static class SctpTracker
{
    public static TrackResult Packet(ConntrackTable table, ref PacketContext p, ref Connection c) =>
        GenericTracker.Packet(table, ref p, ref c);

    public static bool CanEarlyDrop(byte state) => false;

    public static string? StateName(byte state) => null;
}
