import CoreMetrics
import Logging
import NIOCore
import NIOConcurrencyHelpers

/// Feeds a ``LinkSink`` from every connection of a server: one call at a time, in arrival order, with every
/// batch that waited during a commit stored together in the next one (group commit: one write and one fsync
/// for many clients).
///
/// Connections submit from their event loops and get a future back on the same loop; nothing here ever runs
/// sink work on an event loop. While the sink fails with a retryable error (a full disk), the failed group is
/// retried with capped, jittered backoff and connections simply wait (they stop reading meanwhile); the state
/// is logged when it starts, every 30 s while it lasts, and when it ends, and is the metric
/// `linger_link_sink_failing`. An error that a retry cannot fix fails everything waiting and ends ``run()``.
final class SinkCommitter: Sendable {
    private enum Work {
        case claim(clientID: String, promise: EventLoopPromise<LinkSinkClaim>)
        case commit([LinkSinkBatch], promise: EventLoopPromise<[LinkCommitOutcome]>)
        case reopen(promise: EventLoopPromise<String?>)
    }

    private struct State {
        var queue: [Work] = []
        var finished = false
        var done = false
        var fatal: LinkSinkError?
    }

    let sink: any LinkSink
    private let logger: Logger
    private let metrics: LinkMetrics
    private let retryBackoff: ReconnectBackoff
    private let state = NIOLockedValueBox(State())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(sink: any LinkSink, logger: Logger, metrics: LinkMetrics, retryBackoff: ReconnectBackoff = ReconnectBackoff(initial: .milliseconds(50), maximum: .seconds(2))) {
        self.sink = sink
        self.logger = logger
        self.metrics = metrics
        self.retryBackoff = retryBackoff
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Fences earlier connections of `clientID` (see ``LinkSink``) and returns its epoch and marks.
    func claim(clientID: String, on eventLoop: any EventLoop) -> EventLoopFuture<LinkSinkClaim> {
        let promise = eventLoop.makePromise(of: LinkSinkClaim.self)
        submit(.claim(clientID: clientID, promise: promise))
        return promise.futureResult
    }

    /// Stores `batches` (one connection's, one per stream) in the next group commit.
    func commit(_ batches: [LinkSinkBatch], on eventLoop: any EventLoop) -> EventLoopFuture<[LinkCommitOutcome]> {
        let promise = eventLoop.makePromise(of: [LinkCommitOutcome].self)
        submit(.commit(batches, promise: promise))
        return promise.futureResult
    }

    /// Reopens the sink's output between two commits (after an external rotation).
    func reopen(on eventLoop: any EventLoop) -> EventLoopFuture<String?> {
        let promise = eventLoop.makePromise(of: String?.self)
        submit(.reopen(promise: promise))
        return promise.futureResult
    }

    private func submit(_ work: Work) {
        let refusal: LinkSinkError? = state.withLockedValue { state in
            if let fatal = state.fatal { return fatal }
            if state.finished { return LinkSinkError("the server is shutting down", isRetryable: false) }
            state.queue.append(work)
            return nil
        }
        if let refusal { Self.fail(work, refusal) } else { wake.yield() }
    }

    /// Stops taking work; ``run()`` returns once what was already submitted is done.
    func finish() {
        state.withLockedValue { $0.finished = true }
        wake.finish()
    }

    /// Whether ``run()`` has returned.
    var isDone: Bool { state.withLockedValue { $0.done } }

    /// Runs the sink until ``finish()`` (after the queue drains) or cancellation; cancelled while a group
    /// is failing, it fails the group and everything queued (nothing of it was acknowledged) and throws.
    /// - Throws: the sink's error when a retry cannot fix it; everything waiting has failed with it then.
    func run() async throws {
        defer { state.withLockedValue { $0.done = true } }
        for await _ in wakeups {
            try await drain()
        }
        try await drain()
    }

    private func drain() async throws {
        while var group = takeGroup() {
            try await perform(&group)
        }
    }

    /// The next unit of work: one claim or reopen, or every commit queued before the next of those.
    private func takeGroup() -> [Work]? {
        state.withLockedValue { state in
            guard let first = state.queue.first else { return nil }
            if case .commit = first {} else {
                state.queue.removeFirst()
                return [first]
            }
            let end = state.queue.firstIndex { if case .commit = $0 { false } else { true } } ?? state.queue.endIndex
            let group = Array(state.queue[..<end])
            state.queue.removeFirst(end)
            return group
        }
    }

    private func perform(_ group: inout [Work]) async throws {
        var backoff = retryBackoff
        var failingSince: ContinuousClock.Instant?
        var lastReport = ContinuousClock.now
        var attempts = 0
        while true {
            do {
                try await execute(&group)
                if let failingSince {
                    let seconds = (ContinuousClock.now - failingSince).components.seconds
                    logger.warning("the sink recovered after \(seconds)s and \(attempts) retries; delivery resumes")
                    metrics.sinkFailing.record(0)
                }
                return
            } catch let failure as LinkSinkError where failure.isRetryable {
                attempts += 1
                metrics.sinkRetries.increment()
                if failingSince == nil {
                    failingSince = .now
                    lastReport = .now
                    metrics.sinkFailing.record(1)
                    logger.error("the sink is failing: \(failure.message); clients wait (no data is acknowledged) while it is retried")
                } else if ContinuousClock.now - lastReport >= .seconds(30) {
                    lastReport = .now
                    let seconds = (ContinuousClock.now - failingSince!).components.seconds
                    logger.error("the sink is still failing after \(seconds)s: \(failure.message)")
                }
                do {
                    try await Task.sleep(for: backoff.next())
                } catch {
                    let stopped = LinkSinkError(
                        "stopped while the sink was failing (\(failure.message)); nothing it did not store was acknowledged", isRetryable: false)
                    let waiting = state.withLockedValue { state -> [Work] in
                        state.fatal = stopped
                        defer { state.queue.removeAll() }
                        return state.queue
                    }
                    for work in group + waiting { Self.fail(work, stopped) }
                    throw stopped
                }
            } catch {
                let fatal = (error as? LinkSinkError) ?? LinkSinkError("\(error)", isRetryable: false)
                // Thrown out of the server's `run()`, which is where its owner learns of it (`serve` prints it
                // once); logged at notice, so a log line does not say it a second time.
                logger.notice("the sink failed and cannot recover: \(fatal.message)")
                let waiting = state.withLockedValue { state -> [Work] in
                    state.fatal = fatal
                    defer { state.queue.removeAll() }
                    return state.queue
                }
                for work in group + waiting { Self.fail(work, fatal) }
                throw fatal
            }
        }
    }

    private func execute(_ group: inout [Work]) async throws {
        if case .claim(let clientID, let promise) = group.first {
            promise.succeed(try await sink.claim(clientID: clientID))
            return
        }
        if case .reopen(let promise) = group.first {
            do {
                promise.succeed(try await sink.reopen())
            } catch {
                // A failed reopen leaves the sink writing where it was: not a reason to stop serving.
                promise.fail(error)
            }
            return
        }
        var batches: [LinkSinkBatch] = []
        var requests: [(promise: EventLoopPromise<[LinkCommitOutcome]>, count: Int)] = []
        for case .commit(let connectionBatches, let promise) in group {
            batches += connectionBatches
            requests.append((promise, connectionBatches.count))
        }
        let outcomes = try await sink.commit(batches)
        metrics.commitGroups.increment()
        // Let go of the batches before any connection hears back, so each holds the only reference to its
        // buffers again and can reuse them (``LinkSinkBatch/takeLinesForReuse()``).
        batches = []
        group = []
        var start = 0
        for request in requests {
            request.promise.succeed(Array(outcomes[start..<(start + request.count)]))
            start += request.count
        }
    }

    private static func fail(_ work: Work, _ error: LinkSinkError) {
        switch work {
        case .claim(_, let promise): promise.fail(error)
        case .commit(_, let promise): promise.fail(error)
        case .reopen(let promise): promise.fail(error)
        }
    }
}
