import Foundation
import LingerLink
import LingerPostgres
import Logging
import NIOCore
import Testing

/// The sink against a real PostgreSQL: two sinks on one database are two collectors.
// Serialized: one test terminates the sinks' database connections, which must not hit its neighbours'.
// Without root there is no throwaway cluster to start (initdb runs as the postgres user); as root a missing
// PostgreSQL fails the tests, naming the package, rather than skipping them.
@Suite(.serialized, .enabled(if: getuid() == 0 || TestDatabase.url != nil, "needs root to start a throwaway PostgreSQL (scripts/test)"))
struct PostgresSinkTests {
    let logger = Logger(label: "test")
    let table = TestDatabase.table()

    private func open() async throws -> PostgresSink {
        try await PostgresSink.open(try PostgresSinkAddress(parsing: try TestDatabase.url(table: table), environment: [:]), logger: logger)
    }

    private func batch(_ client: String, stream: String = "", epoch: UInt64, from first: UInt64, count: Int) -> LinkSinkBatch {
        var lines = ByteBuffer()
        var lengths: [UInt32] = []
        for sequence in first..<(first + UInt64(count)) {
            // Bytes a text column could not hold: a body is bytea, any bytes go.
            let body: [UInt8] = Array("\(client)/\(stream) \(sequence) ".utf8) + [0, 0xff, 0x0a]
            lines.writeBytes(body)
            lines.writeInteger(UInt8(ascii: "\n"))
            lengths.append(UInt32(body.count))
        }
        return LinkSinkBatch(key: LinkStreamKey(clientID: client, stream: stream), epoch: epoch, firstSequence: first, lines: lines, lengths: lengths)
    }

    /// Polls (every 50 ms, at most 20 s) until `sql` counts at least one row.
    private func waitUntil(_ sql: String) async throws {
        for _ in 0..<400 {
            if let count = Int(try TestDatabase.psql(sql)), count > 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestDatabaseError(text: "never true: \(sql)")
    }

    private func rows(_ client: String, stream: String = "") throws -> [String] {
        try TestDatabase.psql(
            "SELECT seq || ':' || encode(body, 'hex') FROM \(table) WHERE client_id = '\(client)' AND stream = '\(stream)' ORDER BY seq"
        ).split(separator: "\n").map(String.init)
    }

    private func expectedRows(_ client: String, stream: String = "", _ range: ClosedRange<UInt64>) -> [String] {
        range.map { sequence in
            let body: [UInt8] = Array("\(client)/\(stream) \(sequence) ".utf8) + [0, 0xff, 0x0a]
            return "\(sequence):" + body.map { String(format: "%02x", $0) }.joined()
        }
    }

    @Test func openingCreatesTheTablesOnceAndClaimsStartAtZero() async throws {
        let first = try await open()
        #expect(first.openingNotes.first?.contains("\(table), \(table)_marks, \(table)_clients") == true, "\(first.openingNotes)")
        let second = try await open()
        #expect(second.openingNotes.isEmpty)
        let claim = try await second.claim(clientID: "web-1")
        #expect(claim.epoch == 1 && claim.marks.isEmpty)
        #expect(try await first.claim(clientID: "web-1").epoch == 2)
        try await first.close()
        try await second.close()
    }

    @Test func rowsAndMarksCommitTogetherAndTheResumePointComesFromTheDatabase() async throws {
        let collectorA = try await open()
        let epoch = try await collectorA.claim(clientID: "c").epoch
        let sent = batch("c", stream: "app.log", epoch: epoch, from: 1, count: 300)
        #expect(try await collectorA.commit([sent, batch("c", epoch: epoch, from: 1, count: 2)]) == [.stored, .stored])
        let collectorB = try await open()
        let claim = try await collectorB.claim(clientID: "c")
        #expect(claim.sequence(of: "app.log") == 300 && claim.sequence(of: "") == 2)
        #expect(claim.marks["app.log"]?.check == sent.lastMessageCheck, "the mark keeps the last message's fingerprint")
        #expect(try rows("c", stream: "app.log") == expectedRows("c", stream: "app.log", 1...300))
        try await collectorA.close()
        try await collectorB.close()
    }

    /// The digest covers the whole stream across commits and collectors; a marks table made by linger 0.2
    /// (no digest column) gets one, and its old marks read as unknown (0) and stay so.
    @Test func marksCarryTheWholeStreamsDigestAndAnOldMarksTableIsMigrated() async throws {
        try TestDatabase.psql("""
            CREATE TABLE \(table)_marks (client_id text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, \
            fingerprint bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (client_id, stream));
            INSERT INTO \(table)_marks (client_id, stream, seq, fingerprint) VALUES ('old', 'a', 5, 42)
            """)
        let sink = try await open()
        let epoch = try await sink.claim(clientID: "c").epoch
        let first = batch("c", stream: "s", epoch: epoch, from: 1, count: 3), second = batch("c", stream: "s", epoch: epoch, from: 4, count: 2)
        #expect(try await sink.commit([first]) == [.stored])
        #expect(try await sink.commit([second]) == [.stored])
        let claim = try await sink.claim(clientID: "c")
        let whole = first.lines.readableBytesView + second.lines.readableBytesView
        #expect(claim.marks["s"]?.digest == Array(whole).withUnsafeBytes { LinkContentDigest.extend(LinkContentDigest.empty, withLines: $0) })
        let old = try await sink.claim(clientID: "old")
        #expect(old.marks["a"]?.sequence == 5 && old.marks["a"]?.digest == 0, "unknown, not made up")
        try await sink.close()
    }

    @Test func aClaimOnAnotherCollectorFencesTheOlderConnection() async throws {
        let collectorA = try await open(), collectorB = try await open()
        let old = try await collectorA.claim(clientID: "c").epoch
        #expect(try await collectorA.commit([batch("c", epoch: old, from: 1, count: 3)]) == [.stored])
        let new = try await collectorB.claim(clientID: "c")
        #expect(new.epoch > old && new.sequence(of: "") == 3)
        // The older connection is still alive on A and sends on: refused inside the transaction.
        #expect(try await collectorA.commit([batch("c", epoch: old, from: 4, count: 2), batch("d", epoch: 0, from: 1, count: 1)]) == [.fenced, .fenced])
        #expect(try await collectorB.commit([batch("c", epoch: new.epoch, from: 4, count: 3)]) == [.stored])
        #expect(try rows("c") == expectedRows("c", 1...6))
        try await collectorA.close()
        try await collectorB.close()
    }

    @Test func aGroupLargerThanOneInsertIsStoredWhole() async throws {
        let sink = try await open()
        let epoch = try await sink.claim(clientID: "big").epoch
        let rowsInGroup = 45_000  // three INSERTs of at most 20,000 rows
        #expect(try await sink.commit([batch("big", epoch: epoch, from: 1, count: 30_000), batch("big", stream: "s", epoch: epoch, from: 1, count: rowsInGroup - 30_000)]) == [.stored, .stored])
        #expect(try TestDatabase.psql("SELECT count(*) || ' ' || max(seq) FROM \(table) WHERE stream = ''") == "30000 30000")
        #expect(try await sink.claim(clientID: "big").sequence(of: "s") == UInt64(rowsInGroup - 30_000))
        try await sink.close()
    }

    @Test func aGroupCommittedTwiceIsStoredOnce() async throws {
        let sink = try await open()
        let epoch = try await sink.claim(clientID: "c").epoch
        let group = [batch("c", epoch: epoch, from: 1, count: 4), batch("c", epoch: epoch, from: 5, count: 4)]
        #expect(try await sink.commit(group) == [.stored, .stored])
        // As after a COMMIT whose answer was lost: the server retries the very same group.
        #expect(try await sink.commit(group) == [.stored, .stored])
        #expect(try rows("c") == expectedRows("c", 1...8))
        try await sink.close()
    }

    @Test func aConnectionLostMidTransactionIsRetryableAndTheNextCommitReconnects() async throws {
        let sink = try await open()
        let epoch = try await sink.claim(clientID: "c").epoch
        #expect(try await sink.commit([batch("c", epoch: epoch, from: 1, count: 1)]) == [.stored])
        // Another session holds the lines table, so the sink's next commit waits inside its transaction...
        let url = try TestDatabase.url(table: table).components(separatedBy: "?")[0]
        // On a thread of its own: psql blocks for as long as it holds the lock, and a Task would take one of
        // the few cooperative threads the sink's commit needs to run at all (in CI it starved it).
        let holderDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            _ = TestDatabase.shell(["/usr/bin/psql", url, "-c", "BEGIN; LOCK TABLE \(table) IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT"])
            holderDone.signal()
        }
        defer { _ = try? TestDatabase.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()") }
        try await waitUntil("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '\(table)' AND l.mode = 'AccessExclusiveLock' AND l.granted")
        let commit = Task { try await sink.commit([batch("c", epoch: epoch, from: 2, count: 1)]) }
        try await waitUntil("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'linger serve' AND wait_event_type = 'Lock'")
        // ...where its backend is killed, as a database crash would.
        let terminated = try TestDatabase.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'linger serve' AND wait_event_type = 'Lock'")
        var failure: LinkSinkError?
        do {
            _ = try await commit.value
        } catch let error as LinkSinkError {
            failure = error
        }
        _ = try? TestDatabase.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()")
        _ = holderDone.wait(timeout: .now() + 30)
        #expect(terminated == "1")
        #expect(failure?.isRetryable == true, "a commit cut off mid-transaction must fail retryably: \(failure?.message ?? "it succeeded")")
        // The server retries the same group: the sink connects again, and the row is stored once.
        #expect(try await sink.commit([batch("c", epoch: epoch, from: 2, count: 1)]) == [.stored])
        #expect(try rows("c") == expectedRows("c", 1...2))
        try await sink.close()
    }

    @Test(arguments: [
        ("CREATE TABLE %T (client_id text, stream text, seq integer, body bytea, PRIMARY KEY (client_id, stream, seq))", "column seq of type integer, not bigint"),
        ("CREATE TABLE %T (client_id text, stream text, seq bigint, PRIMARY KEY (client_id, stream, seq))", "has no column body (bytea)"),
        ("CREATE TABLE %T (client_id text, stream text, seq bigint, body bytea, host text NOT NULL, PRIMARY KEY (client_id, stream, seq))", "column host NOT NULL without a default"),
        ("CREATE TABLE %T (client_id text, stream text, seq bigint, body bytea, PRIMARY KEY (client_id, seq))", "primary key (client_id, seq), not (client_id, stream, seq)"),
        ("CREATE TABLE %T_marks (client_id text, stream text, seq bigint, PRIMARY KEY (client_id, stream))", "table %T_marks has no column fingerprint"),
    ])
    func aTableOfTheWrongShapeIsNamedWithItsColumn(ddl: String, expected: String) async throws {
        try TestDatabase.psql(ddl.replacingOccurrences(of: "%T", with: table))
        let error = await #expect(throws: PostgresSinkError.self) { _ = try await open() }
        #expect(error?.kind == .wrongShape)
        #expect(error?.message.contains(expected.replacingOccurrences(of: "%T", with: table)) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("?table=NAME") == true)
    }

    @Test func aWrongPasswordAMissingDatabaseAndNoServerEachSayWhich() async throws {
        func failure(_ url: String) async -> PostgresSinkError? {
            await #expect(throws: PostgresSinkError.self) {
                _ = try await PostgresSink.open(try PostgresSinkAddress(parsing: url, environment: [:]), logger: logger)
            }
        }
        let password = await failure(try TestDatabase.url(replacing: ":linger@", with: ":wrong@"))
        #expect(password?.kind == .authentication && password?.isRetryable == false)
        #expect(password?.message.contains("password") == true, "\(password?.message ?? "")")
        let database = await failure(try TestDatabase.url(replacing: "/postgres", with: "/no_such_db", last: true))
        #expect(database?.kind == .missingDatabase && database?.message.contains("no database no_such_db") == true)
        // Port 1 on loopback: nothing listens there.
        let port = try #require(TestDatabase.url?.split(separator: ":").last?.split(separator: "/").first)
        let nobody = await failure(try TestDatabase.url(replacing: ":\(port)/", with: ":1/"))
        #expect(nobody?.kind == .unreachable && nobody?.message.contains("refused") == true, "\(nobody?.message ?? "")")
    }
}
