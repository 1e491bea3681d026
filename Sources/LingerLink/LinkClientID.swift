#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Client ids: stable names that key the server's dedupe state. Restricted to a safe alphabet so they can
/// be written into state files and logs as they are.
public enum LinkClientID {
    /// 1–128 characters of `A-Z a-z 0-9 . _ : -`.
    public static func isValid(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard (1...128).contains(bytes.count) else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: ":") || b == UInt8(ascii: "-")
        }
    }

    /// A new random id (`linger-` and 24 hex digits from the kernel's random source).
    public static func generate() -> String {
        var bytes = [UInt8](repeating: 0, count: 12)
        var generator = SystemRandomNumberGenerator()  // getrandom(2) on Linux
        for i in bytes.indices { bytes[i] = generator.next() }
        return "linger-" + bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// The id stored in `path`, created (with a generated id) if the file does not exist, so the same
    /// client keeps its identity across restarts.
    public static func loadOrCreate(at path: String) throws -> String {
        if let existing = try? readFile(path) {
            let id = String(existing.split(whereSeparator: \.isWhitespace).first ?? "")
            guard isValid(id) else { throw LinkError(.configuration, "\(path) does not hold a valid client id") }
            return id
        }
        let id = generate()
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LinkError.io("cannot create \(path)", errno: errno) }
        defer { close(fd) }
        let line = Array((id + "\n").utf8)
        guard write(fd, line, line.count) == line.count else { throw LinkError.io("cannot write \(path)", errno: errno) }
        return id
    }
}

/// Reads a small text file (ids, tokens).
func readFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw LinkError.io("cannot read \(path)", errno: errno) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw LinkError.io("cannot read \(path)", errno: errno) }
        if n == 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Tokens from a file (the format is ``LinkToken``'s): never from the command line, where every user on the
/// machine can read them in `ps`.
public func loadTokens(from path: String) throws -> [LinkToken] {
    try LinkToken.parseFile(readFile(path), name: path)
}
