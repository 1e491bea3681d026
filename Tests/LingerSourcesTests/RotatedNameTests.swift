import Foundation
@testable import LingerSources
import Testing

struct RotatedNameTests {
    @Test(arguments: [
        ("app.log.1", "app.log"), ("app.log.12.gz", "app.log"), ("app.log-20261207", "app.log"), ("app.log-2026120712.gz", "app.log"),
        ("app.log-2026-12-07-1733", "app.log"), ("app.log.2026-12-07", "app.log"), ("app.log.2026-12-07_17-33-05", "app.log"),
        ("app.1.log", "app.log"), ("app-20261207.log", "app.log"), ("app-20261207.log.gz", "app.log"), ("app.3.log.gz", "app.log"),
        ("0.log.20261207-173305", "0.log"), ("0.log.20261207-173305.gz", "0.log"), ("app.log.1.xz", "app.log"),
    ])
    func theCommonSchemesAreRecognised(_ name: String, _ base: String) {
        #expect(RotatedName.base(of: name, among: ["app.log", "0.log", "other.log"]) == base)
    }

    @Test(arguments: ["app.logger", "app.log.old", "app.log.", "app.log-", "other.txt.1", "app.log.gz", "app.log.bak1", "xapp.log.1", "app.log.1x"])
    func otherNamesAreNot(_ name: String) {
        #expect(RotatedName.base(of: name, among: ["app.log"]) == nil)
    }

    @Test func onlyGzipCopiesAreRead() {
        #expect(RotatedName.isReadable("app.log.1.gz") && RotatedName.isReadable("app.log.1"))
        #expect(!RotatedName.isReadable("app.log.1.xz") && !RotatedName.isReadable("app.log.1.zst"))
    }
}

struct SourceViewTests {
    @Test func oneEntryPerFileTheCopiesBesideItAndNoGzipBeingWritten() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("linger-view-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["app.log", "app.log.1", "app.log.2", "app.log.2.gz", "app.log.3.gz", "app.logger", "other.log.1"] {
            try "x \(name)\n".write(toFile: directory + "/" + name, atomically: false, encoding: .utf8)
        }
        try FileManager.default.createSymbolicLink(atPath: directory + "/current.log", withDestinationPath: directory + "/app.log")
        let view = SourceView.scan(patterns: [directory + "/app.log", directory + "/current.log"], rotatedGlobs: [])
        let names = Set(view.files.values.map { ($0.path as NSString).lastPathComponent })
        #expect(view.files.count == 4, "\(names)")
        #expect(names.isSuperset(of: ["app.log.1", "app.log.2", "app.log.3.gz"]))
        #expect(!names.contains("app.log.2.gz"), "gzip is still writing it: app.log.2 is there")
        let live = try #require(view.files.values.first { $0.matched })
        #expect(view.matched[directory + "/app.log"] == live.status.key && view.matched[directory + "/current.log"] == live.status.key,
                "a symlink and its target are one file")
    }
}
