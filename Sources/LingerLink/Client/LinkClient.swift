import CoreMetrics
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
import NIOConcurrencyHelpers

/// A persistent, self-healing link to a ``LinkServer`` that delivers every message exactly once.
///
/// `send` puts messages in a bounded outbox and returns; the client keeps one connection open, reconnects
/// with capped, jittered backoff when it drops, and after every (re)connect resends exactly what the server
/// has not acknowledged. `flush` waits for acknowledgement of everything sent so far; `close` is graceful
/// and client-initiated, so TIME_WAIT lands here and not on the server.
///
/// ```swift
/// let client = LinkClient(configuration: .init(endpoints: [("127.0.0.1", 7070)], clientID: "host-42"), logger: logger)
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await client.run() }
///     let resumeAt = try await client.start()   // the server's high-water mark for this client id
///     try await client.send(Array("hello".utf8))
///     try await client.close()
/// }
/// ```
public final class LinkClient: Service, Sendable {
    public let configuration: LinkClientConfiguration
    let metrics: LinkMetrics
    private let logger: Logger
    // A plain pthread mutex: Synchronization.Mutex is a priority-inheritance futex on Linux, and under
    // contention between the sender and the event loop it cost 17-27% of the event loop's time in the kernel.
    private let state = NIOLockedValueBox(State())

    private struct Waiter {
        enum Condition { case established, space(Int, Int), acknowledged(UInt64), stopped }
        var condition: Condition
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var outbox = Outbox()
        var established = false
        var serverHighestAtStart: UInt64 = 0
        var channel: (any Channel)?
        var pumpScheduled = false
        var closing = false
        var stopped = false
        var failure: LinkError?
        var waiters: [Waiter] = []
        var reconnects = 0
        var sessions = 0
    }

    public init(configuration: LinkClientConfiguration, logger: Logger, metrics: LinkMetrics = LinkMetrics(role: "client")) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
    }

    // MARK: - Public API

    /// Waits for the first session and returns the server's high-water mark for this client id: the number
    /// of messages it already holds from earlier runs. New messages are numbered after it.
    public func start() async throws -> UInt64 {
        try await wait(for: .established)
        return state.withLockedValue { $0.serverHighestAtStart }
    }

    /// Queues one message; returns its sequence number. Waits for the first session, and for room in the
    /// outbox when it is full (or throws `.outboxFull`, per configuration).
    @discardableResult
    public func send(_ payload: some Collection<UInt8>) async throws -> UInt64 {
        var batch = LinkBatch(capacity: payload.count + 13)
        batch.append(payload)
        return try await send(batch)
    }

    /// Queues many messages at once: one lock and one socket write for the whole batch.
    public func send<Messages: Sequence>(contentsOf messages: Messages) async throws where Messages.Element: Collection<UInt8> {
        var batch = LinkBatch()
        for message in messages { batch.append(message) }
        try await send(batch)
    }

    /// Queues a pre-encoded batch (the fastest way in): its messages get consecutive sequence numbers.
    /// A batch larger than the outbox limits is admitted once the outbox is empty.
    /// - Returns: the sequence number of the batch's last message.
    @discardableResult
    public func send(_ batch: LinkBatch) async throws -> UInt64 {
        try await wait(for: .established)
        while true {
            let outcome = try state.withLockedValue { state -> (UInt64, (any Channel)?)? in
                if let failure = state.failure { throw failure }
                if state.closing { throw LinkError(.closed, "the link is closed") }
                guard state.outbox.isEmpty || hasRoom(state.outbox, addingMessages: batch.count, bytes: batch.byteCount) else {
                    return nil
                }
                let last = state.outbox.append(batch: batch)
                guard let channel = state.channel, !state.pumpScheduled else { return (last, nil) }
                state.pumpScheduled = true
                return (last, channel)
            }
            if let (last, channelToPump) = outcome {
                metrics.messagesSent.increment(by: Int64(batch.count))
                metrics.bytesSent.increment(by: Int64(batch.byteCount))
                if let channelToPump {
                    channelToPump.eventLoop.execute {
                        self.state.withLockedValue { $0.pumpScheduled = false }
                        channelToPump.pipeline.fireUserInboundEventTriggered(PumpOutbox())
                    }
                }
                return last
            }
            guard configuration.waitWhenFull else {
                throw LinkError(.outboxFull, "the outbox is full (\(configuration.outboxMessages) messages or \(configuration.outboxBytes) bytes unacknowledged)")
            }
            try await wait(for: .space(batch.count, batch.byteCount))
        }
    }

    /// Returns once the server has acknowledged every message sent so far.
    public func flush() async throws {
        let last = state.withLockedValue { $0.outbox.lastSequence }
        try await wait(for: .acknowledged(last))
    }

    /// Unacknowledged messages right now.
    public var unacknowledged: Int { state.withLockedValue { $0.outbox.count } }

    /// How many times the client reconnected.
    public var reconnectCount: Int { state.withLockedValue { $0.reconnects } }

    /// Graceful, client-initiated close: waits up to `timeout` for everything to be acknowledged, then
    /// closes the connection (our FIN first) and stops reconnecting. Throws if messages were left
    /// unacknowledged.
    public func close(timeout: Duration = .seconds(30)) async throws {
        // Poll rather than race a waiter against a timer: a waiter cannot be cancelled from outside.
        let deadline = ContinuousClock.now + timeout
        var flushed = false
        while ContinuousClock.now < deadline {
            let (done, failed) = state.withLockedValue { ($0.outbox.isEmpty, $0.failure != nil || $0.stopped) }
            if done { flushed = true; break }
            if failed { break }
            try? await Task.sleep(for: .milliseconds(5))
        }
        let channel = state.withLockedValue { state -> (any Channel)? in
            state.closing = true
            return state.channel
        }
        channel?.pipeline.fireUserInboundEventTriggered(CloseRequested())
        try await wait(for: .stopped)
        if !flushed {
            let left = unacknowledged
            throw LinkError(.closed, "closed with \(left) messages unacknowledged")
        }
    }

    // MARK: - Service

    /// Keeps the link up until `close()`, cancellation, or a permanent failure (the server rejected the client).
    public func run() async throws {
        var backoff = configuration.backoff
        var attempt = 0
        defer { stop(failure: nil) }
        while !isClosingOrFailed {
            let endpoint = configuration.endpoints[attempt % configuration.endpoints.count]
            attempt += 1
            let sessionsBefore = state.withLockedValue { $0.sessions }
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(configuration.connectTimeout)
                    .channelOption(.allowRemoteHalfClosure, value: true)
                    .channelOption(.socketOption(.so_keepalive), value: 1)
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(ClientConnectionHandler(client: self))
                        }
                    }
                    .connect(host: endpoint.host, port: endpoint.port).get()
                metrics.connections.increment()
                // Cancelling run() closes the connection at once (an abrupt stop: use close() to drain first).
                await withTaskCancellationHandler {
                    try? await channel.closeFuture.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
                metrics.connections.decrement()
            } catch {
                log("cannot connect to \(endpoint.host):\(endpoint.port): \(error)")
            }
            if isClosingOrFailed { break }
            // A connection that got as far as WELCOME worked: the next failure starts the backoff afresh.
            if state.withLockedValue({ $0.sessions }) > sessionsBefore { backoff.reset() }
            state.withLockedValue { $0.reconnects += 1 }
            metrics.reconnects.increment()
            let delay = backoff.next()
            log("reconnecting in \(delay)")
            // Sleep in slices so close() is honoured promptly.
            let until = ContinuousClock.now + delay
            while ContinuousClock.now < until && !isClosingOrFailed {
                try? await Task.sleep(for: min(.milliseconds(50), until - ContinuousClock.now))
            }
        }
        if let failure = state.withLockedValue({ $0.failure }) { throw failure }
    }

    // MARK: - Called by the connection handler (on its event loop)

    func established(serverHighest: UInt64, channel: any Channel) {
        let waiters = state.withLockedValue { state -> [Waiter] in
            let resent = state.outbox.resume(serverHighest: serverHighest)
            if resent > 0 { metrics.resends.increment(by: Int64(resent)) }
            if !state.established {
                state.established = true
                state.serverHighestAtStart = serverHighest
            }
            state.channel = channel
            state.sessions += 1
            return takeReadyWaiters(&state)
        }
        logger.debug("session established", metadata: ["serverHighest": "\(serverHighest)"])
        resume(waiters)
    }

    func acknowledged(through sequence: UInt64) {
        let waiters = state.withLockedValue { state -> [Waiter] in
            let bytesBefore = state.outbox.bytes
            let newly = state.outbox.acknowledge(through: sequence)
            metrics.messagesAcknowledged.increment(by: Int64(newly))
            metrics.bytesAcknowledged.increment(by: Int64(bytesBefore - state.outbox.bytes))
            metrics.outboxDepth.record(state.outbox.count)
            if let oldest = state.outbox.oldestCreatedAt {
                let age = ContinuousClock.now - oldest
                metrics.oldestUnacknowledgedSeconds.record(Double(age.components.seconds))
            } else {
                metrics.oldestUnacknowledgedSeconds.record(0)
            }
            return takeReadyWaiters(&state)
        }
        resume(waiters)
    }

    func takeUnsent() -> [ByteBuffer] {
        state.withLockedValue { $0.outbox.takeUnsent() }
    }

    func serverRejected(code: LinkCloseCode, text: String) {
        logger.warning("server refused the client", metadata: ["code": "\(code)", "text": "\(text)"])
        guard !code.isRetryable else { return }
        let waiters = state.withLockedValue { state -> [Waiter] in
            state.failure = LinkError(.rejected(code), "the server refused this client: \(text)")
            return []
        }
        resume(waiters)
    }

    func connectionEnded(_ channel: any Channel) {
        state.withLockedValue { state in
            if let current = state.channel, current === channel { state.channel = nil }
        }
        if isClosingOrFailed { stop(failure: nil) }
    }

    func log(_ message: String) { logger.info("\(message)") }

    // MARK: - Waiting

    private var isClosingOrFailed: Bool { Task.isCancelled || state.withLockedValue { $0.closing || $0.failure != nil } }

    private func hasRoom(_ outbox: Outbox, addingMessages messages: Int, bytes: Int) -> Bool {
        outbox.count + messages <= configuration.outboxMessages && outbox.bytes + bytes <= configuration.outboxBytes
    }

    private func wait(for condition: Waiter.Condition) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready: Result<Void, any Error>? = state.withLockedValue { state in
                if let failure = state.failure { return .failure(failure) }
                if isSatisfied(condition, state) { return .success(()) }
                if state.stopped { return .failure(LinkError(.closed, "the link is closed")) }
                state.waiters.append(Waiter(condition: condition, continuation: continuation))
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    private func isSatisfied(_ condition: Waiter.Condition, _ state: State) -> Bool {
        switch condition {
        case .established: state.established
        case .space(let messages, let bytes): state.outbox.isEmpty || hasRoom(state.outbox, addingMessages: messages, bytes: bytes)
        case .acknowledged(let sequence): state.outbox.acknowledged >= sequence
        case .stopped: state.stopped
        }
    }

    private func takeReadyWaiters(_ state: inout State) -> [Waiter] {
        var ready: [Waiter] = [], waiting: [Waiter] = []
        for waiter in state.waiters {
            if isSatisfied(waiter.condition, state) || state.failure != nil { ready.append(waiter) } else { waiting.append(waiter) }
        }
        state.waiters = waiting
        return ready
    }

    private func resume(_ waiters: [Waiter]) {
        let failure = state.withLockedValue { $0.failure }
        for waiter in waiters {
            if let failure, !isSatisfiedNow(waiter.condition) {
                waiter.continuation.resume(throwing: failure)
            } else {
                waiter.continuation.resume()
            }
        }
    }

    private func isSatisfiedNow(_ condition: Waiter.Condition) -> Bool { state.withLockedValue { isSatisfied(condition, $0) } }

    /// The link is finished: wake everyone (with the failure, if any).
    private func stop(failure: LinkError?) {
        let (waiters, error) = state.withLockedValue { state -> ([Waiter], LinkError) in
            state.stopped = true
            if let failure, state.failure == nil { state.failure = failure }
            let waiters = state.waiters
            state.waiters.removeAll()
            return (waiters, state.failure ?? LinkError(.closed, "the link is closed"))
        }
        for waiter in waiters {
            if case .stopped = waiter.condition { waiter.continuation.resume() } else if isSatisfiedNow(waiter.condition) {
                waiter.continuation.resume()
            } else {
                waiter.continuation.resume(throwing: error)
            }
        }
    }
}
