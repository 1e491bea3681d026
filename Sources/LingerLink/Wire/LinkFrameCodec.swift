public import NIOCore

/// Decodes link frames from a byte stream; a malformed frame fails the pipeline with a
/// ``LinkProtocolError`` (the connection handler answers ERROR and closes gracefully).
public struct LinkFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = LinkFrame

    /// The largest frame accepted, checked against the length field before the frame is buffered.
    public let maximumFrameLength: UInt32

    public init(maximumFrameLength: UInt32 = LinkLimits.defaultMaximumFrameLength) {
        self.maximumFrameLength = maximumFrameLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try buffer.readLinkFrame(maximumLength: maximumFrameLength) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        try LinkLimits.refuseLeftover(&buffer)
        return .needMoreData
    }
}

/// Size limits of the wire format.
public enum LinkLimits {
    /// 16 MiB + header: one message per frame, and a message larger than this is refused (a sender cuts a
    /// longer line to its `--max-line-bytes` before it gets here).
    public static let defaultMaximumFrameLength: UInt32 = 16 << 20 + 64
    /// At EOF: bytes that do not make a whole frame are an error (the connection ended inside a frame).
    static func refuseLeftover(_ buffer: inout ByteBuffer) throws(LinkProtocolError) {
        guard buffer.readableBytes > 0 else { return }
        let leftover = buffer.readableBytes
        buffer.moveReaderIndex(forwardBy: leftover)
        throw LinkProtocolError(.leftoverBytes(leftover))
    }

    /// Named streams open at once on one connection (the unnamed one not counted). The server refuses more;
    /// the client waits for one to close before it opens another.
    public static let maximumOpenStreams = 4096

    /// The bytes a DATA frame adds to its message: u32 length, u8 type, u32 stream, u64 sequence.
    public static let dataFrameOverhead = DataFrameLayout.payloadOffset
}
