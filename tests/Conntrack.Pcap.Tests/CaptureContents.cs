namespace Conntrack.Pcap.Tests;

/// <summary>A copy of one record, for assertions after the reader has moved on.</summary>
internal sealed record RecordCopy(long TimestampNs, int OriginalLength, LinkType LinkType, byte[] Data, long FileOffset, long Index);

/// <summary>Everything a reader produced from one capture.</summary>
internal sealed record CaptureContents(List<RecordCopy> Records, long? TruncatedAt, CaptureFormat Format)
{
    public static CaptureContents Read(byte[] capture, int? bufferSize = null, int maxChunk = 0)
    {
        using CaptureReader reader = CreateReader(capture, bufferSize, maxChunk);
        var records = new List<RecordCopy>();
        while (reader.ReadNext(out CaptureRecord record))
        {
            records.Add(Copy(record));
        }

        return new CaptureContents(records, reader.TruncatedAt, reader.Format);
    }

    public static async Task<CaptureContents> ReadAsync(byte[] capture, int? bufferSize = null, int maxChunk = 0, bool yieldingStream = false)
    {
        await using CaptureReader reader = CreateReader(capture, bufferSize, maxChunk, yieldingStream);
        var records = new List<RecordCopy>();
        while (await reader.ReadNextAsync())
        {
            records.Add(Copy(reader.Current));
        }

        return new CaptureContents(records, reader.TruncatedAt, reader.Format);
    }

    public static CaptureReader CreateReader(byte[] capture, int? bufferSize = null, int maxChunk = 0, bool yieldingStream = false)
    {
        Stream stream = maxChunk > 0 || yieldingStream
            ? new TricklingStream(capture, maxChunk > 0 ? maxChunk : 1 << 20, yieldingStream)
            : new MemoryStream(capture, writable: false);
        return bufferSize is { } size ? new CaptureReader(stream, leaveOpen: false, size) : new CaptureReader(stream);
    }

    public static RecordCopy Copy(CaptureRecord record) =>
        new(record.TimestampNs, record.OriginalLength, record.LinkType, record.Data.ToArray(), record.FileOffset, record.Index);
}
