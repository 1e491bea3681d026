import ArgumentParser

/// A duration typed as `30s`, `500ms`, `2m`, `1h`, `1d` or a bare number of seconds.
struct DurationArgument: ExpressibleByArgument, CustomStringConvertible, Sendable {
    var duration: Duration

    init?(argument: String) {
        let text = argument.lowercased()
        let (number, scale): (Substring, Double) =
            if text.hasSuffix("ms") { (text.dropLast(2), 0.001) }
            else if text.hasSuffix("s") { (text.dropLast(), 1) }
            else if text.hasSuffix("m") { (text.dropLast(), 60) }
            else if text.hasSuffix("h") { (text.dropLast(), 3600) }
            else if text.hasSuffix("d") { (text.dropLast(), 86400) }
            else { (Substring(text), 1) }
        guard let value = Double(number), value >= 0, value.isFinite, value * scale <= Self.longestSeconds else { return nil }
        duration = .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    init(_ duration: Duration) { self.duration = duration }

    /// 100 years. Every duration ends up as nanoseconds in NIO (`TimeAmount`, `NIODeadline`) and is added to
    /// "now"; Int64 nanoseconds reach 292 years, so anything longer cannot be represented, and nothing a user
    /// means by a timeout is longer than this.
    static let longestSeconds: Double = 36_500 * 86_400

    var milliseconds: Int64 { duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000 }

    static var defaultCompletionKind: CompletionKind { .default }

    /// As a user types it: `30s`, `500ms`.
    var defaultValueDescription: String {
        milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }

    var description: String { defaultValueDescription }

    /// Parses a duration, or throws naming what is accepted. The options use it with `.unconditional` parsing,
    /// so `-1s` reaches here and is refused with a reason rather than read as a flag ("missing value").
    static func parse(_ text: String) throws -> DurationArgument {
        guard let value = DurationArgument(argument: text) else {
            throw ValidationError("give a number from 0 to 36500d with ms, s, m, h or d (500ms, 30s, 2m), or bare seconds")
        }
        return value
    }
}

/// `HOST:PORT` (IPv6 as `[::1]:7070`).
struct HostPort: ExpressibleByArgument, CustomStringConvertible, Sendable {
    var host: String
    var port: Int

    init?(argument: String) {
        if argument.hasPrefix("["), let close = argument.firstIndex(of: "]") {
            host = String(argument[argument.index(after: argument.startIndex)..<close])
            let rest = argument[argument.index(after: close)...]
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) else { return nil }
            self.port = port
        } else {
            guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]),
                (0...65535).contains(port), colon != argument.startIndex
            else { return nil }
            host = String(argument[..<colon])
            self.port = port
        }
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses HOST:PORT, or throws naming what is accepted (ArgumentParser's own message says only "invalid").
    static func parse(_ text: String) throws -> HostPort {
        guard let value = HostPort(argument: text) else {
            throw ValidationError("'\(text)' is not HOST:PORT with a port from 0 to 65535 (e.g. 127.0.0.1:7070, [::1]:7070)")
        }
        return value
    }

    var description: String { defaultValueDescription }

    /// As a user types it: `127.0.0.1:7070`, `[::1]:7070`.
    var defaultValueDescription: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A size typed as `100MiB`, `10MB`, `512KiB`, `1GiB` or a bare number of bytes.
struct ByteSize: ExpressibleByArgument, Sendable {
    var bytes: Int64

    init(bytes: Int64) { self.bytes = bytes }

    init?(argument: String) {
        let text = String(argument.lowercased().filter { $0 != " " })
        let units: [(String, Int64)] = [("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("kb", 1000), ("mb", 1_000_000),
                                         ("gb", 1_000_000_000), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("b", 1)]
        var scale: Int64 = 1
        var number = Substring(text)
        for (suffix, value) in units where text.hasSuffix(suffix) {
            scale = value
            number = text.dropLast(suffix.count)
            break
        }
        guard let value = Double(number), value > 0, value.isFinite, value * Double(scale) < 9e18 else { return nil }
        bytes = Int64(value * Double(scale))
    }

    var defaultValueDescription: String { "\(bytes)" }

    /// Parses a size, or throws naming what is accepted (used with `.unconditional` parsing, like durations).
    static func parse(_ text: String) throws -> ByteSize {
        guard let value = ByteSize(argument: text) else {
            throw ValidationError("give a size above 0 in bytes, or with KiB, MiB, GiB, kB, MB or GB (100MiB, 1GiB)")
        }
        return value
    }
}
