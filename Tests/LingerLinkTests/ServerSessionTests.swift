@testable import LingerLink
import NIOCore
import Testing

/// The server's state machine, fed events with no channel: every decision of a connection.
struct ServerSessionTests {
    static let configuration = ServerSession.Configuration(
        tokens: [], serverID: "t", keepMessageBytes: true, acceptsNewlines: false, pendingLimit: 1024)

    /// A session that has said HELLO and got its claim (epoch, mark).
    private func streaming(epoch: UInt64 = 1, mark: UInt64 = 0, tokens: [LinkToken] = []) -> ServerSession {
        var configuration = Self.configuration
        configuration.tokens = tokens
        var session = ServerSession(configuration: configuration)
        #expect(session.frameReceived(hello()) == .claim(clientID: "c1"))
        #expect(session.claimed(LinkSinkClaim(epoch: epoch, sequences: ["": mark]), isNewest: true)
            == .welcome(serverID: "t", mark: mark, streams: [], keepalive: .milliseconds(1000)))
        return session
    }

    @Test func resumesAtTheMarkDedupesAndCommitsWhatFollows() {
        var session = streaming(mark: 2)
        guard case .commit(let batches) = session.dataReceived(dataRun(1...4)), let batch = batches.first else {
            Issue.record("expected a commit")
            return
        }
        #expect(batch.firstSequence == 3 && batch.count == 2 && text(batch) == "m3\nm4\n", "1 and 2 are already stored")
        #expect(session.lastDuplicates == 2 && session.lastAccepted == 2)
        #expect(session.committed([.stored]) == .acknowledge([.init(stream: 0, through: 4)], next: nil))
    }

    @Test func whatArrivesDuringACommitGoesInTheNextOneAndReadingStopsAtTheLimit() {
        var session = streaming()
        guard case .commit = session.dataReceived(dataRun(1...1)) else { Issue.record("expected a commit"); return }
        #expect(session.dataReceived(dataRun(2...3)) == .none, "held while a commit is in flight")
        #expect(session.shouldRead)
        _ = session.dataReceived(dataRun(4...200, payload: { _ in String(repeating: "x", count: 20) }))
        #expect(!session.shouldRead, "over the pending limit while the sink works: backpressure")
        #expect(session.isWaitingForSink)
        #expect(session.readIdle(timeout: .seconds(1)) == .none, "silence while we wait for the sink is not the client's")
        #expect(session.writeIdle() == .ping, "the waiting client hears from us")
        guard case .acknowledge(let acks, let next?) = session.committed([.stored]), acks == [.init(stream: 0, through: 1)] else {
            Issue.record("expected ack and next")
            return
        }
        #expect(next.count == 1 && next[0].firstSequence == 2 && next[0].count == 199)
        #expect(session.shouldRead)
    }

    /// A session with message 1 in flight and `pending` waiting, handed the in-flight batch's buffer (grown to
    /// 200 kB) as the handler does when the commit is stored. Returns the buffer's address.
    private func reuseLargeBuffer(_ session: inout ServerSession, pending: ClosedRange<UInt64>) -> UInt? {
        guard case .commit(var inFlight) = session.dataReceived(dataRun(1...1)) else { return nil }
        #expect(session.dataReceived(dataRun(pending)) == .none)
        inFlight[0].reserve(bytes: 200_000)
        // Held only by what the session gets, as the handler hands it over: a second holder makes a write copy.
        var spares = [inFlight[0].takeLinesForReuse()]
        inFlight = []
        #expect(spares[0].readableBytes == 0 && spares[0].capacity >= 200_000)
        let address = spares[0].withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        session.reuse(spares)
        spares = []
        return address
    }

    private func address(_ batch: LinkSinkBatch) -> UInt { batch.lines.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) } }

    /// The buffer of a stored commit becomes the next pending batch (no fresh allocation per commit), and a
    /// connection that goes quiet does not keep a large one.
    @Test func aStoredCommitsBufferIsReusedWhileSendingAndLetGoWhenIdle() throws {
        var session = streaming()
        let spare = try #require(reuseLargeBuffer(&session, pending: 2...3))
        guard case .acknowledge(_, next: let second?) = session.committed([.stored]) else { Issue.record("expected the next commit"); return }
        #expect(text(second[0]) == "m2\nm3\n")
        _ = session.dataReceived(dataRun(4...4))
        session.reuse([])
        guard case .acknowledge(_, next: let third?) = session.committed([.stored]) else { Issue.record("expected the next commit"); return }
        #expect(address(third[0]) == spare, "the pending batch filled the reused buffer")
        #expect(text(third[0]) == "m4\n")

        // Quiet: the batch after the last commit starts small again.
        var quiet = streaming()
        let large = try #require(reuseLargeBuffer(&quiet, pending: 2...2))
        guard case .acknowledge(_, next: _?) = quiet.committed([.stored]) else { Issue.record("expected the next commit"); return }
        #expect(quiet.committed([.stored]) == .acknowledge([.init(stream: 0, through: 2)], next: nil))
        guard case .commit(let later) = quiet.dataReceived(dataRun(3...3)) else { Issue.record("expected a commit"); return }
        #expect(address(later[0]) != large)
        #expect(later[0].lines.capacity < ServerSession.Session.idleBufferLimit, "an idle connection let its large buffer go")
    }

    @Test func aGapIsAProtocolError() {
        var session = streaming()
        guard case .error(.protocolError, let text) = session.dataReceived(dataRun([1, 3])) else {
            Issue.record("expected ERROR")
            return
        }
        #expect(text.contains("skips"))
        #expect(session.dataReceived(dataRun(4...4)) == .none, "nothing is accepted after an ERROR")
    }

    @Test func aLineSinkRefusesAMessageWithANewline() {
        var session = streaming()
        let action = session.dataReceived(dataRun(1...1, payload: { _ in "two\nlines" }))
        #expect(action == .error(.messageRefused, ""))
        #expect(!LinkCloseCode.messageRefused.isRetryable)
    }

    @Test(arguments: ["wrong", "good\0", "good" + String(repeating: "\0", count: 256), "goo", ""])
    func aTokenThatIsNotExactlyRightIsRefused(_ token: String) {
        var session = ServerSession(configuration: .init(tokens: [LinkToken(secret: "good")], serverID: "t", keepMessageBytes: true, acceptsNewlines: true, pendingLimit: 1024))
        #expect(session.frameReceived(hello(token: token)) == .error(.unauthorized, ""))
    }

    @Test func theRightTokenAndVersionAreAccepted() {
        var session = ServerSession(configuration: .init(tokens: [LinkToken(secret: "good")], serverID: "t", keepMessageBytes: true, acceptsNewlines: true, pendingLimit: 1024))
        #expect(session.frameReceived(hello(token: "good")) == .claim(clientID: "c1"))
        var old = ServerSession(configuration: Self.configuration)
        #expect(old.frameReceived(.hello(.init(version: 1, clientID: "c1", token: ""))) == .error(.unsupportedVersion, ""))
    }

    @Test func aTokenWritesOnlyAsTheClientIDsItWasIssuedFor() {
        let tokens = [LinkToken(secret: "web", clientIDs: ["c1", "web-*"]), LinkToken(secret: "batch", clientIDs: ["batch-1"])]
        func hello(_ token: String, _ id: String) -> ServerSession.Action {
            var session = ServerSession(configuration: .init(tokens: tokens, serverID: "t", keepMessageBytes: true, acceptsNewlines: true, pendingLimit: 1024))
            return session.frameReceived(.hello(.init(clientID: id, token: token)))
        }
        #expect(hello("web", "c1") == .claim(clientID: "c1"))
        #expect(hello("web", "web-17") == .claim(clientID: "web-17"))
        #expect(hello("batch", "batch-1") == .claim(clientID: "batch-1"))
        #expect(hello("batch", "c1") == .error(.unauthorized, ""), "a leaked batch token cannot write as c1")
        #expect(hello("web", "batch-1") == .error(.unauthorized, ""))
        #expect(hello("web", "web") == .error(.unauthorized, ""), "web-* needs the dash")
    }

    @Test func withClientCertificatesTheClientIDMustBeANameOfTheCertificate() {
        var configuration = Self.configuration
        configuration.requiresCertificateIdentity = true
        var matching = ServerSession(configuration: configuration)
        matching.certificateVerified(names: ["web-1", "c1.clients"])
        #expect(matching.frameReceived(.hello(.init(clientID: "c1.clients", token: ""))) == .claim(clientID: "c1.clients"))
        var impostor = ServerSession(configuration: configuration)
        impostor.certificateVerified(names: ["web-1"])
        #expect(impostor.frameReceived(hello()) == .error(.unauthorized, ""))
        var none = ServerSession(configuration: configuration)
        #expect(none.frameReceived(hello()) == .error(.unauthorized, ""), "no verified certificate, no id")
        var plain = ServerSession(configuration: Self.configuration)
        plain.plaintextOnTLSPort()
        #expect(plain.frameReceived(hello()) == .error(.unauthorized, ""))
    }

    @Test func peerEOFCommitsWhatIsPendingAcknowledgesAndCloses() {
        var session = streaming()
        guard case .commit = session.dataReceived(dataRun(1...2)) else { Issue.record("expected a commit"); return }
        _ = session.dataReceived(dataRun(3...3))
        #expect(session.inputClosed() == .none, "waits for the commit in flight")
        guard case .commit(let last) = session.committed([.stored]) else { Issue.record("expected the last commit"); return }
        #expect(last.first?.firstSequence == 3)
        #expect(session.committed([.stored]) == .acknowledgeAndClose([.init(stream: 0, through: 2), .init(stream: 0, through: 3)]))
    }

    @Test func idleTimeoutSendsGoAwayAndTheDeadlineCloses() {
        var session = streaming()
        #expect(session.readIdle(timeout: .seconds(30)) == .goAway(.idleTimeout, ""))
        #expect(session.readIdle(timeout: .seconds(30)) == .none, "only once")
        #expect(session.closeDeadlinePassed() == .close)
    }

    // MARK: - Takeover at every step of the old connection's life (issue: fence the session)

    @Test func takeoverBeforeHelloCompletes() {
        var session = ServerSession(configuration: Self.configuration)
        #expect(session.frameReceived(hello()) == .claim(clientID: "c1"))
        // A newer connection's claim was recorded first: this one is stale on arrival.
        #expect(session.claimed(LinkSinkClaim(epoch: 1, marks: [:]), isNewest: false) == .goAway(.replaced, ""))
        #expect(session.dataReceived(dataRun(1...1)) == .none, "a replaced connection stores nothing")
    }

    @Test func takeoverDuringAStoreIsFencedBySinkAndConnectionIsDismissed() async throws {
        var old = streaming(epoch: 1)
        guard case .commit(let inFlight) = old.dataReceived(dataRun(1...3)) else { Issue.record("expected a commit"); return }
        // The new connection claims before the old one's commit reaches the sink.
        let sink = DiscardSink()
        _ = try await sink.claim(clientID: "c1")  // epoch 1: the old connection
        let newer = try await sink.claim(clientID: "c1")
        #expect(newer.epoch == 2 && newer.marks.isEmpty)
        #expect(try await sink.commit(inFlight) == [.fenced], "the stale epoch is refused inside the commit")
        #expect(old.committed([.fenced]) == .goAway(.replaced, ""))
        #expect(old.clientID == "c1")
    }

    @Test func takeoverAfterAnAckKeepsWhatWasAcknowledged() async throws {
        let sink = DiscardSink()
        let claim = try await sink.claim(clientID: "c1")
        var old = streaming(epoch: claim.epoch)
        guard case .commit(let batches) = old.dataReceived(dataRun(1...5)) else { Issue.record("expected a commit"); return }
        #expect(try await sink.commit(batches) == [.stored])
        #expect(old.committed([.stored]) == .acknowledge([.init(stream: 0, through: 5)], next: nil))
        let newer = try await sink.claim(clientID: "c1")
        #expect(newer.sequence(of: "") == 5, "the new connection resumes after everything acknowledged")
        #expect(old.replaced() == .goAway(.replaced, ""))
        _ = old.dataReceived(dataRun(6...7))
        #expect(try await sink.commit([LinkSinkBatch(key: .init(clientID: "c1"), epoch: claim.epoch, firstSequence: 6, lines: ByteBuffer(string: "x\n"), lengths: [1])]) == [.fenced])
    }

    @Test func takeoverDuringTheCloseDeadlineChangesNothing() {
        var old = streaming()
        #expect(old.shutdownRequested() == .goAway(.shuttingDown, ""))
        #expect(old.replaced() == .none, "already leaving: no second GOAWAY")
        #expect(old.closeDeadlinePassed() == .close)
    }

    @Test func tooLargeAndMalformedFramesAreFinalRefusals() {
        var session = streaming()
        #expect(session.protocolError(LinkProtocolError(.frameTooLarge(length: 99, limit: 10))) == .error(.messageTooLarge, ""))
        #expect(!LinkCloseCode.messageTooLarge.isRetryable && !LinkCloseCode.protocolError.isRetryable)
        #expect(!LinkCloseCode.replaced.isRetryable && LinkCloseCode.sinkFailure.isRetryable)
    }
}

extension ServerSessionTests {
    @Test func namedStreamsResumeFromTheirOwnMarksAndAreAcknowledgedApart() {
        var session = ServerSession(configuration: Self.configuration)
        _ = session.frameReceived(hello())
        let claim = LinkSinkClaim(epoch: 1, marks: ["a.log": LinkStreamMark(stream: "a.log", sequence: 10, check: 99)])
        #expect(session.claimed(claim, isNewest: true) == .welcome(
            serverID: "t", mark: 0, streams: [LinkStreamMark(stream: "a.log", sequence: 10, check: 99)], keepalive: .milliseconds(1000)))
        #expect(session.frameReceived(.open(stream: 1, id: "a.log")) == .none)
        #expect(session.frameReceived(.open(stream: 2, id: "b.log")) == .none)
        var run = ByteBuffer()
        run.writeLinkFrame(.data(stream: 1, sequence: 11, payload: ByteBuffer(string: "a11")))
        run.writeLinkFrame(.data(stream: 2, sequence: 1, payload: ByteBuffer(string: "b1")))
        run.writeLinkFrame(.data(stream: 1, sequence: 12, payload: ByteBuffer(string: "a12")))
        run.writeLinkFrame(.data(stream: 1, sequence: 3, payload: ByteBuffer(string: "old")))
        guard case .commit(let batches) = session.dataReceived(run) else { Issue.record("expected a commit"); return }
        #expect(batches.map { "\($0.key) \($0.firstSequence) \(text($0))" } == ["c1/a.log 11 a11\na12\n", "c1/b.log 1 b1\n"])
        #expect(session.lastDuplicates == 1)
        #expect(session.committed([.stored, .stored]) == .acknowledge([.init(stream: 1, through: 12), .init(stream: 2, through: 1)], next: nil))
    }

    /// Each stream's batch takes room for its own messages of a run, not for the whole run: a sender with many
    /// files interleaves many streams in one read.
    @Test func aStreamsBatchReservesForItsOwnMessagesOnly() {
        var session = streaming()
        for stream in 1...3 { #expect(session.frameReceived(.open(stream: UInt32(stream), id: "f\(stream)")) == .none) }
        var run = ByteBuffer()
        let large = String(repeating: "x", count: 100_000)
        run.writeLinkFrame(.data(stream: 1, sequence: 1, payload: ByteBuffer(string: "small")))
        run.writeLinkFrame(.data(stream: 2, sequence: 1, payload: ByteBuffer(string: large)))
        run.writeLinkFrame(.data(stream: 3, sequence: 1, payload: ByteBuffer(string: large)))
        run.writeLinkFrame(.data(stream: 1, sequence: 2, payload: ByteBuffer(string: "small")))
        guard case .commit(let batches) = session.dataReceived(run) else { Issue.record("expected a commit"); return }
        #expect(batches.map(text) == ["small\nsmall\n", large + "\n", large + "\n"])
        #expect(batches[0].lines.capacity < 50_000, "stream 1 holds two small messages: \(batches[0].lines.capacity) bytes reserved")
        #expect(session.lastAcceptedBytes == 12 + 2 * 100_001)
    }

    @Test(arguments: [LinkFrame.open(stream: 0, id: "x"), .open(stream: 1, id: "no spaces"), .open(stream: 1, id: "")])
    func aBadOpenIsAProtocolError(_ frame: LinkFrame) {
        var session = streaming()
        #expect(session.frameReceived(frame) == .error(.protocolError, ""))
    }

    @Test func dataOnAStreamNeverOpenedIsAProtocolError() {
        var session = streaming()
        var run = ByteBuffer()
        run.writeLinkFrame(.data(stream: 5, sequence: 1, payload: ByteBuffer(string: "x")))
        #expect(session.dataReceived(run) == .error(.protocolError, ""))
    }

    @Test func aStreamCannotBeOpenedTwice() {
        var session = streaming()
        #expect(session.frameReceived(.open(stream: 1, id: "a")) == .none)
        #expect(session.frameReceived(.open(stream: 2, id: "a")) == .error(.protocolError, ""))
    }

    /// A long run opens far more streams than one connection may hold at once: a closed one no longer counts,
    /// and its name reopened later on the same connection resumes after what it stored.
    @Test func aClosedStreamIsForgottenAndItsNameResumesWhereItStood() {
        var session = streaming()
        for round in 0..<(ServerSession.maximumStreams + 10) {
            let number = UInt32(round + 1)
            #expect(session.frameReceived(.open(stream: number, id: "f\(round)")) == .none, "stream \(round)")
            var run = ByteBuffer()
            run.writeLinkFrame(.data(stream: number, sequence: 1, payload: ByteBuffer(string: "x")))
            if case .commit = session.dataReceived(run) {} else { Issue.record("expected a commit"); return }
            #expect(session.committed([.stored]) == .acknowledge([.init(stream: number, through: 1)], next: nil))
            #expect(session.frameReceived(.closeStream(stream: number)) == .none)
        }
        let again = UInt32(ServerSession.maximumStreams + 11)
        #expect(session.frameReceived(.open(stream: again, id: "f0")) == .none)
        var run = ByteBuffer()
        run.writeLinkFrame(.data(stream: again, sequence: 1, payload: ByteBuffer(string: "dup")))
        run.writeLinkFrame(.data(stream: again, sequence: 2, payload: ByteBuffer(string: "y")))
        guard case .commit(let batches) = session.dataReceived(run) else { Issue.record("expected a commit"); return }
        #expect(batches.map { "\($0.firstSequence) \(text($0))" } == ["2 y\n"], "1 was stored before the close")
    }

    @Test func tooManyOpenStreamsAndClosingWhatIsUnacknowledgedAreRefused() {
        var session = streaming()
        for number in 1...UInt32(ServerSession.maximumStreams) {
            #expect(session.frameReceived(.open(stream: number, id: "s\(number)")) == .none)
        }
        var full = session
        #expect(full.frameReceived(.open(stream: 9999, id: "one-more")) == .error(.protocolError, ""))
        var run = ByteBuffer()
        run.writeLinkFrame(.data(stream: 1, sequence: 1, payload: ByteBuffer(string: "x")))
        _ = session.dataReceived(run)
        var inFlight = session
        #expect(inFlight.frameReceived(.closeStream(stream: 1)) == .error(.protocolError, ""), "its ACK has not gone out")
        var unknown = session
        #expect(unknown.frameReceived(.closeStream(stream: 9999)) == .error(.protocolError, ""))
    }
}

struct ClientSessionTests {
    @Test func pingsWhenQuietAndReplacesAHalfOpenConnection() {
        var session = ClientSession(pingInterval: .seconds(1), idleTimeout: .seconds(3))
        #expect(session.frameReceived(.welcome(serverID: "s", highestAccepted: 7)) == .established(mark: 7, streams: [], features: []))
        #expect(session.readIdle() == .ping)
        #expect(session.readIdle() == .ping)
        #expect(session.frameReceived(.ping(token: 0)) == .pong(0), "a server PING counts as life and is answered")
        #expect(session.readIdle() == .ping)
        #expect(session.readIdle() == .ping)
        #expect(session.readIdle() == .replace, "three quiet intervals: the server is gone")
    }

    @Test func refusalsAreFinalUnlessTheCodeSaysOtherwise() {
        var replaced = ClientSession(pingInterval: .seconds(1), idleTimeout: .seconds(3))
        _ = replaced.frameReceived(.welcome(serverID: "s", highestAccepted: 0))
        #expect(replaced.frameReceived(.goAway(code: .replaced, text: "another sender")) == .refused(.replaced, "another sender"))
        var shutdown = ClientSession(pingInterval: .seconds(1), idleTimeout: .seconds(3))
        _ = shutdown.frameReceived(.welcome(serverID: "s", highestAccepted: 0))
        #expect(shutdown.frameReceived(.goAway(code: .shuttingDown, text: "bye")) == .dismissed(.shuttingDown, "bye"))
        #expect(shutdown.readIdle() == .none, "no PING while closing")
    }

    @Test func closeIsClientFirstAndEOFClosesAtOnce() {
        var session = ClientSession(pingInterval: .seconds(1), idleTimeout: .seconds(3))
        _ = session.frameReceived(.welcome(serverID: "s", highestAccepted: 0))
        #expect(session.closeRequested() == .closeGracefully(last: .goAway(code: .shuttingDown, text: "client closing")))
        #expect(session.frameReceived(.ack(sequence: 3)) == .acknowledged(stream: 0, 3), "an ACK while closing still counts")
        #expect(session.inputClosed() == .close)
    }
}
