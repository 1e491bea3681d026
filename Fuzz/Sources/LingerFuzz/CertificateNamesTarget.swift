@testable import LingerLink

/// The DER reader behind client-certificate identities: hostile bytes give names or none, never a trap; the
/// same bytes always give the same names; and a certificate's names survive trailing bytes after it (the
/// outer SEQUENCE's length decides, not the buffer's end).
enum CertificateNamesTarget {
    static func run(_ input: UnsafeRawBufferPointer) {
        let der = Array(input)
        let names = CertificateNames(der: der)
        guard CertificateNames(der: der) == names else { violated("the same DER gave different names") }
        if !names.all.isEmpty {
            let padded = CertificateNames(der: der + [0x00, 0xFF, 0x30])
            guard padded == names else { violated("trailing bytes after the certificate changed its names") }
        }
    }
}
