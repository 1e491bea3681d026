import CLingerZlib
import Foundation
import Testing

/// Headless Chromium (Debian's `chromium`), for checking the lab's HTML report as a person's browser renders
/// it: the DOM after parsing, and a screenshot.
struct Browser {
    static let path = "/usr/bin/chromium"

    /// A profile directory of its own, removed afterwards, so runs leave nothing in the home directory.
    private static func withProfile<T>(_ body: (String) throws -> T) throws -> T {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("linger-chromium-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: profile) }
        _ = try installedTool(path, package: "chromium")
        return try body(profile)
    }

    private static func arguments(_ profile: String) -> [String] {
        // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)"]
    }

    /// The serialized DOM of `file` once loaded.
    static func dom(of file: String) throws -> String {
        try withProfile { profile in
            let result = try run(path, arguments(profile) + ["--dump-dom", URL(fileURLWithPath: file).absoluteString], timeout: 90)
            try #require(result.status == 0, "chromium --dump-dom failed: \(result.stderr.suffix(600))")
            return result.stdout
        }
    }

    /// A PNG screenshot of `file` at the given size.
    static func screenshot(of file: String, to png: String, width: Int = 1000, height: Int = 2000) throws {
        try withProfile { profile in
            let result = try run(path, arguments(profile) + ["--screenshot=\(png)", "--window-size=\(width),\(height)",
                                                            "--hide-scrollbars", URL(fileURLWithPath: file).absoluteString], timeout: 90)
            try #require(result.status == 0, "chromium --screenshot failed: \(result.stderr.suffix(600))")
        }
    }
}

/// The pixels of an 8-bit RGB or RGBA PNG (what Chromium writes): enough to tell a rendered page from a blank one.
struct PNGPixels {
    var width = 0, height = 0
    /// RGB triples, row by row.
    var rgb: [(UInt8, UInt8, UInt8)] = []

    init(contentsOf path: String) throws {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        try #require(data.count > 8 && data[1...3].elementsEqual("PNG".utf8), "\(path) is not a PNG")
        var offset = 8, idat: [UInt8] = [], colorType = 0, depth = 0
        func u32(_ at: Int) -> Int { Int(data[at]) << 24 | Int(data[at + 1]) << 16 | Int(data[at + 2]) << 8 | Int(data[at + 3]) }
        while offset + 8 <= data.count {
            let length = u32(offset), type = String(decoding: data[offset + 4..<offset + 8], as: UTF8.self)
            let body = offset + 8
            try #require(body + length <= data.count, "truncated PNG chunk \(type)")
            switch type {
            case "IHDR":
                width = u32(body)
                height = u32(body + 4)
                depth = Int(data[body + 8])
                colorType = Int(data[body + 9])
            case "IDAT": idat += data[body..<body + length]
            default: break
            }
            offset = body + length + 4
        }
        try #require(depth == 8 && (colorType == 2 || colorType == 6), "PNG depth \(depth), colour type \(colorType): not 8-bit RGB(A)")
        let channels = colorType == 6 ? 4 : 3, stride = width * channels
        var raw = [UInt8](repeating: 0, count: (stride + 1) * height)
        var rawLength = uLongf(raw.count)
        let status = idat.withUnsafeBufferPointer { input in
            raw.withUnsafeMutableBufferPointer { output in
                uncompress(output.baseAddress, &rawLength, input.baseAddress, uLong(input.count))
            }
        }
        try #require(status == Z_OK && Int(rawLength) == raw.count, "PNG data did not inflate (zlib \(status))")
        // Undo the per-row filters (PNG spec §9): each row's first byte names its filter.
        var previous = [UInt8](repeating: 0, count: stride), pixels: [(UInt8, UInt8, UInt8)] = []
        pixels.reserveCapacity(width * height)
        for row in 0..<height {
            let start = row * (stride + 1), filter = raw[start]
            var line = Array(raw[start + 1..<start + 1 + stride])
            for i in 0..<stride {
                let a = i >= channels ? Int(line[i - channels]) : 0, b = Int(previous[i]), c = i >= channels ? Int(previous[i - channels]) : 0
                let predictor: Int
                switch filter {
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: predictor = 0
                }
                line[i] = UInt8(truncatingIfNeeded: Int(line[i]) + predictor)
            }
            for x in 0..<width { pixels.append((line[x * channels], line[x * channels + 1], line[x * channels + 2])) }
            previous = line
        }
        rgb = pixels
    }

    /// The share of pixels that are not (near) white.
    var inkedShare: Double {
        let inked = rgb.reduce(0) { $0 + ($1.0 < 240 || $1.1 < 240 || $1.2 < 240 ? 1 : 0) }
        return rgb.isEmpty ? 0 : Double(inked) / Double(rgb.count)
    }

    /// How many distinct colours appear (a blank or single-colour page has one or two).
    var distinctColors: Int { Set(rgb.map { Int($0.0) << 16 | Int($0.1) << 8 | Int($0.2) }).count }
}
