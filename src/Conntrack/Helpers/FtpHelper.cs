using System.Buffers.Binary;
using Conntrack.Expectations;
using Conntrack.Tuples;

namespace Conntrack.Helpers;

/// <summary>
/// FTP (nf_conntrack_ftp.c): PORT/EPRT commands and 227/229 replies open the data connection.
/// </summary>
/// <remarks>
/// <para>
/// As the kernel's helper, it parses a segment only if it starts a line: its sequence number must be one
/// where an earlier segment of the same direction ended with <c>\n</c> (two such positions are remembered per
/// direction), so the first data segment of each direction is never parsed. Only a segment's first line is
/// looked at, and only for <c>PORT</c>/<c>EPRT</c> from the client and <c>227 </c>/<c>229 </c> from the
/// server, case-insensitively. A segment that ends inside such a line, or whose numbers do not parse, is
/// dropped ("partial matching of `PORT'"), and the next segment then does not start a line.
/// </para>
/// <para>
/// With the kernel's default <c>loose=0</c> the announced address must be the sender's own (a 229 reply names
/// none and means the server's); otherwise the command is ignored. The expectation is from the other end's
/// address, any port, to the sender's address and the announced port; a newer command replaces it (one per
/// control connection, 5 minutes). If it cannot be added the packet is dropped ("cannot add expectation").
/// There is no NAT, so the kernel's nf_nat_ftp rewriting never applies.
/// </para>
/// </remarks>
public sealed class FtpHelper : ConntrackHelper
{
    // struct nf_ct_ftp_master in PrivateData: u32 seq_aft_nl[2][2]; u16 seq_aft_nl_num[2]; u16 flags[2].
    private const int SeqOffset = 0, SeqCountOffset = 16, FlagsOffset = 20;
    private const int NumSeqToRemember = 2;
    private const ushort FlagSeqPickup = 1; // NF_CT_FTP_SEQ_PICKUP (set only for connections injected from user space)

    private const string CannotAddExpectation = "cannot add expectation";

    /// <summary>The kernel's FTP helper on TCP port 21, one expectation per master for 5 minutes.</summary>
    public FtpHelper()
        : base("ftp", IpProtocol.Tcp, 21, ipv6: true, new ExpectPolicy(null, 1, TimeSpan.FromMinutes(5)))
    {
    }

    /// <inheritdoc />
    public override HelperVerdict Help(ref HelperContext context)
    {
        // Until there's been traffic both ways, don't look in packets.
        if (context.Info is not (ConntrackInfo.Established or ConntrackInfo.EstablishedReply))
        {
            return HelperVerdict.Accept;
        }

        var packet = context.Packet;
        int protoff = context.Layer4Offset;
        if (protoff < 0 || protoff > packet.Length - 20)
        {
            return HelperVerdict.Accept; // not a full TCP header
        }

        int dataoff = protoff + ((packet[protoff + 12] >> 4) * 4);
        if (dataoff >= packet.Length)
        {
            return HelperVerdict.Accept; // no data
        }

        var data = packet[dataoff..];
        int dir = context.IsReply ? 1 : 0;
        var info = context.PrivateData;
        uint thSeq = BinaryPrimitives.ReadUInt32BigEndian(packet[(protoff + 4)..]);
        bool endsInNewline = data[^1] == (byte)'\n';
        uint nextSeq = unchecked(thSeq + (uint)data.Length);

        // Only a segment that starts just after a \n (or the first one after a pickup) is parsed.
        bool lineStart = FindNewlineSeq(info, thSeq, dir) || TakeSeqPickup(info, dir);
        var verdict = HelperVerdict.Accept;
        if (lineStart && !Parse(ref context, data, dir, ref verdict))
        {
            return verdict; // partial match: dropped, and the position after it is not remembered
        }

        if (endsInNewline)
        {
            UpdateNewlineSeq(info, nextSeq, dir);
        }

        return verdict;
    }

    /// <summary>
    /// Looks for the direction's commands in a segment that starts a line and creates the expectation.
    /// Returns false for a partial match (the packet is dropped without updating the line positions).
    /// </summary>
    private static bool Parse(ref HelperContext context, ReadOnlySpan<byte> data, int dir, ref HelperVerdict verdict)
    {
        var own = dir == 0 ? context.Original : context.Reply;   // ct->tuplehash[dir]
        var other = dir == 0 ? context.Reply : context.Original; // ct->tuplehash[!dir]
        bool ipv6 = own.IsIpv6;

        // The address starts as the sender's own: an EPSV reply does not mention it.
        var cmd = new FtpCommand { Ipv6 = ipv6 };
        Span<byte> sender = stackalloc byte[16];
        sender.Clear();
        own.SourceAddress.CopyTo(sender, ipv6);
        sender.CopyTo(cmd.Address);

        int found = 0, i;
        for (i = 0; i < 2; i++)
        {
            found = dir == 0
                ? (i == 0
                    ? FtpParser.FindPattern(data, "PORT"u8, (byte)' ', (byte)'\r', FtpNumberFormat.Rfc959, ref cmd)
                    : FtpParser.FindPattern(data, "EPRT"u8, (byte)' ', (byte)'\r', FtpNumberFormat.Eprt, ref cmd))
                : (i == 0
                    ? FtpParser.FindPattern(data, "227 "u8, 0, 0, FtpNumberFormat.Rfc1123, ref cmd)
                    : FtpParser.FindPattern(data, "229 "u8, (byte)'(', (byte)')', FtpNumberFormat.EpsvResponse, ref cmd));
            if (found != 0)
            {
                break;
            }
        }

        if (found == -1)
        {
            // "We don't usually drop packets. [...] However, it is necessary for accurate tracking in this case."
            context.DropMessage = (dir, i) switch
            {
                (0, 0) => "partial matching of `PORT'",
                (0, _) => "partial matching of `EPRT'",
                (_, 0) => "partial matching of `227 '",
                _ => "partial matching of `229 '",
            };
            verdict = HelperVerdict.Drop;
            return false;
        }

        if (found == 0)
        {
            return true; // no match
        }

        // loose=0: an address other than the sender's own ("DMZ machines opening holes to internal networks,
        // or the packet filter itself") is not expected.
        if (!((ReadOnlySpan<byte>)cmd.Address).SequenceEqual(sender))
        {
            return true;
        }

        // From the other end (any port) to the sender's address (ct->tuplehash[!dir].tuple.dst) and the port.
        var result = context.Expect(0, other.SourceAddress, null, other.DestinationAddress, cmd.Port, IpProtocol.Tcp);
        if (result != ExpectResult.Created)
        {
            // Can't expect this? Best to drop the packet now.
            context.DropMessage = CannotAddExpectation;
            verdict = HelperVerdict.Drop;
        }

        return true;
    }

    private static uint Seq(ReadOnlySpan<byte> info, int dir, int i) =>
        BinaryPrimitives.ReadUInt32LittleEndian(info[(SeqOffset + (((dir * NumSeqToRemember) + i) * 4))..]);

    private static int SeqCount(ReadOnlySpan<byte> info, int dir) =>
        Math.Min((int)BinaryPrimitives.ReadUInt16LittleEndian(info[(SeqCountOffset + (dir * 2))..]), NumSeqToRemember);

    /// <summary>find_nl_seq(): whether the segment starts where a remembered one ended with a newline.</summary>
    private static bool FindNewlineSeq(ReadOnlySpan<byte> info, uint seq, int dir)
    {
        int n = SeqCount(info, dir);
        for (int i = 0; i < n; i++)
        {
            if (Seq(info, dir, i) == seq)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>NF_CT_FTP_SEQ_PICKUP: parse the next segment of the direction regardless, once.</summary>
    private static bool TakeSeqPickup(Span<byte> info, int dir)
    {
        var slot = info[(FlagsOffset + (dir * 2))..];
        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(slot);
        if ((flags & FlagSeqPickup) == 0)
        {
            return false;
        }

        BinaryPrimitives.WriteUInt16LittleEndian(slot, (ushort)(flags ^ FlagSeqPickup));
        return true;
    }

    /// <summary>update_nl_seq(): remembers a position after a newline, replacing the older one if it is newer.</summary>
    private static void UpdateNewlineSeq(Span<byte> info, uint nlSeq, int dir)
    {
        int n = SeqCount(info, dir);
        for (int i = 0; i < n; i++)
        {
            if (Seq(info, dir, i) == nlSeq)
            {
                return;
            }
        }

        int slot;
        if (n < NumSeqToRemember)
        {
            slot = n;
            BinaryPrimitives.WriteUInt16LittleEndian(info[(SeqCountOffset + (dir * 2))..], (ushort)(n + 1));
        }
        else
        {
            int oldest = Before(Seq(info, dir, 0), Seq(info, dir, 1)) ? 0 : 1;
            if (!Before(Seq(info, dir, oldest), nlSeq))
            {
                return; // not after the oldest: keep both
            }

            slot = oldest;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(info[(SeqOffset + (((dir * NumSeqToRemember) + slot) * 4))..], nlSeq);
    }

    /// <summary>The kernel's before(a, b): a precedes b in sequence space.</summary>
    private static bool Before(uint a, uint b) => unchecked((int)(a - b)) < 0;
}
