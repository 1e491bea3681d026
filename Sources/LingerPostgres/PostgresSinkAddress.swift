/// Where the PostgreSQL sink writes: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?table=NAME&sslmode=MODE]`.
///
/// Like libpq, every part the URL leaves out comes from the usual environment variables (`PGHOST`, `PGPORT`,
/// `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`), then from libpq's defaults (localhost, 5432, the user
/// name as the database), so `postgres://` alone works where `psql` without arguments works. The password is
/// kept out of ``description``, which the server prints.
public struct PostgresSinkAddress: Sendable, Equatable, CustomStringConvertible {
    /// How to use TLS with the database, as libpq's `sslmode`.
    public enum TLSMode: String, Sendable, Equatable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, without checking its certificate (libpq's default).
        case prefer
        /// TLS or nothing, without checking the certificate.
        case require
        /// TLS with the certificate checked against the system's trust store and the host name.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    /// The table of lines; its marks and epochs live in `<table>_marks` and `<table>_clients`.
    public var table: String
    public var tlsMode: TLSMode

    /// The default table.
    public static let defaultTable = "linger_lines"

    /// Parses `url`, filling what it leaves out from `environment`.
    /// - Throws: ``PostgresSinkError`` with what to write instead.
    public init(parsing url: String, environment: [String: String]) throws {
        let schemes = ["postgres://", "postgresql://"]
        guard let scheme = schemes.first(where: { url.hasPrefix($0) }) else {
            throw PostgresSinkError.badAddress("'\(url)' is not a postgres:// URL (postgres://USER:PASSWORD@HOST:PORT/DB?table=NAME)")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        var parameters: [String: String] = [:]
        if let question = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: question)...].split(separator: "&") where !pair.isEmpty {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, let key = Self.percentDecoded(parts[0]), let value = Self.percentDecoded(parts[1]) else {
                    throw PostgresSinkError.badAddress("cannot read the URL parameter '\(pair)' (expected name=value)")
                }
                parameters[key] = value
            }
            rest = rest[..<question]
        }
        var databaseText: Substring?
        if let slash = rest.firstIndex(of: "/") {
            databaseText = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var userText: Substring?
        var passwordText: Substring?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            if let colon = credentials.firstIndex(of: ":") {
                userText = credentials[..<colon]
                passwordText = credentials[credentials.index(after: colon)...]
            } else {
                userText = credentials
            }
            rest = rest[rest.index(after: at)...]
        }
        var hostText: Substring = rest
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw PostgresSinkError.badAddress("an IPv6 host needs its closing ']' in '\(url)'") }
            hostText = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw PostgresSinkError.badAddress("cannot read '\(after)' after the host in '\(url)'")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            hostText = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        }

        func decoded(_ text: Substring?, _ what: String) throws -> String? {
            guard let text, !text.isEmpty else { return nil }
            guard let value = Self.percentDecoded(text) else { throw PostgresSinkError.badAddress("the \(what) in the URL has a bad %-escape") }
            return value
        }
        let user = try decoded(userText, "user") ?? environment["PGUSER"] ?? environment["USER"] ?? "postgres"
        self.user = user
        self.password = try decoded(passwordText, "password") ?? environment["PGPASSWORD"]
        self.host = try decoded(hostText, "host") ?? environment["PGHOST"] ?? "localhost"
        let portValue = try decoded(portText, "port") ?? environment["PGPORT"] ?? "5432"
        guard let port = Int(portValue), (1...65535).contains(port) else {
            throw PostgresSinkError.badAddress("the port must be 1-65535, got '\(portValue)'")
        }
        self.port = port
        self.database = try decoded(databaseText, "database") ?? environment["PGDATABASE"] ?? user
        let table = parameters.removeValue(forKey: "table") ?? Self.defaultTable
        guard Self.isPlainIdentifier(table) else {
            throw PostgresSinkError.badAddress(
                "table '\(table)' must be 1-48 of a-z 0-9 _ starting with a letter or _ (it is used unquoted in SQL)")
        }
        self.table = table
        let modeText = parameters.removeValue(forKey: "sslmode") ?? environment["PGSSLMODE"] ?? "prefer"
        guard let mode = TLSMode(rawValue: modeText) else {
            throw PostgresSinkError.badAddress("sslmode must be disable, prefer, require or verify-full, got '\(modeText)'")
        }
        self.tlsMode = mode
        if let unknown = parameters.keys.sorted().first {
            throw PostgresSinkError.badAddress("unknown URL parameter '\(unknown)' (known: table, sslmode)")
        }
    }

    /// The table of high-water marks, one row per (client_id, stream).
    public var marksTable: String { table + "_marks" }
    /// The table of connection epochs, one row per client id (see `LinkSink`'s fencing).
    public var clientsTable: String { table + "_clients" }

    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(user)@\(shownHost):\(port)/\(database)?table=\(table)"
    }

    /// Lower-case letters, digits and `_`, starting with a letter or `_`, short enough that `_clients` fits
    /// PostgreSQL's 63-byte names: safe to put into SQL unquoted, and never folded to another name.
    static func isPlainIdentifier(_ name: String) -> Bool {
        guard let first = name.utf8.first, (1...48).contains(name.utf8.count) else { return false }
        let isLetter = { (c: UInt8) in (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || c == UInt8(ascii: "_") }
        return isLetter(first) && name.utf8.allSatisfy { isLetter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
