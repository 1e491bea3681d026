import Logging
import PostgresNIO

/// The sink's three tables: created when missing, checked when present.
///
/// - `<table>` (`linger_lines`): one row per message, keyed by (client_id, stream, seq). The primary key is the
///   last line of defence: even a bug in fencing could not store a message twice.
/// - `<table>_marks`: each stream's high-water mark, the fingerprint of its last message and the digest of its
///   whole content (`LinkContentDigest`; NULL in rows of an earlier build), moved in the same transaction as
///   the rows (the resume point every collector reads).
/// - `<table>_clients`: each client id's newest connection epoch (see `LinkSink`'s fencing), shared by every
///   collector of the database.
enum PostgresSinkSchema {
    struct Column {
        var name: String
        var type: String
    }

    static let lineColumns = [
        Column(name: "client_id", type: "text"), Column(name: "stream", type: "text"),
        Column(name: "seq", type: "bigint"), Column(name: "body", type: "bytea"),
    ]
    static let markColumns = [
        Column(name: "client_id", type: "text"), Column(name: "stream", type: "text"),
        Column(name: "seq", type: "bigint"), Column(name: "fingerprint", type: "bigint"), Column(name: "digest", type: "bigint"),
    ]
    static let clientColumns = [Column(name: "client_id", type: "text"), Column(name: "epoch", type: "bigint")]

    static func creation(_ address: PostgresSinkAddress) -> [String] {
        [
            """
            CREATE TABLE IF NOT EXISTS \(address.table) (client_id text NOT NULL, stream text NOT NULL, \
            seq bigint NOT NULL, body bytea NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), \
            PRIMARY KEY (client_id, stream, seq))
            """,
            """
            CREATE TABLE IF NOT EXISTS \(address.marksTable) (client_id text NOT NULL, stream text NOT NULL, \
            seq bigint NOT NULL, fingerprint bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), \
            digest bigint, PRIMARY KEY (client_id, stream))
            """,
            // Tables made by linger 0.2 lack the digest: added, empty (unknown for the streams already there).
            "ALTER TABLE \(address.marksTable) ADD COLUMN IF NOT EXISTS digest bigint",
            """
            CREATE TABLE IF NOT EXISTS \(address.clientsTable) (client_id text PRIMARY KEY, epoch bigint NOT NULL, \
            claimed_at timestamptz NOT NULL DEFAULT now())
            """,
        ]
    }

    /// Creates the missing tables and checks the shape of all three, under an advisory lock so that collectors
    /// starting together do not race on `CREATE TABLE`.
    /// - Returns: the tables it created, for the log.
    static func prepare(_ address: PostgresSinkAddress, on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        let tables = [address.table, address.marksTable, address.clientsTable]
        _ = try await connection.query("BEGIN", logger: logger)
        do {
            _ = try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\("linger:" + address.table)))", logger: logger)
            var existing: Set<String> = []
            let rows = try await connection.query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ANY(\(tables))",
                logger: logger)
            for try await name in rows.decode(String.self) { existing.insert(name) }
            for statement in creation(address) {
                _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            try await check(address.table, lineColumns, key: ["client_id", "stream", "seq"], on: connection, logger: logger)
            try await check(address.marksTable, markColumns, key: ["client_id", "stream"], on: connection, logger: logger)
            try await check(address.clientsTable, clientColumns, key: ["client_id"], on: connection, logger: logger)
            _ = try await connection.query("COMMIT", logger: logger)
            return tables.filter { !existing.contains($0) }
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// Fails naming the first column that is missing, of another type, or in the way (NOT NULL without a
    /// default, which every insert would trip over), or a primary key that is not the one exactly-once needs.
    private static func check(
        _ table: String, _ columns: [Column], key: [String], on connection: PostgresConnection, logger: Logger
    ) async throws {
        var found: [String: (type: String, required: Bool)] = [:]
        let rows = try await connection.query(
            """
            SELECT column_name::text, data_type::text, (is_nullable = 'NO' AND column_default IS NULL)
            FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = \(table)
            """,
            logger: logger)
        for try await (name, type, required) in rows.decode((String, String, Bool).self) { found[name] = (type, required) }
        let advice = "drop or rename it, or choose another table with ?table=NAME"
        for column in columns {
            guard let actual = found[column.name] else {
                throw PostgresSinkError(.wrongShape, "table \(table) has no column \(column.name) (\(column.type)); \(advice)")
            }
            guard actual.type == column.type else {
                throw PostgresSinkError(
                    .wrongShape, "table \(table) has column \(column.name) of type \(actual.type), not \(column.type); \(advice)")
            }
        }
        let known = Set(columns.map(\.name))
        if let extra = found.keys.sorted().first(where: { !known.contains($0) && found[$0]!.required }) {
            throw PostgresSinkError(.wrongShape, "table \(table) has column \(extra) NOT NULL without a default, which linger cannot fill; \(advice)")
        }
        var primaryKey: [String] = []
        let keyRows = try await connection.query(
            """
            SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = to_regclass(\(table)) AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)
            """,
            logger: logger)
        for try await name in keyRows.decode(String.self) { primaryKey.append(name) }
        guard primaryKey == key else {
            let actual = primaryKey.isEmpty ? "none" : "(\(primaryKey.joined(separator: ", ")))"
            throw PostgresSinkError(
                .wrongShape, "table \(table) has primary key \(actual), not (\(key.joined(separator: ", "))); \(advice)")
        }
    }
}
