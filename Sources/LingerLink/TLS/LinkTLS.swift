#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import NIOConcurrencyHelpers
import NIOSSL

/// TLS for the server end of the link (`linger serve --tls-cert --tls-key [--tls-client-ca]`).
///
/// Files, not loaded objects: the server reads them when it starts and again on ``LinkServer/reloadTLS()``
/// (SIGHUP), so short-lived certificates rotate without dropping a connection.
public struct LinkServerTLS: Sendable {
    /// PEM: the server's certificate, followed by any intermediates.
    public var certificatePath: String
    /// PEM: the certificate's private key.
    public var keyPath: String
    /// PEM: the CAs that sign client certificates. When set, every client must present a certificate signed by
    /// one of them, and the client id in its HELLO must be the certificate's CN or one of its SANs.
    public var clientCAPath: String?

    public init(certificatePath: String, keyPath: String, clientCAPath: String? = nil) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.clientCAPath = clientCAPath
    }

    /// Reads the files once, to report an unusable one (missing, not PEM, a key of another certificate)
    /// before anything listens.
    public func check() throws { _ = try makeContext() }

    /// A warning when the server's own certificate expires within `days` (or has expired): said at start and
    /// daily, so an operator renews it before senders are refused. Nil when it is good for longer, or cannot
    /// be read (that is reported where it is loaded).
    public func expiryWarning(within days: Int = 14) -> String? { expiryWarning(within: days, now: time(nil)) }

    func expiryWarning(within days: Int, now: time_t) -> String? {
        guard let leaf = try? loadCertificates(certificatePath, role: "certificate").first else { return nil }
        let left = leaf.notValidAfter - now
        guard left < time_t(days) * 86_400 else { return nil }
        if left <= 0 { return "warning: the server's certificate \(certificatePath) expired on \(formatUTC(leaf.notValidAfter)); senders refuse it: renew it and send SIGHUP" }
        return "warning: the server's certificate \(certificatePath) expires on \(formatUTC(leaf.notValidAfter)), in \(left / 86_400) day\(left / 86_400 == 1 ? "" : "s"): renew it and send SIGHUP"
    }
    /// Reads the files and builds a context: blocking, so only at start-up and on reload, never on an event loop.
    func makeContext() throws -> NIOSSLContext {
        let chain = try loadCertificates(certificatePath, role: "certificate")
        let key = try loadKey(keyPath)
        var configuration: TLSConfiguration
        if let clientCAPath {
            let roots = try loadCertificates(clientCAPath, role: "client CA")
            configuration = .makeServerConfigurationWithMTLS(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key), trustRoots: .certificates(roots))
            // Client certificates carry client ids, not host names.
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration = .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        }
        configuration.minimumTLSVersion = .tlsv12
        return try buildContext(configuration, certificatePath: certificatePath, keyPath: keyPath)
    }
}

/// TLS for the sending end (`linger send --tls-ca [--tls-cert --tls-key] [--tls-server-name]`).
public struct LinkClientTLS: Sendable {
    /// PEM: the CAs that may sign the server's certificate; nil uses the system's trust store.
    public var caPath: String?
    /// PEM: this client's certificate, for servers that require one (its CN or a SAN must be the client id).
    public var certificatePath: String?
    public var keyPath: String?
    /// The name the server's certificate must hold; by default the host the client connects to (an IP address
    /// is then matched against the certificate's IP SANs).
    public var serverName: String?

    public init(caPath: String? = nil, certificatePath: String? = nil, keyPath: String? = nil, serverName: String? = nil) {
        self.caPath = caPath
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.serverName = serverName
    }

    /// The files this configuration reads, to notice when one is replaced.
    var paths: [String] { [caPath, certificatePath, keyPath].compactMap { $0 } }

    /// Reads the files once, to report an unusable one before connecting.
    public func check() throws { _ = try makeContext() }


    func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caPath { configuration.trustRoots = .certificates(try loadCertificates(caPath, role: "CA")) }
        if let certificatePath, let keyPath {
            configuration.certificateChain = try loadCertificates(certificatePath, role: "certificate").map { .certificate($0) }
            configuration.privateKey = .privateKey(try loadKey(keyPath))
        }
        return try buildContext(configuration, certificatePath: certificatePath, keyPath: keyPath)
    }
}

/// The client's context, rebuilt before a connection when one of its files changed (a renewed certificate);
/// a long-running sender thus picks up rotated certificates at its next reconnect.
final class ClientTLSContexts: Sendable {
    let configuration: LinkClientTLS
    private let cached: NIOLockedValueBox<(stamp: [FileStamp], context: NIOSSLContext)?> = .init(nil)

    init(_ configuration: LinkClientTLS) {
        self.configuration = configuration
    }

    /// Stats the files (a few syscalls on a Swift concurrency thread, before connecting) and reloads on change.
    /// A reload that fails (a certificate caught half-written) keeps the context that worked; only the first
    /// load throws.
    func current() throws -> NIOSSLContext {
        let stamp = configuration.paths.map(FileStamp.init(path:))
        let known = cached.withLockedValue { $0 }
        if let known, known.stamp == stamp { return known.context }
        do {
            let context = try configuration.makeContext()
            cached.withLockedValue { $0 = (stamp, context) }
            return context
        } catch {
            guard let known else { throw error }
            return known.context
        }
    }
}

/// What identifies one version of a file: its inode, size and modification time.
struct FileStamp: Equatable {
    var inode: UInt64 = 0
    var size: Int64 = 0
    var modified: Int64 = 0

    init(path: String) {
        #if canImport(Glibc)
        var info = stat()
        guard stat(path, &info) == 0 else { return }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        #endif
    }
}

/// Whether `host` is an IPv4 or IPv6 literal (which TLS matches against IP SANs and never sends as SNI).
func isIPAddress(_ host: String) -> Bool {
    #if canImport(Glibc)
    var buffer = [UInt8](repeating: 0, count: 16)  // room for an in6_addr
    return inet_pton(AF_INET, host, &buffer) == 1 || inet_pton(AF_INET6, host, &buffer) == 1
    #else
    return false
    #endif
}

// MARK: - Loading, with errors a user can act on

private func checkReadable(_ path: String, role: String) throws {
    #if canImport(Glibc)
    if access(path, R_OK) != 0 { throw LinkError.io("cannot read the TLS \(role) \(path)", errno: errno) }
    #endif
}

private func loadCertificates(_ path: String, role: String) throws -> [NIOSSLCertificate] {
    try checkReadable(path, role: role)
    let certificates: [NIOSSLCertificate]
    do {
        certificates = try NIOSSLCertificate.fromPEMFile(path)
    } catch {
        throw LinkError(.configuration, "the TLS \(role) \(path) holds no PEM certificate")
    }
    guard !certificates.isEmpty else { throw LinkError(.configuration, "the TLS \(role) \(path) holds no PEM certificate") }
    return certificates
}

private func loadKey(_ path: String) throws -> NIOSSLPrivateKey {
    try checkReadable(path, role: "key")
    do {
        return try NIOSSLPrivateKey(file: path, format: .pem)
    } catch {
        throw LinkError(.configuration, "the TLS key \(path) holds no PEM private key (an encrypted key is not supported)")
    }
}

private func buildContext(_ configuration: TLSConfiguration, certificatePath: String?, keyPath: String?) throws -> NIOSSLContext {
    do {
        return try NIOSSLContext(configuration: configuration)
    } catch {
        // BoringSSL checks that the key belongs to the certificate while the context is built.
        if let certificatePath, let keyPath, "\(error)".contains("KEY_VALUES_MISMATCH") || "\(error)".contains("failedToLoadPrivateKey") {
            throw LinkError(.configuration, "the TLS key \(keyPath) does not belong to the certificate \(certificatePath)")
        }
        throw LinkError(.configuration, "cannot set up TLS: \(error)")
    }
}
