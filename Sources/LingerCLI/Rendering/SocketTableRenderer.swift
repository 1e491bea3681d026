import LingerCore

/// Renders socket listings into one byte buffer: text like `ss -tan` (plus owners with `-p`), or JSON.
///
/// Speed matters here — with 100,000 sockets, formatting is most of the work — so everything is appended
/// to one reused `[UInt8]` with no per-field `String`, handed to `emit` every ``chunkSize`` bytes so a large
/// table never sits in memory twice (records plus their text).
struct SocketTableRenderer {
    var showOwners: Bool
    /// Receives each finished chunk of output (stdout in the CLI).
    var emit: ([UInt8]) -> Void = { StandardOutput.write($0) }

    static let chunkSize = 256 * 1024

    private func flushIfFull(_ out: inout [UInt8]) {
        if out.count >= Self.chunkSize {
            emit(out)
            out.removeAll(keepingCapacity: true)
        }
    }

    static let stateWidth = 13
    static let queueWidth = 7
    static let endpointWidth = 28

    func text(_ records: [SocketRecord]) {
        var out: [UInt8] = []
        out.reserveCapacity(Self.chunkSize + 1024)
        pad("State", Self.stateWidth, &out)
        padLeft("Recv-Q", Self.queueWidth, &out)
        padLeft("Send-Q", Self.queueWidth, &out)
        out.append(UInt8(ascii: " "))
        pad("Local Address:Port", Self.endpointWidth, &out)
        out.append(UInt8(ascii: " "))
        if showOwners {
            pad("Peer Address:Port", Self.endpointWidth, &out)
            out.append(contentsOf: " Process".utf8)
        } else {
            out.append(contentsOf: "Peer Address:Port".utf8)
        }
        out.append(UInt8(ascii: "\n"))
        for record in records {
            flushIfFull(&out)
            let start = out.count
            out.append(contentsOf: record.state.ssName.utf8)
            spaces(Self.stateWidth - (out.count - start), &out)
            number(UInt64(record.recvQ), Self.queueWidth, &out)
            number(UInt64(record.sendQ), Self.queueWidth, &out)
            out.append(UInt8(ascii: " "))
            var fieldStart = out.count
            record.local.appendText(to: &out)
            spaces(Self.endpointWidth - (out.count - fieldStart), &out)
            out.append(UInt8(ascii: " "))
            fieldStart = out.count
            record.remote.appendText(to: &out)
            if showOwners && !record.owners.isEmpty {
                spaces(Self.endpointWidth - (out.count - fieldStart), &out)
                out.append(contentsOf: " users:(".utf8)
                for (i, owner) in record.owners.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    out.append(contentsOf: "(\"".utf8)
                    out.append(contentsOf: owner.name.utf8)
                    out.append(contentsOf: "\",pid=".utf8)
                    appendDecimal(UInt64(owner.pid), to: &out)
                    out.append(contentsOf: ",fd=".utf8)
                    appendDecimal(UInt64(owner.fd), to: &out)
                    out.append(UInt8(ascii: ")"))
                }
                out.append(UInt8(ascii: ")"))
            }
            out.append(UInt8(ascii: "\n"))
        }
        emit(out)
    }

    /// `{"takenAt": ..., "source": ..., "sockets": [...]}` — the listing contract of `linger sockets --json`.
    func json(_ records: [SocketRecord], snapshot: Snapshot) {
        var out: [UInt8] = []
        out.reserveCapacity(Self.chunkSize + 1024)
        out.append(contentsOf: "{\"takenAt\":".utf8)
        JSONText.appendString(Timestamp.iso8601(snapshot.takenAt), to: &out)
        out.append(contentsOf: ",\"source\":\"".utf8)
        out.append(contentsOf: snapshot.source.rawValue.utf8)
        out.append(contentsOf: "\",\"sockets\":[".utf8)
        for (index, record) in records.enumerated() {
            flushIfFull(&out)
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: "\n{\"state\":\"".utf8)
            out.append(contentsOf: record.state.kernelName.utf8)
            out.append(contentsOf: "\",\"local\":".utf8)
            endpoint(record.local, &out)
            out.append(contentsOf: ",\"remote\":".utf8)
            endpoint(record.remote, &out)
            field("recvQ", UInt64(record.recvQ), &out)
            field("sendQ", UInt64(record.sendQ), &out)
            field("inode", record.inode, &out)
            field("uid", UInt64(record.uid), &out)
            field("cookie", record.cookie, &out)
            out.append(contentsOf: ",\"timer\":".utf8)
            if let timer = record.timer {
                out.append(contentsOf: "{\"name\":\"".utf8)
                out.append(contentsOf: timer.kind.name.utf8)
                out.append(contentsOf: "\",\"expiresMs\":".utf8)
                if timer.expiresInMilliseconds < 0 { out.append(UInt8(ascii: "-")) }
                appendDecimal(timer.expiresInMilliseconds.magnitude, to: &out)
                field("retransmits", UInt64(timer.retransmits), &out)
                out.append(UInt8(ascii: "}"))
            } else {
                out.append(contentsOf: "null".utf8)
            }
            out.append(contentsOf: ",\"processes\":[".utf8)
            for (i, owner) in record.owners.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: "{\"pid\":".utf8)
                appendDecimal(UInt64(owner.pid), to: &out)
                out.append(contentsOf: ",\"name\":".utf8)
                JSONText.appendString(owner.name, to: &out)
                field("fd", UInt64(owner.fd), &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(contentsOf: "]}".utf8)
        }
        out.append(contentsOf: "\n]}\n".utf8)
        emit(out)
    }

    private func endpoint(_ endpoint: Endpoint, _ out: inout [UInt8]) {
        out.append(contentsOf: "{\"address\":\"".utf8)
        endpoint.address.appendText(to: &out)
        out.append(contentsOf: "\",\"port\":".utf8)
        appendDecimal(UInt64(endpoint.port), to: &out)
        out.append(UInt8(ascii: "}"))
    }

    private func field(_ name: StaticString, _ value: UInt64, _ out: inout [UInt8]) {
        out.append(contentsOf: ",\"".utf8)
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: "\":".utf8)
        appendDecimal(value, to: &out)
    }

    private func number(_ value: UInt64, _ width: Int, _ out: inout [UInt8]) {
        var digits = 1
        var v = value
        while v >= 10 { v /= 10; digits += 1 }
        spaces(width - digits, &out)
        appendDecimal(value, to: &out)
    }

    private func pad(_ text: String, _ width: Int, _ out: inout [UInt8]) {
        out.append(contentsOf: text.utf8)
        spaces(width - text.utf8.count, &out)
    }

    private func padLeft(_ text: String, _ width: Int, _ out: inout [UInt8]) {
        spaces(width - text.utf8.count, &out)
        out.append(contentsOf: text.utf8)
    }

    private func spaces(_ count: Int, _ out: inout [UInt8]) {
        if count > 0 { out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: count)) }
        else { out.append(UInt8(ascii: " ")) }
    }
}
