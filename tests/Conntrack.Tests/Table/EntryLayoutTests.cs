using System.Runtime.CompilerServices;
using Conntrack.Table;
using Conntrack.Tuples;
using FluentAssertions;
using Xunit;

namespace Conntrack.Tests.Table;

/// <summary>
/// The chain walks address a node's tuple and link by arithmetic (<see cref="EntryArray.TupleOf"/>,
/// <see cref="EntryArray.LinkOf"/>): the two halves of <see cref="Connection"/> must keep the same layout.
/// </summary>
public class EntryLayoutTests
{
    [Fact]
    public void Halves_of_an_entry_have_the_offsets_the_node_accessors_assume()
    {
        var c = default(Connection);
        ref byte start = ref Unsafe.As<Connection, byte>(ref c);
        ((int)Unsafe.ByteOffset(ref start, ref Unsafe.As<ConntrackTuple, byte>(ref c.Reply))).Should().Be(EntryArray.HalfSize);
        ((int)Unsafe.ByteOffset(ref start, ref Unsafe.As<int, byte>(ref c.NextOriginal))).Should().Be(EntryArray.LinkOffset);
        ((int)Unsafe.ByteOffset(ref start, ref Unsafe.As<int, byte>(ref c.NextReply))).Should().Be(EntryArray.HalfSize + EntryArray.LinkOffset);
    }

    [Fact]
    public void Node_accessors_reach_the_fields_of_the_right_half()
    {
        var entries = new EntryArray(4);
        ref Connection c = ref entries[2];
        c = default;
        c.NextOriginal = 11;
        c.NextReply = 12;
        c.Original = ConntrackTuple.ForPorts(default, default, 17, 1, 2, false);
        c.Reply = ConntrackTuple.ForPorts(default, default, 17, 2, 1, false);

        entries.LinkOf(4).Should().Be(11);
        entries.LinkOf(5).Should().Be(12);
        ConntrackTuple.Equals(in entries.TupleOf(4), in c.Original).Should().BeTrue();
        ConntrackTuple.Equals(in entries.TupleOf(5), in c.Reply).Should().BeTrue();
        entries.LinkOf(5) = 13;
        c.NextReply.Should().Be(13);
        var act = () => entries.LinkOf(8);
        act.Should().Throw<IndexOutOfRangeException>();
    }
}
