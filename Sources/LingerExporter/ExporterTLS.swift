import NIOSSL

/// HTTPS for `/metrics` (`linger export --tls-cert --tls-key`), as node_exporter's web config offers: for an
/// exporter reachable beyond loopback. Plain HTTP on loopback stays the default.
public struct ExporterTLS: Sendable {
    public var certificatePath: String
    public var keyPath: String

    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }

    /// Reads the PEM files (at start-up, before anything listens).
    func makeContext() throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw ExporterError("cannot use \(certificatePath) as the TLS certificate: not a readable PEM certificate")
        }
        guard !chain.isEmpty else { throw ExporterError("\(certificatePath) holds no PEM certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw ExporterError("cannot use \(keyPath) as the TLS key: not a readable, unencrypted PEM private key")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ExporterError("the TLS key \(keyPath) does not belong to the certificate \(certificatePath)")
        }
    }
}
