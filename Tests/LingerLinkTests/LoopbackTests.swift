import LingerLink
import Logging
import MetricsTestKit
import NIOCore
import ServiceLifecycle
import Testing

/// The library API in one process over real loopback sockets: server and client as services.
struct LoopbackTests {
    @Test func deliversEverythingAndCountsIt() async throws {
        let serverMetrics = TestMetrics(), clientMetrics = TestMetrics()
        let sink = DiscardSink()
        let server = LinkServer(
            configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: sink),
            logger: Logger(label: "server"), metrics: LinkMetrics(role: "server", factory: serverMetrics))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try #require(try await server.listeningAddress().port)
            let client = LinkClient(
                configuration: LinkClientConfiguration(endpoints: [.init(host: "127.0.0.1", port: port)], clientID: "loopback"),
                logger: Logger(label: "client"), metrics: LinkMetrics(role: "client", factory: clientMetrics))
            group.addTask { try await client.run() }
            #expect(try await client.start() == 0)
            for i in 1...500 { try await client.send(Array("message \(i)".utf8)) }
            try await client.send(contentsOf: (501...1000).map { Array("message \($0)".utf8) })
            try await client.flush()
            #expect(client.unacknowledged == 0)
            try await client.close()
            #expect(try clientMetrics.expectCounter("linger_link_messages_sent_total", [("role", "client")]).totalValue == 1000)
            #expect(try clientMetrics.expectCounter("linger_link_messages_acked_total", [("role", "client")]).totalValue == 1000)
            #expect(try serverMetrics.expectCounter("linger_link_messages_accepted_total", [("role", "server")]).totalValue == 1000)
            // A second client with the same id resumes after the server's mark.
            let again = LinkClient(
                configuration: LinkClientConfiguration(endpoints: [.init(host: "127.0.0.1", port: port)], clientID: "loopback"),
                logger: Logger(label: "client"))
            group.addTask { try await again.run() }
            #expect(try await again.start() == 1000)
            #expect(try await again.send(Array("next".utf8)) == 1001)
            try await again.close()
            group.cancelAll()
        }
    }

    /// Regression: `listeningAddress()` hung forever when the bind had failed.
    @Test func aFailedBindIsReportedToWhoeverAsksForTheAddress() async throws {
        let first = LinkServer(configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: DiscardSink()), logger: Logger(label: "a"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await first.run() }
            let port = try #require(try await first.listeningAddress().port)
            let second = LinkServer(configuration: LinkServerConfiguration(host: "127.0.0.1", port: port, sink: DiscardSink()), logger: Logger(label: "b"))
            let error = await #expect(throws: LinkError.self) { try await second.run() }
            #expect(error?.message.contains("already in use") == true, "\(String(describing: error))")
            await #expect(throws: LinkError.self, "answers at once, after the failure") { try await second.listeningAddress() }
            group.cancelAll()
        }
    }

    /// Every wait honours cancellation: a send blocked on a full outbox, and a start against nothing.
    @Test func waitsEndWhenTheirTaskIsCancelled() async throws {
        let server = LinkServer(configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: ScriptedSink()), logger: Logger(label: "s"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try #require(try await server.listeningAddress().port)
            let client = LinkClient(
                configuration: LinkClientConfiguration(endpoints: [.init(host: "127.0.0.1", port: port)], clientID: "cancel", outboxMessages: 1),
                logger: Logger(label: "c"))
            group.addTask { try? await client.run() }
            _ = try await client.start()
            let sink = try #require(server.configuration.sink as? ScriptedSink)
            sink.hold()
            try await client.send(Array("fills the outbox".utf8))
            let blocked = Task { try await client.send(Array("waits for room".utf8)) }
            try await Task.sleep(for: .milliseconds(50))
            blocked.cancel()
            await #expect(throws: CancellationError.self) { try await blocked.value }
            let flushing = Task { try await client.flush() }
            flushing.cancel()
            await #expect(throws: CancellationError.self) { try await flushing.value }
            sink.release()
            try await client.close()
            group.cancelAll()
        }
        let nowhere = LinkClient(
            configuration: LinkClientConfiguration(endpoints: [.init(host: "127.0.0.1", port: 1)], clientID: "nowhere",
                backoff: ReconnectBackoff(initial: .milliseconds(10), maximum: .milliseconds(20))),
            logger: Logger(label: "n"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try? await nowhere.run() }
            let starting = Task { try await nowhere.start() }
            // Until the first refused attempt is recorded (a condition, not a guess at how long it takes).
            for _ in 0..<500 where nowhere.connectProblem == nil { try await Task.sleep(for: .milliseconds(10)) }
            starting.cancel()
            await #expect(throws: CancellationError.self) { try await starting.value }
            #expect(nowhere.connectProblem?.contains("refused") == true, "\(String(describing: nowhere.connectProblem))")
            try await nowhere.close(timeout: .milliseconds(10))
            group.cancelAll()
        }
    }

    /// The outbox is what bounds a sender's memory: past its messages or its bytes (frames included), `send`
    /// throws `.outboxFull` when told not to wait; a message larger than the bound still goes alone into an
    /// empty outbox (or it could never be sent); and acknowledgements make room again.
    @Test func theOutboxBoundsWhatIsUnacknowledged() async throws {
        let sink = ScriptedSink()
        let server = LinkServer(configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: sink), logger: Logger(label: "s"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let endpoint = LinkClientConfiguration.Endpoint(host: "127.0.0.1", port: try #require(try await server.listeningAddress().port))
            let byBytes = LinkClient(
                configuration: LinkClientConfiguration(endpoints: [endpoint], clientID: "bytes", outboxBytes: 1000, waitWhenFull: false),
                logger: Logger(label: "b"))
            let byMessages = LinkClient(
                configuration: LinkClientConfiguration(endpoints: [endpoint], clientID: "messages", outboxMessages: 2, waitWhenFull: false),
                logger: Logger(label: "m"))
            group.addTask { try? await byBytes.run() }
            group.addTask { try? await byMessages.run() }
            _ = try await byBytes.start()
            _ = try await byMessages.start()
            let isOutboxFull: @Sendable (any Error) -> Bool = { ($0 as? LinkError)?.kind == .outboxFull }

            sink.hold()
            try await byBytes.send([UInt8](repeating: UInt8(ascii: "a"), count: 1500))
            await #expect(performing: { try await byBytes.send(Array("b".utf8)) }, throws: isOutboxFull)
            try await byMessages.send(Array("m1".utf8))
            try await byMessages.send(Array("m2".utf8))
            await #expect(performing: { try await byMessages.send(Array("m3".utf8)) }, throws: isOutboxFull)
            #expect(byBytes.unacknowledged == 1 && byMessages.unacknowledged == 2)
            sink.release()
            try await byBytes.flush()
            try await byMessages.flush()

            sink.hold()
            try await byBytes.send([UInt8](repeating: UInt8(ascii: "c"), count: 400))
            try await byBytes.send([UInt8](repeating: UInt8(ascii: "d"), count: 400))
            await #expect(performing: { try await byBytes.send([UInt8](repeating: UInt8(ascii: "e"), count: 400)) }, throws: isOutboxFull)
            try await byMessages.send(Array("m4".utf8))
            sink.release()
            try await byBytes.flush()
            try await byMessages.flush()
            try await byBytes.close()
            try await byMessages.close()
            group.cancelAll()
        }
        let stored = sink.stored.split(separator: "\n").map { $0.count > 3 ? "\($0.first!) × \($0.count)" : String($0) }
        #expect(stored.sorted() == ["a × 1500", "c × 400", "d × 400", "m1", "m2", "m4"])
    }

    /// A collector that refuses the token in its handshake (one not yet given the rotated token file) is that
    /// collector's setup, not the client's: with several endpoints the client moves on to the next. Only when
    /// every endpoint has refused does the link end, naming each, instead of cycling between them.
    @Test(.timeLimit(.minutes(1))) func aRefusingEndpointIsPassedOverAndAllRefusingEndsTheLink() async throws {
        let stale = LinkServer(
            configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: DiscardSink(), tokens: [LinkToken(secret: "old-token")]),
            logger: Logger(label: "stale"))
        let sink = ScriptedSink()
        let rotated = LinkServer(
            configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: sink, tokens: [LinkToken(secret: "new-token")]),
            logger: Logger(label: "rotated"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await stale.run() }
            group.addTask { try await rotated.run() }
            let a = try #require(try await stale.listeningAddress().port)
            let b = try #require(try await rotated.listeningAddress().port)
            let endpoints: [LinkClientConfiguration.Endpoint] = [.init(host: "127.0.0.1", port: a), .init(host: "127.0.0.1", port: b)]
            let backoff = ReconnectBackoff(initial: .milliseconds(10), maximum: .milliseconds(20))
            let client = LinkClient(
                configuration: LinkClientConfiguration(endpoints: endpoints, clientID: "rotating", token: "new-token", backoff: backoff),
                logger: Logger(label: "c"))
            group.addTask { try await client.run() }
            #expect(try await client.start() == 0)
            try await client.send(Array("after the rotation".utf8))
            try await client.flush()
            #expect(sink.stored == "after the rotation\n")
            try await client.close()

            let stranger = LinkClient(
                configuration: LinkClientConfiguration(endpoints: endpoints, clientID: "stranger", token: "wrong-token", backoff: backoff),
                logger: Logger(label: "r"))
            group.addTask { try? await stranger.run() }
            let error = await #expect(throws: LinkError.self) { try await stranger.start() }
            #expect(error?.kind == .rejected(.unauthorized))
            let message = error?.message ?? ""
            #expect(message.hasPrefix("every endpoint refused this client: 127.0.0.1:\(a): ") && message.contains("; 127.0.0.1:\(b): "), "\(message)")

            // The other endpoint down (nothing listens on port 1): the refusing one keeps its turn, so the
            // client gets in once that collector reloads its tokens.
            let patient = LinkClient(
                configuration: LinkClientConfiguration(
                    endpoints: [.init(host: "127.0.0.1", port: a), .init(host: "127.0.0.1", port: 1)], clientID: "patient",
                    token: "new-token", backoff: backoff),
                logger: Logger(label: "p"))
            group.addTask { try await patient.run() }
            let starting = Task { try await patient.start() }
            try await Task.sleep(for: .milliseconds(200))
            #expect(patient.connectProblem != nil, "still refused or unreachable: \(String(describing: patient.connectProblem))")
            try stale.reloadTokens([LinkToken(secret: "new-token")])
            #expect(try await starting.value == 0)
            try await patient.close()
            group.cancelAll()
        }
    }

    /// A ServiceGroup's graceful shutdown ends the client's run().
    @Test func gracefulShutdownStopsTheClient() async throws {
        let server = LinkServer(configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: DiscardSink()), logger: Logger(label: "s"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try #require(try await server.listeningAddress().port)
            let client = LinkClient(
                configuration: LinkClientConfiguration(endpoints: [.init(host: "127.0.0.1", port: port)], clientID: "graceful"),
                logger: Logger(label: "c"))
            let services = ServiceGroup(services: [client], logger: Logger(label: "g"))
            group.addTask { try await services.run() }
            _ = try await client.start()
            try await client.send(Array("one".utf8))
            try await client.flush()
            await services.triggerGracefulShutdown()
            try await group.next()  // the service group returns
            group.cancelAll()
        }
    }

    /// Named streams over one connection: each resumes from its own mark, with the fingerprint of the last
    /// message stored, and a restarted client sees them in WELCOME.
    @Test func namedStreamsResumeApart() async throws {
        let sink = ScriptedSink()
        let server = LinkServer(configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: sink), logger: Logger(label: "s"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try #require(try await server.listeningAddress().port)
            let configuration = LinkClientConfiguration(endpoints: [.init(host: "127.0.0.1", port: port)], clientID: "streams")
            let first = LinkClient(configuration: configuration, logger: Logger(label: "c"))
            group.addTask { try await first.run() }
            _ = try await first.start()
            let (a, markA) = try await first.openStream("a.log")
            let (b, _) = try await first.openStream("b.log")
            #expect(markA.sequence == 0)
            await #expect(throws: LinkError.self) { try await first.openStream("a.log") }
            var batchA = LinkBatch(), batchB = LinkBatch()
            for n in 1...3 { batchA.append(Array("a\(n)".utf8)) }
            batchB.append(Array("b1".utf8))
            #expect(try await first.send(batchA, on: a) == 3)
            #expect(try await first.send(batchB, on: b) == 1)
            try await first.flush()
            first.finishStream(b)
            try await first.close()

            let second = LinkClient(configuration: configuration, logger: Logger(label: "c2"))
            group.addTask { try await second.run() }
            _ = try await second.start()
            let known = second.knownStreams
            #expect(known.map(\.stream) == ["a.log", "b.log"])
            #expect(known.first?.sequence == 3)
            #expect(known.first?.check == LinkFingerprint.fnv1a(Array("a3".utf8)), "the fingerprint of the last message stored")
            let (again, mark) = try await second.openStream("a.log")
            #expect(mark.sequence == 3)
            var more = LinkBatch()
            more.append(Array("a4".utf8))
            #expect(try await second.send(more, on: again) == 4)
            try await second.close()
            #expect(sink.stored.split(separator: "\n").sorted() == ["a1", "a2", "a3", "a4", "b1"])
            group.cancelAll()
        }
    }

    /// A follower of thousands of files, or of a log rotated thousands of times, opens more streams over one
    /// connection than the server holds at once: each finished stream is closed on both sides (and the
    /// client waits for room when too many are open), a finished name reopened continues after what it sent,
    /// and each mark's digest covers everything stored on it.
    @Test func finishedStreamsAreClosedSoALongRunNeverReachesTheLimit() async throws {
        let sink = ScriptedSink()
        let server = LinkServer(configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: sink), logger: Logger(label: "s"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try #require(try await server.listeningAddress().port)
            let configuration = LinkClientConfiguration(endpoints: [.init(host: "127.0.0.1", port: port)], clientID: "many")
            let client = LinkClient(configuration: configuration, logger: Logger(label: "c"))
            group.addTask { try await client.run() }
            _ = try await client.start()
            let count = LinkLimits.maximumOpenStreams + 300
            for n in 0..<count {
                let (stream, mark) = try await client.openStream("s\(n)")
                #expect(mark.sequence == 0)
                var batch = LinkBatch()
                batch.append(Array("line \(n)".utf8))
                try await client.send(batch, on: stream)
                client.finishStream(stream)
            }
            try await client.flush()
            // Reopened: numbered after what it sent, on the same connection.
            let (again, mark) = try await client.openStream("s7")
            #expect(mark.sequence == 1)
            var more = LinkBatch()
            more.append(Array("line 7 again".utf8))
            #expect(try await client.send(more, on: again) == 2)
            try await client.close()
            #expect(client.reconnectCount == 0, "one connection throughout: nothing was refused")
            #expect(sink.stored.split(separator: "\n").count == count + 1)

            let second = LinkClient(configuration: configuration, logger: Logger(label: "c2"))
            group.addTask { try await second.run() }
            _ = try await second.start()
            let seven = try #require(second.knownStreams.first { $0.stream == "s7" })
            let content = Array("line 7\nline 7 again\n".utf8)
            #expect(seven.sequence == 2)
            #expect(seven.digest == content.withUnsafeBytes { LinkContentDigest.extend(LinkContentDigest.empty, withLines: $0) })
            #expect(LinkContentDigest.length(of: seven.digest) == UInt32(content.count))
            try await second.close()
            group.cancelAll()
        }
    }
}
