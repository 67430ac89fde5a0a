//! The publishing stage: one interface ([`Publish`]) for everything the
//! daemon tells the outside world; MQTT is its implementation.

mod link;
mod mqtt;
mod outbox;
pub mod payload;
pub mod spool;
mod spooler;

use crate::frame::Analysis;
use crate::status::StreamStatus;

pub use mqtt::{MqttCounters, MqttPublisher, MqttSettings, Protocol, TlsFiles};

/// Where results and stream health go. Implementations never block the
/// caller on the network.
pub trait Publish: Send + Sync {
    /// One analysed frame.
    fn analysis(&self, analysis: &Analysis);
    /// A stream's state changed (or its rates are due).
    fn status(&self, stream: &str, status: &StreamStatus);
    /// A stream was removed from the config: what is retained for it goes.
    /// Publishers that retain nothing have nothing to do.
    fn removed(&self, _stream: &str) {}
}

/// Topic names of the contract: `P/N/available`, `P/N/S/{status,detections,events}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Topics {
    base: String,
}

impl Topics {
    pub fn new(prefix: &str, node: &str) -> Self {
        Self {
            base: format!("{}/{node}", prefix.trim_end_matches('/')),
        }
    }

    pub fn available(&self) -> String {
        format!("{}/available", self.base)
    }

    pub fn status(&self, stream: &str) -> String {
        format!("{}/{stream}/status", self.base)
    }

    pub fn detections(&self, stream: &str) -> String {
        format!("{}/{stream}/detections", self.base)
    }

    pub fn events(&self, stream: &str) -> String {
        format!("{}/{stream}/events", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_contract() {
        let t = Topics::new("visiond/", "edge-01");
        assert_eq!(t.available(), "visiond/edge-01/available");
        assert_eq!(t.status("door"), "visiond/edge-01/door/status");
        assert_eq!(t.detections("door"), "visiond/edge-01/door/detections");
        assert_eq!(t.events("door"), "visiond/edge-01/door/events");
    }
}
