public import Logging
public import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
public import ServiceLifecycle
import LingerProbe
import NIOConcurrencyHelpers

/// `linger export`: the probe's view as Prometheus metrics over HTTP, one namespace per exporter.
public final class ExporterService: Service {
    public let host: String
    public let port: Int
    public let namespace: String?
    private let logger: Logger
    private let worker: ScrapeWorker
    private let boundAddress = NIOLockedValueBox<SocketAddress?>(nil)
    private let tlsContext: NIOSSLContext?

    /// Prepares the exporter; the scrape thread enters `namespace` now, so a bad name fails here, and the TLS
    /// files are read now, so a bad certificate fails here too.
    /// - Throws: ``ProbeError`` when the namespace cannot be entered; ``ExporterError`` for unusable TLS files.
    public init(
        host: String = "127.0.0.1", port: Int = 9977, namespace: String? = nil, leakAgeSeconds: Double = 60,
        tls: ExporterTLS? = nil, logger: Logger
    ) throws {
        self.tlsContext = try tls?.makeContext()
        self.host = host
        self.port = port
        self.namespace = namespace
        self.logger = logger
        self.worker = try ScrapeWorker(namespace: namespace, leakAgeSeconds: leakAgeSeconds)
    }

    /// A bind error in words ("address already in use"), not a Swift type dump.
    private static func describe(_ error: any Error) -> String {
        if let error = error as? IOError {
            let text = String(cString: strerror(error.errnoCode))
            return text.prefix(1).lowercased() + text.dropFirst()
        }
        if error is SocketAddressError || error is SocketAddressError.UnknownHost { return "not an address of this machine" }
        return "\(error)"
    }

    /// The address actually bound, once `run()` listens.
    public var localAddress: SocketAddress? { boundAddress.withLockedValue { $0 } }

    public func run() async throws {
        defer { worker.stop() }
        let worker = self.worker, tlsContext = self.tlsContext
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { child in
                    child.eventLoop.makeCompletedFuture {
                        if let tlsContext { try child.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext)) }
                        // A client that sends nothing (or reads nothing) for 10 s is dropped; others are not held up.
                        try child.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(10), writeTimeout: .seconds(10)))
                        try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                        try child.pipeline.syncOperations.addHandler(MetricsHTTPHandler(worker: worker))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            throw ExporterError("cannot listen on \(host):\(port): \(Self.describe(error))")
        }
        boundAddress.withLockedValue { $0 = channel.localAddress }
        logger.info("serving metrics", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// Why the exporter could not start.
public struct ExporterError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
