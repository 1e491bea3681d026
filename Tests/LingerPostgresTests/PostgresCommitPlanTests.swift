import LingerLink
@testable import LingerPostgres
import NIOCore
import Testing

struct PostgresCommitPlanTests {
    private func batch(_ client: String, stream: String = "", epoch: UInt64, from first: UInt64, count: Int) -> LinkSinkBatch {
        var lines = ByteBuffer()
        var lengths: [UInt32] = []
        for sequence in first..<(first + UInt64(count)) {
            let text = "\(client) \(sequence)"
            lines.writeString(text + "\n")
            lengths.append(UInt32(text.utf8.count))
        }
        return LinkSinkBatch(key: LinkStreamKey(clientID: client, stream: stream), epoch: epoch, firstSequence: first, lines: lines, lengths: lengths)
    }

    @Test func aBatchThatContinuesItsStreamUnderTheNewestEpochIsInserted() {
        let next = batch("a", epoch: 3, from: 11, count: 5)
        let plan = PostgresCommitPlan(
            batches: [next], epochs: ["a": 3], marks: [LinkStreamKey(clientID: "a"): .init(sequence: 10, check: 1)])
        #expect(plan.decisions == [.insert])
        #expect(plan.newMarks[LinkStreamKey(clientID: "a")] == .init(sequence: 15, check: next.lastMessageCheck))
    }

    @Test func anOlderEpochIsFencedEvenWhenItsSequenceFits() {
        let plan = PostgresCommitPlan(batches: [batch("a", epoch: 2, from: 1, count: 3)], epochs: ["a": 3], marks: [:])
        #expect(plan.decisions == [.fenced] && plan.newMarks.isEmpty)
        #expect(plan.outcomes == [.fenced])
    }

    @Test func aClientNeverClaimedIsFenced() {
        let plan = PostgresCommitPlan(batches: [batch("ghost", epoch: 1, from: 1, count: 1)], epochs: [:], marks: [:])
        #expect(plan.decisions == [.fenced])
    }

    @Test func aGapIsFencedNotInserted() {
        let plan = PostgresCommitPlan(batches: [batch("a", epoch: 1, from: 5, count: 1)], epochs: ["a": 1], marks: [:])
        #expect(plan.decisions == [.fenced])
    }

    @Test func aGroupRetriedAfterItsCommitWasLostIsAcknowledgedWithoutInsertingAgain() {
        // The first attempt moved the mark to 20 and committed; its answer was lost; the same group comes again.
        let retried = [batch("a", epoch: 4, from: 11, count: 5), batch("a", epoch: 4, from: 16, count: 5)]
        let plan = PostgresCommitPlan(
            batches: retried, epochs: ["a": 4], marks: [LinkStreamKey(clientID: "a"): .init(sequence: 20, check: 9)])
        #expect(plan.decisions == [.alreadyStored, .alreadyStored])
        #expect(plan.outcomes == [.stored, .stored] && plan.newMarks.isEmpty)
    }

    @Test func batchesOfManyClientsAndStreamsAreDecidedEachOnTheirOwn() {
        let group = [
            batch("a", stream: "x", epoch: 1, from: 1, count: 2),
            batch("a", stream: "y", epoch: 1, from: 7, count: 1),
            batch("b", epoch: 1, from: 1, count: 1),
            batch("a", stream: "x", epoch: 1, from: 3, count: 2),
        ]
        let plan = PostgresCommitPlan(
            batches: group, epochs: ["a": 1, "b": 2], marks: [LinkStreamKey(clientID: "a", stream: "y"): .init(sequence: 6, check: 0)])
        #expect(plan.decisions == [.insert, .insert, .fenced, .insert])
        #expect(plan.newMarks[LinkStreamKey(clientID: "a", stream: "x")]?.sequence == 4)
        #expect(plan.newMarks[LinkStreamKey(clientID: "a", stream: "y")]?.sequence == 7)
        #expect(plan.newMarks[LinkStreamKey(clientID: "b")] == nil)
    }
}
