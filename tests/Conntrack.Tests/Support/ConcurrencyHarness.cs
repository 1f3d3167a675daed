using System.Collections.Concurrent;
using System.Diagnostics;
using Conntrack.Tuples;

namespace Conntrack.Tests.Support;

/// <summary>
/// One test flow: its two tuples (built independently of the engine, with the public tuple factories) and
/// prebuilt packets with valid checksums, so that the threads of a concurrency test spend their time in the
/// table rather than in the packet builder.
/// </summary>
public sealed class TestFlow
{
    public const uint ClientIsn = 1000, ServerIsn = 5000;

    public enum Kind
    {
        Udp,
        Tcp,
        Icmp,
    }

    private TestFlow(Kind protocol, string client, string server, ConntrackTuple original, ConntrackTuple reply)
    {
        Protocol = protocol;
        Client = client;
        Server = server;
        Original = original;
        Reply = reply;
    }

    public Kind Protocol { get; }
    public string Client { get; }
    public string Server { get; }

    /// <summary>The tuple of the client's packets (the original direction when the client starts the flow).</summary>
    public ConntrackTuple Original { get; }

    /// <summary>The tuple of the server's packets.</summary>
    public ConntrackTuple Reply { get; }

    /// <summary>UDP request, TCP SYN, ICMP echo request.</summary>
    public byte[] Forward { get; private init; } = [];

    /// <summary>UDP answer, TCP SYN-ACK, ICMP echo reply.</summary>
    public byte[] Backward { get; private init; } = [];

    /// <summary>TCP: the client's ACK that completes the handshake (also its pure ACKs afterwards). Others: <see cref="Forward"/>.</summary>
    public byte[] ClientAck { get; private init; } = [];

    /// <summary>TCP: the server's pure ACK once established. Others: <see cref="Backward"/>.</summary>
    public byte[] ServerAck { get; private init; } = [];

    /// <summary>TCP: a client RST (kills a connection that never saw a reply). Others: <see cref="Forward"/>.</summary>
    public byte[] ClientRst { get; private init; } = [];

    /// <summary>A UDP packet of the flow with a wrong checksum (invalid), UDP only.</summary>
    public byte[] BadChecksum { get; private init; } = [];

    public static TestFlow Udp(string client, string server, ushort clientPort, ushort serverPort)
    {
        bool v6 = PacketBuilder.IsV6(client);
        var c = InetAddress.Parse(client);
        var s = InetAddress.Parse(server);
        var fwd = PacketBuilder.Udp(client, server, clientPort, serverPort);
        var bad = (byte[])fwd.Clone();
        int ck = (v6 ? 40 : 20) + 6;
        bad[ck] ^= 0x5A;
        bad[ck + 1] ^= 0xA5;
        return new TestFlow(Kind.Udp, client, server,
            ConntrackTuple.ForPorts(c, s, IpProtocol.Udp, clientPort, serverPort, v6),
            ConntrackTuple.ForPorts(s, c, IpProtocol.Udp, serverPort, clientPort, v6))
        {
            Forward = fwd,
            Backward = PacketBuilder.Udp(server, client, serverPort, clientPort),
            ClientAck = fwd,
            ServerAck = PacketBuilder.Udp(server, client, serverPort, clientPort),
            ClientRst = fwd,
            BadChecksum = bad,
        };
    }

    public static TestFlow Tcp(string client, string server, ushort clientPort, ushort serverPort)
    {
        bool v6 = PacketBuilder.IsV6(client);
        var c = InetAddress.Parse(client);
        var s = InetAddress.Parse(server);
        const byte Syn = PacketBuilder.FlagSyn, Ack = PacketBuilder.FlagAck, Rst = PacketBuilder.FlagRst;
        return new TestFlow(Kind.Tcp, client, server,
            ConntrackTuple.ForPorts(c, s, IpProtocol.Tcp, clientPort, serverPort, v6),
            ConntrackTuple.ForPorts(s, c, IpProtocol.Tcp, serverPort, clientPort, v6))
        {
            Forward = PacketBuilder.Tcp(client, server, clientPort, serverPort, Syn, ClientIsn, 0),
            Backward = PacketBuilder.Tcp(server, client, serverPort, clientPort, Syn | Ack, ServerIsn, ClientIsn + 1),
            ClientAck = PacketBuilder.Tcp(client, server, clientPort, serverPort, Ack, ClientIsn + 1, ServerIsn + 1),
            ServerAck = PacketBuilder.Tcp(server, client, serverPort, clientPort, Ack, ServerIsn + 1, ClientIsn + 1),
            ClientRst = PacketBuilder.Tcp(client, server, clientPort, serverPort, Rst | Ack, ClientIsn + 1, ServerIsn + 1),
        };
    }

    public static TestFlow Icmp(string client, string server, ushort id)
    {
        bool v6 = PacketBuilder.IsV6(client);
        var c = InetAddress.Parse(client);
        var s = InetAddress.Parse(server);
        byte request = v6 ? (byte)128 : (byte)8, reply = v6 ? (byte)129 : (byte)0;
        var fwd = PacketBuilder.IcmpEcho(client, server, id, 1);
        var back = PacketBuilder.IcmpEcho(server, client, id, 1, reply: true);
        return new TestFlow(Kind.Icmp, client, server,
            ConntrackTuple.ForIcmp(c, s, request, 0, id, v6),
            ConntrackTuple.ForIcmp(s, c, reply, 0, id, v6))
        {
            Forward = fwd,
            Backward = back,
            ClientAck = fwd,
            ServerAck = back,
            ClientRst = fwd,
        };
    }

    /// <summary>True when a connection's tuples are this flow's, in either orientation.</summary>
    public bool Matches(in ConnectionInfo info) =>
        (info.Original == Original && info.Reply == Reply) || (info.Original == Reply && info.Reply == Original);

    /// <summary>True when a connection's tuples are this flow's with the client as originator.</summary>
    public bool MatchesExactly(in ConnectionInfo info) => info.Original == Original && info.Reply == Reply;

    public override string ToString() => $"{Protocol} {Original}";
}

/// <summary>A monotonic test clock in nanoseconds shared by several threads.</summary>
public sealed class SharedClock(long start)
{
    private long _now = start;

    public long Now => Interlocked.Read(ref _now);

    public void Set(long value) => Interlocked.Exchange(ref _now, value);

    public long Advance(long ns) => Interlocked.Add(ref _now, ns);
}

/// <summary>
/// Runs a body on several dedicated threads released together by a barrier, records when each thread really
/// ran (to prove the threads overlapped), collects exceptions, and detects threads that never finish
/// (a deadlock or livelock) instead of hanging the test run.
/// </summary>
public sealed class ThreadTeam
{
    private readonly ConcurrentQueue<string> _errors = new();
    private readonly long[] _start;
    private readonly long[] _end;
    private readonly Thread[] _threads;
    private volatile bool _stop;

    private ThreadTeam(int count)
    {
        _start = new long[count];
        _end = new long[count];
        _threads = new Thread[count];
    }

    /// <summary>Set by the test (or by <see cref="Run"/> on timeout) to ask every body to return.</summary>
    public bool StopRequested => _stop;

    public void Stop() => _stop = true;

    public IReadOnlyCollection<string> Errors => _errors;

    /// <summary>Names of threads still running when the run timed out (deadlock suspects).</summary>
    public List<string> Stuck { get; } = [];

    public int Count => _threads.Length;

    /// <summary>Records a failure seen by a thread (the test fails with every recorded message).</summary>
    public void Fail(string message) => _errors.Enqueue(message);

    /// <summary>
    /// Starts <paramref name="count"/> threads running <paramref name="body"/>(index, team), all released at
    /// once; if <paramref name="runFor"/> is given, asks them to stop after that long; waits for all of them for
    /// at most <paramref name="timeout"/>.
    /// </summary>
    public static ThreadTeam Run(int count, Action<int, ThreadTeam> body, TimeSpan? runFor, TimeSpan timeout,
        Func<int, string>? name = null)
    {
        var team = new ThreadTeam(count);
        using var barrier = new Barrier(count + 1);
        for (int i = 0; i < count; i++)
        {
            int index = i;
            team._threads[i] = new Thread(() =>
            {
                barrier.SignalAndWait();
                Volatile.Write(ref team._start[index], Stopwatch.GetTimestamp());
                try
                {
                    body(index, team);
                }
                catch (Exception e)
                {
                    team._errors.Enqueue($"{Thread.CurrentThread.Name}: unhandled {e}");
                }
                finally
                {
                    Volatile.Write(ref team._end[index], Stopwatch.GetTimestamp());
                }
            })
            {
                IsBackground = true,
                Name = name?.Invoke(i) ?? $"worker {i}",
            };
            team._threads[i].Start();
        }

        barrier.SignalAndWait();
        var sw = Stopwatch.StartNew();
        if (runFor is { } d)
        {
            Thread.Sleep(d);
            team._stop = true;
        }

        foreach (var t in team._threads)
        {
            var left = timeout - sw.Elapsed;
            if (!t.Join(left > TimeSpan.Zero ? left : TimeSpan.Zero))
            {
                team.Stuck.Add(t.Name!);
            }
        }

        if (team.Stuck.Count > 0)
        {
            team._stop = true;
        }

        return team;
    }

    /// <summary>True when every thread started before any thread finished: all of them ran at the same time.</summary>
    public bool AllOverlapped => _start.Max() < _end.Where(e => e != 0).DefaultIfEmpty(long.MaxValue).Min();

    /// <summary>Wall time during which all threads were running together.</summary>
    public TimeSpan CommonTime => TimeSpan.FromSeconds(Math.Max(0,
        (_end.Min() - _start.Max()) / (double)Stopwatch.Frequency));

    /// <summary>Fails the test on any recorded failure or stuck thread; checks that the threads overlapped.</summary>
    public void AssertClean(string what)
    {
        var problems = new List<string>();
        if (Stuck.Count > 0)
        {
            problems.Add($"threads that never finished (deadlock or livelock suspected): {string.Join(", ", Stuck)}");
        }

        var errors = _errors.ToArray();
        if (errors.Length > 0)
        {
            problems.Add($"{errors.Length} failure(s) recorded by the threads:\n    " + string.Join("\n    ", errors.Take(25))
                + (errors.Length > 25 ? $"\n    ... and {errors.Length - 25} more" : ""));
        }

        if (Stuck.Count == 0 && !AllOverlapped)
        {
            problems.Add("the threads did not all run at the same time (one finished before another started): the test proved nothing about concurrency");
        }

        if (problems.Count > 0)
        {
            throw new Xunit.Sdk.XunitException($"{what}:\n  " + string.Join("\n  ", problems));
        }
    }
}

/// <summary>Deterministic per-thread random numbers (xorshift), cheaper than <see cref="Random"/> in hot loops.</summary>
public struct FastRandom
{
    private ulong _s;

    public FastRandom(int seed) => _s = ((ulong)(uint)seed * 0x9E3779B97F4A7C15UL) ^ 0xD1B54A32D192ED03UL | 1;

    public int Next(int below)
    {
        ulong x = _s;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        _s = x;
        return (int)((x >> 33) % (ulong)below);
    }

    /// <summary>True with probability percent/100.</summary>
    public bool Chance(int percent) => Next(100) < percent;
}

/// <summary>
/// Collects failed checks instead of stopping at the first one, so that one failing test reports every
/// broken property of a run (an engine bug often shows as several symptoms).
/// </summary>
public sealed class SoftChecks
{
    private readonly List<string> _problems = [];

    public void That(bool condition, string message)
    {
        if (!condition)
        {
            _problems.Add(message);
        }
    }

    /// <summary>Runs an assertion block; its failure message is recorded.</summary>
    public void Run(Action check)
    {
        try
        {
            check();
        }
        catch (Exception e) when (e is Xunit.Sdk.XunitException or FluentAssertions.Execution.AssertionFailedException)
        {
            _problems.Add(e.Message);
        }
    }

    public void ThrowIfAny(string title)
    {
        if (_problems.Count > 0)
        {
            const int Shown = 12;
            throw new Xunit.Sdk.XunitException($"{title}: {_problems.Count} problem(s)\n- " + string.Join("\n- ", _problems.Take(Shown))
                + (_problems.Count > Shown ? $"\n- ... and {_problems.Count - Shown} more of the same kinds" : ""));
        }
    }
}
