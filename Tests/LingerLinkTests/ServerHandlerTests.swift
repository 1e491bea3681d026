@testable import LingerLink
import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

/// The server's connection handler on a testing channel with a controllable clock: every close path ends
/// in a closed channel, and the ACK waits for the sink.
struct ServerHandlerTests {
    static let idle = TimeAmount.seconds(30), deadline = TimeAmount.seconds(5)

    /// A server pipeline on an `NIOAsyncTestingChannel`, with a running committer over `sink`.
    final class Harness: Sendable {
        let sink: ScriptedSink
        let committer: SinkCommitter
        let registry = ConnectionRegistry(limit: 10)
        let budget: PendingBudget

        init(sink: ScriptedSink = ScriptedSink(), budget: Int = 1 << 30) {
            self.sink = sink
            self.budget = PendingBudget(limit: budget)
            committer = SinkCommitter(sink: sink, logger: Logger(label: "test"), metrics: LinkMetrics(role: "test"))
        }

        func connection(tokens: [LinkToken] = []) async throws -> NIOAsyncTestingChannel {
            let settings = ServerConnectionHandler.Settings(
                session: .init(tokens: tokens, serverID: "t", keepMessageBytes: true, acceptsNewlines: false, pendingLimit: 64),
                idleTimeout: ServerHandlerTests.idle, closeDeadline: ServerHandlerTests.deadline)
            let committer = self.committer, registry = self.registry, budget = self.budget
            let channel = try await NIOAsyncTestingChannel { channel in
                let operations = channel.pipeline.syncOperations
                try operations.addHandler(IdleStateHandler(readTimeout: ServerHandlerTests.idle))
                try operations.addHandler(ByteToMessageHandler(LinkInboundDecoder(maximumFrameLength: 4096)))
                try operations.addHandler(ServerConnectionHandler(
                    settings: settings, committer: committer, budget: budget, registry: registry, logger: Logger(label: "test"), metrics: LinkMetrics(role: "test")))
            }
            #expect(registry.admit(channel))
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
            return channel
        }

        /// Runs `body` with the committer running.
        func run(_ body: @Sendable (Harness) async throws -> Void) async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try? await self.committer.run() }
                try await body(self)
                committer.finish()
                try await group.waitForAll()
            }
        }
    }

    static func send(_ frames: [LinkFrame], to channel: NIOAsyncTestingChannel) async throws {
        var buffer = ByteBuffer()
        for frame in frames { buffer.writeLinkFrame(frame) }
        try await channel.writeInbound(buffer)
    }

    /// Waits (bounded) until the handler has written `count` frames, running the loop so that the sink's
    /// answers, which arrive from another thread, are processed.
    static func replies(_ channel: NIOAsyncTestingChannel, count: Int = 1) async throws -> [LinkFrame] {
        var frames: [LinkFrame] = []
        for _ in 0..<500 where frames.count < count {
            await channel.testingEventLoop.run()
            while var buffer = try await channel.readOutbound(as: ByteBuffer.self) {
                while let frame = try buffer.readLinkFrame(maximumLength: 4096) { frames.append(frame) }
            }
            if frames.count < count { try await Task.sleep(for: .milliseconds(2)) }
        }
        return frames
    }

    /// Ends a test's channel (closed already or not) and checks that the handler passed nothing inbound down
    /// the pipeline: it is the last handler, so a leftover inbound message is a frame it failed to take.
    /// Outbound leftovers (a GOAWAY written on close) are the server speaking, and are allowed.
    static func finish(_ channel: NIOAsyncTestingChannel, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        if case .leftOvers(let inbound, _, _) = try await channel.finish(acceptAlreadyClosed: true) {
            #expect(inbound.isEmpty, "unread inbound messages: \(inbound)", sourceLocation: sourceLocation)
        }
    }

    static func isClosed(_ channel: NIOAsyncTestingChannel) async -> Bool {
        await channel.testingEventLoop.run()
        return !channel.isActive
    }

    @Test func theAckWaitsForTheSinkAndAWaitingClientHearsPings() async throws {
        try await Harness().run { harness in
            let channel = try await harness.connection()
            try await Self.send([hello(idleMilliseconds: 3000)], to: channel)
            #expect(try await Self.replies(channel) == [.welcome(serverID: "t", highestAccepted: 0, features: .current)])
            harness.sink.hold()
            try await Self.send([.data(sequence: 1, payload: ByteBuffer(string: "a")), .data(sequence: 2, payload: ByteBuffer(string: "b"))], to: channel)
            try await Task.sleep(for: .milliseconds(20))
            #expect(try await Self.replies(channel, count: 0).isEmpty, "no ACK before the sink committed")
            // IdleStateHandler measures real time, so its events are fired here as it would fire them; the
            // integration tests run it for real.
            let keepaliveTimer = try await channel.testingEventLoop.executeInContext {
                try channel.pipeline.syncOperations.handler(type: IdleStateHandler.self).writeTimeout
            }
            #expect(keepaliveTimer == .milliseconds(1000), "keepalive at a third of the client's idle timeout")
            channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.write)
            let keepalive = try await Self.replies(channel)
            #expect(keepalive == [.ping(token: 0)], "\(keepalive)")
            channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
            try await Task.sleep(for: .milliseconds(10))
            #expect(try await Self.replies(channel, count: 0).isEmpty && channel.isActive,
                "the server's idle timeout does not count time spent waiting for the sink")
            harness.sink.release()
            let frames = try await Self.replies(channel)
            #expect(frames.contains(.ack(sequence: 2)), "\(frames)")
            #expect(harness.sink.stored == "a\nb\n")
            try await Self.finish(channel)
        }
    }

    /// Counts the reads that pass the handlers behind it (put it first, next to the socket).
    final class ReadCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = ByteBuffer
        let reads = Atomic(0)
        func read(context: ChannelHandlerContext) {
            reads.add(1, ordering: .relaxed)
            context.read()
        }
    }

    @Test func theSharedBudgetPausesEveryConnectionUntilACommitGivesBytesBack() async throws {
        try await Harness(budget: 8).run { harness in
            let first = try await harness.connection()
            try await Self.send([hello("first")], to: first)
            _ = try await Self.replies(first)
            let second = try await harness.connection()
            try await Self.send([hello("second", idleMilliseconds: 3000)], to: second)
            _ = try await Self.replies(second)
            let counter = ReadCounter()
            try await second.testingEventLoop.executeInContext {
                try second.pipeline.syncOperations.addHandler(counter, position: .first)
            }
            second.read()
            await second.testingEventLoop.run()
            #expect(counter.reads.load(ordering: .relaxed) == 1, "room in the budget: reads pass")
            harness.sink.hold()
            // 10 bytes of lines ("aaaa\nbbbb\n") held by the commit in flight: over the budget of 8.
            try await Self.send([.data(sequence: 1, payload: ByteBuffer(string: "aaaa")), .data(sequence: 2, payload: ByteBuffer(string: "bbbb"))], to: first)
            await first.testingEventLoop.run()
            #expect(harness.budget.held == 10)
            second.read()
            await second.testingEventLoop.run()
            #expect(counter.reads.load(ordering: .relaxed) == 1, "the other connection pauses while the budget is spent")
            // Its silence is the server's now: it gets PINGs and is not timed out (IdleStateHandler's events,
            // fired here as it would fire them).
            second.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.write)
            #expect(try await Self.replies(second) == [.ping(token: 0)])
            second.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
            #expect(try await Self.replies(second, count: 0).isEmpty && second.isActive, "no GOAWAY for the server's own pause")
            harness.sink.release()
            #expect(try await Self.replies(first).contains(.ack(sequence: 2)))
            for _ in 0..<500 where counter.reads.load(ordering: .relaxed) < 2 {
                await second.testingEventLoop.run()
                try await Task.sleep(for: .milliseconds(2))
            }
            #expect(counter.reads.load(ordering: .relaxed) == 2, "woken once the commit gave its bytes back")
            #expect(harness.budget.held == 0)
            try await Self.finish(first)
            try await Self.finish(second)
        }
    }

    @Test func aClosedConnectionGivesBackWhatItHeld() async throws {
        try await Harness(budget: 8).run { harness in
            let channel = try await harness.connection()
            try await Self.send([hello("leaving")], to: channel)
            _ = try await Self.replies(channel)
            harness.sink.hold()
            try await Self.send([.data(sequence: 1, payload: ByteBuffer(string: "aaaa"))], to: channel)
            try await Self.send([.data(sequence: 2, payload: ByteBuffer(string: "bbbbbb"))], to: channel)
            await channel.testingEventLoop.run()
            #expect(harness.budget.held == 12, "5 bytes in the commit in flight, 7 pending")
            try await Self.finish(channel)
            #expect(harness.budget.held == 5, "the pending batch is dropped with the connection")
            harness.sink.release()
            for _ in 0..<500 where harness.budget.held > 0 { try await Task.sleep(for: .milliseconds(2)) }
            #expect(harness.budget.held == 0, "the commit in flight gives its bytes back when it returns")
        }
    }

    @Test func aFatalSinkFailureSendsGoAwayAndTheDeadlineCloses() async throws {
        let sink = ScriptedSink()
        sink.state.withLock { $0.failures = [LinkSinkError("standard output was closed", isRetryable: false)] }
        try await Harness(sink: sink).run { harness in
            let channel = try await harness.connection()
            try await Self.send([hello()], to: channel)
            _ = try await Self.replies(channel)
            try await Self.send([.data(sequence: 1, payload: ByteBuffer(string: "a"))], to: channel)
            let frames = try await Self.replies(channel)
            guard case .goAway(.shuttingDown, let text) = frames.last else { Issue.record("expected GOAWAY, got \(frames)"); return }
            #expect(text.contains("standard output was closed"))
            #expect(!frames.contains(.ack(sequence: 1)), "nothing acknowledged that was not stored")
            #expect(!(await Self.isClosed(channel)), "the client closes first")
            await channel.testingEventLoop.advanceTime(by: Self.deadline)
            #expect(await Self.isClosed(channel), "closed at the deadline")
        }
    }

    @Test func overTheConnectionLimitGetsAnErrorAndAClose() async throws {
        try await Harness().run { harness in
            let channel = try await harness.connection()
            channel.pipeline.fireUserInboundEventTriggered(RefuseConnection())
            guard case .error(.tooManyConnections, _) = try await Self.replies(channel).first else { Issue.record("expected ERROR"); return }
            await channel.testingEventLoop.advanceTime(by: Self.deadline)
            #expect(await Self.isClosed(channel))
        }
    }

    @Test func aNewerConnectionReplacesTheOlderOne() async throws {
        try await Harness().run { harness in
            let old = try await harness.connection()
            try await Self.send([hello()], to: old)
            _ = try await Self.replies(old)
            try await Self.send([.data(sequence: 1, payload: ByteBuffer(string: "from old"))], to: old)
            #expect(try await Self.replies(old) == [.ack(sequence: 1)])
            let new = try await harness.connection()
            try await Self.send([hello()], to: new)
            #expect(try await Self.replies(new) == [.welcome(serverID: "t", highestAccepted: 1, features: .current)], "resumes after what the old one stored")
            let dismissal = try await Self.replies(old)
            guard case .goAway(.replaced, let text) = dismissal.first else { Issue.record("expected GOAWAY replaced, got \(dismissal)"); return }
            #expect(text.contains("another sender took over client id c1"))
            try await Self.send([.data(sequence: 2, payload: ByteBuffer(string: "late from old"))], to: old)
            try await Self.send([.data(sequence: 2, payload: ByteBuffer(string: "from new"))], to: new)
            #expect(try await Self.replies(new) == [.ack(sequence: 2)])
            #expect(harness.sink.stored == "from old\nfrom new\n", "the replaced connection stored nothing more")
            await old.testingEventLoop.advanceTime(by: Self.deadline)
            #expect(await Self.isClosed(old))
            try await Self.finish(new)
        }
    }

    @Test func anIdleClientGetsGoAwayAndIsClosedAtTheDeadline() async throws {
        try await Harness().run { harness in
            let channel = try await harness.connection()
            try await Self.send([hello()], to: channel)
            _ = try await Self.replies(channel)
            channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.write)
            channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
            let frames = try await Self.replies(channel)
            guard case .goAway(.idleTimeout, _) = frames.first else { Issue.record("expected GOAWAY alone, got \(frames)"); return }
            #expect(!(await Self.isClosed(channel)))
            await channel.testingEventLoop.advanceTime(by: Self.deadline)
            #expect(await Self.isClosed(channel))
        }
    }

    @Test func anErrorIsFollowedByAGracefulCloseWithADeadline() async throws {
        try await Harness().run { harness in
            let channel = try await harness.connection(tokens: [LinkToken(secret: "good")])
            try await Self.send([hello(token: "bad")], to: channel)
            guard case .error(.unauthorized, _) = try await Self.replies(channel).first else { Issue.record("expected ERROR"); return }
            // The testing channel has no half-close, so shutting the output closes it here; on real sockets the
            // integration tests check that the client gets the text and an EOF, never a reset.
            await channel.testingEventLoop.advanceTime(by: Self.deadline)
            #expect(await Self.isClosed(channel))
        }
    }

    @Test func aWriteErrorClosesAtOnce() async throws {
        try await Harness().run { harness in
            let channel = try await harness.connection()
            try await Self.send([hello()], to: channel)
            _ = try await Self.replies(channel)
            channel.pipeline.fireErrorCaught(IOError(errnoCode: 32, reason: "write"))
            #expect(await Self.isClosed(channel))
        }
    }

    @Test func peerEOFCommitsAcknowledgesAndCloses() async throws {
        try await Harness().run { harness in
            let channel = try await harness.connection()
            try await Self.send([hello()], to: channel)
            _ = try await Self.replies(channel)
            try await Self.send([.data(sequence: 1, payload: ByteBuffer(string: "last"))], to: channel)
            channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            let frames = try await Self.replies(channel)
            #expect(frames.last == .ack(sequence: 1))
            #expect(harness.sink.stored == "last\n")
            #expect(await Self.isClosed(channel), "closed once acknowledged: no CLOSE_WAIT")
        }
    }

    @Test func framesSplitAcrossReadsAtEveryOffset() async throws {
        var stream = ByteBuffer()
        for n in 1...3 { stream.writeLinkFrame(.data(sequence: UInt64(n), payload: ByteBuffer(string: "payload-\(n)"))) }
        let whole = stream
        try await Harness().run { harness in
            for cut in 1..<whole.readableBytes {
                let channel = try await harness.connection()
                try await Self.send([hello("c\(cut)")], to: channel)
                _ = try await Self.replies(channel)
                try await channel.writeInbound(whole.getSlice(at: 0, length: cut)!)
                try await channel.writeInbound(whole.getSlice(at: cut, length: whole.readableBytes - cut)!)
                var acked: UInt64 = 0
                for _ in 0..<3 where acked < 3 {
                    for frame in try await Self.replies(channel) { if case .ack(_, let n) = frame { acked = n } }
                }
                #expect(acked == 3, "cut at \(cut)")
                try await Self.finish(channel)
            }
        }
    }
}
