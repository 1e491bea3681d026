@testable import LingerLink
import NIOCore
import Testing

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
        let resumption = outbox.resume(serverHighest: 6)
        #expect(resumption.resent == 4)
        #expect(resumption.acknowledged == 2, "5 and 6 count as acknowledged")
        var resent = ByteBuffer()
        for var slice in outbox.takeUnsent() { resent.writeBuffer(&slice) }
        var sequences: [UInt64] = []
        while let frame = try? resent.readLinkFrame(maximumLength: 1024) {
            if case .data(_, let sequence, _) = frame { sequences.append(sequence) }
        }
        #expect(sequences == [7, 8, 9, 10])
        outbox.acknowledge(through: 10)
        #expect(outbox.isEmpty && outbox.bytes == 0)
    }

    /// A batch handed over is stamped where it lies: copying it would touch every byte again, and a
    /// short-lived sender would fault in fresh pages for all of it.
    @Test func aBatchHandedOverIsStampedInPlace() throws {
        var outbox = Outbox()
        var batch = LinkBatch()
        for i in 1...100 { batch.append(Array("line \(i)".utf8)) }
        let storage = batch.buffer.withUnsafeReadableBytes { $0.baseAddress }
        #expect(outbox.append(batch: consume batch) == 100)
        let chunk = try #require(outbox.chunks.first)
        #expect(chunk.buffer.withUnsafeReadableBytes { $0.baseAddress } == storage)
    }

    /// A batch the caller still holds is copied before stamping, so the caller's bytes never change.
    @Test func aBatchStillHeldIsLeftAsItWas() throws {
        var outbox = Outbox()
        _ = outbox.resume(serverHighest: 41)
        var batch = LinkBatch()
        batch.append(Array("kept".utf8))
        let held = batch
        outbox.append(batch: batch)
        var mine = held.buffer
        guard case .data(_, let sequence, _) = try #require(try mine.readLinkFrame(maximumLength: 1024)) else {
            Issue.record("not a DATA frame"); return
        }
        #expect(sequence == 0, "the held batch keeps its unstamped frame")
        var sent = try #require(outbox.takeUnsent().first)
        guard case .data(_, let stamped, _) = try #require(try sent.readLinkFrame(maximumLength: 1024)) else {
            Issue.record("not a DATA frame"); return
        }
        #expect(stamped == 42)
    }

    @Test func aServerAheadMovesNumberingOn() {
        var outbox = Outbox()
        #expect(outbox.resume(serverHighest: 500) == (0, 0))
        var batch = LinkBatch()
        batch.append(Array("x".utf8))
        #expect(outbox.append(batch: batch) == 501)
    }

    @Test func backoffIsJitteredCappedAndNeverAStorm() {
        var generator = SplitMix64(seed: 1)
        for round in 0..<200 {
            var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(2))
            if round.isMultiple(of: 2) { _ = backoff.next(using: &generator); backoff.reset() }
            let delays = (0..<30).map { _ in backoff.next(using: &generator) }
            #expect(delays.allSatisfy { $0 >= .milliseconds(50) && $0 <= .seconds(2) })
            // Whatever the dice: at most four retries within the first second.
            var elapsed = Duration.zero, withinASecond = 0
            for delay in delays {
                elapsed += delay
                if elapsed <= .seconds(1) { withinASecond += 1 }
            }
            #expect(withinASecond <= 4, "\(delays.prefix(6))")
            #expect(delays.suffix(20).allSatisfy { $0 >= .seconds(1) }, "at the cap, jittered between half and all of it")
        }
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(2))
        #expect(Set((0..<50).map { _ in backoff.next(using: &generator) }).count > 10, "jittered, not a fixed sequence")
    }

    @Test func extremeDelaysNeitherOverflowNorTrap() {
        var generator = SplitMix64(seed: 3)
        var huge = ReconnectBackoff(initial: .seconds(Int64.max / 2), maximum: .seconds(Int64.max))
        for _ in 0..<100 { _ = huge.next(using: &generator) }
        var tiny = ReconnectBackoff(initial: .nanoseconds(1), maximum: .seconds(Int64.max))
        for _ in 0..<100 { #expect(tiny.next(using: &generator) >= .milliseconds(1)) }
    }

    /// From an initial delay of 0 the delays never grew (0 × 3 = 0): a reconnect storm.
    @Test func aZeroInitialDelayStillGrows() {
        var backoff = ReconnectBackoff(initial: .zero, maximum: .seconds(1))
        var generator = SplitMix64(seed: 2)
        let delays = (0..<40).map { _ in backoff.next(using: &generator) }
        #expect(delays.allSatisfy { $0 >= .milliseconds(1) }, "\(delays)")
        #expect(delays.contains { $0 >= .milliseconds(100) }, "grows toward the cap (jittered: it may fall back): \(delays)")
    }
}

