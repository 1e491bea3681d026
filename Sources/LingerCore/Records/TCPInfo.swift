/// What the kernel knows about one connection's transmission (`struct tcp_info`, sock_diag's INET_DIAG_INFO)
/// and its buffers (INET_DIAG_SKMEMINFO): what `ss -i` and `ss -m` print. Times are as the kernel keeps them:
/// RTTs in microseconds, "last" times in milliseconds ago.
public struct TCPInfo: Sendable, Hashable {
    /// Smoothed round-trip time and its variance, microseconds.
    public var rttMicroseconds: UInt32
    public var rttVarianceMicroseconds: UInt32
    /// Retransmission timeout, microseconds.
    public var rtoMicroseconds: UInt32
    /// Congestion window, in segments.
    public var congestionWindow: UInt32
    /// Retransmissions of the current unacknowledged data (`tcpi_retransmits`), and over the connection's life.
    public var retransmits: UInt8
    public var totalRetransmits: UInt32
    /// Exponential backoff of the retransmission timer (`tcpi_backoff`).
    public var backoff: UInt8
    /// Segments sent and not yet acknowledged.
    public var unacked: UInt32
    /// Milliseconds since data was last sent, since data was last received, and since an ACK was last received.
    public var lastSendMilliseconds: UInt32
    public var lastReceiveMilliseconds: UInt32
    public var lastAckMilliseconds: UInt32
    public var bytesAcked: UInt64?
    public var bytesReceived: UInt64?
    /// Bytes per second, as the kernel's rate sampler estimates delivery.
    public var deliveryRate: UInt64?
    /// `skmem`: receive-queue bytes, receive buffer, send-queue bytes, send buffer, drops.
    public var memory: SocketMemory?

    public init(
        rttMicroseconds: UInt32 = 0, rttVarianceMicroseconds: UInt32 = 0, rtoMicroseconds: UInt32 = 0, congestionWindow: UInt32 = 0,
        retransmits: UInt8 = 0, totalRetransmits: UInt32 = 0, backoff: UInt8 = 0, unacked: UInt32 = 0,
        lastSendMilliseconds: UInt32 = 0, lastReceiveMilliseconds: UInt32 = 0, lastAckMilliseconds: UInt32 = 0,
        bytesAcked: UInt64? = nil, bytesReceived: UInt64? = nil, deliveryRate: UInt64? = nil, memory: SocketMemory? = nil
    ) {
        self.rttMicroseconds = rttMicroseconds
        self.rttVarianceMicroseconds = rttVarianceMicroseconds
        self.rtoMicroseconds = rtoMicroseconds
        self.congestionWindow = congestionWindow
        self.retransmits = retransmits
        self.totalRetransmits = totalRetransmits
        self.backoff = backoff
        self.unacked = unacked
        self.lastSendMilliseconds = lastSendMilliseconds
        self.lastReceiveMilliseconds = lastReceiveMilliseconds
        self.lastAckMilliseconds = lastAckMilliseconds
        self.bytesAcked = bytesAcked
        self.bytesReceived = bytesReceived
        self.deliveryRate = deliveryRate
        self.memory = memory
    }
}

/// A socket's memory as `ss -m` shows it (`skmem:(r…,rb…,t…,tb…,…,d…)`), bytes.
public struct SocketMemory: Sendable, Hashable {
    public var receiveQueued: UInt32
    public var receiveBuffer: UInt32
    public var sendQueued: UInt32
    public var sendBuffer: UInt32
    public var drops: UInt32

    public init(receiveQueued: UInt32, receiveBuffer: UInt32, sendQueued: UInt32, sendBuffer: UInt32, drops: UInt32) {
        self.receiveQueued = receiveQueued
        self.receiveBuffer = receiveBuffer
        self.sendQueued = sendQueued
        self.sendBuffer = sendBuffer
        self.drops = drops
    }
}
