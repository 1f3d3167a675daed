namespace Conntrack.Pcap.Tests;

public class CorpusTests
{
    public static TheoryData<string> CaptureFiles()
    {
        var data = new TheoryData<string>();
        foreach (string file in Corpus.CaptureFiles())
        {
            data.Add(file);
        }

        return data;
    }

    [Fact]
    public void Corpus_is_present_beside_the_repository()
    {
        Corpus.IsPresent.Should().BeTrue(
            "the capture corpus must be at ../shared/pcaps seen from the repository root (looked upwards from {0})",
            AppContext.BaseDirectory);
        Directory.EnumerateFiles(Corpus.PcapsDirectory, "*.pcap", SearchOption.AllDirectories).Should().NotBeEmpty();
        Directory.Exists(Corpus.SelfTestDirectory).Should().BeTrue("the oracle's self-test captures belong to the corpus");
    }

    [Fact]
    public void Every_manifest_entry_names_a_capture_that_exists()
    {
        IReadOnlyDictionary<string, int> manifest = Corpus.ManifestPacketCounts();

        manifest.Should().NotBeEmpty();
        manifest.Keys.Where(path => !File.Exists(Path.Combine(Corpus.PcapsDirectory, path))).Should().BeEmpty();
    }

    [Theory]
    [MemberData(nameof(CaptureFiles))]
    public void Corpus_capture_has_the_expected_record_count_and_every_record_decodes(string file)
    {
        string fullPath = Path.Combine(Corpus.SharedDirectory, file);   // throws with a clear message if the corpus is missing
        int expectedCount = ExpectedCount(file, fullPath);
        string[]? kernelStates = Corpus.KernelStates(fullPath);

        var nonIpMismatches = new List<string>();
        long count = 0;
        using (CaptureReader reader = CaptureReader.Open(fullPath))
        {
            while (reader.ReadNext(out CaptureRecord record))
            {
                LinkLayer.IsSupported(record.LinkType).Should().BeTrue($"record {record.Index} has link type {(uint)record.LinkType}");
                FrameKind kind = LinkLayer.Decode(record.LinkType, record.Data, out int ipOffset);
                ipOffset.Should().BeInRange(0, record.Data.Length);
                record.Index.Should().Be(count);

                // The oracle writes NONIP exactly for the records whose link layer does not carry IP.
                if (kernelStates is not null && count < kernelStates.Length && (kind == FrameKind.NonIp) != (kernelStates[count] == "NONIP"))
                {
                    nonIpMismatches.Add($"record {count + 1}: decoded {kind}, kernel says {kernelStates[count]}");
                }

                count++;
            }

            reader.TruncatedAt.Should().BeNull("no capture of the corpus ends in a truncated record");
        }

        count.Should().Be(expectedCount);
        nonIpMismatches.Should().BeEmpty();
        if (kernelStates is not null)
        {
            kernelStates.Should().HaveCount(expectedCount, "the oracle writes one line per record");
        }
    }

    // Verified by hand: `tcpdump -nn -tt --nano -r FILE -c N` and
    // `tshark -r FILE -T fields -e frame.number -e frame.time_epoch -e frame.len -e frame.cap_len`
    // (tcpdump 4.99.3, tshark 4.0.17 on Debian 12) print these times and lengths. A one-off comparison of every record
    // of the corpus (160,298 records: time in ns, captured and original length) against that tshark output also agreed.
    [Theory]
    [InlineData("pcaps/linktypes/tcpdump-tcp-handshake-nano.pcap", 0, 1_418_145_369_924_505_488L, 76, 76, LinkType.LinuxSll)]   // pcap, ns, little-endian
    [InlineData("pcaps/sctp/ndpi-sctp.pcap", 0, 1_088_696_689_784_578_000L, 138, 138, LinkType.Ethernet)]                        // pcap, µs, big-endian
    [InlineData("pcaps/malformed/zeek-trunc-ip4-trunc.pcap", 0, 1_334_160_095_895_421_000L, 20, 46, LinkType.Ethernet)]          // snapped frame
    [InlineData("pcaps/linktypes/suricata-decode-sll2-01.pcap", 0, 1_736_381_483_613_927_000L, 80, 80, LinkType.LinuxSll2)]
    [InlineData("pcaps/real-stack/real-web.pcap", 0, 1_795_314_800_733_223_000L, 170, 170, LinkType.Ethernet)]
    [InlineData("oracle/selftest/bulk_1000.pcapng", 1, 1_700_000_000_000_100_000L, 54, 54, LinkType.Ethernet)]                 // pcapng
    [InlineData("oracle/selftest/bulk_1000.pcapng", 999, 1_700_000_000_099_900_000L, 54, 54, LinkType.Ethernet)]
    public void Corpus_record_has_the_time_and_lengths_tcpdump_shows(
        string file, int index, long timestampNs, int capturedLength, int originalLength, LinkType linkType)
    {
        using CaptureReader reader = CaptureReader.Open(Path.Combine(Corpus.SharedDirectory, file));
        CaptureRecord record = default;
        for (int i = 0; i <= index; i++)
        {
            reader.ReadNext(out record).Should().BeTrue();
        }

        record.TimestampNs.Should().Be(timestampNs);
        record.Data.Length.Should().Be(capturedLength);
        record.OriginalLength.Should().Be(originalLength);
        record.LinkType.Should().Be(linkType);
    }

    private static int ExpectedCount(string file, string fullPath)
    {
        const string pcapsPrefix = "pcaps/";
        if (file.StartsWith(pcapsPrefix, StringComparison.Ordinal))
        {
            Corpus.ManifestPacketCounts().TryGetValue(file[pcapsPrefix.Length..], out int packets)
                .Should().BeTrue($"{file} should be listed in MANIFEST.tsv");
            return packets;
        }

        // The self-test captures are not in the manifest; their oracle output has exactly one line per record.
        string[]? states = Corpus.KernelStates(fullPath);
        states.Should().NotBeNull($"{file} should have a .kernel.txt beside it");
        return states!.Length;
    }
}
