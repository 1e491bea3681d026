@testable import LingerLink
import Logging
import NIOCore
import NIOEmbedded
import Testing

/// The server's connection handler, driven frame by frame on an EmbeddedChannel.
struct ServerHandlerTests {
    final class RecordingSink: LinkSink, @unchecked Sendable {
        var stored = ""
        var marks: [String: UInt64] = [:]
        func highestAccepted(clientID: String) -> UInt64 { marks[clientID] ?? 0 }
        func store(clientID: String, through sequence: UInt64, records: ByteBuffer) {
            stored += String(buffer: records)
            marks[clientID] = sequence
        }
        var needsRecords: Bool { true }
        func close() {}
    }

    private func makeChannel(sink: RecordingSink, tokens: [String] = []) throws -> (EmbeddedChannel, LinkMetrics) {
        let metrics = LinkMetrics(role: "test")
        let sessions = SessionTable(sink: sink)
        let handler = ServerConnectionHandler(
            sessions: sessions,
            settings: .init(tokens: tokens, idleTimeout: .seconds(30), closeDeadline: .seconds(1), maximumFrameLength: 4096, serverID: "t"),
            logger: Logger(label: "test"), metrics: metrics)
        let channel = EmbeddedChannel(handler: handler)
        #expect(sessions.admit(channel, limit: 10))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, metrics)
    }

    private func send(_ frames: [LinkFrame], to channel: EmbeddedChannel) throws {
        var buffer = ByteBuffer()
        for frame in frames { buffer.writeLinkFrame(frame) }
        try channel.writeInbound(buffer)
    }

    private func replies(_ channel: EmbeddedChannel) throws -> [LinkFrame] {
        var frames: [LinkFrame] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            while let frame = try buffer.readLinkFrame(maximumLength: 4096) { frames.append(frame) }
        }
        return frames
    }

    @Test func resumesDedupesAndAcknowledgesPerBatch() throws {
        let sink = RecordingSink()
        sink.marks["c1"] = 2
        let (channel, _) = try makeChannel(sink: sink)
        try send([.hello(.init(clientID: "c1", token: ""))], to: channel)
        #expect(try replies(channel) == [.welcome(serverID: "t", highestAccepted: 2)])
        let data = { (n: UInt64) in LinkFrame.data(sequence: n, payload: ByteBuffer(string: "m\(n)")) }
        try send([data(1), data(2), data(3), data(3), data(4)], to: channel)
        #expect(try replies(channel) == [.ack(sequence: 4)], "one ack for the read batch")
        #expect(sink.stored == "m3\nm4\n", "1 and 2 were already stored; the repeated 3 is dropped")
        try send([.ping(token: 9)], to: channel)
        #expect(try replies(channel) == [.pong(token: 9)])
        _ = try? channel.finish()
    }

    @Test func aGapIsAProtocolErrorFollowedByAGracefulClose() throws {
        let sink = RecordingSink()
        let (channel, _) = try makeChannel(sink: sink)
        try send([.hello(.init(clientID: "c1", token: "")), .data(sequence: 2, payload: ByteBuffer(string: "x"))], to: channel)
        let frames = try replies(channel)
        #expect(frames.count == 2)
        if case .error(let code, _) = frames.last { #expect(code == .protocolError) } else { Issue.record("expected ERROR, got \(frames)") }
        #expect(sink.stored.isEmpty)
        _ = try? channel.finish()
    }

    @Test func aWrongTokenGetsTheReasonAndNoSession() throws {
        let sink = RecordingSink()
        let (channel, _) = try makeChannel(sink: sink, tokens: ["good"])
        try send([.hello(.init(clientID: "c1", token: "bad")), .data(sequence: 1, payload: ByteBuffer(string: "x"))], to: channel)
        let frames = try replies(channel)
        guard case .error(let code, let text) = frames.first else {
            Issue.record("expected ERROR, got \(frames)")
            return
        }
        #expect(code == .unauthorized && text.contains("authentication failed"))
        #expect(frames.count == 1 && sink.stored.isEmpty, "nothing after the refusal is accepted")
        _ = try? channel.finish()
    }

    @Test func peerEOFStoresAcknowledgesAndCloses() throws {
        let sink = RecordingSink()
        let (channel, _) = try makeChannel(sink: sink)
        try send([.hello(.init(clientID: "c1", token: "")), .data(sequence: 1, payload: ByteBuffer(string: "last"))], to: channel)
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(sink.stored == "last\n")
        #expect(try replies(channel).last == .ack(sequence: 1))
        #expect(!channel.isActive, "closed at once: no CLOSE_WAIT")
    }
}

struct OutboxTests {
    @Test func resendsExactlyWhatTheServerLacks() {
        var outbox = Outbox()
        var batch = LinkBatch()
        for i in 1...10 { batch.append(Array("m\(i)".utf8)) }
        #expect(outbox.append(batch: batch) == 10)
        #expect(outbox.takeUnsent().reduce(0) { $0 + $1.readableBytes } == outbox.bytes)
        outbox.acknowledge(through: 4)
        #expect(outbox.count == 6)
        // Reconnect: the server holds 6 (its ack for 5 and 6 was lost with the connection).
        #expect(outbox.resume(serverHighest: 6) == 4)
        var resent = ByteBuffer()
        for var slice in outbox.takeUnsent() { resent.writeBuffer(&slice) }
        var sequences: [UInt64] = []
        while let frame = try? resent.readLinkFrame(maximumLength: 1024) {
            if case .data(let sequence, _) = frame { sequences.append(sequence) }
        }
        #expect(sequences == [7, 8, 9, 10])
        outbox.acknowledge(through: 10)
        #expect(outbox.isEmpty && outbox.bytes == 0)
    }

    @Test func aServerAheadMovesNumberingOn() {
        var outbox = Outbox()
        #expect(outbox.resume(serverHighest: 500) == 0)
        var batch = LinkBatch()
        batch.append(Array("x".utf8))
        #expect(outbox.append(batch: batch) == 501)
    }

    @Test func backoffIsJitteredAndCapped() {
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(2))
        var generator = SplitMix64(seed: 1)
        let delays = (0..<50).map { _ in backoff.next(using: &generator) }
        #expect(delays.allSatisfy { $0 >= .milliseconds(100) && $0 <= .seconds(2) })
        #expect(Set(delays).count > 10, "jittered, not a fixed sequence")
        #expect(delays.contains { $0 > .seconds(1) }, "grows toward the cap")
    }
}

extension ServerHandlerTests {
    /// Every way two reads can split a stream (inside the length field, the type, the sequence, the
    /// payload): all messages are acknowledged as soon as the second read arrives, none later.
    @Test func framesSplitAcrossReadsAtEveryOffset() throws {
        var stream = ByteBuffer()
        for n in 1...3 { stream.writeLinkFrame(.data(sequence: UInt64(n), payload: ByteBuffer(string: "payload-\(n)"))) }
        for cut in 1..<stream.readableBytes {
            let sink = RecordingSink()
            let (channel, _) = try makeChannel(sink: sink)
            try send([.hello(.init(clientID: "c1", token: ""))], to: channel)
            _ = try replies(channel)
            try channel.writeInbound(stream.getSlice(at: 0, length: cut)!)
            try channel.writeInbound(stream.getSlice(at: cut, length: stream.readableBytes - cut)!)
            #expect(try replies(channel).last == .ack(sequence: 3), "cut at \(cut)")
            #expect(sink.stored == "payload-1\npayload-2\npayload-3\n", "cut at \(cut)")
            _ = try? channel.finish()
        }
    }
}
