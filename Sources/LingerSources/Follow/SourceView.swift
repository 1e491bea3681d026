#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The files a sender's `--file` patterns name right now, with their rotated copies: one entry per file
/// (device and inode), however many names it has. Blocking (it lists directories and stats files): built
/// on ``SourceIO``'s threads.
struct SourceView: Sendable {
    /// One file in view.
    struct File: Sendable {
        /// The name it was found under (a pattern's match when it has one).
        var path: String
        var status: FileStatus
        /// Matched by a pattern (the log itself), not only found as a rotated copy of one.
        var matched: Bool
        /// The matched path it is a rotated copy of (its own path when matched; nil for `--rotated-glob`).
        var base: String?
    }

    var files: [FileKey: File] = [:]
    /// Each matched path and the file it names now (nil: nothing there yet).
    var matched: [String: FileKey?] = [:]
    /// Directories to watch: those of the patterns' paths, of their symlinks' targets, of `--rotated-glob`.
    var directories: Set<String> = []
    /// Each name in a watched directory and the file it is, for inotify's writes (by name).
    var names: [String: [String: FileKey]] = [:]

    /// Looks at the filesystem now.
    /// - Parameters:
    ///   - patterns: `--file` values: paths (which may not exist yet) and globs.
    ///   - rotatedGlobs: `--rotated-glob` values: more copies, whatever they are called.
    static func scan(patterns: [String], rotatedGlobs: [String]) -> SourceView {
        var view = SourceView()
        // Directory → the names in it that patterns match (the bases rotated copies are named after).
        var bases: [String: Set<String>] = [:]
        var baseOfName: [String: String] = [:]  // "dir/name" of a base → the matched path
        for pattern in patterns {
            for path in expand(pattern) {
                if view.matched[path] == nil { view.matched[path] = .some(nil) }
                let (directory, name) = split(path)
                view.directories.insert(directory)
                bases[directory, default: []].insert(name)
                baseOfName[directory + "/" + name] = path
                // A symlink (the kubelet's /var/log/containers/*.log): its target's copies are beside the target.
                if let target = resolved(path), target != path {
                    let (targetDirectory, targetName) = split(target)
                    view.directories.insert(targetDirectory)
                    bases[targetDirectory, default: []].insert(targetName)
                    baseOfName[targetDirectory + "/" + targetName] = path
                }
            }
        }
        // (the entry as it is in its directory, the name to show it by, its base, whether a pattern matched it)
        var found: [(entry: String, path: String, base: String?, matched: Bool)] = []
        for (directory, names) in bases {
            let entries = directoryEntries(directory)
            let present = Set(entries)
            for entry in entries {
                let path = join(directory, entry)
                if names.contains(entry) {
                    guard usable(entry, besides: present) else { continue }
                    let shown = baseOfName[path] ?? path
                    found.append((path, shown, shown, view.matched[shown] != nil))
                } else if let base = RotatedName.base(of: entry, among: names), usable(entry, besides: present) {
                    found.append((path, path, baseOfName[join(directory, base)], false))
                }
            }
        }
        for glob in rotatedGlobs {
            for path in expand(glob) {
                let (directory, entry) = split(path)
                view.directories.insert(directory)
                if usable(entry, besides: Set(directoryEntries(directory))) { found.append((path, path, nil, false)) }
            }
        }
        for (real, path, base, matched) in found {
            guard let status = FileStatus.of(path: real), status.isRegular else { continue }
            let (directory, entry) = split(real)
            view.names[directory, default: [:]][entry] = status.key
            if matched { view.matched[path] = status.key }
            if let existing = view.files[status.key], existing.matched || !matched {
                if matched { view.files[status.key]!.matched = true }
                continue
            }
            view.files[status.key] = File(path: path, status: status, matched: matched, base: base ?? (matched ? path : nil))
        }
        // The matched names whose file was found through their symlink target's directory.
        for (path, key) in view.matched where key == nil {
            let (directory, entry) = split(path)
            guard usable(entry, besides: Set(directoryEntries(directory))) else { continue }
            if let status = FileStatus.of(path: path), status.isRegular {
                view.matched[path] = status.key
                view.names[directory, default: [:]][entry] = status.key
                if view.files[status.key] == nil {
                    view.files[status.key] = File(path: path, status: status, matched: true, base: path)
                } else {
                    view.files[status.key]!.matched = true
                    view.files[status.key]!.path = path
                }
            }
        }
        return view
    }

    /// Whether a copy is one linger reads now: gzip only, and not while its uncompressed original is still
    /// there (gzip is writing it; the original holds the same lines, complete).
    private static func usable(_ entry: String, besides present: Set<String>) -> Bool {
        guard RotatedName.isReadable(entry) else { return false }
        if entry.hasSuffix(".gz") && present.contains(String(entry.dropLast(3))) { return false }
        return true
    }

    /// Paths matching a pattern, in order; a pattern without wildcards names a path even if it does not
    /// exist yet (followed paths may appear later).
    static func expand(_ pattern: String) -> [String] {
        guard pattern.contains(where: { "*?[".contains($0) }) else { return [pattern] }
        var result = glob_t()
        defer { globfree(&result) }
        guard glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }
    }

    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    /// The files among `paths` (names that just appeared) that a pattern matches, as the next scan will
    /// find them.
    static func arrivals(_ paths: [String], patterns: [String]) -> [FileKey: File] {
        var found: [FileKey: File] = [:]
        for path in paths where patterns.contains(where: { $0 == path || fnmatch($0, path, FNM_PATHNAME) == 0 }) {
            let (directory, entry) = split(path)
            guard usable(entry, besides: Set(directoryEntries(directory))) else { continue }
            guard let status = FileStatus.of(path: path), status.isRegular else { continue }
            found[status.key] = File(path: path, status: status, matched: true, base: path)
        }
        return found
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory == "." ? name : (directory == "/" ? "/" + name : directory + "/" + name)
    }

    private static func resolved(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }
}
