@testable import LingerLink
import NIOCore
import NIOEmbedded
import Testing

struct WireTests {
    static let frames: [LinkFrame] = [
        .hello(LinkFrame.Hello(clientID: "web-1", token: "s3cret")),
        .welcome(serverID: "linger", highestAccepted: 41),
        .welcome(serverID: "linger", highestAccepted: 0, streams: [
            LinkStreamMark(stream: "f1024-9ae16a3b2f90404f-0", sequence: 7, check: 0xdead_beef),
            LinkStreamMark(stream: "spool", sequence: 0, check: 0),
        ]),
        .welcome(serverID: "linger", highestAccepted: 3, streams: [
            LinkStreamMark(stream: "f1024-9ae16a3b2f90404f-0", sequence: 7, check: 0xdead_beef, digest: 0x0000_0040_1234_5678),
            LinkStreamMark(stream: "spool", sequence: 0, check: 0),
        ], features: .current),
        .welcome(serverID: "linger", highestAccepted: 0, streams: [], features: .streamClose),
        .open(stream: 3, id: "f1024-9ae16a3b2f90404f-0"),
        .closeStream(stream: 3),
        .data(sequence: 42, payload: ByteBuffer(string: "hello, world")),
        .data(stream: 3, sequence: 1, payload: ByteBuffer(string: "on a named stream")),
        .data(sequence: 43, payload: ByteBuffer()),
        .ack(sequence: 43), .ack(stream: 3, sequence: 1), .ping(token: 7), .pong(token: 7),
        .goAway(code: .shuttingDown, text: "bye"),
        .error(code: .unauthorized, text: "authentication failed: the token is not accepted"),
    ]

    @Test(arguments: frames)
    func everyFrameRoundTrips(_ frame: LinkFrame) throws {
        var buffer = ByteBuffer()
        let written = buffer.writeLinkFrame(frame)
        #expect(written == buffer.readableBytes)
        #expect(buffer.getInteger(at: 0, as: UInt32.self) == UInt32(written - 4), "length counts what follows it")
        #expect(try buffer.readLinkFrame(maximumLength: 1024) == frame)
        #expect(buffer.readableBytes == 0)
    }

    @Test func dataFrameLayoutIsTheDocumentedOne() {
        var buffer = ByteBuffer()
        buffer.writeDataFrame(sequence: 1, payload: Array("ab".utf8))
        #expect(Array(buffer.readableBytesView) == [0, 0, 0, 15, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 97, 98])
    }

    @Test func decoderHandlesOneByteAtATimeAndManyFramesPerRead() throws {
        var all = ByteBuffer()
        for frame in Self.frames { all.writeLinkFrame(frame) }
        // Drip-fed one byte at a time.
        let drip = EmbeddedChannel(handler: ByteToMessageHandler(LinkFrameDecoder()))
        for byte in all.readableBytesView { try drip.writeInbound(ByteBuffer(bytes: [byte])) }
        var decoded: [LinkFrame] = []
        while let frame = try drip.readInbound(as: LinkFrame.self) { decoded.append(frame) }
        #expect(decoded == Self.frames)
        #expect(try drip.finish().isClean)
        // All at once.
        let batch = EmbeddedChannel(handler: ByteToMessageHandler(LinkFrameDecoder()))
        try batch.writeInbound(all)
        decoded = []
        while let frame = try batch.readInbound(as: LinkFrame.self) { decoded.append(frame) }
        #expect(decoded == Self.frames)
        #expect(try batch.finish().isClean)
    }

    @Test func oversizedLengthIsRefusedBeforeBuffering() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32.max)  // claims 4 GiB; only 5 bytes follow
        buffer.writeBytes([3, 0, 0, 0, 0])
        #expect(throws: LinkProtocolError(.frameTooLarge(length: UInt32.max, limit: 1024))) {
            try buffer.readLinkFrame(maximumLength: 1024)
        }
    }

    @Test func malformedFramesGetTypedErrors() {
        func decode(_ bytes: [UInt8]) throws(LinkProtocolError) -> LinkFrame? {
            var buffer = ByteBuffer(bytes: bytes)
            return try buffer.readLinkFrame(maximumLength: 1024)
        }
        #expect(throws: LinkProtocolError(.emptyFrame)) { try decode([0, 0, 0, 0]) }
        #expect(throws: LinkProtocolError(.unknownType(99))) { try decode([0, 0, 0, 1, 99]) }
        #expect(throws: LinkProtocolError(.truncated(kind: 4, length: 3))) { try decode([0, 0, 0, 3, 4, 0, 0]) }
        #expect(throws: LinkProtocolError.self) { try decode([0, 0, 0, 5, 1, 0, 1, 0, 9]) }  // client id overruns
        #expect(throws: LinkProtocolError.self) { try decode([0, 0, 0, 5, 8, 0, 1, 0xFF, 0xFE]) }  // text not UTF-8
        let incomplete = try? decode([0, 0, 0, 9, 4])
        #expect(incomplete == .some(nil), "incomplete: wait for more")
    }

    @Test func leftoverBytesAtEOFAreAnError() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LinkFrameDecoder()))
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 9, 4, 0]))
        #expect(throws: LinkProtocolError(.leftoverBytes(6))) { try channel.finish() }
    }

    /// Seeded random garbage: every outcome is a frame, "need more" or a typed error — never a crash, and
    /// never a buffer beyond the limit.
    @Test func randomBytesNeverCrashTheDecoder() {
        var generator = SplitMix64(seed: 0x11E6_E7)
        var errors = 0, frames = 0
        for _ in 0..<20_000 {
            let count = Int(generator.next() % 64)
            var buffer = ByteBuffer(bytes: (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
            do {
                while let _ = try buffer.readLinkFrame(maximumLength: 4096) { frames += 1 }
            } catch {
                errors += 1
            }
        }
        #expect(errors > 1000, "garbage is mostly refused (\(errors) errors, \(frames) frames)")
    }
}

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The server's decoder: a run of DATA frames in one slice, any frame size up to the configured limit.
struct InboundDecoderTests {
    /// Regression: frames that straddled reads were capped at the default limit, so a large frame under a
    /// raised limit stalled. A 20 MiB frame under a 32 MiB limit, fed in 64 KiB reads, must come out whole.
    @Test func aFrameLargerThanTheDefaultLimitStraddlingManyReadsArrivesWhole() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LinkInboundDecoder(maximumFrameLength: 32 << 20)))
        var frame = ByteBuffer()
        frame.writeLinkFrame(.data(sequence: 1, payload: ByteBuffer(repeating: 0x61, count: 20 << 20)))
        let total = frame.readableBytes
        var offset = 0
        while offset < total {
            let length = min(64 << 10, total - offset)
            try channel.writeInbound(frame.getSlice(at: offset, length: length)!)
            offset += length
        }
        guard case .data(let run)? = try channel.readInbound(as: LinkInbound.self) else {
            Issue.record("no DATA run came out")
            return
        }
        #expect(run.readableBytes == total)
        #expect(try channel.finish().isClean)
    }

    @Test func consecutiveDataFramesComeOutAsOneRunAndOtherFramesAlone() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LinkInboundDecoder(maximumFrameLength: 4096)))
        var buffer = ByteBuffer()
        for n in 1...3 { buffer.writeLinkFrame(.data(sequence: UInt64(n), payload: ByteBuffer(string: "m\(n)"))) }
        buffer.writeLinkFrame(.ping(token: 5))
        buffer.writeLinkFrame(.data(sequence: 4, payload: ByteBuffer(string: "m4")))
        try channel.writeInbound(buffer)
        guard case .data(let run)? = try channel.readInbound(as: LinkInbound.self) else { Issue.record("expected a run"); return }
        #expect(run.readableBytes == 3 * 19)
        guard case .frame(.ping(5))? = try channel.readInbound(as: LinkInbound.self) else { Issue.record("expected PING"); return }
        guard case .data(let last)? = try channel.readInbound(as: LinkInbound.self) else { Issue.record("expected a run"); return }
        #expect(last.readableBytes == 19)
        #expect(try channel.finish().isClean)
    }

    @Test func anOversizedLengthIsRefusedBeforeItIsBuffered() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LinkInboundDecoder(maximumFrameLength: 4096)))
        var header = ByteBuffer()
        header.writeInteger(UInt32(1 << 30))
        header.writeInteger(UInt8(3))
        #expect(throws: LinkProtocolError.self) { try channel.writeInbound(header) }
        // The refused header was not buffered for a later decode, so nothing is left to hand on at the end.
        #expect(try channel.finish(acceptAlreadyClosed: true).isClean)
    }

    /// The layout's own type byte is the frame kind's: the inlinable writers cannot name the internal enum.
    @Test func theDataLayoutAgreesWithTheFrameKinds() throws {
        #expect(DataFrameLayout.type == LinkFrame.Kind.data.rawValue)
        #expect(LinkLimits.dataFrameOverhead == DataFrameLayout.payloadOffset)
        var buffer = ByteBuffer()
        buffer.writeDataFrame(stream: 7, sequence: 9, payload: Array("abc".utf8))
        let fast = buffer
        var slow = ByteBuffer()
        slow.writeLinkFrame(.data(stream: 7, sequence: 9, payload: ByteBuffer(string: "abc")))
        #expect(fast == slow, "both writers lay the frame out the same way")
        buffer.withUnsafeReadableBytes { bytes in
            let frame = DataFrameLayout.Frame(bytes, at: 0)
            #expect(frame.stream == 7 && frame.sequence == 9 && Array(frame.payload) == Array("abc".utf8) && frame.end == bytes.count)
        }
    }
}
