#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// What inotify said changed in a watched directory.
struct DirectoryEvent: Sendable, Equatable {
    /// The watched directory.
    var directory: String
    /// The entry it concerns (empty for the directory itself).
    var name: String
    var mask: UInt32

    /// The kernel's queue overflowed: events were lost, everything must be looked at again.
    var overflowed: Bool { mask & UInt32(IN_Q_OVERFLOW) != 0 }
    /// Only content changed (a write, a truncation): the names in the directory are as they were.
    var isWrite: Bool { mask & ~UInt32(IN_MODIFY | IN_CLOSE_WRITE) == 0 }
}

/// Directories watched with inotify, so a sender sees a new file, a rename, a deletion and a write the moment
/// they happen, instead of polling every file (1,500 followed files polled five times a second took 35 % of
/// a core while idle).
///
/// The inotify descriptor is read by an event loop like any pipe (`NIOPipeBootstrap`), and its records are
/// framed by ``InotifyEventDecoder``: no thread blocks on it, and nothing is polled. The events of one read
/// arrive together on ``events``.
final class DirectoryWatch: Sendable {
    let events: AsyncStream<[DirectoryEvent]>
    private let channel: any Channel
    private let descriptor: Int32
    private let watched: NIOLockedValueBox<[Int32: String]>

    /// What inotify reports: entries created, moved in or out, deleted, written, closed after writing, and the
    /// directory itself going away.
    static let mask = UInt32(IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB
        | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

    /// The masks of a name that appeared in a watched directory.
    static let arrivals = UInt32(IN_CREATE | IN_MOVED_TO)

    private init(channel: any Channel, descriptor: Int32, watched: NIOLockedValueBox<[Int32: String]>, events: AsyncStream<[DirectoryEvent]>) {
        self.channel = channel
        self.descriptor = descriptor
        self.watched = watched
        self.events = events
    }

    /// A watch with nothing watched yet; nil when inotify cannot be used (then the caller rescans instead).
    static func start(on group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async -> DirectoryWatch? {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let watched = NIOLockedValueBox<[Int32: String]>([:])
        let (events, continuation) = AsyncStream.makeStream(of: [DirectoryEvent].self, bufferingPolicy: .unbounded)
        do {
            let channel = try await NIOPipeBootstrap(group: group)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 64 << 10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(InotifyEventDecoder()))
                        try channel.pipeline.syncOperations.addHandler(DirectoryEventHandler(watched: watched, continuation: continuation))
                    }
                }
                .takingOwnershipOfDescriptor(input: fd).get()
            return DirectoryWatch(channel: channel, descriptor: fd, watched: watched, events: events)
        } catch {
            _ = Glibc.close(fd)
            continuation.finish()
            return nil
        }
    }

    /// Watches `directory` (once; again after it was replaced). Returns false when it cannot be watched
    /// (missing, or the user's inotify watch limit reached).
    @discardableResult
    func watch(_ directory: String) -> Bool {
        watched.withLockedValue { watched in
            guard channel.isActive else { return false }
            let wd = inotify_add_watch(descriptor, directory, Self.mask)
            guard wd >= 0 else { return false }
            watched[wd] = directory
            return true
        }
    }

    func close() async {
        watched.withLockedValue { $0.removeAll() }
        try? await channel.close()
    }
}

/// One inotify record: `struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }`.
struct InotifyRecord: Equatable {
    var watch: Int32
    var mask: UInt32
    var name: String
}

/// Frames inotify records out of what the descriptor reads: a 16-byte header and a NUL-padded name.
struct InotifyEventDecoder: ByteToMessageDecoder {
    typealias InboundOut = InotifyRecord

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let record = Self.read(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(record))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.clear()
        return .needMoreData
    }

    /// One record from the front of `buffer`, or nil (nothing consumed) when it is not all there.
    static func read(_ buffer: inout ByteBuffer) -> InotifyRecord? {
        guard buffer.readableBytes >= 16, let length = buffer.getInteger(at: buffer.readerIndex + 12, endianness: .host, as: UInt32.self),
            buffer.readableBytes >= 16 + Int(length)
        else { return nil }
        let watch: Int32 = buffer.readInteger(endianness: .host)!
        let mask: UInt32 = buffer.readInteger(endianness: .host)!
        _ = buffer.readInteger(endianness: .host, as: UInt32.self)  // cookie: renames are rescanned, not paired
        _ = buffer.readInteger(endianness: .host, as: UInt32.self)
        let bytes = buffer.readBytes(length: Int(length))!
        let name = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        return InotifyRecord(watch: watch, mask: mask, name: name)
    }
}

/// Turns records into ``DirectoryEvent``s, handed on once per read.
private final class DirectoryEventHandler: ChannelInboundHandler {
    typealias InboundIn = InotifyRecord

    private let watched: NIOLockedValueBox<[Int32: String]>
    private let continuation: AsyncStream<[DirectoryEvent]>.Continuation
    private var pending: [DirectoryEvent] = []

    init(watched: NIOLockedValueBox<[Int32: String]>, continuation: AsyncStream<[DirectoryEvent]>.Continuation) {
        self.watched = watched
        self.continuation = continuation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let record = unwrapInboundIn(data)
        if record.mask & UInt32(IN_Q_OVERFLOW) != 0 {
            pending.append(DirectoryEvent(directory: "", name: "", mask: record.mask))
            return
        }
        let directory = watched.withLockedValue { watched -> String? in
            defer { if record.mask & UInt32(IN_IGNORED) != 0 { watched[record.watch] = nil } }
            return watched[record.watch]
        }
        guard let directory else { return }
        pending.append(DirectoryEvent(directory: directory, name: record.name, mask: record.mask))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard !pending.isEmpty else { return }
        continuation.yield(pending)
        pending.removeAll(keepingCapacity: true)
    }

    func channelInactive(context: ChannelHandlerContext) {
        continuation.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        continuation.finish()
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension DirectoryEventHandler: Sendable {}
