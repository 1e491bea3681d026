#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The process's environment variables, read from `environ` (the CLI does without Foundation).
enum ProcessInfoEnvironment {
    static var current: [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }
}

/// Whether the process started with its standard input closed (`<&-`). `main` reads it first thing: the
/// first descriptor opened afterwards (Dispatch's, for the concurrency pool) takes number 0, and reading
/// "stdin" would then wait on it forever.
enum StandardInputAtStart {
    static let wasClosed: Bool = fcntl(0, F_GETFD) < 0
}
