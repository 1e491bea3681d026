/// How rotation renames a log, so a sender finds a log's rotated copies beside it by name: every scheme the
/// common rotators use, each also with `.gz` (or `.xz`, `.bz2`, `.zst`: found, though only gzip is read).
///
/// | rotator | `app.log` becomes |
/// |---|---|
/// | logrotate, Python `RotatingFileHandler`, log4j, … | `app.log.1`, `app.log.2`, … |
/// | logrotate `dateext` (any `dateformat` of digits, `-`, `_`) | `app.log-20261207`, `app.log-2026-12-07-1733` |
/// | logrotate with `extension .log` | `app.1.log`, `app-20261207.log` |
/// | Python `TimedRotatingFileHandler` | `app.log.2026-12-07`, `app.log.2026-12-07_17-33` |
/// | the kubelet (`0.log`) | `0.log.20261207-173305` |
///
/// A stamp is what follows the log's name after one of `.`, `-`, `_`: at least one digit, then only digits,
/// `-` and `_` (and the `T`, `:` and `+` of an ISO time). Names are only a first sort: which copy holds what
/// is decided by content (``StreamCatalog``), so a name that looks rotated but is not costs a read, never a
/// line.
public enum RotatedName {
    /// Suffixes of compressed copies; only `.gz` is read (the others are left alone).
    static let compressions = [".gz", ".xz", ".bz2", ".zst"]

    /// The log, among `bases`, of which `name` is a rotated copy (nil when it is none of them). `bases` are
    /// file names in the same directory, not paths.
    public static func base(of name: String, among bases: Set<String>) -> String? {
        var rest = Substring(name)
        for suffix in compressions where rest.hasSuffix(suffix) {
            rest = rest.dropLast(suffix.count)
            break
        }
        // The name, then a stamp: app.log.1, app.log-20261207, 0.log.20261207-173305.
        for base in candidates(endingBefore: rest) where bases.contains(String(base)) && isStamp(rest.dropFirst(base.count + 1)) {
            return String(base)
        }
        // The stem, a stamp, then the extension (logrotate's `extension`): app.1.log, app-20261207.log.
        if let dot = rest.lastIndex(of: "."), dot > rest.startIndex {
            let ext = rest[dot...]
            let front = rest[..<dot]
            for stem in candidates(endingBefore: front) {
                let base = String(stem) + ext
                if bases.contains(base) && isStamp(front.dropFirst(stem.count + 1)) { return base }
            }
        }
        return nil
    }

    /// Whether `name` is one of the compressed forms a rotator writes.
    public static func isCompressed(_ name: String) -> Bool { compressions.contains { name.hasSuffix($0) } }

    /// Whether linger can read a compressed copy (gzip only).
    public static func isReadable(_ name: String) -> Bool { !isCompressed(name) || name.hasSuffix(".gz") }

    /// The prefixes of `text` that end just before a separator.
    private static func candidates(endingBefore text: Substring) -> [Substring] {
        text.indices.filter { $0 > text.startIndex && ".-_".contains(text[$0]) }.map { text[..<$0] }
    }

    private static func isStamp(_ text: Substring) -> Bool {
        guard let first = text.first, first.isASCII, first.isNumber, text.count <= 40 else { return false }
        return text.allSatisfy { ($0.isASCII && $0.isNumber) || "-_T:+".contains($0) }
    }
}
