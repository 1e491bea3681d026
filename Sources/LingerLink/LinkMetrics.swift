import CoreMetrics
public import Metrics

/// The link's metrics, through swift-metrics (the application picks the backend). The "at-risk" numbers —
/// outbox depth and the age of the oldest unacknowledged message — say how much would be resent after a
/// failure.
public struct LinkMetrics: Sendable {
    public let connections: Meter
    public let reconnects: Counter
    public let messagesSent: Counter
    public let bytesSent: Counter
    public let messagesAcknowledged: Counter
    public let bytesAcknowledged: Counter
    public let messagesAccepted: Counter
    public let resends: Counter
    public let duplicatesDropped: Counter
    public let idleTimeouts: Counter
    public let outboxDepth: Gauge
    public let oldestUnacknowledgedSeconds: Gauge

    /// Metrics labelled with `role` (`client` or `server`), created through `factory`.
    public init(role: String, factory: any MetricsFactory = MetricsSystem.factory) {
        let dimensions = [("role", role)]
        connections = Meter(label: "linger_link_connections", dimensions: dimensions, factory: factory)
        reconnects = Counter(label: "linger_link_reconnects_total", dimensions: dimensions, factory: factory)
        messagesSent = Counter(label: "linger_link_messages_sent_total", dimensions: dimensions, factory: factory)
        bytesSent = Counter(label: "linger_link_bytes_sent_total", dimensions: dimensions, factory: factory)
        messagesAcknowledged = Counter(label: "linger_link_messages_acked_total", dimensions: dimensions, factory: factory)
        bytesAcknowledged = Counter(label: "linger_link_bytes_acked_total", dimensions: dimensions, factory: factory)
        messagesAccepted = Counter(label: "linger_link_messages_accepted_total", dimensions: dimensions, factory: factory)
        resends = Counter(label: "linger_link_resends_total", dimensions: dimensions, factory: factory)
        duplicatesDropped = Counter(label: "linger_link_duplicates_dropped_total", dimensions: dimensions, factory: factory)
        idleTimeouts = Counter(label: "linger_link_idle_timeouts_total", dimensions: dimensions, factory: factory)
        outboxDepth = Gauge(label: "linger_link_outbox_messages", dimensions: dimensions, factory: factory)
        oldestUnacknowledgedSeconds = Gauge(label: "linger_link_oldest_unacked_seconds", dimensions: dimensions, factory: factory)
    }
}
