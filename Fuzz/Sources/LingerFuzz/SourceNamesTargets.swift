import LingerLink
@testable import LingerSources

/// The names a sender reads from disk and from the server: rotated copies' names and stream names.
enum SourceNamesTargets {
    /// `rotated-name`: the input is a log's name and a directory entry, separated by a NUL. A base that is
    /// found is one of the bases, the entry begins with its stem, and a plain numbered copy of any base is
    /// always recognised.
    static func rotatedName(_ input: UnsafeRawBufferPointer) {
        let parts = Array(input).split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
        let base = String(decoding: parts[0], as: UTF8.self), entry = String(decoding: parts.count > 1 ? Array(parts[1]) : [], as: UTF8.self)
        guard !base.isEmpty, !base.contains("/") else { return }
        if let found = RotatedName.base(of: entry, among: [base]) {
            guard found == base else { violated("\(entry) named base \(found), not one of [\(base)]") }
            let stem = base.split(separator: ".", omittingEmptySubsequences: false).first.map(String.init) ?? base
            guard entry.hasPrefix(stem) else { violated("\(entry) does not begin with the stem of \(base)") }
            guard entry != base else { violated("the log itself taken for its own rotated copy") }
        }
        for suffix in [".1", ".7.gz", "-20261207"] where RotatedName.base(of: base + suffix, among: [base]) != base {
            violated("\(base + suffix) is not known as a copy of \(base)")
        }
        // Stream names: what parses prints back to itself.
        if let name = StreamName(parsing: entry), StreamName(parsing: name.description) != name {
            violated("stream name \(entry) parses, but \(name.description) does not parse back to it")
        }
    }

    /// `stream-catalog`: the input is a few files' contents (separated by NUL bytes); the first is what a
    /// server holds, as much of it as the second byte says. Whatever the catalog decides for each file, a
    /// resume is only ever of a stream whose every line the file reproduces, ending where that line ends, and
    /// no two files hold one stream.
    static func streamCatalog(_ input: UnsafeRawBufferPointer) {
        guard input.count >= 2 else { return }
        let bytes = Array(input)
        let cut = Int(bytes[0]), limit = Int(bytes[1] % 32) + 1
        let contents = bytes.dropFirst(2).split(separator: 0, omittingEmptySubsequences: false).map(Array.init).prefix(6)
        guard let stored = contents.first else { return }
        func scan(_ content: [UInt8], stops: [UInt64]) -> ContentScan {
            var done = false
            return ContentScanner.scan(stops: stops, maximumLineBytes: limit, quiet: true) { body in
                guard !done else { return 0 }
                done = true
                content.withUnsafeBytes { body($0) }
                return content.count
            }
        }
        // The server's mark: the first `cut` lines of the first content.
        let whole = scan(stored, stops: Array(1...max(1, UInt64(stored.count))))
        let lines = min(UInt64(cut), whole.lines)
        var known: [LinkStreamMark] = []
        if lines > 0, let point = whole.reached[lines], !stored.isEmpty {
            known.append(LinkStreamMark(stream: StreamName(head: Array(stored.prefix(StreamName.headLimit))).description, sequence: lines, check: point.check, digest: point.digest))
        }
        let catalog = StreamCatalog(known: known, maximumLineBytes: limit)
        var owners: [String: Int] = [:]
        for (index, content) in contents.enumerated() where !content.isEmpty {
            let key = FileKey(device: 1, inode: UInt64(index + 1))
            let head = Array(content.prefix(StreamName.headLimit))
            let candidates = catalog.candidates(for: head)
            let seen = scan(content, stops: StreamCatalog.stops(for: candidates))
            let decision = catalog.decide(key, head: head, scan: seen, candidates: candidates, patient: index % 2 == 0)
            guard case .resume(let stream, let messages, let digest, let offset) = decision else { continue }
            guard owners.updateValue(index, forKey: stream) == nil else { violated("two files resume \(stream)") }
            let proof = scan(content, stops: [messages])
            guard let point = proof.reached[messages], point.digest == digest, point.end == offset else {
                violated("resumed \(stream) after \(messages) lines the file does not reproduce")
            }
            if let mark = known.first(where: { $0.stream == stream }), mark.digest != digest || mark.sequence != messages {
                violated("resumed \(stream) at \(messages) with another digest than the server's")
            }
        }
    }
}
