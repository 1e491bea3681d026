/// The names a client certificate vouches for: its subject's common name (CN) and the DNS, e-mail and URI
/// names of its subjectAltName extension. The server compares a HELLO's client id with them.
///
/// swift-nio-ssl keeps the common name internal, so this reads the certificate's DER itself. It only runs on
/// a certificate BoringSSL has already verified against the configured CA, but it is written for hostile
/// bytes anyway (every length is checked; anything it does not understand yields no names, never a trap):
/// it is one of the fuzzing targets.
struct CertificateNames: Equatable {
    var commonName: String?
    var alternativeNames: [String] = []

    /// Every name, CN first.
    var all: [String] { (commonName.map { [$0] } ?? []) + alternativeNames }

    /// Names from a DER-encoded X.509 certificate; empty when the bytes are not one.
    init(der: [UInt8]) {
        var reader = DERReader(bytes: der[...])
        guard let certificate = reader.read(tag: 0x30) else { return }
        var parts = DERReader(bytes: certificate)
        guard let tbs = parts.read(tag: 0x30) else { return }
        var fields = DERReader(bytes: tbs)
        if fields.peekTag == 0xA0 { _ = fields.read(tag: 0xA0) }  // version
        guard fields.read(tag: 0x02) != nil,  // serial number
              fields.read(tag: 0x30) != nil,  // signature algorithm
              fields.read(tag: 0x30) != nil,  // issuer
              fields.read(tag: 0x30) != nil,  // validity
              let subject = fields.read(tag: 0x30),
              fields.read(tag: 0x30) != nil  // subject public key info
        else { return }
        commonName = Self.lastCommonName(in: subject)
        while let tag = fields.peekTag {
            guard let value = fields.read(tag: tag) else { return }
            if tag == 0xA3 { alternativeNames = Self.alternativeNames(inExtensions: value) }
        }
    }

    private static let commonNameOID: [UInt8] = [0x55, 0x04, 0x03]
    private static let subjectAltNameOID: [UInt8] = [0x55, 0x1D, 0x11]

    /// The last CN of the subject (the most specific, as swift-nio-ssl and OpenSSL take it).
    private static func lastCommonName(in subject: ArraySlice<UInt8>) -> String? {
        var found: String?
        var names = DERReader(bytes: subject)
        while let set = names.read(tag: 0x31) {
            var attributes = DERReader(bytes: set)
            while let attribute = attributes.read(tag: 0x30) {
                var pair = DERReader(bytes: attribute)
                guard let oid = pair.read(tag: 0x06), let tag = pair.peekTag, let value = pair.read(tag: tag) else { continue }
                if oid.elementsEqual(commonNameOID) { found = String(decoding: value, as: UTF8.self) }
            }
        }
        return found
    }

    /// rfc822Name [1], dNSName [2] and uniformResourceIdentifier [6] of the subjectAltName extension.
    private static func alternativeNames(inExtensions explicit: ArraySlice<UInt8>) -> [String] {
        var outer = DERReader(bytes: explicit)
        guard let list = outer.read(tag: 0x30) else { return [] }
        var extensions = DERReader(bytes: list)
        while let one = extensions.read(tag: 0x30) {
            var fields = DERReader(bytes: one)
            guard let oid = fields.read(tag: 0x06), oid.elementsEqual(subjectAltNameOID) else { continue }
            if fields.peekTag == 0x01 { _ = fields.read(tag: 0x01) }  // critical
            guard let octets = fields.read(tag: 0x04) else { return [] }
            var wrapper = DERReader(bytes: octets)
            guard let generalNames = wrapper.read(tag: 0x30) else { return [] }
            var names = DERReader(bytes: generalNames)
            var result: [String] = []
            while let tag = names.peekTag, let value = names.read(tag: tag) {
                if tag == 0x81 || tag == 0x82 || tag == 0x86 { result.append(String(decoding: value, as: UTF8.self)) }
            }
            return result
        }
        return []
    }
}

/// Reads DER's tag-length-value triples from a slice, refusing any length that runs past the end.
struct DERReader {
    var bytes: ArraySlice<UInt8>

    var peekTag: UInt8? { bytes.first }

    /// The value of the next element if its tag is `tag`, advancing past it; nil (and no advance) otherwise.
    mutating func read(tag: UInt8) -> ArraySlice<UInt8>? {
        var index = bytes.startIndex
        guard index < bytes.endIndex, bytes[index] == tag else { return nil }
        index += 1
        guard index < bytes.endIndex else { return nil }
        let first = bytes[index]
        index += 1
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7F)
            // Indefinite lengths (0x80) are not DER; more than four length bytes is no certificate.
            guard count >= 1, count <= 4, bytes.endIndex - index >= count else { return nil }
            for _ in 0..<count {
                length = length << 8 | Int(bytes[index])
                index += 1
            }
        }
        guard length <= bytes.endIndex - index else { return nil }
        let value = bytes[index..<(index + length)]
        bytes = bytes[(index + length)...]
        return value
    }
}
