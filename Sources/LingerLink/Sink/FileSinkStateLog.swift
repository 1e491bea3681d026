/// The state log beside a file sink's data (`PATH.linger-state`): what linger proves it wrote.
///
/// One record per line, appended after each commit, so the last complete record is the truth and a torn
/// last line (a crash mid-append) is ignored and cut away:
///
/// ```
/// linger-state 2 <device> <inode>          the data file this log describes (first line)
/// c <length> <client id> <stream> <seq> <check> <digest>   after a commit: the data file's committed
///                                          length, the stream's new high-water mark (stream "=" is the
///                                          unnamed one), the fingerprint of its last message and the
///                                          stream's content digest (``LinkContentDigest``; records of
///                                          earlier builds have none: unknown)
/// a <length>                               content adopted with --adopt-existing (not written by linger)
/// h <length> <fnv-1a 64 of those bytes>    the data file's first bytes (up to 4 KiB), written while it is
///                                          that short: with the inode, how a replaced file is recognised
/// ```
///
/// Lines of the first format (`<length> <client id> <seq>`, no header) are read as `c` records of the
/// unnamed stream, so a state log written by an older linger still resumes.
struct FileSinkStateLog {
    struct Identity: Equatable {
        var device: UInt64
        var inode: UInt64
    }

    var identity: Identity?
    /// A fingerprint of the data file's head: how many bytes, and their FNV-1a hash.
    var head: (length: Int64, hash: UInt64)?
    /// The data file's length that the log proves linger wrote or adopted.
    var length: Int64 = 0
    var marks: [LinkStreamKey: MarkBook.Mark] = [:]
    /// Bytes of the log that form complete, well-formed records; anything after is torn.
    var validPrefix = 0
    /// How many records the log holds (to decide when to compact it).
    var records = 0

    static let unnamedStream = "="

    /// Parses a state log. Stops at the first torn or malformed line: what follows it cannot be trusted to
    /// describe a state that was ever reached.
    init(parsing bytes: [UInt8]) {
        var start = 0
        while start < bytes.count {
            guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            let fields = bytes[start..<end].split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            guard apply(fields, first: start == 0) else { break }
            records += 1
            start = end + 1
            validPrefix = start
        }
    }

    init() {}

    private mutating func apply(_ fields: [String], first: Bool) -> Bool {
        switch fields.first {
        case "linger-state" where first && fields.count == 4 && fields[1] == "2":
            guard let device = UInt64(fields[2]), let inode = UInt64(fields[3]) else { return false }
            identity = Identity(device: device, inode: inode)
        case "c" where fields.count == 6 || fields.count == 7:
            guard let length = Int64(fields[1]), let sequence = UInt64(fields[4]), let check = UInt64(fields[5]) else { return false }
            var digest: UInt64 = 0
            if fields.count == 7 {
                guard let value = UInt64(fields[6]) else { return false }
                digest = value
            }
            self.length = length
            let key = LinkStreamKey(clientID: fields[2], stream: fields[3] == Self.unnamedStream ? "" : fields[3])
            marks[key] = MarkBook.Mark(sequence: sequence, check: check, digest: digest)
        case "h" where fields.count == 3:
            guard let length = Int64(fields[1]), let hash = UInt64(fields[2]) else { return false }
            head = (length, hash)
        case "a" where fields.count == 2:
            guard let length = Int64(fields[1]) else { return false }
            self.length = length
        default:
            // The first format: "<length> <client id> <seq>".
            guard fields.count == 3, let length = Int64(fields[0]), let sequence = UInt64(fields[2]) else { return false }
            self.length = length
            marks[LinkStreamKey(clientID: fields[1])] = MarkBook.Mark(sequence: sequence, check: 0)
        }
        return true
    }

    static func header(_ identity: Identity) -> String { "linger-state 2 \(identity.device) \(identity.inode)\n" }

    static func commitRecord(length: Int64, key: LinkStreamKey, mark: MarkBook.Mark) -> String {
        "c \(length) \(key.clientID) \(key.stream.isEmpty ? unnamedStream : key.stream) \(mark.sequence) \(mark.check) \(mark.digest)\n"
    }

    static func adoptRecord(length: Int64) -> String { "a \(length)\n" }

    static func headRecord(length: Int64, hash: UInt64) -> String { "h \(length) \(hash)\n" }

    /// How many leading bytes of the data file the head fingerprint covers at most.
    static let headLimit: Int64 = 4096

    static func fingerprint(_ bytes: UnsafeRawBufferPointer) -> UInt64 { LinkFingerprint.fnv1a(bytes) }

    /// The whole state in as few records as possible: what compaction writes.
    func snapshot(identity: Identity) -> String {
        var text = Self.header(identity) + Self.adoptRecord(length: length)
        if let head { text += Self.headRecord(length: head.length, hash: head.hash) }
        for (key, mark) in marks.sorted(by: { ($0.key.clientID, $0.key.stream) < ($1.key.clientID, $1.key.stream) }) {
            text += Self.commitRecord(length: length, key: key, mark: mark)
        }
        return text
    }
}
