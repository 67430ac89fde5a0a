//! What the MQTT publisher reports of itself, in a file of its own: the
//! spooler writes it, the publisher, the watchdog and `/metrics` read it.

use std::sync::atomic::{AtomicBool, AtomicU64};

/// What went out and what did not.
#[derive(Debug, Default)]
pub struct MqttCounters {
    /// Messages written to the broker (QoS 0) or acknowledged by it (QoS 1).
    pub published: AtomicU64,
    /// Messages lost: QoS 0 while the broker was unreachable or the queue
    /// full; QoS 1 when the spool's bound was reached.
    pub dropped: AtomicU64,
    /// QoS 1 messages in the spool, not yet acknowledged.
    pub spooled: AtomicU64,
    pub connected: AtomicBool,
    /// Turns of the connection loop: it turns at least every keep-alive
    /// while connected, every backoff while not (the watchdog sees whether
    /// the count moves; no clock is involved).
    pub turns: AtomicU64,
}
