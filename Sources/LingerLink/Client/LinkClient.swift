import CoreMetrics
public import Logging
import NIOCore
import NIOPosix
import NIOSSL
public import ServiceLifecycle
import NIOConcurrencyHelpers

/// A persistent, self-healing link to a ``LinkServer`` that delivers every message exactly once.
///
/// `send` puts messages in a bounded outbox and returns; the client keeps one connection open, reconnects
/// with capped, jittered backoff when it drops, and after every (re)connect resends exactly what the server
/// has not acknowledged. `flush` waits for acknowledgement of everything sent so far; `close` is graceful
/// and client-initiated, so TIME_WAIT lands here and not on the server. Every wait honours task
/// cancellation, and `run()` honours graceful shutdown from swift-service-lifecycle.
///
/// A refusal that a retry cannot fix ends `run()` with a ``LinkError``: a wrong token or version, a message
/// the server cannot take, or another sender taking over the same client id (kind `.replaced`): two senders
/// with one id never fight over it.
///
/// ```swift
/// let client = LinkClient(configuration: .init(endpoints: [.init(host: "127.0.0.1", port: 7070)], clientID: "host-42"), logger: logger)
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
    /// The TLS context, reloaded before a connection when its files changed; nil for plaintext.
    private let tlsContexts: ClientTLSContexts?
    // A plain pthread mutex: Synchronization.Mutex is a priority-inheritance futex on Linux, and under
    // contention between the sender and the event loop it cost 17-27% of the event loop's time in the kernel.
    private let state = NIOLockedValueBox(State())

    private enum Condition {
        case established, space(Int, Int), acknowledged([UInt32: UInt64]), closing, stopped
        /// Fewer named streams open than the server allows on one connection.
        case streamRoom
    }

    private struct Waiter {
        var id: Int
        var condition: Condition
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        /// One outbox per stream, by stream number (0: the unnamed stream).
        var outboxes: [UInt32: Outbox] = [0: Outbox()]
        /// Named streams opened, by number: reopened on every new connection.
        var streamNames: [UInt32: String] = [:]
        /// The same, by name.
        var streamNumbers: [String: UInt32] = [:]
        /// Named streams to forget once everything sent on them is acknowledged.
        var finishing: Set<UInt32> = []
        var nextStream: UInt32 = 1
        /// The named streams the server knew at the last WELCOME, and those finished since (their last sequence).
        var knownMarks: [String: LinkStreamMark] = [:]
        /// What the server of the current session understands beyond version 2.
        var serverFeatures: LinkServerFeatures = []
        /// Finished streams forgotten since the last pump, for the connection to CLOSE.
        var closedStreams: [UInt32] = []
        var established = false
        var serverHighestAtStart: UInt64 = 0
        var channel: (any Channel)?
        var pumpScheduled = false
        var closing = false
        var stopped = false
        var failure: LinkError?
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var reconnects = 0
        var sessions = 0
        /// The last failed attempt while no session is up (for --progress).
        var trouble: ConnectionTrouble?
        /// How the last connection ended before its session began, after the endpoint's name ("turned the
        /// connection away: …", "accepted the connection but sent nothing …"): the reason a retry warning
        /// gives, instead of "closed before the session began".
        var endedEarly: String?
        /// The last connection's endpoint refused this client in its handshake (a token or version it does
        /// not accept, a certificate we do not trust, no link server there). With more than one endpoint that
        /// is the endpoint's configuration, not the client's: the next endpoint is tried, and the link ends
        /// only when every endpoint has refused since the last session began.
        var endpointRefusal: LinkError?
        /// Whether the last connection brought any frame (see ``LinkClient/strikesBeforeGivingUp``).
        var lastConnectionHeardAFrame = true
        /// The last connection was turned away at the server's connection limit: the server lets senders in
        /// in turn, so this one comes back soon rather than after a long backoff.
        var waitingForASlot = false
        var sentCount: UInt64 = 0
        var acknowledgedCount: UInt64 = 0

        /// The streams just forgotten, for the current connection to CLOSE (nil when none, or no connection:
        /// a later connection does not reopen them).
        mutating func takeClosedStreams() -> CloseStreams? {
            defer { closedStreams.removeAll() }
            guard !closedStreams.isEmpty, let channel else { return nil }
            return CloseStreams(numbers: closedStreams, channel: channel)
        }

        /// Streams whose outbox holds unacknowledged messages, and those with frames not yet handed to the
        /// connection: a follower of thousands of files has thousands of streams open, and a walk over every
        /// outbox per send or ACK made it quadratic.
        var holding: [UInt32: (messages: Int, bytes: Int)] = [:]
        var unsent: Set<UInt32> = []
        private(set) var unacknowledged = 0
        private(set) var unacknowledgedBytes = 0
        /// When the age of the oldest unacknowledged message was last recorded (a walk over ``holding``).
        var oldestRecordedAt = ContinuousClock.Instant.now - .seconds(1)

        var isEmpty: Bool { holding.isEmpty }

        /// Notes what an outbox holds after it changed.
        mutating func update(_ number: UInt32) {
            let before = holding[number] ?? (0, 0)
            let outbox = outboxes[number]
            let now = outbox.map { ($0.count, $0.bytes) } ?? (0, 0)
            unacknowledged += now.0 - before.messages
            unacknowledgedBytes += now.1 - before.bytes
            holding[number] = now.0 == 0 ? nil : now
            if let outbox, outbox.sentThrough < outbox.lastSequence { unsent.insert(number) } else { unsent.remove(number) }
        }

        /// Forgets finished streams whose messages are all acknowledged; their last sequence is kept as a
        /// mark, so the same name reopened later continues after it. Returns whether any was dropped.
        @discardableResult
        mutating func dropFinishedStreams() -> Bool {
            // A server that cannot be told keeps every stream open on the connection: forgetting one here would
            // make a reopen of its name an OPEN of a name the server holds open, which it refuses for good.
            guard serverFeatures.contains(.streamClose) else { return false }
            var dropped = false
            for number in finishing where holding[number] == nil {
                if let name = streamNames[number] {
                    streamNumbers[name] = nil
                    let last = outboxes[number]?.lastSequence ?? 0
                    let known = knownMarks[name]
                    knownMarks[name] = known?.sequence == last ? known! : LinkStreamMark(stream: name, sequence: last, check: 0)
                }
                outboxes[number] = nil
                streamNames[number] = nil
                finishing.remove(number)
                update(number)
                closedStreams.append(number)
                dropped = true
            }
            return dropped
        }
    }

    public init(configuration: LinkClientConfiguration, logger: Logger, metrics: LinkMetrics = LinkMetrics(role: "client")) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.tlsContexts = configuration.tls.map(ClientTLSContexts.init)
    }

    // MARK: - Public API

    /// Waits for the first session and returns the server's high-water mark for this client id: the number
    /// of messages it already holds from earlier runs. New messages are numbered after it.
    public func start() async throws -> UInt64 {
        try await wait(for: .established)
        return state.withLockedValue { $0.serverHighestAtStart }
    }

    /// The named streams the server held for this client id at the start of the current session, with the
    /// mark of each: what a restarted sender consults to resume each of its inputs.
    public var knownStreams: [LinkStreamMark] {
        state.withLockedValue { $0.knownMarks.values.sorted { $0.stream < $1.stream } }
    }

    /// Opens a named stream (one input's content, such as one file) on this link, and returns where the
    /// server stands on it: messages sent on the stream are numbered after that mark. The stream is reopened
    /// on every later connection until ``finishStream(_:)``.
    /// - Parameter name: 1-128 characters of `A-Z a-z 0-9 . _ : -`.
    public func openStream(_ name: String) async throws -> (stream: LinkStream, mark: LinkStreamMark) {
        guard LinkClientID.isValid(name) else {
            throw LinkError(.configuration, "stream name '\(name)' must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        }
        try await wait(for: .established)
        while true {
            let reopened = try state.withLockedValue { state -> (LinkStream, LinkStreamMark)? in
                if let failure = state.failure { throw failure }
                guard let number = state.streamNumbers[name] else { return nil }
                // Finished, not yet forgotten (its last messages await their ACK): it goes on as it was.
                guard state.finishing.remove(number) != nil else { throw LinkError(.configuration, "stream '\(name)' is already open") }
                let last = state.outboxes[number]?.lastSequence ?? 0
                return (LinkStream(name: name, number: number), LinkStreamMark(stream: name, sequence: last, check: 0))
            }
            if let reopened { return reopened }
            let full = state.withLockedValue { $0.streamNames.count >= LinkLimits.maximumOpenStreams }
            guard full else { break }
            try await wait(for: .streamRoom)
        }
        let (stream, mark, channel) = try state.withLockedValue { state -> (LinkStream, LinkStreamMark, (any Channel)?) in
            if let failure = state.failure { throw failure }
            if state.streamNumbers[name] != nil { throw LinkError(.configuration, "stream '\(name)' is already open") }
            let number = state.nextStream
            state.nextStream += 1
            let mark = state.knownMarks[name] ?? LinkStreamMark(stream: name, sequence: 0, check: 0)
            var outbox = Outbox(stream: number)
            _ = outbox.resume(serverHighest: mark.sequence)
            state.outboxes[number] = outbox
            state.streamNames[number] = name
            state.streamNumbers[name] = number
            return (LinkStream(name: name, number: number), mark, state.channel)
        }
        channel?.pipeline.fireUserInboundEventTriggered(OpenStreams(streams: [(stream.number, name)]))
        return (stream, mark)
    }

    /// Forgets a named stream once everything sent on it is acknowledged (an input that ended: a rotated
    /// file read to its end). Its mark stays on the server.
    public func finishStream(_ stream: LinkStream) {
        guard stream.number != 0 else { return }
        let (waiters, closing) = state.withLockedValue { state -> ([Waiter], CloseStreams?) in
            guard state.streamNames[stream.number] != nil else { return ([], nil) }
            state.finishing.insert(stream.number)
            guard state.dropFinishedStreams() else { return ([], nil) }
            return (takeReadyWaiters(&state), state.takeClosedStreams())
        }
        closing?.send()
        resume(waiters)
    }

    /// Queues one message; returns its sequence number. Waits for the first session, and for room in the
    /// outbox when it is full (or throws `.outboxFull`, per configuration).
    @discardableResult
    public func send(_ payload: some Collection<UInt8>) async throws -> UInt64 {
        var batch = LinkBatch(capacity: payload.count + LinkLimits.dataFrameOverhead)
        batch.append(payload)
        return try await send(batch)
    }

    /// Queues many messages at once: one lock and one socket write for the whole batch.
    public func send<Messages: Sequence>(contentsOf messages: Messages) async throws where Messages.Element: Collection<UInt8> {
        var batch = LinkBatch()
        for message in messages { batch.append(message) }
        try await send(batch)
    }

    /// Queues a pre-encoded batch (the fastest way in) on the unnamed stream, or on `stream`: its messages
    /// get consecutive sequence numbers. A batch larger than the outbox limits is admitted once the outbox
    /// is empty.
    ///
    /// The batch is taken over, not copied: the outbox stamps sequence numbers into its frames in place,
    /// which is only free when nothing else holds the batch's buffer (pass it with `consume`, or let it be
    /// the last use). A batch still held elsewhere is copied once, as any shared `ByteBuffer` is.
    /// - Returns: the sequence number of the batch's last message.
    @discardableResult
    public func send(_ batch: consuming LinkBatch, on stream: LinkStream = .unnamed) async throws -> UInt64 {
        try await wait(for: .established)
        let count = batch.count, byteCount = batch.byteCount
        var pending: LinkBatch? = consume batch
        while true {
            let outcome = try state.withLockedValue { state -> (UInt64, (any Channel)?)? in
                if let failure = state.failure { throw failure }
                if state.closing { throw LinkError(.closed, "the link is closed") }
                guard state.outboxes[stream.number] != nil else { throw LinkError(.configuration, "stream '\(stream.name)' is not open") }
                guard state.isEmpty || hasRoom(state, addingMessages: count, bytes: byteCount) else {
                    return nil
                }
                let last = state.outboxes[stream.number]!.append(batch: pending.take()!)
                state.update(stream.number)
                state.sentCount += UInt64(count)
                guard let channel = state.channel, !state.pumpScheduled else { return (last, nil) }
                state.pumpScheduled = true
                return (last, channel)
            }
            if let (last, channelToPump) = outcome {
                metrics.messagesSent.increment(by: Int64(count))
                metrics.bytesSent.increment(by: Int64(byteCount))
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
            try await wait(for: .space(count, byteCount))
        }
    }

    /// Returns once the server has acknowledged every message sent so far, on every stream.
    public func flush() async throws {
        let last = state.withLockedValue { state in
            Dictionary(uniqueKeysWithValues: state.holding.keys.map { ($0, state.outboxes[$0]!.lastSequence) })
        }
        try await wait(for: .acknowledged(last))
    }

    /// Waits until the server acknowledged `stream` through `sequence` (at once if it has): for a caller
    /// that frees what it keeps for resending, such as a spool waiting for room, without polling.
    /// - Throws: `CancellationError` when the task is cancelled; the link's ``LinkError`` if it fails.
    public func waitForAcknowledgement(through sequence: UInt64, on stream: LinkStream) async throws {
        try await wait(for: .acknowledged([stream.number: sequence]))
    }

    /// The highest sequence the server acknowledged on `stream` (0 before any).
    public func acknowledgedSequence(on stream: LinkStream) -> UInt64 {
        state.withLockedValue { $0.outboxes[stream.number]?.acknowledged ?? 0 }
    }

    /// Messages queued by `send` since the client was made, and how many of them the server acknowledged.
    public var totals: (sent: UInt64, acknowledged: UInt64) { state.withLockedValue { ($0.sentCount, $0.acknowledgedCount) } }

    /// Unacknowledged messages right now, on every stream.
    public var unacknowledged: Int { state.withLockedValue { $0.unacknowledged } }

    /// How many times the client reconnected.
    public var reconnectCount: Int { state.withLockedValue { $0.reconnects } }

    /// Why the last connection attempt failed, while no session is up ("connection refused").
    public var connectProblem: String? { connectionTrouble?.reason }

    /// While no session is up after failed attempts: the last one, its reason and when the next comes.
    public var connectionTrouble: ConnectionTrouble? { state.withLockedValue { $0.channel == nil ? $0.trouble : nil } }

    /// Graceful, client-initiated close: waits up to `timeout` for everything to be acknowledged, then
    /// closes the connection (our FIN first) and stops reconnecting. Throws if messages were left
    /// unacknowledged.
    public func close(timeout: Duration = .seconds(30)) async throws {
        let flushed = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await self.flush()) != nil }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        beginClosing()
        try await wait(for: .stopped)
        if !flushed {
            throw LinkError(.closed, "closed with \(unacknowledged) messages unacknowledged")
        }
    }

    // MARK: - Service

    /// Keeps the link up until `close()`, cancellation, graceful shutdown, or a refusal a retry cannot fix.
    public func run() async throws {
        defer { stop() }
        // Unusable TLS files are a configuration error, reported before any connection is tried.
        do {
            _ = try tlsContexts?.current()
        } catch let error as LinkError {
            fail(with: error)
            throw error
        }
        try await withGracefulShutdownHandler {
            try await reconnectLoop()
        } onGracefulShutdown: {
            self.beginClosing()
        }
    }

    private func reconnectLoop() async throws {
        var backoff = configuration.backoff
        var attempt = 0
        // Consecutive attempts that did not reach a session, and since when the link has been down.
        var failures = 0
        var downSince = ContinuousClock.now
        // Handshake refusals since the last session began, by endpoint index (see `State.endpointRefusal`).
        var refusals: [Int: LinkError] = [:]
        // Connections in a row that an endpoint which never gave this client a session accepted and then closed
        // or left silent without a single frame, and the endpoints that did give one.
        var strikes: [Int: Int] = [:]
        var answered: Set<Int> = []
        while !isClosingOrFailed {
            let index = attempt % configuration.endpoints.count
            let endpoint = configuration.endpoints[index]
            attempt += 1
            let sessionsBefore = state.withLockedValue { $0.sessions }
            var reason: String?
            var connected = false
            state.withLockedValue {
                $0.endedEarly = nil
                $0.endpointRefusal = nil
                $0.lastConnectionHeardAFrame = true
                $0.waitingForASlot = false
            }
            do {
                let channel = try await connect(to: endpoint, tls: try tlsContexts?.current())
                connected = true
                metrics.connections.increment()
                // Cancelling run() closes the connection at once (an abrupt stop: use close() to drain first).
                await withTaskCancellationHandler {
                    try? await channel.closeFuture.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
                metrics.connections.decrement()
            } catch {
                reason = "cannot connect to \(endpoint): \(describe(error))"
                log(reason!)
            }
            if isClosingOrFailed { break }
            var (sessionBegan, refusal, endedEarly, heard) = state.withLockedValue {
                ($0.sessions > sessionsBefore, $0.endpointRefusal, $0.endedEarly, $0.lastConnectionHeardAFrame)
            }
            if sessionBegan { answered.insert(index) }
            if refusal == nil, connected, !heard, !answered.contains(index) {
                // Accepted, then closed or silent without one frame: a linger server (even one at its connection
                // limit, or shutting down) says why. A few of these in a row from a peer that never gave a
                // session is another service on that port (or a proxy with no collector behind it).
                let how = endedEarly.map { _ in "accepted the connection but sent nothing for \(configuration.pingInterval.formattedSeconds)" }
                    ?? "accepted the connection and closed it without a word"
                let count = (strikes[index] ?? 0) + 1
                strikes[index] = count
                if count >= Self.strikesBeforeGivingUp {
                    refusal = LinkError(
                        .notALinkServer,
                        "\(endpoint) \(how), \(count) times in a row, and never answered the link's HELLO: it is no linger server "
                            + "(another service on that port, or a load balancer with no collector behind it)")
                    if configuration.endpoints.count > 1 { state.withLockedValue { $0.endpointRefusal = refusal } }
                }
            } else {
                strikes[index] = nil
            }
            if let refusal, configuration.endpoints.count == 1, !sessionBegan, refusal.kind == .notALinkServer, strikes[index] != nil {
                fail(with: refusal)
                break
            }
            if let refusal {
                refusals[index] = refusal
                // A refusal after this connection's session began would come again from the same endpoint
                // after every session: final, as with one endpoint.
                if sessionBegan || refusals.count == configuration.endpoints.count {
                    fail(with: sessionBegan ? refusal : everyEndpointRefused(refusals))
                    break
                }
                log("\(endpoint) refused this client (\(refusal.message)); trying the next endpoint")
            }
            // A connection that got as far as WELCOME worked: the next failure starts the backoff afresh.
            if sessionBegan {
                backoff.reset()
                failures = 0
                downSince = .now
                refusals.removeAll()
            } else {
                failures += 1
                if reason == nil, let how = endedEarly { reason = "\(endpoint) \(how)" }
            }
            state.withLockedValue { $0.reconnects += 1 }
            metrics.reconnects.increment()
            var delay = backoff.next()
            if state.withLockedValue({ $0.waitingForASlot }) { delay = min(delay, .milliseconds(Int64.random(in: 500...1000))) }
            if failures > 0 {
                let trouble = ConnectionTrouble(
                    attempt: failures, reason: reason ?? "the connection to \(endpoint) closed before the session began",
                    retryIn: delay, downFor: ContinuousClock.now - downSince)
                state.withLockedValue { $0.trouble = trouble }
                if let limit = configuration.giveUpAfter, trouble.downFor >= limit {
                    fail(with: LinkError(.unreachable, "gave up after \(limit.formattedSeconds) without a connection (--give-up-after): \(trouble.reason)"))
                    break
                }
                configuration.onConnectionTrouble?(trouble)
            }
            log("reconnecting in \(delay.formattedMilliseconds)")
            // Sleep, but wake at once for close().
            let pause = delay
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(for: pause) }
                group.addTask { try? await self.wait(for: .closing) }
                await group.next()
                group.cancelAll()
            }
        }
        if let failure = state.withLockedValue({ $0.failure }) { throw failure }
    }

    private func connect(to endpoint: LinkClientConfiguration.Endpoint, tls: NIOSSLContext?) async throws -> any Channel {
        let maximumFrameLength = configuration.maximumFrameLength
        // A certificate is matched against the name connected to; an IP address is matched against its IP
        // SANs (NIOSSL takes it from the socket), and must not be sent as SNI.
        let serverName = configuration.tls?.serverName ?? (isIPAddress(endpoint.host) ? nil : endpoint.host)
        let pingInterval = TimeAmount(configuration.pingInterval)
        return try await ClientBootstrap(group: configuration.eventLoopGroup)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    var verdict: CertificateVerdict?
                    if let tls {
                        let seen = CertificateVerdict(whose: "the server's", expectedName: serverName ?? endpoint.host)
                        try operations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: serverName, verificationCallback: seen.callback()))
                        verdict = seen
                    }
                    try operations.addHandler(IdleStateHandler(readTimeout: pingInterval))
                    try operations.addHandler(ByteToMessageHandler(LinkFrameDecoder(maximumFrameLength: maximumFrameLength)))
                    try operations.addHandler(ClientConnectionHandler(client: self, endpoint: endpoint, verdict: verdict))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
    }

    /// Connections in a row, from an endpoint that never gave this client a session, that end without one frame
    /// before the client takes the endpoint for no linger server (exit status 2 from `linger send`). With the
    /// backoff that is well under a second for a peer that closes at once, and three ping intervals (30 s with
    /// the default idle timeout) for one that says nothing.
    public static let strikesBeforeGivingUp = 3

    // MARK: - Called by the connection handler (on its event loop)

    /// A session is up: resume every stream from the server's marks. Returns the named streams to reopen on
    /// this connection, or nil (the handler then closes it gracefully): when the client is closing, or (failing
    /// the link) when the server holds more of a stream than this client ever sent on it on a later session:
    /// another sender wrote with the same id.
    func established(serverHighest: UInt64, streams: [LinkStreamMark], features: LinkServerFeatures, channel: any Channel) -> [(UInt32, String)]? {
        let marks = Dictionary(streams.map { ($0.stream, $0) }, uniquingKeysWith: { a, _ in a })
        let (waiters, reopen) = state.withLockedValue { state -> ([Waiter], [(UInt32, String)]?) in
            // close() began while this connection was being made: nobody else will close it (the close request
            // went to the connection before, or to none), so it closes at once, client first.
            if state.closing { return ([], nil) }
            state.knownMarks = marks
            state.serverFeatures = features
            state.closedStreams.removeAll()
            var serverMarks: [UInt32: UInt64] = [0: serverHighest]
            for (number, name) in state.streamNames { serverMarks[number] = marks[name]?.sequence ?? 0 }
            if state.established {
                for (number, mark) in serverMarks where mark > state.outboxes[number]?.lastSequence ?? 0 {
                    let name = number == 0 ? "" : " on stream \(state.streamNames[number] ?? "?")"
                    state.failure = LinkError(
                        .replaced,
                        "another sender took over client id \(configuration.clientID): the server holds message \(mark)\(name), "
                            + "and this sender only sent \(state.outboxes[number]?.lastSequence ?? 0)")
                    return (takeReadyWaiters(&state), nil)
                }
            }
            for (number, mark) in serverMarks {
                guard case let (acknowledged, resent)? = state.outboxes[number]?.resume(serverHighest: mark) else { continue }
                state.update(number)
                if resent > 0 { metrics.resends.increment(by: Int64(resent)) }
                // Messages the server stored but whose ACK died with the last connection.
                state.acknowledgedCount += UInt64(acknowledged)
                metrics.messagesAcknowledged.increment(by: Int64(acknowledged))
            }
            if !state.established {
                state.established = true
                state.serverHighestAtStart = serverHighest
            }
            state.channel = channel
            state.sessions += 1
            state.trouble = nil
            return (takeReadyWaiters(&state), state.streamNames.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        }
        logger.debug("session established", metadata: ["serverHighest": "\(serverHighest)", "streams": "\(streams.count)"])
        resume(waiters)
        return reopen
    }

    func acknowledged(stream: UInt32, through sequence: UInt64) {
        var closing: CloseStreams?
        let waiters = state.withLockedValue { state -> [Waiter] in
            guard let bytesBefore = state.outboxes[stream]?.bytes else { return [] }
            let newly = state.outboxes[stream]!.acknowledge(through: sequence)
            let bytesAfter = state.outboxes[stream]!.bytes
            state.update(stream)
            if state.finishing.contains(stream) && state.dropFinishedStreams() { closing = state.takeClosedStreams() }
            state.acknowledgedCount += UInt64(newly)
            metrics.messagesAcknowledged.increment(by: Int64(newly))
            metrics.bytesAcknowledged.increment(by: Int64(bytesBefore - bytesAfter))
            metrics.outboxDepth.record(state.unacknowledged)
            // A gauge in whole seconds: once a second is enough, and spares a walk over every stream per ACK.
            let now = ContinuousClock.now
            if state.holding.isEmpty {
                metrics.oldestUnacknowledgedSeconds.record(0)
            } else if now - state.oldestRecordedAt >= .seconds(1) {
                state.oldestRecordedAt = now
                if let oldest = state.holding.keys.compactMap({ state.outboxes[$0]?.oldestCreatedAt }).min() {
                    metrics.oldestUnacknowledgedSeconds.record(Double((now - oldest).components.seconds))
                }
            }
            return takeReadyWaiters(&state)
        }
        closing?.send()
        resume(waiters)
    }

    /// The frames not yet written, of the streams opened on the current connection.
    func takeUnsent(streams: Set<UInt32>) -> [ByteBuffer] {
        state.withLockedValue { state in
            var slices: [ByteBuffer] = []
            // Streams in any order: each stream's own frames stay in order, and that is all the server needs.
            for number in state.unsent where streams.contains(number) {
                slices += state.outboxes[number]!.takeUnsent()
                state.unsent.remove(number)
            }
            return slices
        }
    }

    /// A GOAWAY the client comes back from (the server shuts down, or found it idle).
    func serverDismissed(code: LinkCloseCode, text: String) {
        log("the server asked this client to leave (\(code)): \(text)")
        turnedAway(text)
        if code == .tooManyConnections { state.withLockedValue { $0.waitingForASlot = true } }
    }

    /// An ERROR or a final GOAWAY from the server. Retryable codes only log; the rest end the link.
    /// Logged at notice: the owner hears of it where it acts on it (a final one is the error the client
    /// fails with, a passing one the reason of the next ``ConnectionTrouble``), not twice.
    func serverRefused(code: LinkCloseCode, text: String) {
        logger.notice("server refused the client", metadata: ["code": "\(code)", "text": "\(text)"])
        guard !code.isRetryable else {
            turnedAway(text)
            if code == .tooManyConnections { state.withLockedValue { $0.waitingForASlot = true } }
            return
        }
        let kind: LinkError.Kind = code == .replaced ? .replaced : .rejected(code)
        let error = LinkError(kind, code == .replaced ? text : "the server refused this client: \(text)")
        if code.refusesTheHandshake {
            refusedByEndpoint(error, text: text)
        } else {
            fail(with: error)
        }
    }

    /// A TLS failure no retry can fix (an untrusted or expired certificate, a wrong name): this endpoint
    /// cannot be used.
    func tlsFailed(_ reason: String) {
        refusedByEndpoint(LinkError(.tls, reason), text: reason)
    }

    /// With one endpoint, the link ends with `error`; with several, the reconnect loop moves on to the next
    /// and ends the link only when every endpoint has refused (see `State.endpointRefusal`).
    private func refusedByEndpoint(_ error: LinkError, text: String) {
        guard configuration.endpoints.count > 1 else { return fail(with: error) }
        turnedAway(text)
        state.withLockedValue { $0.endpointRefusal = error }
    }

    /// The error the link ends with when every endpoint refused: the kind of the first listed endpoint's
    /// refusal (so callers that match on the kind still do), naming each endpoint and its reason.
    private func everyEndpointRefused(_ refusals: [Int: LinkError]) -> LinkError {
        let ordered = refusals.sorted { $0.key < $1.key }
        let reasons = ordered.map { "\(configuration.endpoints[$0.key]): \($0.value.message)" }
        return LinkError(ordered[0].value.kind, "every endpoint refused this client: \(reasons.joined(separator: "; "))")
    }

    /// The reason a retry warning gives if this connection ends before its session began.
    private func turnedAway(_ text: String) {
        state.withLockedValue { $0.endedEarly = "turned the connection away: \(text)" }
    }

    /// Nothing at all came back for the idle timeout (no WELCOME, no PONG): the connection is replaced. Before
    /// a session, that is what a service that is no linger server and waits for more input looks like.
    func replacedForSilence(heardAFrame: Bool) {
        log("nothing received from the server for \(configuration.idleTimeout); replacing the connection")
        state.withLockedValue {
            $0.endedEarly = heardAFrame
                ? "went silent for \(configuration.idleTimeout.formattedSeconds)"
                : "accepted the connection but sent nothing for \(configuration.pingInterval.formattedSeconds); is it a linger server?"
        }
    }

    /// Something other than a linger server answered: the link ends (no retry makes it one).
    func notALinkServer(_ reason: String) {
        logger.notice("not a linger server", metadata: ["reason": "\(reason)"])
        refusedByEndpoint(LinkError(.notALinkServer, reason), text: reason)
    }

    private func fail(with error: LinkError) {
        let waiters = state.withLockedValue { state -> [Waiter] in
            if state.failure == nil { state.failure = error }
            return takeReadyWaiters(&state)
        }
        resume(waiters)
    }

    func connectionEnded(_ channel: any Channel, heardAFrame: Bool) {
        state.withLockedValue { state in
            if let current = state.channel, current === channel { state.channel = nil }
            state.lastConnectionHeardAFrame = heardAFrame
        }
    }

    func log(_ message: String) { logger.info("\(message)") }

    // MARK: - Waiting

    private var isClosingOrFailed: Bool { Task.isCancelled || state.withLockedValue { $0.closing || $0.failure != nil } }

    /// Stops reconnecting and asks the current connection to close, client first.
    private func beginClosing() {
        let (channel, waiters) = state.withLockedValue { state -> ((any Channel)?, [Waiter]) in
            state.closing = true
            return (state.channel, takeReadyWaiters(&state))
        }
        resume(waiters)
        channel?.pipeline.fireUserInboundEventTriggered(CloseRequested())
    }

    private func hasRoom(_ state: State, addingMessages messages: Int, bytes: Int) -> Bool {
        state.unacknowledged + messages <= configuration.outboxMessages && state.unacknowledgedBytes + bytes <= configuration.outboxBytes
    }

    /// Suspends until `condition` holds, the link fails or stops, or the task is cancelled.
    private func wait(for condition: Condition) async throws {
        let id = state.withLockedValue { state -> Int in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Checked under the lock that cancellation also takes, so a cancellation is never missed.
                let ready: Result<Void, any Error>? = state.withLockedValue { state in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if isSatisfied(condition, state) { return .success(()) }
                    if let failure = state.failure { return .failure(failure) }
                    if state.stopped { return .failure(LinkError(.closed, "the link is closed")) }
                    state.waiters.append(Waiter(id: id, condition: condition, continuation: continuation))
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func isSatisfied(_ condition: Condition, _ state: State) -> Bool {
        switch condition {
        case .established: state.established
        case .space(let messages, let bytes): state.isEmpty || hasRoom(state, addingMessages: messages, bytes: bytes)
        case .acknowledged(let marks): marks.allSatisfy { number, last in (state.outboxes[number]?.acknowledged ?? .max) >= last }
        case .closing: state.closing || state.failure != nil
        case .stopped: state.stopped
        case .streamRoom: state.streamNames.count < LinkLimits.maximumOpenStreams
        }
    }

    /// Removes and returns the waiters whose condition holds, or that must fail (the link failed).
    private func takeReadyWaiters(_ state: inout State) -> [Waiter] {
        var ready: [Waiter] = [], waiting: [Waiter] = []
        for waiter in state.waiters {
            if isSatisfied(waiter.condition, state) || state.failure != nil || state.stopped { ready.append(waiter) } else { waiting.append(waiter) }
        }
        state.waiters = waiting
        return ready
    }

    private func resume(_ waiters: [Waiter]) {
        guard !waiters.isEmpty else { return }
        let (snapshot, failure) = state.withLockedValue { ($0, $0.failure ?? ($0.stopped ? LinkError(.closed, "the link is closed") : nil)) }
        for waiter in waiters {
            if isSatisfied(waiter.condition, snapshot) || failure == nil {
                waiter.continuation.resume()
            } else {
                waiter.continuation.resume(throwing: failure!)
            }
        }
    }

    /// The link is finished: wake everyone (with the failure, if any).
    private func stop() {
        let waiters = state.withLockedValue { state -> [Waiter] in
            state.stopped = true
            return takeReadyWaiters(&state)
        }
        resume(waiters)
    }
}

/// A stream of a ``LinkClient``: the unnamed one, or one opened with ``LinkClient/openStream(_:)``.
public struct LinkStream: Sendable, Hashable {
    public let name: String
    let number: UInt32

    /// The client's single unnamed stream (what `send` uses unless told otherwise).
    public static let unnamed = LinkStream(name: "", number: 0)
}

extension Duration {
    /// "250ms", "1.5s", "2m30s": as a user types durations on the command line.
    public var formattedSeconds: String {
        let (seconds, attoseconds) = components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        if milliseconds < 60_000 {
            let tenths = (milliseconds + 50) / 100
            return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s"
        }
        let total = (milliseconds + 500) / 1000
        return total % 60 == 0 ? "\(total / 60)m" : "\(total / 60)m\(total % 60)s"
    }

    /// "250 ms", "1.5 s": for log lines a person reads.
    var formattedMilliseconds: String {
        let (seconds, attoseconds) = components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return milliseconds < 1000 ? "\(milliseconds) ms" : "\(Double(milliseconds) / 1000) s"
    }
}
