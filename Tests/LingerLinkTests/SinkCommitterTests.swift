@testable import LingerLink
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

/// Group commit, retries and fatal errors, with a scripted sink and real event loops.
struct SinkCommitterTests {
    private func batch(_ client: String, epoch: UInt64, from first: UInt64, _ lines: [String]) -> LinkSinkBatch {
        var buffer = ByteBuffer()
        for line in lines { buffer.writeString(line + "\n") }
        return LinkSinkBatch(key: .init(clientID: client), epoch: epoch, firstSequence: first, lines: buffer, lengths: lines.map { UInt32($0.utf8.count) })
    }

    @Test func commitsThatWaitedAreStoredTogether() async throws {
        let sink = ScriptedSink()
        let committer = SinkCommitter(sink: sink, logger: Logger(label: #function), metrics: LinkMetrics(role: "test"))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            let a = try await committer.claim(clientID: "a", on: loop).get()
            let b = try await committer.claim(clientID: "b", on: loop).get()
            sink.hold()
            let first = committer.commit([batch("a", epoch: a.epoch, from: 1, ["a1"])], on: loop)
            try await Task.sleep(for: .milliseconds(50))  // the first commit is now inside the sink
            let waiting = (2...4).map { committer.commit([batch("a", epoch: a.epoch, from: UInt64($0), ["a\($0)"])], on: loop) }
                + [committer.commit([batch("b", epoch: b.epoch, from: 1, ["b1"])], on: loop)]
            sink.release()
            #expect(try await first.get() == [.stored])
            for future in waiting { #expect(try await future.get() == [.stored]) }
            #expect(sink.commitCalls.map(\.count) == [1, 4], "the four that waited went in one commit")
            #expect(sink.stored == "a1\na2\na3\na4\nb1\n")
            committer.finish()
            try await group.waitForAll()
        }
    }

    @Test func aRetryableFailureIsRetriedAndAFatalOneEndsTheRun() async throws {
        let sink = ScriptedSink()
        sink.state.withLock { $0.failures = [LinkSinkError("no space left on device", isRetryable: true), LinkSinkError("no space left on device", isRetryable: true)] }
        let metrics = LinkMetrics(role: "test")
        let committer = SinkCommitter(sink: sink, logger: Logger(label: #function), metrics: metrics, retryBackoff: ReconnectBackoff(initial: .milliseconds(5), maximum: .milliseconds(10)))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            let claim = try await committer.claim(clientID: "a", on: loop).get()
            #expect(try await committer.commit([batch("a", epoch: claim.epoch, from: 1, ["x"])], on: loop).get() == [.stored])
            #expect(sink.commitCalls.count == 3, "failed twice, stored on the third try")
            #expect(sink.stored == "x\n", "stored once")
            sink.state.withLock { $0.failures = [LinkSinkError("standard output was closed", isRetryable: false)] }
            await #expect(throws: LinkSinkError.self) {
                try await committer.commit([batch("a", epoch: claim.epoch, from: 2, ["y"])], on: loop).get()
            }
            await #expect(throws: LinkSinkError.self) { try await group.next() }
            await #expect(throws: LinkSinkError.self, "nothing more is taken after a fatal error") {
                try await committer.claim(clientID: "b", on: loop).get()
            }
        }
    }
}
