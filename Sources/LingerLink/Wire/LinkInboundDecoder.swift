import NIOCore

/// What the server's decoder hands on: one control frame, or a run of consecutive whole DATA frames left in
/// their wire form (no `LinkFrame` and no slice per message: the server's session walks them in place).
enum LinkInbound {
    case frame(LinkFrame)
    /// One or more complete DATA frames, back to back.
    case data(ByteBuffer)
}

/// The server's frame decoder: honours the configured maximum frame length (checked on the length field,
/// before the frame is buffered) and groups consecutive DATA frames into one ``LinkInbound/data(_:)``.
/// NIO's cumulation handles frames that straddle reads, whatever their size.
struct LinkInboundDecoder: ByteToMessageDecoder {
    typealias InboundOut = LinkInbound

    let maximumFrameLength: UInt32

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let run = try Self.readDataRun(&buffer, maximumFrameLength: maximumFrameLength) else {
            guard let frame = try buffer.readLinkFrame(maximumLength: maximumFrameLength) else { return .needMoreData }
            context.fireChannelRead(Self.wrapInboundOut(.frame(frame)))
            return .continue
        }
        context.fireChannelRead(Self.wrapInboundOut(.data(run)))
        return .continue
    }

    /// Reclaims the consumed front of NIO's cumulation buffer only when what is left is small (the tail of
    /// a frame that straddles reads): moving a large remainder on every read cost a tenth of the server's
    /// time with 1 KiB messages. A large remainder is consumed by the next decode anyway.
    mutating func shouldReclaimBytes(buffer: ByteBuffer) -> Bool {
        buffer.readerIndex >= 2048 && buffer.readableBytes <= 64 << 10
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        try LinkLimits.refuseLeftover(&buffer)
        return .needMoreData
    }

    /// Consumes the complete DATA frames at the front of `buffer`, as one slice; nil when the next frame is
    /// not a complete DATA frame (another type, or more bytes needed).
    static func readDataRun(_ buffer: inout ByteBuffer, maximumFrameLength: UInt32) throws(LinkProtocolError) -> ByteBuffer? {
        let length = buffer.withUnsafeReadableBytes { DataFrameLayout.wholeDataFrames(in: $0, maximumLength: maximumFrameLength) }
        guard length > 0 else { return nil }
        return buffer.readSlice(length: length)
    }
}

@available(*, unavailable)
extension LinkInboundDecoder: Sendable {}
