import Foundation
@testable import LingerLink
import Testing

/// Who a client may claim to be: the token file's format, and the names read from a real certificate.
struct ClientIdentityTests {
    @Test func theTokenFileTiesTokensToClientIDs() throws {
        let tokens = try LinkToken.parseFile("""
            # token   client ids
            aaa web-1 web-2

            bbb\tbatch-*
            ccc
              # an indented comment
            """)
        #expect(tokens == [
            LinkToken(secret: "aaa", clientIDs: ["web-1", "web-2"]),
            LinkToken(secret: "bbb", clientIDs: ["batch-*"]),
            LinkToken(secret: "ccc"),
        ])
        #expect(tokens[0].permits("web-2") && !tokens[0].permits("web-3"))
        #expect(tokens[1].permits("batch-9") && !tokens[1].permits("batch"))
        #expect(tokens[2].permits("anyone"))
    }

    @Test func aTokenFileMistakeNamesItsLine() {
        #expect(throws: LinkError.self) { try LinkToken.parseFile("aaa web-1\naaa web-2\n") }
        do {
            _ = try LinkToken.parseFile("aaa web-1\nbbb web/2\n", name: "tokens")
            Issue.record("a client id with a slash was accepted")
        } catch let error as LinkError {
            #expect(error.message.hasPrefix("tokens line 2: 'web/2' is not a client id"), "\(error.message)")
        } catch {
            Issue.record("\(error)")
        }
    }

    /// The certificates come from openssl at test time (scripts/make-test-certs), not from a fixture.
    @Test func namesComeFromTheCertificatesCNAndSANs() throws {
        let directory = try makeCertificates()
        defer { try? FileManager.default.removeItem(at: directory) }
        let client = CertificateNames(der: try der(directory.appendingPathComponent("client-web-1.pem")))
        #expect(client.commonName == "web-1")
        #expect(client.all == ["web-1", "web-1.clients"])
        let server = CertificateNames(der: try der(directory.appendingPathComponent("server.pem")))
        #expect(server.commonName == "linger.test")
        #expect(server.alternativeNames == ["localhost", "linger.test"], "IP SANs are not names")
        let ca = CertificateNames(der: try der(directory.appendingPathComponent("ca.pem")))
        #expect(ca.all == ["linger test CA"])
    }

    @Test func bytesThatAreNoCertificateYieldNoNames() throws {
        let samples: [[UInt8]] = [[], [0x30], [0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF], [0x30, 0x80, 0x00, 0x00], [0x30, 0x03, 0x30, 0x01]]
        for bytes in samples { #expect(CertificateNames(der: bytes).all.isEmpty) }
        // Every truncation of a real certificate: no trap, and no name that is not in it.
        let directory = try makeCertificates()
        defer { try? FileManager.default.removeItem(at: directory) }
        let whole = try der(directory.appendingPathComponent("client-web-1.pem"))
        for length in 0..<whole.count {
            let names = CertificateNames(der: Array(whole[0..<length])).all
            #expect(names.allSatisfy { ["web-1", "web-1.clients"].contains($0) } || names.isEmpty)
        }
    }

    /// A fresh set from scripts/make-test-certs, in a directory the caller removes.
    private func makeCertificates() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("linger-certs-\(UUID().uuidString)")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/make-test-certs")
        let process = try Process.run(script.standardizedFileURL, arguments: [directory.path])
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "openssl is needed (scripts/test installs it)")
        return directory
    }

    private func der(_ pem: URL) throws -> [UInt8] {
        let text = try String(contentsOf: pem, encoding: .utf8)
        let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        return Array(try #require(Data(base64Encoded: body)))
    }
}
