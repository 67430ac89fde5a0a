//! The contract on the wire: what each thing a route publishes becomes (a
//! topic, a payload, how the contract keeps it), apart from the domain
//! types it is made from and from MQTT. [`Wire`] turns a route's outputs
//! into [`Message`]s for a [`Sink`]; MQTT is the sink, the fleet's fence a
//! filter in front of it.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{Publish, Topics, events, payload};
use crate::clock::Clock;
use crate::frame::Analysis;
use crate::status::StreamStatus;
use crate::tracking::Tally;
use crate::tracking::{Change, Event};

/// How the contract keeps a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// A detections message: at the configured QoS; lost (and counted)
    /// when the queue is full, for a newer one follows.
    Frame,
    /// An event: QoS 1, spooled across outages and restarts; waits a
    /// moment for room rather than be dropped.
    Event,
    /// The latest value of its topic (a status, a count, a snapshot, a
    /// sub-label): retained, QoS 1, sent again after a reconnect, never
    /// spooled (an outage must not fill the spool with stale values).
    Latest,
}

/// One message of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub stream: Arc<str>,
    /// When the source delivered the frame it is about, where it is about
    /// one (the fleet's fence holds back an earlier run's frames).
    pub delivered: Option<Instant>,
    pub topic: String,
    pub payload: Vec<u8>,
    pub keep: Keep,
}

/// Where messages go. Implementations never block on the network.
pub trait Sink: Send + Sync {
    fn publish(&self, message: Message);
    /// Clears every retained topic of `stream` under `prefix` (the stream
    /// left the config).
    fn clear(&self, stream: &str, prefix: &str);
}

/// A route's outputs as the contract's messages.
pub struct Wire {
    topics: Topics,
    node: String,
    /// Line counters count from here (their `since`).
    started: SystemTime,
    sink: Arc<dyn Sink>,
    /// Dates what is published (a detection's latency is measured to it).
    clock: Arc<dyn Clock>,
}

impl Wire {
    pub fn new(topics: Topics, node: &str, sink: Arc<dyn Sink>, clock: Arc<dyn Clock>) -> Self {
        Self {
            topics,
            node: node.to_string(),
            started: clock.wall(),
            sink,
            clock,
        }
    }

    fn send(&self, stream: &str, topic: String, payload: Vec<u8>, keep: Keep) {
        self.sink.publish(Message {
            stream: stream.into(),
            delivered: None,
            topic,
            payload,
            keep,
        });
    }
}

impl Publish for Wire {
    fn analysis(&self, a: &Analysis) {
        self.sink.publish(Message {
            stream: a.meta.stream.clone(),
            delivered: Some(a.meta.delivered),
            topic: self.topics.detections(&a.meta.stream),
            payload: payload::detections(a, &self.node, self.clock.wall()),
            keep: Keep::Frame,
        });
    }

    fn status(&self, stream: &str, status: &StreamStatus) {
        let topic = self.topics.status(stream);
        self.send(stream, topic, payload::status(status), Keep::Latest);
    }

    fn removed(&self, stream: &str) {
        self.sink.clear(stream, &self.topics.stream(stream));
    }

    fn events(&self, stream: &str, session: &str, evs: &[Event]) {
        for e in evs {
            let body = events::event(e, &self.node, stream, session);
            self.send(stream, self.topics.events(stream), body, Keep::Event);
            if e.changes.contains(&Change::SubLabel)
                && let Some(body) = events::latest_sub_label(e)
            {
                let topic = self.topics.sub_label(stream, &e.label);
                self.send(stream, topic, body, Keep::Latest);
            }
        }
    }

    fn tallies(&self, stream: &str, tallies: &[Tally], at: SystemTime) {
        for t in tallies {
            let body = match t {
                Tally::Objects { count, .. } | Tally::Zone { count, .. } => {
                    events::count(*count, at)
                }
                Tally::Line { into, out, .. } => events::line(*into, *out, self.started),
            };
            self.send(stream, self.topics.tally(stream, t), body, Keep::Latest);
        }
    }

    fn snapshot(&self, stream: &str, label: &str, jpeg: &[u8]) {
        let topic = self.topics.snapshot(stream, label);
        self.send(stream, topic, jpeg.to_vec(), Keep::Latest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::StreamState;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Kept(Mutex<Vec<Message>>, Mutex<Vec<String>>);

    impl Sink for Kept {
        fn publish(&self, m: Message) {
            self.0.lock().unwrap().push(m);
        }
        fn clear(&self, _: &str, prefix: &str) {
            self.1.lock().unwrap().push(prefix.into());
        }
    }

    #[test]
    fn each_output_becomes_its_topic_kept_as_the_contract_says() {
        let kept = Arc::new(Kept::default());
        let wire = Wire::new(
            Topics::new("visiond", "edge"),
            "edge",
            kept.clone(),
            Arc::new(crate::clock::SystemClock),
        );
        wire.status(
            "door",
            &StreamStatus::new(StreamState::Playing, std::time::SystemTime::now()),
        );
        let count = Tally::Objects {
            label: "person".into(),
            count: 2,
        };
        wire.tallies("door", &[count], SystemTime::now());
        wire.snapshot("door", "person", b"\xff\xd8jpeg");
        wire.removed("door");
        let got: Vec<(String, Keep)> = kept
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|m| (m.topic.clone(), m.keep))
            .collect();
        assert_eq!(
            got,
            [
                ("visiond/edge/door/status".to_string(), Keep::Latest),
                ("visiond/edge/door/count/person".to_string(), Keep::Latest),
                (
                    "visiond/edge/door/snapshot/person".to_string(),
                    Keep::Latest
                ),
            ]
        );
        let status: serde_json::Value =
            serde_json::from_slice(&kept.0.lock().unwrap()[0].payload).unwrap();
        assert_eq!(status["state"], "playing");
        assert_eq!(*kept.1.lock().unwrap(), ["visiond/edge/door/"]);
    }
}
