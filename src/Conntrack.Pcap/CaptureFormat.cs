namespace Conntrack.Pcap;

/// <summary>The container format of a capture file.</summary>
public enum CaptureFormat
{
    /// <summary>Not known yet: nothing has been read from the file.</summary>
    Unknown = 0,

    /// <summary>Classic libpcap format (microsecond or nanosecond timestamps, either byte order).</summary>
    Pcap = 1,

    /// <summary>pcapng (PCAP Next Generation): sections, interfaces and blocks.</summary>
    PcapNg = 2,
}
