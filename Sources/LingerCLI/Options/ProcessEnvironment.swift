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

/// The open-file limit. Most systems start processes with a soft limit of 1024 under a much higher hard
/// one; a server at its default `--max-connections` (1024), or a sender following a glob of many files,
/// would hit EMFILE with most of what it may hold unused. Go's runtime raises the soft limit the same way at
/// start (since 1.19). Children (`lab` peers) set their own limits where a scenario needs one.
enum FileLimit {
    static func raiseToHard() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
