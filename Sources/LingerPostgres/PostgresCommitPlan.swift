import LingerLink

/// Decides, inside the commit's transaction, what each batch of a group does: be inserted, be taken as
/// already stored, or be fenced. Pure, so the rule is tested without a database.
///
/// The epochs and marks it reads were selected in the same transaction, with the client rows locked
/// `FOR SHARE`: a claim (which updates the row) waits for this transaction, so an epoch read here stays the
/// client's newest until the commit.
struct PostgresCommitPlan {
    struct Mark: Equatable {
        var sequence: UInt64
        var check: UInt64
        /// The stream's content digest (`LinkContentDigest`); 0 when unknown.
        var digest: UInt64 = 0
    }

    enum Decision: Equatable {
        /// Insert its rows and move the stream's mark.
        case insert
        /// Every message is at or below the mark of its own epoch: an earlier attempt of this very group
        /// committed before the database connection broke (the COMMIT's answer was lost). Acknowledge,
        /// insert nothing.
        case alreadyStored
        /// A newer connection claimed the client, or the batch leaves a gap: refuse.
        case fenced
    }

    private(set) var decisions: [Decision] = []
    /// The marks after the group, for the streams that move.
    private(set) var newMarks: [LinkStreamKey: Mark] = [:]

    init(batches: [LinkSinkBatch], epochs: [String: UInt64], marks: [LinkStreamKey: Mark]) {
        var current = marks
        for batch in batches {
            guard !batch.isEmpty else {
                decisions.append(.alreadyStored)
                continue
            }
            let before = current[batch.key] ?? Mark(sequence: 0, check: 0)
            let mark = before.sequence
            guard epochs[batch.key.clientID] == batch.epoch else {
                decisions.append(.fenced)
                continue
            }
            if batch.firstSequence == mark &+ 1 {
                let moved = Mark(
                    sequence: batch.lastSequence, check: batch.lastMessageCheck,
                    digest: batch.digest(continuing: before.digest, from: before.sequence))
                current[batch.key] = moved
                newMarks[batch.key] = moved
                decisions.append(.insert)
            } else if batch.lastSequence <= mark {
                // Under the current epoch nobody but this connection moved the mark past where its claim
                // found it, so these exact messages are the ones stored.
                decisions.append(.alreadyStored)
            } else {
                decisions.append(.fenced)
            }
        }
    }

    var outcomes: [LinkCommitOutcome] { decisions.map { $0 == .fenced ? .fenced : .stored } }
}
