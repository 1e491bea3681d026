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
    /// 1 while the server's sink fails with an error it retries (a full disk), else 0.
    public let sinkFailing: Gauge
    public let sinkRetries: Counter
    /// Group commits (one sink call storing the batches of every waiting connection).
    public let commitGroups: Counter
    /// Connections closed because a newer connection claimed their client id.
    public let replacedConnections: Counter

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
        sinkFailing = Gauge(label: "linger_link_sink_failing", dimensions: dimensions, factory: factory)
        sinkRetries = Counter(label: "linger_link_sink_retries_total", dimensions: dimensions, factory: factory)
        commitGroups = Counter(label: "linger_link_commit_groups_total", dimensions: dimensions, factory: factory)
        replacedConnections = Counter(label: "linger_link_replaced_connections_total", dimensions: dimensions, factory: factory)
    }
}
