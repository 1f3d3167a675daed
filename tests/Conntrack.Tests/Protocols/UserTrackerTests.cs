using System.Buffers.Binary;
using Conntrack.Protocols;
using Conntrack.Tests.Support;

namespace Conntrack.Tests.Protocols;

/// <summary>User-registered layer-4 trackers (the analogue of registering an nf_conntrack_l4proto).</summary>
public class UserTrackerTests
{
    private const long S = TestTable.Second;
    private const string A = "192.0.2.1", B = "198.51.100.2";
    private const byte Proto = 253; // RFC 3692 experimental

    /// <summary>Reads two ports from the first four bytes; rejects packets whose 5th byte is 0xFF; 40 s timeout.</summary>
    private sealed class PortTracker : L4Tracker
    {
        public int PacketCalls;
        public int ReadCalls;
        public bool SawNew;
        public bool SawReply;

        public PortTracker(byte protocol = Proto) : base(protocol, "exp", TimeSpan.FromSeconds(40))
        {
        }

        public override bool TryReadIds(ReadOnlySpan<byte> layer4, out ushort sourceId, out ushort destinationId)
        {
            ReadCalls++;
            sourceId = 0;
            destinationId = 0;
            if (layer4.Length < 5)
            {
                return false;
            }

            sourceId = BinaryPrimitives.ReadUInt16BigEndian(layer4);
            destinationId = BinaryPrimitives.ReadUInt16BigEndian(layer4[2..]);
            return true;
        }

        public override bool Packet(ref TrackedPacket packet)
        {
            PacketCalls++;
            SawNew |= packet.IsNew;
            SawReply |= packet.IsReply;
            if (packet.Layer4[4] == 0xFF)
            {
                return false;
            }

            if (packet.IsReply)
            {
                packet.State = 7;
                packet.SetAssured();
            }

            packet.Refresh(Timeout);
            return true;
        }

        public override string? StateName(byte state) => state == 7 ? "REPLIED" : "OPEN";
    }

    private static byte[] Packet(string src, string dst, ushort sport, ushort dport, byte flag = 0) =>
        PacketBuilder.Raw(src, dst, Proto, [(byte)(sport >> 8), (byte)sport, (byte)(dport >> 8), (byte)dport, flag, 0, 0, 0]);

    [Theory]
    [InlineData(IpProtocol.Tcp)]
    [InlineData(IpProtocol.Udp)]
    [InlineData(IpProtocol.UdpLite)]
    [InlineData(IpProtocol.Icmp)]
    [InlineData(IpProtocol.Icmpv6)]
    [InlineData(IpProtocol.Sctp)]
    [InlineData(IpProtocol.Gre)]
    public void Registering_a_tracker_for_a_built_in_protocol_throws(byte protocol)
    {
        using var t = new TestTable();
        var act = () => t.Table.Protocols.Register(new PortTracker(protocol));
        act.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Registering_twice_for_one_protocol_throws()
    {
        using var t = new TestTable();
        t.Table.Protocols.Register(new PortTracker());
        var act = () => t.Table.Protocols.Register(new PortTracker());
        act.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Registered_tracker_is_found_and_named()
    {
        using var t = new TestTable();
        var tracker = new PortTracker();
        t.Table.Protocols.Register(tracker);
        t.Table.Protocols.Find(Proto).Should().BeSameAs(tracker);
        t.Table.Protocols.NameOf(Proto).Should().Be("exp");
        t.Table.Protocols.NameOf(254).Should().Be("unknown");
    }

    [Fact]
    public void Tracker_ids_are_used_in_the_tuple()
    {
        using var t = new TestTable();
        var tracker = new PortTracker();
        t.Table.Protocols.Register(tracker);
        t.Info(Packet(A, B, 1000, 2000)).Should().Be(ConntrackInfo.New);
        t.Info(Packet(A, B, 1001, 2000)).Should().Be(ConntrackInfo.New);
        t.Table.Count.Should().Be(2, "different ids are different connections");
        tracker.ReadCalls.Should().BeGreaterThan(0);
        var c = t.Connections().Single(x => x.Original.SourcePort == 1000);
        c.Original.DestinationPort.Should().Be(2000);
        c.Reply.SourcePort.Should().Be(2000);
        c.Reply.DestinationPort.Should().Be(1000);
    }

    [Fact]
    public void Reply_with_swapped_ids_is_established_reply_and_runs_the_tracker()
    {
        using var t = new TestTable();
        var tracker = new PortTracker();
        t.Table.Protocols.Register(tracker);
        t.Send(Packet(A, B, 1000, 2000));
        t.Info(Packet(B, A, 2000, 1000)).Should().Be(ConntrackInfo.EstablishedReply);
        tracker.PacketCalls.Should().Be(2);
        tracker.SawNew.Should().BeTrue();
        tracker.SawReply.Should().BeTrue();
        var c = t.Connections().Single();
        c.Status.Should().HaveFlag(ConnectionStatus.Assured);
        c.StateName.Should().Be("REPLIED");
        c.ProtocolName.Should().Be("exp");
    }

    [Fact]
    public void Tracker_timeout_is_applied()
    {
        using var t = new TestTable();
        t.Table.Protocols.Register(new PortTracker());
        t.Send(Packet(A, B, 1000, 2000));
        t.Connections().Single().RemainingNs.Should().Be(40 * S);
    }

    [Fact]
    public void Packet_rejected_by_the_tracker_is_invalid_and_leaves_no_connection()
    {
        using var t = new TestTable();
        t.Table.Protocols.Register(new PortTracker());
        var s = t.Send(Packet(A, B, 1000, 2000, flag: 0xFF));
        t.LastVerdict.Should().Be(Verdict.Accept);
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.TrackerRejected);
        t.Table.Count.Should().Be(0);
        t.Table.Statistics.Unconfirmed.Should().Be(0);
        t.Table.Statistics.Invalid.Should().Be(1);
        TableInvariants.AssertHold(t.Table);
    }

    [Fact]
    public void Short_header_rejected_by_TryReadIds_is_invalid()
    {
        using var t = new TestTable();
        t.Table.Protocols.Register(new PortTracker());
        var s = t.Send(PacketBuilder.Raw(A, B, Proto, [1, 2, 3]));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        t.Table.Count.Should().Be(0);
    }

    [Fact]
    public void Rejected_packet_on_an_existing_connection_leaves_it_alone()
    {
        using var t = new TestTable();
        t.Table.Protocols.Register(new PortTracker());
        t.Send(Packet(A, B, 1000, 2000));
        t.Advance(10);
        t.Send(Packet(B, A, 2000, 1000, flag: 0xFF)).Info.Should().Be(ConntrackInfo.Invalid);
        var c = t.Connections().Single();
        c.RemainingNs.Should().Be(30 * S, "the rejected packet did not refresh it");
        c.Status.Should().NotHaveFlag(ConnectionStatus.SeenReply);
    }

    [Fact]
    public void Protocol_without_a_registered_tracker_stays_generic()
    {
        using var t = new TestTable();
        t.Send(Packet(A, B, 1000, 2000));
        t.Send(Packet(A, B, 1001, 2000));
        t.Table.Count.Should().Be(1);
        t.Connections().Single().RemainingNs.Should().Be(600 * S);
    }

    [Fact]
    public void Tracker_with_non_positive_timeout_cannot_be_created()
    {
        var act = () => new BadTracker();
        act.Should().Throw<ArgumentOutOfRangeException>();
    }

    private sealed class BadTracker : L4Tracker
    {
        public BadTracker() : base(250, "bad", TimeSpan.Zero)
        {
        }
    }

    /// <summary>A tracker whose replies cannot start connections, like ICMP's.</summary>
    private sealed class NoInvertTracker : L4Tracker
    {
        public NoInvertTracker() : base(Proto, "noinv", TimeSpan.FromSeconds(5))
        {
        }

        public override bool TryInvertIds(ushort sourceId, ushort destinationId, out ushort replySourceId, out ushort replyDestinationId)
        {
            replySourceId = destinationId;
            replyDestinationId = sourceId;
            return false;
        }
    }

    [Fact]
    public void Tracker_that_refuses_inversion_cannot_create_connections()
    {
        using var t = new TestTable();
        t.Table.Protocols.Register(new NoInvertTracker());
        var s = t.Send(Packet(A, B, 1, 2));
        s.Info.Should().Be(ConntrackInfo.Invalid);
        s.Reason.Should().Be(PacketReason.CannotCreate);
    }
}
