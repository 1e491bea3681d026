@testable import LingerLink
import NIOCore
import NIOEmbedded

/// The server's frame decoder behind NIO's real `ByteToMessageHandler`, fed the same bytes in two different
/// read splits. Frames do not depend on how TCP cut the stream: both must give the same frames (DATA runs
/// taken apart into their frames) and the same typed error, at the same place.
enum FrameDecoderTarget {
    /// Small, so the fuzzer reaches the limit check with short inputs.
    static let maximumFrameLength: UInt32 = 4096

    struct Outcome: Equatable {
        var frames: [[UInt8]] = []
        var error: LinkProtocolError?
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        var reader = InputReader(input)
        // The first byte seeds the second split; the rest is the stream.
        let seed = Int(reader.byte() ?? 1)
        let stream = reader.rest()
        let whole = decode(stream, splits: [stream.count])
        var splits: [Int] = []
        var position = 0, step = seed % 7 + 1
        while position < stream.count {
            let size = min(step, stream.count - position)
            splits.append(size)
            position += size
            step = (step * 5 + seed) % 23 + 1
        }
        let pieces = decode(stream, splits: splits)
        guard whole == pieces else {
            violated("the split \(splits) decoded \(pieces.frames.count) frames and \(String(describing: pieces.error)); "
                + "in one read: \(whole.frames.count) frames and \(String(describing: whole.error))")
        }
    }

    static func decode(_ stream: [UInt8], splits: [Int]) -> Outcome {
        let channel = EmbeddedChannel()
        var outcome = Outcome()
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LinkInboundDecoder(maximumFrameLength: maximumFrameLength)))
            var offset = 0
            for size in splits {
                try channel.writeInbound(ByteBuffer(bytes: stream[offset..<offset + size]))
                offset += size
                collect(channel, into: &outcome)
            }
            _ = try channel.finish()
        } catch let error as LinkProtocolError {
            outcome.error = error
        } catch {
            violated("the decoder threw \(type(of: error)), not a LinkProtocolError: \(error)")
        }
        collect(channel, into: &outcome)
        _ = try? channel.finish()
        return outcome
    }

    /// Each frame's wire bytes: a DATA run split at its length fields; a control frame re-encoded (a HELLO of
    /// version 1 gains its idle timeout field, so this is the frame's canonical form, the same for both splits).
    static func collect(_ channel: EmbeddedChannel, into outcome: inout Outcome) {
        while let inbound = try? channel.readInbound(as: LinkInbound.self) {
            switch inbound {
            case .data(var run):
                while let length: UInt32 = run.getInteger(at: run.readerIndex) {
                    guard let bytes = run.readBytes(length: 4 + Int(length)) else { violated("a DATA run ends inside a frame") }
                    guard bytes[4] == LinkFrame.Kind.data.rawValue else { violated("a DATA run holds a frame of type \(bytes[4])") }
                    outcome.frames.append(bytes)
                }
                guard run.readableBytes == 0 else { violated("\(run.readableBytes) stray bytes after a DATA run") }
            case .frame(let frame):
                var buffer = ByteBuffer()
                buffer.writeLinkFrame(frame)
                outcome.frames.append(Array(buffer.readableBytesView))
            }
        }
    }
}
