#if os(Linux)
@preconcurrency import Glibc

/// Reads a whole `/proc` or `/sys` file. Their size is unknown until read (stat says 0), so the buffer grows.
enum ProcFile {
    /// The file's bytes; throws ``ProbeError`` `.readFailed` naming the path and the errno.
    static func bytes(_ path: String, sizeHint: Int = 64 * 1024) throws -> [UInt8] {
        let fd: Int32
        switch system_open(path, O_RDONLY) {
        case .success(let value): fd = value
        case .failure(let error):
            throw ProbeError(
                error.code == EACCES || error.code == EPERM ? .permissionDenied : .readFailed,
                "cannot open \(path): \(error.text)", errno: error.code)
        }
        defer { system_close(fd) }
        var buffer = [UInt8](repeating: 0, count: max(4096, sizeHint))
        var used = 0
        while true {
            if used == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
            let result = buffer.withUnsafeMutableBytes { raw in
                system_read(fd, raw.baseAddress! + used, raw.count - used)
            }
            switch result {
            case .success(0):
                buffer.removeSubrange(used...)
                return buffer
            case .success(let n): used += n
            case .failure(let error): throw ProbeError(.readFailed, "cannot read \(path): \(error.text)", errno: error.code)
            }
        }
    }

    /// The file as text, or `nil` when it cannot be read (optional settings and counters).
    static func text(_ path: String) -> String? {
        guard let bytes = try? bytes(path, sizeHint: 8192) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A file holding one integer (most sysctls).
    static func integer(_ path: String) -> Int? {
        text(path).flatMap { Int($0.trimmingCharacters(in: " \n\t")) }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> Substring {
        let chars = Set(set)
        var slice = Substring(self)
        while let first = slice.first, chars.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, chars.contains(last) { slice = slice.dropLast() }
        return slice
    }
}
#endif
