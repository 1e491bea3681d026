// libFuzzer's entry point for every Linger fuzz target (docs/FUZZING.md). Built only by scripts/fuzz, with
// `-sanitize=fuzzer,address -parse-as-library`; LINGER_FUZZ_TARGET picks the target, so one instrumented binary
// (one link of NIO with ASan) serves them all.
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import NIOCore

/// Every target: its name (the corpus folder under Fuzz/Corpus) and its one-input check. A check returns
/// normally for any input; a broken invariant stops the process through `violated`, which libFuzzer records
/// as a crash with the input that caused it.
let targets: [String: @Sendable (UnsafeRawBufferPointer) -> Void] = [
    "link-frame": FrameDecoderTarget.run,
    "server-session": ServerSessionTarget.run,
    "client-session": ClientSessionTarget.run,
    "inet-diag": ProbeParserTargets.inetDiag,
    "proc-net-tcp": ProbeParserTargets.procNetTCP,
    "kernel-files": ProbeParserTargets.kernelFiles,
    "state-log": StateLogTarget.run,
    "spool": SpoolTarget.run,
    "token-file": TokenFileTarget.run,
    "certificate-names": CertificateNamesTarget.run,
    "rotated-name": SourceNamesTargets.rotatedName,
    "stream-catalog": SourceNamesTargets.streamCatalog,
]

nonisolated(unsafe) var selected: (@Sendable (UnsafeRawBufferPointer) -> Void)?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    if selected == nil {
        let name = getenv("LINGER_FUZZ_TARGET").map { String(cString: $0) } ?? ""
        guard let target = targets[name] else {
            let names = targets.keys.sorted().joined(separator: ", ")
            fputs("linger-fuzz: set LINGER_FUZZ_TARGET to one of: \(names)\n", stderr)
            exit(64)
        }
        selected = target
    }
    selected!(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// libFuzzer's driver, for programs that own `main` (`FuzzerInterface.h`).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable target's `main` to `<Module>_main` (so tests can import executables), which
/// leaves libFuzzer's own `main` out; this is that entry point, and it hands over to libFuzzer's driver.
@_cdecl("LingerFuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}

/// An invariant does not hold: say which, and crash so libFuzzer keeps the input.
func violated(_ message: @autoclosure () -> String) -> Never {
    fputs("linger-fuzz: invariant violated: \(message())\n", stderr)
    abort()
}

/// Reads an input as a sequence of small choices, then the rest as bytes.
struct InputReader {
    var bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var isAtEnd: Bool { offset >= bytes.count }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return offset < bytes.count ? Array(bytes[offset...]) : []
    }
}

extension InputReader {
    /// The next `count` bytes, or nil when the input ends first.
    mutating func take(_ count: Int) -> [UInt8]? {
        guard count >= 0, bytes.count - offset >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// The next frame of the input, self-delimited by its big-endian length field (at most `limit` bytes of
    /// it are taken), as the bytes a decoder would see; nil when the input ends first.
    mutating func frame(limit: Int) -> ByteBuffer? {
        guard let lengthBytes = take(4) else { return nil }
        let length = Int(UInt32(bigEndian: lengthBytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        guard let body = take(min(length, limit)) else { return nil }
        var buffer = ByteBuffer(bytes: lengthBytes)
        buffer.writeBytes(body)
        return buffer
    }
}
