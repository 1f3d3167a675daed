using System.Buffers.Binary;
using System.Globalization;
using Conntrack.Expectations;
using Conntrack.Tuples;

namespace Conntrack.Helpers;

/// <summary>
/// SIP (nf_conntrack_sip.c) with the module's defaults (<c>sip_direct_media=1 sip_direct_signalling=1
/// sip_external_media=0 sip_timeout=3600</c>) and no NAT. Every SIP message of the connection is parsed (over
/// TCP, each complete message of a segment, framed by <c>Content-Length</c>): the SDP of INVITE, UPDATE, ACK and
/// PRACK requests and of 1xx/2xx answers to INVITE, UPDATE and PRACK opens RTP and RTCP expectations (audio,
/// video or image class) from the other endpoint to the announced address and port, when that address is the
/// sender's own; a new INVITE, a BYE and a failed answer to the INVITE end them. A REGISTER opens an inactive
/// permanent expectation for calls from the registrar to the registered contact, activated by the registrar's
/// 2xx answer and removed by any other final answer. Messages without a parsable <c>CSeq</c>, with an SDP media
/// port outside 1024..65535, with media and no connection address, or whose expectations cannot be added are
/// dropped, with the kernel's message in <see cref="HelperContext.DropMessage"/>.
/// </summary>
public sealed class SipHelper : ConntrackHelper
{
    /// <summary>Expectation classes (SIP_EXPECT_*).</summary>
    public const int Signalling = 0, Audio = 1, Video = 2, Image = 3;

    /// <summary>The module parameter <c>sip_timeout</c>: the master connection's timeout after each SIP packet.</summary>
    public static readonly TimeSpan MasterTimeout = TimeSpan.FromSeconds(3600);

    // The per-connection state (struct nf_ct_sip_master).
    private const int RegisterCSeqOffset = 0, InviteCSeqOffset = 4, ForcedPortOffset = 8;

    // Per thread, so that threads reporting different bad ports do not make each other allocate.
    [ThreadStatic]
    private static PortMessage? t_wrongPort;

    /// <summary>The kernel's SIP helper for UDP or TCP port 5060.</summary>
    public SipHelper(byte protocol)
        : base("sip", protocol, 5060, ipv6: true,
            new ExpectPolicy("signalling", 1, TimeSpan.FromMinutes(3)),
            new ExpectPolicy("audio", 4, TimeSpan.FromMinutes(3)),
            new ExpectPolicy("video", 4, TimeSpan.FromMinutes(3)),
            new ExpectPolicy("image", 2, TimeSpan.FromMinutes(3)))
    {
    }

    /// <inheritdoc />
    public override HelperVerdict Help(ref HelperContext context) =>
        Protocol == IpProtocol.Tcp ? HelpTcp(ref context) : HelpUdp(ref context);

    /// <summary>sip_help_udp(): the datagram's payload is one message.</summary>
    private static HelperVerdict HelpUdp(ref HelperContext context)
    {
        // No data?
        int dataOffset = context.Layer4Offset + 8;
        if (dataOffset >= context.Packet.Length)
        {
            return HelperVerdict.Accept;
        }

        // nf_ct_refresh(ct, sip_timeout * HZ): before any parsing, even if the message is later dropped.
        context.RefreshTimeout(MasterTimeout);
        var data = context.Packet[dataOffset..];
        if (data.Length < "SIP/2.0 200"u8.Length)
        {
            return HelperVerdict.Accept;
        }

        return ProcessSipMessage(ref context, data);
    }

    /// <summary>
    /// sip_help_tcp(): established segments only; each message must be complete in the segment (headers,
    /// an empty line and <c>Content-Length</c> bytes of body). Processing stops at the first message that is
    /// not, and a message longer than the rest of the segment ends it silently.
    /// </summary>
    private static HelperVerdict HelpTcp(ref HelperContext context)
    {
        if (context.Info is not (ConntrackInfo.Established or ConntrackInfo.EstablishedReply))
        {
            return HelperVerdict.Accept;
        }

        // No data?
        int l4 = context.Layer4Offset;
        var packet = context.Packet;
        if (l4 < 0 || l4 + 20 > packet.Length)
        {
            return HelperVerdict.Accept;
        }

        int dataOffset = l4 + ((packet[l4 + 12] >> 4) * 4);
        if (dataOffset >= packet.Length)
        {
            return HelperVerdict.Accept;
        }

        // nf_ct_refresh(ct, sip_timeout * HZ): see HelpUdp.
        context.RefreshTimeout(MasterTimeout);
        var data = packet[dataOffset..];
        if (data.Length < "SIP/2.0 200"u8.Length)
        {
            return HelperVerdict.Accept;
        }

        var verdict = HelperVerdict.Accept;
        while (true)
        {
            if (SipParser.GetHeader(data, 0, SipHeaderType.ContentLength, false, out int matchOffset, out _) <= 0)
            {
                break;
            }

            uint contentLength = SipParser.StrToUInt(data, matchOffset, data.Length - matchOffset, out int end);
            if (end == matchOffset || contentLength > (uint)data.Length)
            {
                break;
            }

            bool terminated = false;
            for (; end + 4 <= data.Length; end++)
            {
                if (data[end] == '\r' && data[end + 1] == '\n' && data[end + 2] == '\r' && data[end + 3] == '\n')
                {
                    terminated = true;
                    break;
                }
            }

            if (!terminated)
            {
                break;
            }

            long messageLength = end + 4L + contentLength;
            if (messageLength > data.Length)
            {
                return HelperVerdict.Accept;
            }

            verdict = ProcessSipMessage(ref context, data[..(int)messageLength]);
            if (verdict != HelperVerdict.Accept)
            {
                break; // the process functions said why
            }

            data = data[(int)messageLength..];
        }

        return verdict;
    }

    /// <summary>process_sip_msg(): a response starts with <c>SIP/2.0 </c>, anything else is a request.</summary>
    private static HelperVerdict ProcessSipMessage(ref HelperContext context, ReadOnlySpan<byte> message) =>
        IsResponse(message) ? ProcessResponse(ref context, message) : ProcessRequest(ref context, message);

    private static bool IsResponse(ReadOnlySpan<byte> m)
    {
        var prefix = "SIP/2.0 "u8;
        if (m.Length < prefix.Length)
        {
            return false;
        }

        for (int i = 0; i < prefix.Length; i++)
        {
            int c = m[i];
            if ((uint)(c - 'a') <= 'z' - 'a')
            {
                c -= 'a' - 'A';
            }

            if (c != prefix[i])
            {
                return false;
            }
        }

        return true;
    }

    // ------------------------------------------------------------------ requests and responses

    private enum Method : byte
    {
        None,
        Invite,
        Update,
        Ack,
        Prack,
        Bye,
        Register,
    }

    /// <summary>The handler table (sip_handlers[]) in its order; responses have no ACK or BYE handler.</summary>
    private static ReadOnlySpan<byte> MethodName(Method m) => m switch
    {
        Method.Invite => "INVITE"u8,
        Method.Update => "UPDATE"u8,
        Method.Ack => "ACK"u8,
        Method.Prack => "PRACK"u8,
        Method.Bye => "BYE"u8,
        _ => "REGISTER"u8,
    };

    /// <summary>process_sip_request().</summary>
    private static HelperVerdict ProcessRequest(ref HelperContext context, ReadOnlySpan<byte> m)
    {
        bool ipv6 = context.Original.IsIpv6;
        var own = context.PacketTuple;

        // Phones that send from a high port but listen on 5060 (the Via port) have it saved for NAT.
        if (SipParser.ParseHeaderUri(m, SipHeaderType.ViaUdp, ipv6, out _, out _, out var viaAddress, out ushort viaPort) > 0
            && viaPort != own.SourcePort && viaAddress == own.SourceAddress)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(context.PrivateData[ForcedPortOffset..], viaPort);
        }

        for (var method = Method.Invite; method <= Method.Register; method++)
        {
            var name = MethodName(method);
            if (m.Length < name.Length + 2 || !StartsWithIgnoreCase(m, name))
            {
                continue;
            }

            if (m[name.Length] != ' ' || !SipParser.IsAlpha(m[name.Length + 1]))
            {
                continue;
            }

            if (SipParser.GetHeader(m, 0, SipHeaderType.CSeq, ipv6, out int matchOffset, out _) <= 0)
            {
                return Drop(ref context, "cannot parse cseq");
            }

            uint cseq = SipParser.StrToUInt(m, matchOffset, m.Length - matchOffset, out int end);
            if (end == matchOffset)
            {
                return Drop(ref context, "cannot get cseq");
            }

            return method switch
            {
                Method.Invite => ProcessInviteRequest(ref context, m, cseq),
                Method.Bye => ProcessByeRequest(ref context),
                Method.Register => ProcessRegisterRequest(ref context, m, cseq),
                _ => ProcessSdp(ref context, m), // UPDATE, ACK, PRACK
            };
        }

        return HelperVerdict.Accept;
    }

    /// <summary>process_sip_response(): the method is the word after the CSeq number.</summary>
    private static HelperVerdict ProcessResponse(ref HelperContext context, ReadOnlySpan<byte> m)
    {
        const int CodeOffset = 8; // strlen("SIP/2.0 ")
        if (m.Length < "SIP/2.0 200"u8.Length)
        {
            return HelperVerdict.Accept;
        }

        uint code = SipParser.StrToUInt(m, CodeOffset, m.Length - CodeOffset, out _);
        if (code == 0)
        {
            return Drop(ref context, "cannot get code");
        }

        bool ipv6 = context.Original.IsIpv6;
        if (SipParser.GetHeader(m, 0, SipHeaderType.CSeq, ipv6, out int matchOffset, out int matchLength) <= 0)
        {
            return Drop(ref context, "cannot parse cseq");
        }

        uint cseq = SipParser.StrToUInt(m, matchOffset, m.Length - matchOffset, out int end);
        if (end == matchOffset)
        {
            return Drop(ref context, "cannot get cseq");
        }

        int matchEnd = matchOffset + matchLength + 1;
        for (var method = Method.Invite; method <= Method.Register; method++)
        {
            if (method is Method.Ack or Method.Bye)
            {
                continue; // no response handler
            }

            var name = MethodName(method);
            if (m.Length < matchEnd + name.Length || !StartsWithIgnoreCase(m[matchEnd..], name))
            {
                continue;
            }

            return method == Method.Register
                ? ProcessRegisterResponse(ref context, m, cseq, code)
                : ProcessSessionResponse(ref context, m, cseq, code); // INVITE, UPDATE, PRACK
        }

        return HelperVerdict.Accept;
    }

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> m, ReadOnlySpan<byte> upperName)
    {
        for (int i = 0; i < upperName.Length; i++)
        {
            int c = m[i];
            if ((uint)(c - 'a') <= 'z' - 'a')
            {
                c -= 'a' - 'A';
            }

            if (c != upperName[i])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>process_invite_request(): a new offer replaces the call's media expectations.</summary>
    private static HelperVerdict ProcessInviteRequest(ref HelperContext context, ReadOnlySpan<byte> m, uint cseq)
    {
        FlushExpectations(ref context, media: true);
        var verdict = ProcessSdp(ref context, m);
        if (verdict == HelperVerdict.Accept)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(context.PrivateData[InviteCSeqOffset..], cseq);
        }

        return verdict;
    }

    /// <summary>process_bye_request().</summary>
    private static HelperVerdict ProcessByeRequest(ref HelperContext context)
    {
        FlushExpectations(ref context, media: true);
        return HelperVerdict.Accept;
    }

    /// <summary>
    /// process_invite_response(), process_update_response() and process_prack_response() (identical): a
    /// provisional or success answer carries SDP; any other answer to the last INVITE ends its media expectations.
    /// </summary>
    private static HelperVerdict ProcessSessionResponse(ref HelperContext context, ReadOnlySpan<byte> m, uint cseq, uint code)
    {
        if (code is >= 100 and <= 199 or >= 200 and <= 299)
        {
            return ProcessSdp(ref context, m);
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(context.PrivateData[InviteCSeqOffset..]) == cseq)
        {
            FlushExpectations(ref context, media: true);
        }

        return HelperVerdict.Accept;
    }

    /// <summary>flush_expectations(): every media expectation, or the (single) signalling one.</summary>
    private static void FlushExpectations(ref HelperContext context, bool media)
    {
        if (media)
        {
            context.RemoveExpectations(Audio);
            context.RemoveExpectations(Video);
            context.RemoveExpectations(Image);
        }
        else
        {
            context.RemoveExpectations(Signalling);
        }
    }

    // ------------------------------------------------------------------ SDP

    /// <summary>
    /// process_sdp(): the session's connection address (before the first <c>m=</c>), then up to three media
    /// descriptions of type audio, video or image with a non-zero port, each with its own connection address or
    /// the session's.
    /// </summary>
    private static HelperVerdict ProcessSdp(ref HelperContext context, ReadOnlySpan<byte> m)
    {
        bool ipv6 = context.Original.IsIpv6;

        // Find the beginning of the session description.
        if (SipParser.GetSdpHeader(m, 0, SdpHeaderType.Version, SdpHeaderType.Unspecified, ipv6, out int sdpOffset, out _) <= 0)
        {
            return HelperVerdict.Accept;
        }

        // The session's connection information ends at the first media description.
        bool haveSessionAddress = false;
        if (SipParser.ParseSdpAddressHeader(m, sdpOffset, SdpHeaderType.Connection, SdpHeaderType.Media, ipv6,
                out _, out _, out var sessionAddress) > 0)
        {
            haveSessionAddress = true;
        }

        int mediaOffset = sdpOffset;
        for (int i = 0; i < 3;)
        {
            if (SipParser.GetSdpHeader(m, mediaOffset, SdpHeaderType.Media, SdpHeaderType.Unspecified, ipv6,
                    out mediaOffset, out int mediaLength) <= 0)
            {
                break;
            }

            // The media type and port; port 0 is an inactive stream.
            int expectClass = MediaClass(m, mediaOffset, mediaLength, out int typeLength);
            if (expectClass < 0)
            {
                mediaOffset += mediaLength;
                continue;
            }

            mediaOffset += typeLength;
            uint port = SipParser.StrToUInt(m, mediaOffset, m.Length - mediaOffset, out int end);
            if (port == 0 || end == mediaOffset)
            {
                continue;
            }

            if (port is < 1024 or > 65535)
            {
                return Drop(ref context, WrongPortMessage(port));
            }

            // The media description's connection address overrides the session's.
            InetAddress rtpAddress;
            if (SipParser.ParseSdpAddressHeader(m, mediaOffset, SdpHeaderType.Connection, SdpHeaderType.Media, ipv6,
                    out _, out _, out var mediaAddress) > 0)
            {
                rtpAddress = mediaAddress;
            }
            else if (haveSessionAddress)
            {
                rtpAddress = sessionAddress;
            }
            else
            {
                return Drop(ref context, "cannot parse SDP message");
            }

            if (SetExpectedRtpRtcp(ref context, rtpAddress, (ushort)port, expectClass) != HelperVerdict.Accept)
            {
                return Drop(ref context, "cannot add expectation for voice");
            }

            i++;
        }

        return HelperVerdict.Accept;
    }

    /// <summary>sdp_media_type(): "audio ", "video " or "image " (case-sensitive) at the start of an <c>m=</c> value.</summary>
    private static int MediaClass(ReadOnlySpan<byte> m, int offset, int length, out int typeLength)
    {
        typeLength = 6;
        if (length < 6)
        {
            return -1;
        }

        var type = m.Slice(offset, 6);
        return type.SequenceEqual("audio "u8) ? Audio
            : type.SequenceEqual("video "u8) ? Video
            : type.SequenceEqual("image "u8) ? Image
            : -1;
    }

    /// <summary>
    /// set_expected_rtp_rtcp() with sip_direct_media=1: only for media at the sender's own address; RTP on the
    /// even port at or below the announced one and RTCP on the next, both from the other endpoint, any port.
    /// An identical expectation of another master counts as set up (NF_CT_EXP_F_SKIP_MASTER's -EALREADY).
    /// </summary>
    private static HelperVerdict SetExpectedRtpRtcp(ref HelperContext context, InetAddress address, ushort port, int expectClass)
    {
        if (address != context.PacketTuple.SourceAddress)
        {
            return HelperVerdict.Accept;
        }

        // ct->tuplehash[!dir].tuple.src.u3: the other endpoint.
        var source = context.IsReply ? context.Original.SourceAddress : context.Reply.SourceAddress;

        // Another master of this helper that already expects this RTP stream in this class keeps it: nothing is
        // set up here (__nf_ct_expect_find in set_expected_rtp_rtcp).
        ushort rtpPort = (ushort)(port & ~1);
        if (context.FindExpectation(source, address, rtpPort, IpProtocol.Udp, out var owner)
            && !owner.IsMine && owner.SameHelper && owner.ExpectClass == expectClass)
        {
            return HelperVerdict.Accept;
        }

        var rtp = ToErrno(context.Expect(expectClass, source, null, address, rtpPort, IpProtocol.Udp, skipMaster: true));
        if (rtp is Errno.Ok or Errno.Already)
        {
            var rtcp = ToErrno(context.Expect(expectClass, source, null, address, (ushort)(rtpPort + 1), IpProtocol.Udp, skipMaster: true));
            if (rtcp is Errno.Ok or Errno.Already)
            {
                return HelperVerdict.Accept;
            }

            if (rtp == Errno.Ok)
            {
                // nf_ct_unexpect_related(rtp_exp): no RTP without its RTCP.
                context.RemoveExpectation(expectClass, address, rtpPort, IpProtocol.Udp);
            }
        }

        return HelperVerdict.Drop;
    }

    private enum Errno : byte
    {
        Ok,
        Already,
        Other,
    }

    /// <summary>nf_ct_expect_related(exp, NF_CT_EXP_F_SKIP_MASTER): an identical expectation of any master is -EALREADY.</summary>
    private static Errno ToErrno(ExpectResult r) => r switch
    {
        ExpectResult.Created => Errno.Ok,
        ExpectResult.AlreadyExists => Errno.Already,
        _ => Errno.Other,
    };

    // ------------------------------------------------------------------ REGISTER

    /// <summary>
    /// process_register_request(): a registration of the sender's own contact address opens a permanent, still
    /// inactive expectation from the registrar (sip_direct_signalling=1) to the contact's address and port over
    /// the transport it names.
    /// </summary>
    private static HelperVerdict ProcessRegisterRequest(ref HelperContext context, ReadOnlySpan<byte> m, uint cseq)
    {
        // Expected connections cannot register again (IPS_EXPECTED): they only remember the CSeq.
        if (context.IsExpected)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(context.PrivateData[RegisterCSeqOffset..], cseq);
            return HelperVerdict.Accept;
        }

        bool ipv6 = context.Original.IsIpv6;

        // Expiration: zero releases the binding and creates nothing. From Expires:, then the contact's expires=.
        uint expires = 0;
        if (SipParser.GetHeader(m, 0, SipHeaderType.Expires, ipv6, out int matchOffset, out int matchLength) > 0)
        {
            expires = SipParser.StrToUInt(m, matchOffset, m.Length - matchOffset, out _);
        }

        int ret = SipParser.ParseHeaderUri(m, SipHeaderType.Contact, ipv6, out matchOffset, out matchLength,
            out var contact, out ushort port);
        if (ret < 0)
        {
            return Drop(ref context, "cannot parse contact");
        }

        if (ret == 0)
        {
            return HelperVerdict.Accept;
        }

        // No third-party registrations.
        if (contact != context.PacketTuple.SourceAddress)
        {
            return HelperVerdict.Accept;
        }

        byte connectionProtocol = context.Original.Protocol;
        if (!SipParser.ParseTransport(m, matchOffset + matchLength, connectionProtocol, out byte protocol))
        {
            return HelperVerdict.Accept;
        }

        if (SipParser.ParseNumericalParam(m, matchOffset + matchLength, "expires="u8, ref expires) < 0)
        {
            return Drop(ref context, "cannot parse expires");
        }

        if (expires != 0)
        {
            var registrar = context.IsReply ? context.Original.SourceAddress : context.Reply.SourceAddress;
            var r = context.Expect(Signalling, registrar, null, contact, port, protocol,
                ExpectationFlags.Permanent | ExpectationFlags.Inactive, assignHelper: true);
            if (r != ExpectResult.Created)
            {
                return Drop(ref context, "cannot add expectation");
            }

        }

        BinaryPrimitives.WriteUInt32LittleEndian(context.PrivateData[RegisterCSeqOffset..], cseq);
        return HelperVerdict.Accept;
    }

    /// <summary>
    /// process_register_response(): for the answer to the last REGISTER, a 2xx activates the signalling
    /// expectation of a contact it lists (addressed to the registering endpoint, non-zero expiry); any other
    /// final answer, or a 2xx that lists none, removes it.
    /// </summary>
    private static HelperVerdict ProcessRegisterResponse(ref HelperContext context, ReadOnlySpan<byte> m, uint cseq, uint code)
    {
        // Late answers to earlier REGISTERs are ignored.
        if (BinaryPrimitives.ReadUInt32LittleEndian(context.PrivateData[RegisterCSeqOffset..]) != cseq)
        {
            return HelperVerdict.Accept;
        }

        if (code is >= 100 and <= 199)
        {
            return HelperVerdict.Accept;
        }

        if (code is >= 200 and <= 299)
        {
            bool ipv6 = context.Original.IsIpv6;
            uint expires = 0;
            if (SipParser.GetHeader(m, 0, SipHeaderType.Expires, ipv6, out int matchOffset, out _) > 0)
            {
                expires = SipParser.StrToUInt(m, matchOffset, m.Length - matchOffset, out _);
            }

            int contactOffset = 0;
            bool inContact = false;
            byte connectionProtocol = context.Original.Protocol;
            var own = context.PacketTuple;
            while (true)
            {
                uint contactExpires = expires;
                int ret = SipParser.ParseHeaderUri(m, ref contactOffset, trackOffset: true, SipHeaderType.Contact, ipv6,
                    ref inContact, trackHeader: true, out matchOffset, out int matchLength, out var address, out ushort port);
                if (ret < 0)
                {
                    return Drop(ref context, "cannot parse contact");
                }

                if (ret == 0)
                {
                    break;
                }

                // No third-party registrations.
                if (address != own.DestinationAddress)
                {
                    continue;
                }

                if (!SipParser.ParseTransport(m, matchOffset + matchLength, connectionProtocol, out byte protocol))
                {
                    continue;
                }

                if (SipParser.ParseNumericalParam(m, matchOffset + matchLength, "expires="u8, ref contactExpires) < 0)
                {
                    return Drop(ref context, "cannot parse expires");
                }

                if (contactExpires == 0)
                {
                    break;
                }

                if (RefreshSignallingExpectation(ref context, address, protocol, port, contactExpires))
                {
                    return HelperVerdict.Accept;
                }
            }
        }

        FlushExpectations(ref context, media: false);
        return HelperVerdict.Accept;
    }

    /// <summary>
    /// refresh_signalling_expectation(): this connection's signalling expectation to that address, protocol and
    /// port becomes active and expires after the registration's lifetime.
    /// </summary>
    private static bool RefreshSignallingExpectation(ref HelperContext context, InetAddress address, byte protocol, ushort port, uint expires) =>
        context.RefreshExpectation(Signalling, address, port, protocol, TimeSpan.FromSeconds(expires));

    // ------------------------------------------------------------------ diagnostics

    private static HelperVerdict Drop(ref HelperContext context, string message)
    {
        context.DropMessage = message;
        return HelperVerdict.Drop;
    }

    /// <summary>"wrong port %u", formatted once per distinct port in a row so repeated bad packets do not allocate.</summary>
    private static string WrongPortMessage(uint port)
    {
        var cached = t_wrongPort;
        if (cached is not null && cached.Port == port)
        {
            return cached.Text;
        }

        cached = new PortMessage(port, "wrong port " + port.ToString(CultureInfo.InvariantCulture));
        t_wrongPort = cached;
        return cached.Text;
    }

    private sealed record PortMessage(uint Port, string Text);
}
