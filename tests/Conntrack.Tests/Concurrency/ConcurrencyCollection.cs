namespace Conntrack.Tests.Concurrency;

/// <summary>
/// The concurrency tests run one at a time and never beside other test classes: each wants both cores of the
/// CI machine for its own threads (and the timing assertions, such as "the threads overlapped", must not
/// depend on what else xUnit happens to run).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConcurrencyCollection
{
    public const string Name = "Concurrency";
}
