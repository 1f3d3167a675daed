using System.Runtime.CompilerServices;

namespace Conntrack.Extensions;

/// <summary>
/// The helper extension of one connection (<c>struct nf_conn_help</c>) plus its master link: which helper
/// it has, the expectations it created (a list through the expectation table), how many per class, the
/// helper's private state, and for an expected connection the connection that expected it.
/// </summary>
internal struct HelperSlot
{
    /// <summary>1-based id in the helper registry; 0 for none.</summary>
    public int HelperId;

    /// <summary>First expectation of this master (newest), or -1.</summary>
    public int ExpectationsHead;

    /// <summary>Expectations per class (NF_CT_MAX_EXPECT_CLASSES = 4).</summary>
    public int ExpectingPacked;

    /// <summary>The connection that expected this one (index and generation), or -1.</summary>
    public int MasterIndex;
    public int MasterGeneration;

    /// <summary>The helper's private data (nf_conn_help.data).</summary>
    public HelperData Data;

    public readonly int Expecting(int cls) => (ExpectingPacked >> (cls * 8)) & 0xFF;

    public void AddExpecting(int cls, int delta) => ExpectingPacked += delta << (cls * 8);

    public void Reset()
    {
        HelperId = 0;
        ExpectationsHead = -1;
        ExpectingPacked = 0;
        MasterIndex = -1;
        MasterGeneration = 0;
        Data = default;
    }
}

/// <summary>40 bytes of helper-private state per connection.</summary>
[InlineArray(40)]
internal struct HelperData
{
    private byte _first;
}
