public import LingerLink
public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import PostgresNIO
import Synchronization

/// A ``LinkSink`` in PostgreSQL: rows, marks and epochs in one database that many collectors share.
///
/// **Exactly-once across collectors.** A commit is one transaction: it locks the clients' epoch rows
/// `FOR SHARE`, reads their marks, inserts the rows that continue each stream (one `INSERT … SELECT FROM
/// unnest(…)` of binary arrays per chunk: the rows of every client of a group commit go in together), moves the
/// marks, and commits; the server acknowledges after that. A claim (a new connection on any collector) bumps the
/// epoch row, so it waits for a commit in flight and fences every later one of the older connection (see
/// ``PostgresCommitPlan``).
///
/// **The database going away.** The sink keeps one connection (the server calls it one step at a time). Any
/// error drops it; the next call connects again. Errors a retry can fix (refused, reset, the server starting or
/// shutting down) are retryable ``LinkSinkError``s, so the server keeps its clients, stops acknowledging and
/// retries with backoff; a wrong password or a dropped table stops the server.
public final class PostgresSink: LinkSink {
    public let address: PostgresSinkAddress
    /// What opening did (tables created), for the server to print.
    public let openingNotes: [String]
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private let connection: Mutex<PostgresConnection?>
    private let nextConnectionID = Atomic<Int>(1)

    /// Rows per INSERT: keeps one bind message far below PostgreSQL's 1 GiB limit and its 65,535 parameters
    /// irrelevant (four array parameters carry them all).
    static let rowsPerInsert = 20_000
    /// Bytes of message bodies per INSERT.
    static let bytesPerInsert = 16 << 20

    /// Connects, creates the tables if missing and checks their shape. A database that answers "not now"
    /// (out of connection slots, starting up, shutting down: SQLSTATE classes 53, 57P, 08…) is waited for, as a
    /// running collector waits for it: `waiting` hears once when the wait begins, and the wait ends when the
    /// task is cancelled. Nothing answering at all (connection refused, no route) stops at once instead: at
    /// start that is almost always a wrong host or port in the URL, which no wait fixes.
    /// - Throws: ``PostgresSinkError`` naming what is wrong (a password, a database, a column): what a
    ///   retry cannot fix.
    public static func open(
        _ address: PostgresSinkAddress, logger: Logger, backoff: ReconnectBackoff = ReconnectBackoff(initial: .milliseconds(200), maximum: .seconds(5)),
        waiting: @Sendable (PostgresSinkError) -> Void = { _ in }
    ) async throws -> PostgresSink {
        var backoff = backoff
        var told = false
        while true {
            do {
                return try await openOnce(address, logger: logger)
            } catch let error as PostgresSinkError where error.kind == .unavailable {
                if !told {
                    waiting(error)
                    told = true
                }
                try await Task.sleep(for: backoff.next())
            }
        }
    }

    private static func openOnce(_ address: PostgresSinkAddress, logger: Logger) async throws -> PostgresSink {
        let configuration = try makeConfiguration(address)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        } catch {
            throw PostgresSinkError.from(error, address: address, starting: true)
        }
        do {
            let created = try await PostgresSinkSchema.prepare(address, on: connection, logger: logger)
            let notes = created.isEmpty ? [] : ["created table\(created.count == 1 ? "" : "s") \(created.joined(separator: ", ")) in \(address.database)"]
            return PostgresSink(address: address, configuration: configuration, connection: connection, notes: notes, logger: logger)
        } catch {
            try? await connection.close()
            throw PostgresSinkError.from(error, address: address)
        }
    }

    private init(
        address: PostgresSinkAddress, configuration: PostgresConnection.Configuration, connection: PostgresConnection,
        notes: [String], logger: Logger
    ) {
        self.address = address
        self.configuration = configuration
        self.connection = Mutex(connection)
        self.openingNotes = notes
        self.logger = logger
    }

    private static func makeConfiguration(_ address: PostgresSinkAddress) throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        do {
            switch address.tlsMode {
            case .disable:
                tls = .disable
            case .prefer, .require:
                // As libpq: these modes encrypt but do not authenticate the server.
                var settings = TLSConfiguration.makeClientConfiguration()
                settings.certificateVerification = .none
                let context = try NIOSSLContext(configuration: settings)
                tls = address.tlsMode == .prefer ? .prefer(context) : .require(context)
            case .verifyFull:
                tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        } catch {
            throw PostgresSinkError(.other, "cannot set up TLS for PostgreSQL: \(error)")
        }
        var configuration = PostgresConnection.Configuration(
            host: address.host, port: address.port, username: address.user, password: address.password,
            database: address.database, tls: tls)
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.additionalStartupParameters = [("application_name", "linger serve")]
        return configuration
    }

    // MARK: LinkSink

    public func claim(clientID: String) async throws -> LinkSinkClaim {
        try await withConnection { [self] connection in
            _ = try await connection.query("BEGIN", logger: logger)
            var epoch: Int64 = 0
            let bumped = try await connection.query(
                """
                INSERT INTO \(unescaped: address.clientsTable) (client_id, epoch) VALUES (\(clientID), 1)
                ON CONFLICT (client_id) DO UPDATE SET epoch = \(unescaped: address.clientsTable).epoch + 1, claimed_at = now()
                RETURNING epoch
                """,
                logger: logger)
            for try await value in bumped.decode(Int64.self) { epoch = value }
            // A statement of its own, after the row lock: it sees every commit the claim waited for.
            var marks: [String: LinkStreamMark] = [:]
            let rows = try await connection.query(
                "SELECT stream, seq, fingerprint, digest FROM \(unescaped: address.marksTable) WHERE client_id = \(clientID)",
                logger: logger)
            for try await (stream, sequence, check, digest) in rows.decode((String, Int64, Int64, Int64?).self) {
                marks[stream] = LinkStreamMark(
                    stream: stream, sequence: UInt64(sequence), check: UInt64(bitPattern: check), digest: UInt64(bitPattern: digest ?? 0))
            }
            _ = try await connection.query("COMMIT", logger: logger)
            return LinkSinkClaim(epoch: UInt64(epoch), marks: marks)
        }
    }

    public func commit(_ batches: [LinkSinkBatch]) async throws -> [LinkCommitOutcome] {
        guard batches.contains(where: { !$0.isEmpty }) else { return batches.map { _ in .stored } }
        return try await withConnection { [self] connection in
            _ = try await connection.query("BEGIN", logger: logger)
            let clients = Array(Set(batches.map(\.key.clientID))).sorted()
            var epochs: [String: UInt64] = [:]
            var marks: [LinkStreamKey: PostgresCommitPlan.Mark] = [:]
            let rows = try await connection.query(
                """
                SELECT c.client_id, c.epoch, m.stream, m.seq, m.fingerprint, m.digest
                FROM \(unescaped: address.clientsTable) c LEFT JOIN \(unescaped: address.marksTable) m USING (client_id)
                WHERE c.client_id = ANY(\(clients)) FOR SHARE OF c
                """,
                logger: logger)
            for try await (client, epoch, stream, sequence, check, digest) in rows.decode((String, Int64, String?, Int64?, Int64?, Int64?).self) {
                epochs[client] = UInt64(epoch)
                if let stream, let sequence, let check {
                    marks[LinkStreamKey(clientID: client, stream: stream)] = .init(
                        sequence: UInt64(sequence), check: UInt64(bitPattern: check), digest: UInt64(bitPattern: digest ?? 0))
                }
            }
            let plan = PostgresCommitPlan(batches: batches, epochs: epochs, marks: marks)
            try await insertRows(of: zip(batches, plan.decisions).filter { $0.1 == .insert }.map(\.0), on: connection)
            if !plan.newMarks.isEmpty {
                let moved = plan.newMarks.sorted { ($0.key.clientID, $0.key.stream) < ($1.key.clientID, $1.key.stream) }
                _ = try await connection.query(
                    """
                    INSERT INTO \(unescaped: address.marksTable) (client_id, stream, seq, fingerprint, digest)
                    SELECT * FROM unnest(\(moved.map(\.key.clientID))::text[], \(moved.map(\.key.stream))::text[],
                                         \(moved.map { Int64($0.value.sequence) })::int8[], \(moved.map { Int64(bitPattern: $0.value.check) })::int8[],
                                         \(moved.map { Int64(bitPattern: $0.value.digest) })::int8[])
                    ON CONFLICT (client_id, stream) DO UPDATE
                    SET seq = excluded.seq, fingerprint = excluded.fingerprint, digest = excluded.digest, updated_at = now()
                    """,
                    logger: logger)
            }
            _ = try await connection.query("COMMIT", logger: logger)
            return plan.outcomes
        }
    }

    /// Inserts every message of `batches` with as few statements as the chunk limits allow.
    private func insertRows(of batches: [LinkSinkBatch], on connection: PostgresConnection) async throws {
        var clients: [String] = []
        var streams: [String] = []
        var sequences: [Int64] = []
        var bodies: [ByteBuffer] = []
        var bytes = 0
        func flush() async throws {
            guard !sequences.isEmpty else { return }
            _ = try await connection.query(
                """
                INSERT INTO \(unescaped: address.table) (client_id, stream, seq, body)
                SELECT * FROM unnest(\(clients)::text[], \(streams)::text[], \(sequences)::int8[], \(bodies)::bytea[])
                """,
                logger: logger)
            clients.removeAll(keepingCapacity: true)
            streams.removeAll(keepingCapacity: true)
            sequences.removeAll(keepingCapacity: true)
            bodies.removeAll(keepingCapacity: true)
            bytes = 0
        }
        for batch in batches {
            for message in batch.messages {
                clients.append(batch.key.clientID)
                streams.append(batch.key.stream)
                sequences.append(Int64(message.sequence))
                bodies.append(message.bytes)
                bytes += message.bytes.readableBytes
                if sequences.count >= Self.rowsPerInsert || bytes >= Self.bytesPerInsert { try await flush() }
            }
        }
        try await flush()
    }

    public func close() async throws {
        if let connection = connection.withLock({ $0.take() }) { try? await connection.close() }
    }

    /// A sink dropped without ``close()`` (a server that failed to start, a test that threw) must not leak its
    /// socket. The close is asynchronous, so the connection is kept alive until its channel has closed.
    deinit {
        if let connection = connection.withLock({ $0.take() }) {
            connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
        }
    }

    // MARK: The connection

    /// Runs `body` on the sink's connection, connecting first when there is none; on any error the connection
    /// is closed (a transaction may be half done) and the error comes back as a ``LinkSinkError``.
    private func withConnection<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        let connection: PostgresConnection
        if let existing = self.connection.withLock({ $0 }), !existing.isClosed {
            connection = existing
        } else {
            do {
                let id = nextConnectionID.wrappingAdd(1, ordering: .relaxed).oldValue
                connection = try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
            } catch {
                throw PostgresSinkError.from(error, address: address).sinkError
            }
            self.connection.withLock { $0 = connection }
            logger.info("connected to \(address)")
        }
        do {
            return try await Self.untilClosed(connection) { try await body(connection) }
        } catch {
            self.connection.withLock { $0 = nil }
            try? await connection.close()
            throw PostgresSinkError.from(error, address: address).sinkError
        }
    }

    /// Runs `body`, but returns with an error as soon as the connection closes. postgres-nio 1.33 can leave a
    /// query waiting forever when the server goes away while a large bind message is being written (seen with
    /// `pg_ctl -m immediate` during a 20,000-row INSERT); without this the collector would wait with it, holding
    /// every client's acknowledgements. The abandoned query's task is cancelled and ends when postgres-nio lets go.
    private static func untilClosed<Result: Sendable>(
        _ connection: PostgresConnection, _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let outcome = NIOLockedValueBox<CheckedContinuation<Result, any Error>?>(nil)
        return try await withCheckedThrowingContinuation { continuation in
            outcome.withLockedValue { $0 = continuation }
            let work = Task {
                let result: Swift.Result<Result, any Error>
                do { result = .success(try await body()) } catch { result = .failure(error) }
                outcome.withLockedValue { $0.take() }?.resume(with: result)
            }
            connection.closeFuture.whenComplete { _ in
                let waiting = outcome.withLockedValue { $0.take() }
                guard let waiting else { return }
                work.cancel()
                waiting.resume(throwing: PostgresSinkError(.unreachable, "lost the connection to PostgreSQL"))
            }
        }
    }
}
