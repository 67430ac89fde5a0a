//! The snapshot stage: a [`Publish`] between tracking and the publisher.
//! It keeps each stream's latest analysed frame (a reference to the full
//! decoded frame, no copy) and status for the status page, and sends a
//! JPEG of an object's best recent view on `P/N/S/snapshot/L` as the
//! [`policy`] decides. Pixels are converted, drawn and encoded only when a
//! snapshot goes out or the page asks for a picture.

pub mod policy;

use crate::sync::locked;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tracing::warn;

use crate::frame::{Analysis, FullView, Output};
use crate::publish::{Publish, Tally};
use crate::render::{RenderError, overlay};
use crate::status::{StreamState, StreamStatus};
use crate::tracking::{Event, EventKind, Geometry};
use policy::{INTERVAL, Policy, Shot, View};

/// JPEG quality of snapshots and the page's picture.
pub const QUALITY: u8 = 85;

/// What the snapshots cost, for `visiond bench` and the logs.
#[derive(Debug, Default)]
pub struct SnapshotCounters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    /// Time spent converting, drawing and encoding them, in µs.
    pub render_us: AtomicU64,
    /// Frames seen, and the time the stage spent on them besides sending
    /// snapshots (keeping the latest frame, the policy), in ns.
    pub frames: AtomicU64,
    pub frame_ns: AtomicU64,
}

/// One stream as the status page shows it.
#[derive(Debug, Clone, Default)]
pub struct StreamView {
    pub status: Option<StreamStatus>,
    /// Open objects per label.
    pub open: BTreeMap<Arc<str>, u32>,
    pub has_frame: bool,
}

struct Stream {
    latest: Option<Analysis>,
    status: Option<StreamStatus>,
    /// Open objects: ID -> label.
    open: HashMap<Arc<str>, Arc<str>>,
    /// Open objects a `classify` rule named: ID -> sub-label, for captions.
    named: HashMap<Arc<str>, Arc<str>>,
    policy: Policy<FullView>,
}

impl Default for Stream {
    fn default() -> Self {
        Self {
            latest: None,
            status: None,
            open: HashMap::new(),
            named: HashMap::new(),
            policy: Policy::new(INTERVAL),
        }
    }
}

pub struct Snapshots {
    next: Arc<dyn Publish>,
    streams: Mutex<HashMap<Arc<str>, Stream>>,
    counters: SnapshotCounters,
}

impl Snapshots {
    pub fn new(next: Arc<dyn Publish>) -> Self {
        Self {
            next,
            streams: Mutex::default(),
            counters: SnapshotCounters::default(),
        }
    }

    pub fn counters(&self) -> &SnapshotCounters {
        &self.counters
    }

    /// What the page shows of `stream`; `None` before anything was seen.
    pub fn view(&self, stream: &str) -> Option<StreamView> {
        let streams = locked(&self.streams);
        let s = streams.get(stream)?;
        let mut open = BTreeMap::new();
        for label in s.open.values() {
            *open.entry(label.clone()).or_insert(0) += 1;
        }
        Some(StreamView {
            status: s.status.clone(),
            open,
            has_frame: s.latest.as_ref().is_some_and(|a| a.meta.full.is_some()),
        })
    }

    /// The latest analysed frame of `stream` as a JPEG, with its boxes,
    /// track IDs and `geometry` drawn; `None` before a frame was analysed.
    pub fn latest_jpeg(
        &self,
        stream: &str,
        geometry: Option<&Geometry>,
    ) -> Option<Result<Vec<u8>, RenderError>> {
        // Render outside the lock: the stream's frames keep flowing.
        let (full, dets) = {
            let streams = locked(&self.streams);
            let a = streams.get(stream)?.latest.as_ref()?;
            let dets = match &a.output {
                Output::Detections(d) => d.clone(),
                Output::Classes(_) => Vec::new(),
            };
            (a.meta.full.clone()?, dets)
        };
        Some(
            overlay::frame(&*full.0, overlay::FRAME_MAX_WIDTH, &dets, geometry)
                .and_then(|c| c.jpeg(QUALITY)),
        )
    }

    fn send(&self, stream: &str, shots: Vec<Shot<FullView>>) {
        for s in shots {
            let started = Instant::now();
            let named = locked(&self.streams)
                .get(stream)
                .and_then(|st| st.named.get(&s.id).cloned());
            let caption = match named {
                Some(sub) => format!("{} {} ({}) {:.2}", s.id, sub, s.label, s.view.score),
                None => format!("{} {} {:.2}", s.id, s.label, s.view.score),
            };
            let jpeg =
                overlay::snapshot(&*s.frame.0, s.view.bbox, &caption).and_then(|c| c.jpeg(QUALITY));
            let us = started.elapsed().as_micros() as u64;
            self.counters.render_us.fetch_add(us, Ordering::Relaxed);
            match jpeg {
                Ok(jpeg) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    self.next.snapshot(stream, &s.label, &jpeg);
                }
                Err(e) => {
                    // Once per kind of failure would be nicer; snapshots are
                    // rare enough (one per label per 5 s) for a line each.
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    warn!(stream, label = %s.label, error = %e, "snapshot not sent");
                }
            }
        }
    }
}

impl Publish for Snapshots {
    fn analysis(&self, a: &Analysis) {
        self.next.analysis(a);
        let started = Instant::now();
        let at = a.meta.captured_at;
        let shots = {
            let mut streams = locked(&self.streams);
            let s = streams.entry(a.meta.stream.clone()).or_default();
            s.latest = Some(a.clone());
            let mut shots = Vec::new();
            if let (Some(full), Output::Detections(dets)) = (&a.meta.full, &a.output) {
                for d in dets {
                    if let Some(id) = &d.track {
                        let view = View {
                            score: d.score,
                            bbox: d.bbox,
                        };
                        shots.extend(s.policy.seen(id, view, full.clone(), at));
                    }
                }
            }
            shots.extend(s.policy.due(at));
            shots
        };
        let c = &self.counters;
        c.frames.fetch_add(1, Ordering::Relaxed);
        c.frame_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.send(&a.meta.stream, shots);
    }

    fn events(&self, stream: &str, session: &str, events: &[Event]) {
        self.next.events(stream, session, events);
        let shots = {
            let mut streams = locked(&self.streams);
            let s = streams.entry(stream.into()).or_default();
            // Tracking hands on the frame before its events: the latest
            // frame is the one the events are about.
            let full = s.latest.as_ref().and_then(|a| a.meta.full.clone());
            let mut shots = Vec::new();
            for e in events {
                match e.kind {
                    EventKind::New => {
                        s.open.insert(e.id.clone(), e.label.clone());
                        let view = View {
                            score: e.score,
                            bbox: e.bbox,
                        };
                        if let Some(f) = &full {
                            let shot = s.policy.confirmed(
                                &e.id,
                                &e.label,
                                view,
                                e.stationary,
                                f.clone(),
                                e.captured_at,
                            );
                            shots.extend(shot);
                        }
                    }
                    EventKind::Update => {
                        if let Some(label) = s.open.get_mut(&e.id) {
                            *label = e.label.clone();
                        }
                        if let Some(sub) = &e.sub_label {
                            s.named.insert(e.id.clone(), sub.label.clone());
                        }
                        s.policy.stationary(&e.id, e.stationary);
                    }
                    EventKind::End { .. } => {
                        s.open.remove(&e.id);
                        s.named.remove(&e.id);
                        s.policy.ended(&e.id);
                    }
                }
            }
            shots
        };
        self.send(stream, shots);
    }

    fn status(&self, stream: &str, status: &StreamStatus) {
        {
            let mut streams = locked(&self.streams);
            let s = streams.entry(stream.into()).or_default();
            if matches!(
                status.state,
                StreamState::Stopped | StreamState::Failed | StreamState::Reconnecting
            ) {
                // Its objects end; waiting views (and their frames) go now.
                s.policy.clear();
                s.open.clear();
                s.named.clear();
            }
            s.status = Some(status.clone());
        }
        self.next.status(stream, status);
    }

    fn removed(&self, stream: &str) {
        locked(&self.streams).remove(stream);
        self.next.removed(stream);
    }

    fn tallies(&self, stream: &str, tallies: &[Tally], at: SystemTime) {
        self.next.tallies(stream, tallies, at);
    }

    fn snapshot(&self, stream: &str, label: &str, jpeg: &[u8]) {
        self.next.snapshot(stream, label, jpeg);
    }
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
