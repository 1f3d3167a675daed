using System.Buffers.Binary;

namespace Conntrack.Helpers;

/// <summary>
/// TFTP (nf_conntrack_tftp.c): a read or write request opens the server's answer, which comes from a new
/// port: the expected connection goes from the server's address, any port, to the client's address and port.
/// </summary>
public sealed class TftpHelper : ConntrackHelper
{
    private const ushort OpcodeRead = 1, OpcodeWrite = 2;

    /// <summary>The kernel's TFTP helper on UDP port 69, one expectation per master for 5 minutes.</summary>
    public TftpHelper()
        : base("tftp", IpProtocol.Udp, 69, ipv6: true, new ExpectPolicy(null, 1, TimeSpan.FromMinutes(5)))
    {
    }

    /// <inheritdoc />
    public override HelperVerdict Help(ref HelperContext context)
    {
        // The opcode follows the 8-byte UDP header; a shorter packet is simply not a request.
        int opcodeOffset = context.Layer4Offset + 8;
        if ((uint)(opcodeOffset + 2) > (uint)context.Packet.Length)
        {
            return HelperVerdict.Accept;
        }

        ushort opcode = BinaryPrimitives.ReadUInt16BigEndian(context.Packet[opcodeOffset..]);
        if (opcode is not (OpcodeRead or OpcodeWrite))
        {
            return HelperVerdict.Accept; // data, acknowledgements, errors and unknown opcodes pass
        }

        // "RRQ and WRQ works the same way": expect the reply direction's source (the server, any port) to
        // the reply direction's destination (the client) and port.
        var reply = context.Reply;
        if (context.Expect(0, reply.SourceAddress, null, reply.DestinationAddress, reply.DestinationPort, IpProtocol.Udp)
            != Expectations.ExpectResult.Created)
        {
            context.DropMessage = "cannot add expectation";
            return HelperVerdict.Drop;
        }

        return HelperVerdict.Accept;
    }
}
