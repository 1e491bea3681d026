#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The rotated copies of a log beside it, as logrotate names them: `PATH.1`, `PATH.2`… (oldest has the
/// largest number), `PATH-YYYYMMDD` or `PATH-YYYYMMDDHH…` with `dateext` (oldest has the smallest date),
/// each optionally `.gz`.
public enum RotatedFiles {
    /// The rotated copies of `path` that exist, oldest first.
    public static func siblings(of path: String) -> [String] {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var numbered: [(Int, String)] = []
        var dated: [(String, String)] = []
        for entry in directoryEntries(directory.isEmpty ? "/" : directory) {
            guard entry.hasPrefix(base), entry.count > base.count else { continue }
            var rest = Substring(entry.dropFirst(base.count))
            if rest.hasSuffix(".gz") { rest = rest.dropLast(3) }
            let full = (directory.isEmpty ? "" : directory + "/") + entry
            if rest.hasPrefix("."), let n = Int(rest.dropFirst()), n > 0 {
                numbered.append((n, full))
            } else if rest.hasPrefix("-"), rest.count >= 9, rest.dropFirst().allSatisfy({ $0.isNumber || $0 == "-" || $0 == "_" }) {
                dated.append((String(rest.dropFirst()), full))
            }
        }
        // Dated copies are older than numbered ones in no configuration; put them by date, then numbers.
        return dated.sorted { $0.0 < $1.0 }.map(\.1) + numbered.sorted { $0.0 > $1.0 }.map(\.1)
    }

    private static func directoryEntries(_ directory: String) -> [String] {
        guard let stream = opendir(directory) else { return [] }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
