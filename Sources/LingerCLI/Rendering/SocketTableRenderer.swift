import LingerCore

/// Renders socket listings into one byte buffer: text like `ss -tan` (plus owners with `-p`), or JSON.
///
/// Speed matters here — with 100,000 sockets, formatting is most of the work — so everything is appended
/// to one reused `[UInt8]` with no per-field `String`, handed to `emit` every ``chunkSize`` bytes so a large
/// table never sits in memory twice (records plus their text).
struct SocketTableRenderer {
    var showOwners: Bool
    /// A second line per socket with `tcp_info` and memory, as `ss -i` (and `-m`) print it; "info" in JSON.
    var showInfo = false
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
            if showInfo, let info = record.info { infoLine(info, &out) }
        }
        emit(out)
    }

    /// `\t rtt:0.067/0.006 rto:204 backoff:0 cwnd:10 retrans:0/0 unacked:0 lastsnd:… lastrcv:… lastack:…
    /// bytes_acked:… bytes_received:… delivery_rate:…bps skmem:(r0,rb…,t0,tb…,d0)`: ss's names and units
    /// (RTTs in ms with three decimals, rto in ms, the rest as the kernel counts).
    private func infoLine(_ info: TCPInfo, _ out: inout [UInt8]) {
        out.append(contentsOf: "\t rtt:".utf8)
        milliseconds(info.rttMicroseconds, &out)
        out.append(UInt8(ascii: "/"))
        milliseconds(info.rttVarianceMicroseconds, &out)
        out.append(contentsOf: " rto:".utf8)
        appendDecimal(UInt64(info.rtoMicroseconds / 1000), to: &out)
        out.append(contentsOf: " backoff:".utf8)
        appendDecimal(UInt64(info.backoff), to: &out)
        out.append(contentsOf: " cwnd:".utf8)
        appendDecimal(UInt64(info.congestionWindow), to: &out)
        out.append(contentsOf: " retrans:".utf8)
        appendDecimal(UInt64(info.retransmits), to: &out)
        out.append(UInt8(ascii: "/"))
        appendDecimal(UInt64(info.totalRetransmits), to: &out)
        out.append(contentsOf: " unacked:".utf8)
        appendDecimal(UInt64(info.unacked), to: &out)
        out.append(contentsOf: " lastsnd:".utf8)
        appendDecimal(UInt64(info.lastSendMilliseconds), to: &out)
        out.append(contentsOf: " lastrcv:".utf8)
        appendDecimal(UInt64(info.lastReceiveMilliseconds), to: &out)
        out.append(contentsOf: " lastack:".utf8)
        appendDecimal(UInt64(info.lastAckMilliseconds), to: &out)
        if let acked = info.bytesAcked {
            out.append(contentsOf: " bytes_acked:".utf8)
            appendDecimal(acked, to: &out)
        }
        if let received = info.bytesReceived {
            out.append(contentsOf: " bytes_received:".utf8)
            appendDecimal(received, to: &out)
        }
        if let rate = info.deliveryRate {
            out.append(contentsOf: " delivery_rate:".utf8)
            appendDecimal(rate &* 8, to: &out)
            out.append(contentsOf: "bps".utf8)
        }
        if let memory = info.memory {
            out.append(contentsOf: " skmem:(r".utf8)
            appendDecimal(UInt64(memory.receiveQueued), to: &out)
            out.append(contentsOf: ",rb".utf8)
            appendDecimal(UInt64(memory.receiveBuffer), to: &out)
            out.append(contentsOf: ",t".utf8)
            appendDecimal(UInt64(memory.sendQueued), to: &out)
            out.append(contentsOf: ",tb".utf8)
            appendDecimal(UInt64(memory.sendBuffer), to: &out)
            out.append(contentsOf: ",d".utf8)
            appendDecimal(UInt64(memory.drops), to: &out)
            out.append(UInt8(ascii: ")"))
        }
        out.append(UInt8(ascii: "\n"))
    }

    /// Microseconds as milliseconds with three decimals (`67` → `0.067`).
    private func milliseconds(_ microseconds: UInt32, _ out: inout [UInt8]) {
        appendDecimal(UInt64(microseconds / 1000), to: &out)
        out.append(UInt8(ascii: "."))
        let fraction = microseconds % 1000
        if fraction < 100 { out.append(UInt8(ascii: "0")) }
        if fraction < 10 { out.append(UInt8(ascii: "0")) }
        appendDecimal(UInt64(fraction), to: &out)
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
            // Absent, not empty, when owners were not looked up: [] would read as "no process holds it".
            if showOwners {
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
                out.append(UInt8(ascii: "]"))
            }
            if showInfo { infoJSON(record.info, &out) }
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "\n]}\n".utf8)
        emit(out)
    }

    /// `,"info":{"rttUs",…}` or `,"info":null` (TIME_WAIT and request sockets have none).
    private func infoJSON(_ info: TCPInfo?, _ out: inout [UInt8]) {
        guard let info else { return out.append(contentsOf: ",\"info\":null".utf8) }
        out.append(contentsOf: ",\"info\":{\"rttUs\":".utf8)
        appendDecimal(UInt64(info.rttMicroseconds), to: &out)
        field("rttVarUs", UInt64(info.rttVarianceMicroseconds), &out)
        field("rtoUs", UInt64(info.rtoMicroseconds), &out)
        field("backoff", UInt64(info.backoff), &out)
        field("cwnd", UInt64(info.congestionWindow), &out)
        field("retransmits", UInt64(info.retransmits), &out)
        field("totalRetransmits", UInt64(info.totalRetransmits), &out)
        field("unacked", UInt64(info.unacked), &out)
        field("lastSendMs", UInt64(info.lastSendMilliseconds), &out)
        field("lastReceiveMs", UInt64(info.lastReceiveMilliseconds), &out)
        field("lastAckMs", UInt64(info.lastAckMilliseconds), &out)
        if let value = info.bytesAcked { field("bytesAcked", value, &out) }
        if let value = info.bytesReceived { field("bytesReceived", value, &out) }
        if let value = info.deliveryRate { field("deliveryRateBytesPerSecond", value, &out) }
        if let memory = info.memory {
            out.append(contentsOf: ",\"memory\":{\"receiveQueued\":".utf8)
            appendDecimal(UInt64(memory.receiveQueued), to: &out)
            field("receiveBuffer", UInt64(memory.receiveBuffer), &out)
            field("sendQueued", UInt64(memory.sendQueued), &out)
            field("sendBuffer", UInt64(memory.sendBuffer), &out)
            field("drops", UInt64(memory.drops), &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
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
