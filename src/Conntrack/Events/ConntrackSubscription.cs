using System.Threading.Channels;

namespace Conntrack.Events;

/// <summary>
/// A subscriber's view of a table's events (<see cref="ConntrackTable.Subscribe"/>): a bounded channel of
/// events matching its mask. When the channel is full an event is not delivered: it is counted in
/// <see cref="Lost"/> (and the table's <c>EventsLost</c>); a connection's other events are re-sent with its
/// next delivery, and a DESTROY keeps the connection on the dying list until it can be delivered, as the
/// kernel's event cache does. Dispose to unsubscribe.
/// </summary>
public sealed class ConntrackSubscription : IDisposable
{
    private readonly Channel<ConntrackEvent> _channel;
    private readonly ConntrackTable _table;
    private long _lost;

    internal ConntrackSubscription(ConntrackTable table, ConntrackEventType mask, int capacity, int bit)
    {
        _table = table;
        Mask = mask;
        Bit = bit;
        _channel = Channel.CreateBounded<ConntrackEvent>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of blocking or dropping silently
            SingleReader = false,
            SingleWriter = false,
        });
    }

    /// <summary>The events this subscriber wants.</summary>
    public ConntrackEventType Mask { get; }

    /// <summary>Read events here.</summary>
    public ChannelReader<ConntrackEvent> Reader => _channel.Reader;

    /// <summary>Events that could not be delivered because the channel was full.</summary>
    public long Lost => Interlocked.Read(ref _lost);

    internal int Bit { get; }

    internal bool TryDeliver(in ConntrackEvent e)
    {
        if (_channel.Writer.TryWrite(e))
        {
            return true;
        }

        Interlocked.Increment(ref _lost);
        return false;
    }

    /// <summary>Unsubscribes and completes the channel.</summary>
    public void Dispose()
    {
        _table.Unsubscribe(this);
        _channel.Writer.TryComplete();
    }
}
