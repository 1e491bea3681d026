/// How a file's content is named as a link stream: by what it begins with and which file it was.
///
/// `f<length>-<16 hex>-<8 hex>-<n>`: the FNV-1a fingerprint of the file's head (up to 1 KiB, as much as it
/// held when the sender first met it), a hint of the file it was first read from (its device and inode,
/// hashed), and a discriminator that keeps every name unique. Linger 0.2 wrote `f<length>-<16 hex>-<n>`,
/// without the hint; those names are still read.
///
/// A name is no proof of content. The head only says which streams a file *may* continue; the server's
/// digest of each stream decides (``StreamCatalog``). The hint breaks the one tie content cannot: two files
/// that both begin like a stream's whole content (a generation of a banner log that got only its banner,
/// and the next generation, which begins with the same banner): the stream is the one of the file it was.
public struct StreamName: Sendable, Hashable, CustomStringConvertible {
    /// How much of a file's head names it, at most.
    public static let headLimit = 1024

    public var headLength: Int
    public var headHash: UInt64
    /// The file the stream was first read from (nil in names of linger 0.2).
    public var fileHint: UInt32?
    public var discriminator: Int

    public init(head: [UInt8], file: FileKey? = nil, discriminator: Int = 0) {
        let used = head.prefix(Self.headLimit)
        headLength = used.count
        headHash = HeadHashes.fnv1a(used)
        fileHint = file?.hint
        self.discriminator = discriminator
    }

    public init?(parsing name: String) {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3 || parts.count == 4, parts[0].hasPrefix("f"), let length = Int(parts[0].dropFirst()),
            length > 0, length <= Self.headLimit, parts[1].count == 16, let hash = UInt64(parts[1], radix: 16),
            let discriminator = Int(parts.last!), discriminator >= 0, parts.last!.allSatisfy(\.isNumber)
        else { return nil }
        if parts.count == 4 {
            guard parts[2].count == 8, let hint = UInt32(parts[2], radix: 16) else { return nil }
            fileHint = hint
        }
        headLength = length
        headHash = hash
        self.discriminator = discriminator
    }

    public var description: String {
        let hint = fileHint.map { "-" + hex($0, width: 8) } ?? ""
        return "f\(headLength)-\(hex(headHash, width: 16))\(hint)-\(discriminator)"
    }

    /// Whether a file whose head is `head` begins as this stream began.
    public func matches(head: [UInt8]) -> Bool {
        head.count >= headLength && HeadHashes.fnv1a(head.prefix(headLength)) == headHash
    }

    /// Whether this stream was first read from `file`.
    public func wasRead(from file: FileKey) -> Bool { fileHint == file.hint }
}

private func hex(_ value: some BinaryInteger & CVarArg, width: Int) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - text.count)) + text
}

/// The fingerprints of every prefix of a head, in one pass: FNV-1a extends byte by byte, so the hash of the
/// first `n` bytes is a step of the hash of the whole. A head is matched against thousands of known streams
/// by looking its prefix hashes up, not by hashing it once per stream (reruns over 4,000 files took four
/// times as long as the first run).
enum HeadHashes {
    static func fnv1a(_ bytes: some Collection<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// The hash of each prefix, by length (index 0 is the one-byte prefix).
    static func prefixes(of head: [UInt8]) -> [UInt64] {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        return head.prefix(StreamName.headLimit).map { byte in
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
            return hash
        }
    }
}
