namespace Conntrack;

/// <summary>
/// Names one connection of a table: a slot index and the generation the slot had when the handle was
/// made. A handle to a connection that has since been removed (and its slot reused) no longer resolves.
/// 8 bytes, free to copy; the analogue of the <c>struct nf_conn *</c> in <c>skb->_nfct</c>.
/// </summary>
public readonly struct ConnectionHandle : IEquatable<ConnectionHandle>
{
    internal readonly int Index;
    internal readonly int Generation;

    internal ConnectionHandle(int index, int generation)
    {
        Index = index;
        Generation = generation;
    }

    /// <summary>False for <c>default</c>, the handle of no connection.</summary>
    public bool IsValid => Generation != 0;

    /// <inheritdoc />
    public bool Equals(ConnectionHandle other) => Index == other.Index && Generation == other.Generation;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is ConnectionHandle h && Equals(h);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Index, Generation);

    /// <summary>Equality.</summary>
    public static bool operator ==(ConnectionHandle left, ConnectionHandle right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(ConnectionHandle left, ConnectionHandle right) => !left.Equals(right);

    /// <inheritdoc />
    public override string ToString() => IsValid ? $"#{Index}.{Generation}" : "none";
}
