using System.Runtime.CompilerServices;
using Conntrack.Table;
using Conntrack.Tuples;
using FluentAssertions;
using Xunit;

namespace Conntrack.Tests.Table;

/// <summary>
/// The chain walks address a node's tuple and link by arithmetic (<see cref="EntryArray.TupleOf(int)"/>,
/// <see cref="EntryArray.LinkOf(int)"/>, and from an entry already in hand <see cref="EntryArray.TupleOf(ref Connection, int)"/>,
/// <see cref="EntryArray.LinkOf(ref Connection, int)"/>): the two halves of <see cref="Connection"/> must keep the same layout.
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

    [Fact]
    public void Node_accessors_from_the_entry_reach_the_same_fields_as_from_the_index()
    {
        var entries = new EntryArray(4);
        for (int node = 0; node < 8; node++)
        {
            ref Connection c = ref entries[node >> 1];
            Unsafe.AreSame(ref EntryArray.TupleOf(ref c, node), ref entries.TupleOf(node)).Should().BeTrue($"tuple of node {node}");
            Unsafe.AreSame(ref EntryArray.LinkOf(ref c, node), ref entries.LinkOf(node)).Should().BeTrue($"link of node {node}");
        }

        ref Connection e = ref entries[1];
        Unsafe.AreSame(ref EntryArray.TupleOf(ref e, 3), ref e.Reply).Should().BeTrue();
        Unsafe.AreSame(ref EntryArray.LinkOf(ref e, 2), ref e.NextOriginal).Should().BeTrue();
    }
}
