using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;

namespace Conntrack.Pcap;

/// <summary>
/// Reads the packet records of a pcap or pcapng capture, one at a time, without allocating per record.
/// </summary>
/// <remarks>
/// <para>
/// The format is detected from the first bytes. pcap files may use microsecond or nanosecond timestamps in either
/// byte order. pcapng files may hold several sections of either byte order and several interfaces with different
/// link types and timestamp resolutions; Enhanced, Simple and obsolete Packet Blocks are read and every other block
/// type is skipped.
/// </para>
/// <para>
/// A record's <see cref="CaptureRecord.Data"/> points into the reader's buffers and stays valid only until the next
/// read. A final record cut short by the end of the file (an interrupted capture) ends the reading quietly and
/// <see cref="TruncatedAt"/> tells where it started. Malformed data raises <see cref="CaptureFormatException"/>
/// naming the byte offset; the stream's own errors (<see cref="IOException"/>) pass through.
/// </para>
/// <para>An instance is not thread-safe: use it from one thread, or one asynchronous flow, at a time.</para>
/// </remarks>
public sealed class CaptureReader : IDisposable, IAsyncDisposable
{
    /// <summary>Largest captured length accepted; a larger length field is taken as corruption, not allocated.</summary>
    internal const int MaxCapturedLength = 256 * 1024 * 1024;

    /// <summary>Largest pcapng block that is buffered whole: a maximal packet plus room for its fields and options.</summary>
    internal const int MaxBufferedBlockLength = MaxCapturedLength + (1024 * 1024);

    internal const int DefaultBufferSize = 64 * 1024;

    private readonly PipeReader _pipe;
    private readonly List<PcapNgInterface> _interfaces = [];

    // What the pipe has handed over and not yet been released with AdvanceTo. Records returned to the caller may
    // point into it, so it is only released when more data is needed, which is always during a later read.
    private ReadOnlySequence<byte> _buffer;
    private SequencePosition _position;
    private long _bufferStartOffset;
    private long _offset;                  // file offset of _position
    private bool _holdingBuffer;
    private bool _endOfStream;

    // Records that straddle pipe segments are copied here; one buffer, grown as needed, reused for every record.
    private byte[] _scratch = [];

    private State _state;
    private bool _bigEndian;
    private bool _nanosecond;              // pcap only
    private LinkType _fileLinkType;        // pcap only

    // The pcapng block being skipped without buffering it whole.
    private long _skipRemaining;
    private long _skipBlockOffset;
    private uint _skipBlockLength;
    private uint _skipBlockType;

    private bool _hasCurrent;
    private long _currentTimestampNs;
    private int _currentOriginalLength;
    private LinkType _currentLinkType;
    private ReadOnlyMemory<byte> _currentData;
    private long _currentOffset;
    private long _recordCount;

    private bool _disposed;

    /// <summary>Creates a reader over a stream positioned at the start of a capture file.</summary>
    /// <param name="stream">A readable stream; it need not be seekable.</param>
    /// <param name="leaveOpen"><see langword="true"/> to leave <paramref name="stream"/> open when the reader is disposed.</param>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be read.</exception>
    public CaptureReader(Stream stream, bool leaveOpen = false)
        : this(stream, leaveOpen, DefaultBufferSize)
    {
    }

    /// <summary>Creates a reader whose pipe reads <paramref name="bufferSize"/> bytes at a time (tests use tiny ones).</summary>
    internal CaptureReader(Stream stream, bool leaveOpen, int bufferSize)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bufferSize);
        if (!stream.CanRead)
        {
            throw new ArgumentException("The stream must be readable.", nameof(stream));
        }

        _pipe = PipeReader.Create(
            stream,
            new StreamPipeReaderOptions(bufferSize: bufferSize, minimumReadSize: Math.Min(bufferSize, 4096), leaveOpen: leaveOpen));
    }

    private enum State
    {
        FileHeader,
        PcapRecords,
        PcapNgBlocks,
        PcapNgSkipping,
        Ended,
    }

    private enum Step
    {
        Record,
        NeedData,
        Continue,
        End,
    }

    /// <summary>The file's format: <see cref="CaptureFormat.Unknown"/> until the first read has looked at the file header.</summary>
    public CaptureFormat Format { get; private set; }

    /// <summary>
    /// Byte offset of the final record (or pcapng block) that the end of the file cut short and that was therefore
    /// ignored, or <see langword="null"/> while reading goes on and when the file ended cleanly.
    /// </summary>
    /// <remarks>tcpdump and the project's oracle ignore such a record too, with a warning.</remarks>
    public long? TruncatedAt { get; private set; }

    /// <summary>The record that the last successful <see cref="ReadNextAsync"/> (or <see cref="ReadNext"/>) produced.</summary>
    /// <exception cref="InvalidOperationException">No record is available: nothing has been read, or reading has ended.</exception>
    public CaptureRecord Current
    {
        get
        {
            if (!_hasCurrent)
            {
                throw new InvalidOperationException(
                    "No current record: call ReadNext or ReadNextAsync first, and only use Current after it returned true.");
            }

            return new CaptureRecord(
                _currentTimestampNs, _currentOriginalLength, _currentLinkType, _currentData.Span, _currentOffset, _recordCount - 1);
        }
    }

    /// <summary>Opens a capture file for sequential reading.</summary>
    /// <param name="path">Path of a pcap or pcapng file.</param>
    /// <returns>A reader that owns the file and closes it when disposed.</returns>
    /// <exception cref="IOException">The file cannot be opened.</exception>
    public static CaptureReader Open(string path)
    {
        // No FileStream buffer: the pipe already reads in large chunks.
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Read,
            Share = FileShare.Read,
            BufferSize = 0,
            Options = FileOptions.SequentialScan,
        });
        return new CaptureReader(stream, leaveOpen: false);
    }

    /// <summary>Reads the next packet record, blocking on the stream if needed.</summary>
    /// <remarks>
    /// The pipe reads the stream asynchronously; when a read does not complete at once (a network stream, or a
    /// <see cref="FileStream"/> whose reads go through the thread pool), this method blocks the calling thread until it does.
    /// Prefer <see cref="ReadNextAsync"/> on such streams in asynchronous code.
    /// </remarks>
    /// <param name="record">The record; its <see cref="CaptureRecord.Data"/> is valid until the next read.</param>
    /// <returns><see langword="false"/> at the end of the file (check <see cref="TruncatedAt"/>), else <see langword="true"/>.</returns>
    /// <exception cref="CaptureFormatException">The file is malformed at the offset the exception names.</exception>
    /// <exception cref="IOException">The stream failed.</exception>
    /// <exception cref="ObjectDisposedException">The reader has been disposed.</exception>
    public bool ReadNext(out CaptureRecord record)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (true)
        {
            switch (Advance())
            {
                case Step.Record:
                    record = Current;
                    return true;
                case Step.End:
                    record = default;
                    return false;
                default:
                    Release();
                    ValueTask<ReadResult> pending = _pipe.ReadAsync();
                    Accept(pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult());
                    break;
            }
        }
    }

    /// <summary>Reads the next packet record into <see cref="Current"/>.</summary>
    /// <param name="cancellationToken">Cancels waiting for the stream.</param>
    /// <returns><see langword="false"/> at the end of the file (check <see cref="TruncatedAt"/>), else <see langword="true"/>.</returns>
    /// <exception cref="CaptureFormatException">The file is malformed at the offset the exception names.</exception>
    /// <exception cref="IOException">The stream failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled; reading may be resumed.</exception>
    /// <exception cref="ObjectDisposedException">The reader has been disposed.</exception>
    public async ValueTask<bool> ReadNextAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (true)
        {
            switch (Advance())
            {
                case Step.Record:
                    return true;
                case Step.End:
                    return false;
                default:
                    Release();
                    Accept(await _pipe.ReadAsync(cancellationToken).ConfigureAwait(false));
                    break;
            }
        }
    }

    /// <summary>Closes the pipe and, unless the reader was created with <c>leaveOpen</c>, the stream.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _hasCurrent = false;
            _pipe.Complete();
        }
    }

    /// <summary>Closes the pipe and, unless the reader was created with <c>leaveOpen</c>, the stream.</summary>
    /// <returns>A task that completes when the pipe is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            _hasCurrent = false;
            await _pipe.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Moves on by at most one record using the buffered bytes only; says whether more bytes are needed.</summary>
    private Step Advance()
    {
        _hasCurrent = false;
        while (true)
        {
            Step step = _state switch
            {
                State.FileHeader => ReadFileHeader(),
                State.PcapRecords => ReadPcapRecord(),
                State.PcapNgBlocks => ReadPcapNgBlock(),
                State.PcapNgSkipping => SkipPcapNgBlock(),
                _ => Step.End,
            };
            if (step == Step.NeedData && _endOfStream)
            {
                // Asking a finished pipe for more would spin forever; every state handles the end of the stream itself.
                throw new UnreachableException("The capture reader asked for more data after the end of the stream.");
            }

            if (step != Step.Continue)
            {
                return step;
            }
        }
    }

    private Step ReadFileHeader()
    {
        Span<byte> copy = stackalloc byte[PcapFormat.FileHeaderLength];
        if (!TryPeek(4, copy, out ReadOnlySpan<byte> magic))
        {
            if (_endOfStream)
            {
                CaptureFormatException.Throw(
                    "capture file header", 0, $"the file is {Available} bytes long, too short to be a pcap or pcapng file");
            }

            return Step.NeedData;
        }

        if (magic.SequenceEqual("\n\r\r\n"u8))
        {
            // The first block must be a whole Section Header Block; ReadPcapNgBlock checks that.
            Format = CaptureFormat.PcapNg;
            _state = State.PcapNgBlocks;
            return Step.Continue;
        }

        if (!PcapFormat.TryReadMagic(magic, out _bigEndian, out _nanosecond))
        {
            CaptureFormatException.Throw(
                "capture file header", 0,
                $"unknown magic number {Convert.ToHexString(magic)} (pcap is A1B2C3D4 or A1B23C4D in either byte order, pcapng 0A0D0D0A)");
        }

        Format = CaptureFormat.Pcap;
        if (!TryPeek(PcapFormat.FileHeaderLength, copy, out ReadOnlySpan<byte> header))
        {
            if (_endOfStream)
            {
                CaptureFormatException.Throw(
                    "pcap file header", 0, $"the file ends after {Available} of the header's {PcapFormat.FileHeaderLength} bytes");
            }

            return Step.NeedData;
        }

        _fileLinkType = PcapFormat.ReadLinkType(header, _bigEndian);
        Consume(PcapFormat.FileHeaderLength);
        _state = State.PcapRecords;
        return Step.Continue;
    }

    private Step ReadPcapRecord()
    {
        long recordOffset = _offset;
        if (Available == 0 && _endOfStream)
        {
            return EndOfFile();
        }

        Span<byte> copy = stackalloc byte[PcapFormat.RecordHeaderLength];
        if (!TryPeek(PcapFormat.RecordHeaderLength, copy, out ReadOnlySpan<byte> header))
        {
            return NeedMoreOf(recordOffset);
        }

        PcapFormat.ReadRecordHeader(header, _bigEndian, out uint seconds, out uint fraction, out uint capturedLength, out uint originalLength);

        // Checked before waiting for the data, so that a corrupt length fails at once instead of buffering 4 GiB.
        if (capturedLength > MaxCapturedLength)
        {
            CaptureFormatException.Throw(
                "pcap record", recordOffset, $"captured length {capturedLength} exceeds the {MaxCapturedLength}-byte limit");
        }

        if (originalLength > int.MaxValue)
        {
            CaptureFormatException.Throw("pcap record", recordOffset, $"original length {originalLength} is out of range");
        }

        int recordLength = PcapFormat.RecordHeaderLength + (int)capturedLength;
        if (!TryPeek(recordLength, out ReadOnlyMemory<byte> record))
        {
            return NeedMoreOf(recordOffset);
        }

        Consume(recordLength);
        SetCurrent(
            PcapFormat.ToNanoseconds(seconds, fraction, _nanosecond), (int)originalLength, _fileLinkType,
            record.Slice(PcapFormat.RecordHeaderLength), recordOffset);
        return Step.Record;
    }

    private Step ReadPcapNgBlock()
    {
        long blockOffset = _offset;
        if (Available == 0 && _endOfStream)
        {
            return EndOfFile();
        }

        Span<byte> copy = stackalloc byte[PcapNgFormat.SectionHeaderPrefixLength];
        if (!TryPeek(PcapNgFormat.SectionHeaderPrefixLength, copy, out ReadOnlySpan<byte> prefix))
        {
            return NeedMoreOfBlock(blockOffset);
        }

        bool bigEndian = _bigEndian;
        uint blockType = ByteOrder.UInt32(prefix, bigEndian);
        if (blockType == PcapNgFormat.SectionHeaderBlock && !PcapNgFormat.TryReadByteOrder(prefix, out bigEndian))
        {
            CaptureFormatException.Throw(
                PcapNgFormat.Describe(blockType), blockOffset,
                $"byte-order magic {Convert.ToHexString(prefix.Slice(8, 4))} is not 1A2B3C4D in either byte order");
        }

        string what = PcapNgFormat.Describe(blockType);
        uint blockLength = ByteOrder.UInt32(prefix.Slice(4), bigEndian);
        if (blockLength < PcapNgFormat.MinBlockLength)
        {
            CaptureFormatException.Throw(what, blockOffset, $"total length {blockLength} is less than {PcapNgFormat.MinBlockLength}");
        }

        if (blockLength % 4 != 0)
        {
            CaptureFormatException.Throw(what, blockOffset, $"total length {blockLength} is not a multiple of 4");
        }

        if (blockLength < PcapNgFormat.MinLength(blockType))
        {
            CaptureFormatException.Throw(
                what, blockOffset, $"total length {blockLength} is too short for this block type (at least {PcapNgFormat.MinLength(blockType)})");
        }

        switch (blockType)
        {
            case PcapNgFormat.SectionHeaderBlock:
                // A new section has its own byte order and its own interfaces. Its options matter to nobody here.
                _bigEndian = bigEndian;
                _interfaces.Clear();
                return BeginSkip(blockType, blockOffset, blockLength);

            case PcapNgFormat.InterfaceDescriptionBlock:
            case PcapNgFormat.EnhancedPacketBlock:
            case PcapNgFormat.PacketBlock:
            case PcapNgFormat.SimplePacketBlock:
                return ReadBufferedBlock(blockType, blockOffset, blockLength);

            default:
                // Name resolution, statistics, decryption secrets, custom blocks, ...: not needed, so not buffered.
                return BeginSkip(blockType, blockOffset, blockLength);
        }
    }

    private Step ReadBufferedBlock(uint blockType, long blockOffset, uint blockLength)
    {
        string what = PcapNgFormat.Describe(blockType);
        if (blockLength > MaxBufferedBlockLength)
        {
            CaptureFormatException.Throw(what, blockOffset, $"total length {blockLength} exceeds the {MaxBufferedBlockLength}-byte limit");
        }

        if (!TryPeek((int)blockLength, out ReadOnlyMemory<byte> blockMemory))
        {
            return NeedMoreOfBlock(blockOffset);
        }

        ReadOnlySpan<byte> block = blockMemory.Span;
        uint trailer = ByteOrder.UInt32(block.Slice((int)blockLength - PcapNgFormat.BlockTrailerLength), _bigEndian);
        if (trailer != blockLength)
        {
            ThrowTrailerMismatch(what, blockOffset, blockLength, trailer);
        }

        int bodyLength = (int)blockLength - PcapNgFormat.MinBlockLength;
        ReadOnlySpan<byte> body = block.Slice(PcapNgFormat.BlockHeaderLength, bodyLength);
        if (blockType == PcapNgFormat.InterfaceDescriptionBlock)
        {
            _interfaces.Add(PcapNgFormat.ParseInterface(body, _bigEndian, blockOffset));
            Consume(blockLength);
            return Step.Continue;
        }

        PcapNgInterface iface;
        long timestampNs;
        uint originalLength;
        int dataStart;
        int capturedLength;
        if (blockType == PcapNgFormat.SimplePacketBlock)
        {
            // No interface id, no timestamp; the captured length is implied by the block length.
            iface = GetInterface(0, what, blockOffset);
            originalLength = ByteOrder.UInt32(body, _bigEndian);
            dataStart = 4;
            capturedLength = (int)Math.Min(originalLength, (uint)(bodyLength - dataStart));
            timestampNs = 0;
        }
        else
        {
            PcapNgFormat.ReadPacketFields(
                blockType, body, _bigEndian, out uint interfaceId, out ulong ticks, out uint captured, out originalLength);
            iface = GetInterface(interfaceId, what, blockOffset);
            dataStart = PcapNgFormat.PacketFieldsLength;
            if (captured > MaxCapturedLength)
            {
                CaptureFormatException.Throw(what, blockOffset, $"captured length {captured} exceeds the {MaxCapturedLength}-byte limit");
            }

            if (captured > bodyLength - dataStart)
            {
                CaptureFormatException.Throw(
                    what, blockOffset, $"captured length {captured} exceeds the {bodyLength - dataStart} bytes of packet data the block holds");
            }

            capturedLength = (int)captured;
            if (!iface.TryToNanoseconds(ticks, out timestampNs))
            {
                CaptureFormatException.Throw(what, blockOffset, $"timestamp {ticks} is out of range (beyond the year 2262)");
            }
        }

        if (originalLength > int.MaxValue)
        {
            CaptureFormatException.Throw(what, blockOffset, $"original length {originalLength} is out of range");
        }

        Consume(blockLength);
        SetCurrent(
            timestampNs, (int)originalLength, iface.LinkType,
            blockMemory.Slice(PcapNgFormat.BlockHeaderLength + dataStart, capturedLength), blockOffset);
        return Step.Record;
    }

    private PcapNgInterface GetInterface(uint interfaceId, string what, long blockOffset)
    {
        if (interfaceId >= (uint)_interfaces.Count)
        {
            CaptureFormatException.Throw(
                what, blockOffset,
                $"interface {interfaceId} is not defined (the section has {_interfaces.Count} interface description block(s) before this block)");
        }

        return _interfaces[(int)interfaceId];
    }

    private Step BeginSkip(uint blockType, long blockOffset, uint blockLength)
    {
        Consume(PcapNgFormat.BlockHeaderLength);
        _skipBlockType = blockType;
        _skipBlockOffset = blockOffset;
        _skipBlockLength = blockLength;
        _skipRemaining = blockLength - PcapNgFormat.MinBlockLength;
        _state = State.PcapNgSkipping;
        return Step.Continue;
    }

    private Step SkipPcapNgBlock()
    {
        // Consumed piece by piece so that a large unwanted block never has to sit in memory whole.
        long skipped = Math.Min(Available, _skipRemaining);
        Consume(skipped);
        _skipRemaining -= skipped;
        Span<byte> copy = stackalloc byte[PcapNgFormat.BlockTrailerLength];
        if (_skipRemaining > 0 || !TryPeek(PcapNgFormat.BlockTrailerLength, copy, out ReadOnlySpan<byte> trailerBytes))
        {
            return NeedMoreOfBlock(_skipBlockOffset);
        }

        uint trailer = ByteOrder.UInt32(trailerBytes, _bigEndian);
        if (trailer != _skipBlockLength)
        {
            ThrowTrailerMismatch(PcapNgFormat.Describe(_skipBlockType), _skipBlockOffset, _skipBlockLength, trailer);
        }

        Consume(PcapNgFormat.BlockTrailerLength);
        _state = State.PcapNgBlocks;
        return Step.Continue;
    }

    private static void ThrowTrailerMismatch(string what, long blockOffset, uint blockLength, uint trailer) =>
        CaptureFormatException.Throw(
            what, blockOffset, $"trailing total length {trailer} does not match the leading total length {blockLength}");

    /// <summary>More bytes are needed to finish the record at <paramref name="recordOffset"/>; at the end of the file, it was truncated.</summary>
    private Step NeedMoreOf(long recordOffset)
    {
        if (!_endOfStream)
        {
            return Step.NeedData;
        }

        TruncatedAt = recordOffset;
        return EndOfFile();
    }

    private Step NeedMoreOfBlock(long blockOffset)
    {
        if (_endOfStream && blockOffset == 0)
        {
            // Without its first section header the file is not a capture at all, so this is no truncated record.
            CaptureFormatException.Throw(
                "pcapng section header block", 0, $"the file ends inside the first section header block, after {_offset + Available} bytes");
        }

        return NeedMoreOf(blockOffset);
    }

    private Step EndOfFile()
    {
        _state = State.Ended;
        return Step.End;
    }

    private void SetCurrent(long timestampNs, int originalLength, LinkType linkType, ReadOnlyMemory<byte> data, long fileOffset)
    {
        _currentTimestampNs = timestampNs;
        _currentOriginalLength = originalLength;
        _currentLinkType = linkType;
        _currentData = data;
        _currentOffset = fileOffset;
        _recordCount++;
        _hasCurrent = true;
    }

    /// <summary>Bytes buffered beyond the current position.</summary>
    private long Available => _holdingBuffer ? _bufferStartOffset + _buffer.Length - _offset : 0;

    /// <summary>Gives the next <paramref name="count"/> bytes without consuming them, copied into <paramref name="copy"/> only if they straddle segments.</summary>
    private bool TryPeek(int count, Span<byte> copy, out ReadOnlySpan<byte> bytes)
    {
        if (Available < count)
        {
            bytes = default;
            return false;
        }

        ReadOnlySequence<byte> rest = _buffer.Slice(_position);
        ReadOnlySpan<byte> first = rest.FirstSpan;
        if (first.Length >= count)
        {
            bytes = first.Slice(0, count);
            return true;
        }

        rest.Slice(0, count).CopyTo(copy);
        bytes = copy.Slice(0, count);
        return true;
    }

    /// <summary>As the other overload, for records that outlive this call: straddling bytes go to the reused scratch buffer.</summary>
    private bool TryPeek(int count, out ReadOnlyMemory<byte> bytes)
    {
        if (Available < count)
        {
            bytes = default;
            return false;
        }

        ReadOnlySequence<byte> rest = _buffer.Slice(_position);
        ReadOnlyMemory<byte> first = rest.First;
        if (first.Length >= count)
        {
            bytes = first.Slice(0, count);
            return true;
        }

        if (_scratch.Length < count)
        {
            // Doubling keeps the number of regrowths logarithmic when record sizes creep up.
            _scratch = new byte[Math.Clamp(2L * _scratch.Length, count, Math.Max(count, MaxBufferedBlockLength))];
        }

        rest.Slice(0, count).CopyTo(_scratch);
        bytes = _scratch.AsMemory(0, count);
        return true;
    }

    private void Consume(long count)
    {
        _position = _buffer.GetPosition(count, _position);
        _offset += count;
    }

    /// <summary>Hands consumed bytes back to the pipe and tells it that everything buffered has been examined.</summary>
    private void Release()
    {
        if (_holdingBuffer)
        {
            _holdingBuffer = false;
            _pipe.AdvanceTo(_position, _buffer.End);
        }
    }

    private void Accept(ReadResult result)
    {
        _buffer = result.Buffer;
        _position = _buffer.Start;
        _bufferStartOffset = _offset;
        _endOfStream = result.IsCompleted;
        _holdingBuffer = true;
    }
}
