#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import NIOSSL

/// What certificate verification saw on one connection, in words: BoringSSL reports only
/// CERTIFICATE_VERIFY_FAILED, and a user needs to know whether the certificate expired or its CA is unknown.
///
/// Lives on the connection's event loop: the verification callback writes it, the handler reads it.
final class CertificateVerdict {
    private(set) var problem: String?
    let whose: String
    /// The name or address the certificate must hold, for the message when it does not.
    let expectedName: String

    init(whose: String, expectedName: String) {
        self.whose = whose
        self.expectedName = expectedName
    }

    /// A verification callback that keeps BoringSSL's result and remembers why a certificate failed.
    func callback() -> NIOSSLVerificationCallback {
        { [self] result, certificate in
            if result == .failed, problem == nil { problem = explain(certificate) }
            return result
        }
    }

    private func explain(_ certificate: NIOSSLCertificate) -> String {
        let now = time(nil)
        if certificate.notValidAfter < now { return "\(whose) certificate expired on \(formatUTC(certificate.notValidAfter))" }
        if certificate.notValidBefore > now { return "\(whose) certificate is not valid before \(formatUTC(certificate.notValidBefore))" }
        return "\(whose) certificate is not signed by a trusted CA"
    }
}

/// Sorts a TLS failure into the ones no retry can fix, each with a sentence that names the reason and the
/// flag that fixes it, and the rest (a reset during the handshake), which the client retries as any
/// connection failure.
enum TLSFailure {
    static func finalReason(_ error: any Error, verdict: CertificateVerdict?) -> String? {
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "TLS refused: the server's certificate does not hold \(verdict?.expectedName ?? "the name connected to"); "
                + "connect by a name it holds, or give --tls-server-name"
        }
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            let problem = verdict?.problem ?? "the server's certificate could not be verified"
            // The advice fits the reason: an expired certificate signed by the right CA needs renewing, not
            // another --tls-ca.
            let advice = verdict?.problem?.contains("expired") == true || verdict?.problem?.contains("not valid before") == true
                ? "the server's operator must renew it (or fix the server's clock)"
                : "give --tls-ca with the CA that signs the server's certificate"
            return "TLS refused: \(problem); \(advice)"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") || text.contains("RECORD_LENGTH_MISMATCH") {
            return "the server does not speak TLS on this port (it runs without --tls-cert?); drop the --tls options or fix the address"
        }
        if text.contains("CERTIFICATE_EXPIRED") {
            return "the server refused this sender's certificate: it has expired; renew --tls-cert"
        }
        if text.contains("UNKNOWN_CA") {
            return "the server refused this sender's certificate: it is not signed by a CA the server trusts (--tls-client-ca)"
        }
        if text.contains("CERTIFICATE_REQUIRED") || text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") {
            return "the server requires a client certificate; give --tls-cert and --tls-key"
        }
        if text.contains("BAD_CERTIFICATE") || text.contains("UNSUPPORTED_CERTIFICATE") || text.contains("CERTIFICATE_UNKNOWN") {
            return "the server refused this sender's certificate"
        }
        if text.contains("UNSUPPORTED_PROTOCOL") || text.contains("NO_SHARED_CIPHER") || text.contains("PROTOCOL_VERSION") {
            return "no TLS version or cipher in common with the server (linger needs TLS 1.2 or later)"
        }
        return nil
    }
}

/// A failed TLS handshake as the server sees it, in words for its log (the client's reason, not BoringSSL's
/// type dump): what the client did wrong, as far as the alert or error tells.
enum ServerTLSFailure {
    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("CERTIFICATE_REQUIRED") || text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") {
            return "the client presented no certificate, and --tls-client-ca requires one"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the client's certificate does not verify against --tls-client-ca (another CA, expired, or not yet valid)"
        }
        if text.contains("UNKNOWN_CA") {
            return "the client does not trust this server's certificate (its --tls-ca is another CA)"
        }
        if text.contains("CERTIFICATE_EXPIRED") { return "the client says this server's certificate has expired" }
        if text.contains("BAD_CERTIFICATE") || text.contains("CERTIFICATE_UNKNOWN") {
            return "the client refused this server's certificate (a name it does not hold, or a CA it does not trust)"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") || text.contains("HTTPS_PROXY_REQUEST") {
            return "the client does not speak TLS (plain HTTP, or a sender without --tls-ca)"
        }
        if text.contains("UNSUPPORTED_PROTOCOL") || text.contains("NO_SHARED_CIPHER") || text.contains("PROTOCOL_VERSION") {
            return "no TLS version or cipher in common with the client (linger needs TLS 1.2 or later)"
        }
        if text.contains("eofDuringHandshake") || text.contains("uncleanShutdown") {
            return "the client closed during the TLS handshake (often: it does not trust this server's certificate)"
        }
        return "the TLS handshake failed (\(text))"
    }
}

/// "2026-11-29 12:00:00 UTC".
func formatUTC(_ time: time_t) -> String {
    #if canImport(Glibc)
    var value = time
    var parts = tm()
    gmtime_r(&value, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    #else
    return "\(time)"
    #endif
}
