public import LingerLink

/// How a file's content is named as a link stream: by what it holds, not where it is.
///
/// `f<length>-<fnv-1a of the first <length> bytes, 16 hex digits>-<n>`: the fingerprint of the file's head
/// (up to 1 KiB, as much as the file held when the sender first met it) and a discriminator. A path is no
/// identity (rotation renames files), and neither is an inode (inodes are reused after a delete, and
/// copytruncate's copy has a new one although its content was shipped). Content is: a rotated file, and
/// copytruncate's copy, still begin with the bytes the stream began with.
///
/// Two files may begin alike (a CSV header, a banner line). So a match by head is only a candidate: the
/// server also keeps the fingerprint of the last message it stored on each stream, and a sender resumes a
/// stream only if the line at that position in the file has that fingerprint. A file that begins like a
/// known stream but differs there is new content, and gets the next discriminator.
public struct StreamName: Sendable, Hashable, CustomStringConvertible {
    /// How much of a file's head names it, at most.
    public static let headLimit = 1024

    public var headLength: Int
    public var headHash: UInt64
    public var discriminator: Int

    public init(head: [UInt8], discriminator: Int = 0) {
        let used = head.prefix(Self.headLimit)
        headLength = used.count
        headHash = LinkFingerprint.fnv1a(used)
        self.discriminator = discriminator
    }

    public init?(parsing name: String) {
        let parts = name.split(separator: "-")
        guard parts.count == 3, parts[0].hasPrefix("f"), let length = Int(parts[0].dropFirst()), length > 0,
            parts[1].count == 16, let hash = UInt64(parts[1], radix: 16), let discriminator = Int(parts[2]), discriminator >= 0
        else { return nil }
        headLength = length
        headHash = hash
        self.discriminator = discriminator
    }

    public var description: String {
        let hex = String(headHash, radix: 16)
        return "f\(headLength)-\(String(repeating: "0", count: 16 - hex.count))\(hex)-\(discriminator)"
    }

    /// Whether a file whose head is `head` begins as this stream began.
    public func matches(head: [UInt8]) -> Bool {
        head.count >= headLength && LinkFingerprint.fnv1a(head.prefix(headLength)) == headHash
    }

    /// The known streams a file with this head may continue, most specific (longest head) first.
    public static func candidates(for head: [UInt8], among known: [LinkStreamMark]) -> [(name: StreamName, mark: LinkStreamMark)] {
        known.compactMap { mark in StreamName(parsing: mark.stream).flatMap { $0.matches(head: head) ? ($0, mark) : nil } }
            .sorted { ($0.name.headLength, -$0.name.discriminator) > ($1.name.headLength, -$1.name.discriminator) }
    }

    /// A name for new content with this head that no known or open stream has.
    public static func fresh(for head: [UInt8], taken: Set<String>) -> StreamName {
        var name = StreamName(head: head)
        while taken.contains(name.description) { name.discriminator += 1 }
        return name
    }
}
