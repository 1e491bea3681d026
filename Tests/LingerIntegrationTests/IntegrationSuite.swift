import Testing

/// One serialized root for the integration suites: they start processes and count this process's fds,
/// so they must not run beside each other.
@Suite(.serialized) struct Integration {}
