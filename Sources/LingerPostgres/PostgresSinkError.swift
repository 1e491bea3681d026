public import LingerLink
import NIOCore
import NIOPosix
import PostgresNIO

/// Why the PostgreSQL sink cannot start or go on, in one line that says what to do.
public struct PostgresSinkError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The `--sink` URL cannot be read.
        case badAddress
        /// No PostgreSQL answers at the address (refused, no route, the name does not resolve, timeout).
        case unreachable
        /// The server refused the user or the password.
        case authentication
        /// The database in the URL does not exist.
        case missingDatabase
        /// A table exists with a shape linger cannot use.
        case wrongShape
        /// The server is starting, shutting down or out of connections: a retry may help.
        case unavailable
        /// Anything else the server said.
        case other
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    static func badAddress(_ message: String) -> Self { Self(.badAddress, message) }

    public var description: String { message }

    /// Whether a running collector should keep its clients and retry (the database restarting, a network
    /// blip), rather than stop: a wrong password or a dropped table will not fix itself.
    public var isRetryable: Bool { kind == .unreachable || kind == .unavailable }

    /// The form the link's server understands.
    public var sinkError: LinkSinkError { LinkSinkError(message, isRetryable: isRetryable) }

    /// Reads what postgres-nio threw while talking to `address`.
    /// - Parameter starting: no connection was ever made yet: the database is not reached, not "lost".
    static func from(_ error: any Error, address: PostgresSinkAddress, starting: Bool = false) -> Self {
        if let known = error as? PostgresSinkError { return known }
        guard let psql = error as? PSQLError else {
            if error is IOError || error is ChannelError || error is NIOConnectionError {
                return Self(.unreachable, "cannot reach PostgreSQL at \(address.host):\(address.port): \(Self.words(for: error))")
            }
            return Self(.other, "PostgreSQL at \(address.host):\(address.port): \(error)")
        }
        if let state = psql.serverInfo?[.sqlState] {
            let said = psql.serverInfo?[.message] ?? "error \(state)"
            switch state {
            case "28P01", "28000":
                return Self(.authentication, "PostgreSQL refused user \(address.user) at \(address.host):\(address.port): \(said) (check the password in the URL or PGPASSWORD)")
            case "3D000":
                return Self(.missingDatabase, "PostgreSQL at \(address.host):\(address.port) has no database \(address.database) (create it with: createdb \(address.database))")
            // What passes, by SQLSTATE class: connection exceptions (08), insufficient resources (53: too many
            // clients, a full disk), operator intervention (57P: admin shutdown, crash shutdown, cannot connect
            // now), transaction rollback (40: serialization, deadlock), system errors (58: I/O).
            case _ where ["08", "53", "57P", "40", "58"].contains(where: state.hasPrefix):
                return Self(.unavailable, "PostgreSQL at \(address.host):\(address.port) is not available: \(said) (SQLSTATE \(state))")
            default:
                return Self(.other, "PostgreSQL said: \(said) (SQLSTATE \(state))")
            }
        }
        switch psql.code {
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection, .queryCancelled:
            let cause = psql.underlying.map(Self.words(for:)) ?? "\(psql.code)"
            return Self(.unreachable, "\(starting ? "cannot reach" : "lost") PostgreSQL at \(address.host):\(address.port): \(cause)")
        case .authMechanismRequiresPassword:
            return Self(.authentication, "PostgreSQL at \(address.host):\(address.port) wants a password for \(address.user) (put it in the URL or PGPASSWORD)")
        case .sslUnsupported:
            return Self(.other, "PostgreSQL at \(address.host):\(address.port) does not offer TLS, and sslmode=\(address.tlsMode.rawValue) requires it")
        default:
            return Self(.other, "PostgreSQL at \(address.host):\(address.port): \(psql.code)")
        }
    }

    /// An error in words, not a type dump.
    private static func words(for error: any Error) -> String {
        let text = "\(error)"
        if text.contains("refused") { return "connection refused (is PostgreSQL running on that port?)" }
        if text.contains("connection reset") || text.contains("Connection reset") { return "connection reset" }
        if text.contains("timed out") || text.contains("Timeout") || text.contains("timeout") { return "timed out" }
        if text.contains("resolve") || text.contains("NXDOMAIN") || text.contains("getaddrinfo") { return "the host name does not resolve" }
        if let psql = error as? PSQLError { return "\(psql.code)" }
        return text
    }
}
