//! The publishing stage: one interface ([`Publish`]) for everything the
//! daemon tells the outside world about its streams; MQTT is its
//! implementation.

mod counters;
pub mod events;
mod link;
mod mqtt;
mod outbox;
pub mod payload;
mod retry;
mod settings;
pub mod spool;
mod spooler;
mod wire;

use std::time::SystemTime;

use crate::frame::Analysis;
use crate::status::StreamStatus;
use crate::tracking::Event;

use crate::tracking::Tally;
pub use counters::MqttCounters;
pub use mqtt::{Incoming, MqttPublisher};
pub use settings::{MqttSettings, Protocol, TlsFiles};
pub use wire::{Keep, Message, Sink, Wire};

/// Where results and stream health go: MQTT, the fleet's fence in front of
/// it, or `visiond bench`'s counter. Every stream's route
/// (`crate::route`) publishes through one. Every method is required: a
/// publisher that forgot one would drop what it carries without a word.
/// Implementations never block the caller on the network.
pub trait Publish: Send + Sync {
    /// One analysed frame.
    fn analysis(&self, analysis: &Analysis);
    /// A stream's state changed (or its rates are due).
    fn status(&self, stream: &str, status: &StreamStatus);
    /// A stream was removed from the config: what is retained for it goes.
    fn removed(&self, stream: &str);
    /// Lifecycle events of a stream's objects, in order (QoS 1).
    fn events(&self, stream: &str, session: &str, events: &[Event]);
    /// Counts that changed (retained).
    fn tallies(&self, stream: &str, tallies: &[Tally], at: SystemTime);
    /// A JPEG of the best recent view of an object of `label` (retained).
    fn snapshot(&self, stream: &str, label: &str, jpeg: &[u8]);
}

/// A label or name as one topic level: MQTT's wildcards and separator
/// would change what the topic means.
pub fn level(name: &str) -> String {
    name.chars()
        .map(|c| {
            if matches!(c, '/' | '+' | '#') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
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

    /// Every topic of the node starts with it: `P/N/`.
    pub fn node(&self) -> String {
        format!("{}/", self.base)
    }

    /// `P/N/S/snapshot/L`: the latest snapshot of the label.
    pub fn snapshot(&self, stream: &str, label: &str) -> String {
        format!("{}/{stream}/snapshot/{}", self.base, level(label))
    }

    /// `P/N/S/sub_label/L`: the latest sub-label given to an object of
    /// the detector's label `L` (retained).
    pub fn sub_label(&self, stream: &str, label: &str) -> String {
        format!("{}/{stream}/sub_label/{}", self.base, level(label))
    }

    /// Every topic of the stream starts with it.
    pub fn stream(&self, stream: &str) -> String {
        format!("{}/{stream}/", self.base)
    }

    pub fn tally(&self, stream: &str, t: &Tally) -> String {
        match t {
            Tally::Objects { label, .. } => {
                format!("{}/{stream}/count/{}", self.base, level(label))
            }
            Tally::Zone { zone, label, .. } => {
                format!("{}/{stream}/zones/{zone}/count/{}", self.base, level(label))
            }
            Tally::Line { line, label, .. } => {
                format!("{}/{stream}/lines/{line}/{}", self.base, level(label))
            }
        }
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
        let zone = Tally::Zone {
            zone: "drive".into(),
            label: "teddy bear".into(),
            count: 1,
        };
        assert_eq!(
            t.tally("door", &zone),
            "visiond/edge-01/door/zones/drive/count/teddy bear"
        );
        assert_eq!(level("a/b+#"), "a_b__");
        assert_eq!(
            t.snapshot("door", "teddy/bear"),
            "visiond/edge-01/door/snapshot/teddy_bear"
        );
    }
}
