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

/// Standard input, output and error as the process found them. A closed one (`<&-`, `>&-`) is taken at once
/// by the next descriptor opened (Dispatch's, a socket): reading "stdin" would wait on an epoll forever, and
/// a note or the stdout sink would be written into a client's connection. `main` settles this first thing:
/// each closed one is noted and opened on /dev/null, so that no other descriptor can take its number.
enum StandardDescriptors {
    /// For 0, 1, 2: whether it was closed when the process started.
    static let closedAtStart: [Bool] = (Int32(0)...2).map { fd in
        guard fcntl(fd, F_GETFD) < 0 else { return false }
        _ = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)  // the lowest free number: this one
        return true
    }
}
