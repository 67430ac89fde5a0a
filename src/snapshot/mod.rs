//! The snapshot stage of a stream's route (`crate::route`): it keeps the
//! stream's latest analysed frame (a reference to the full
//! decoded frame, no copy) and status for the status page, and sends a
//! JPEG of an object's best recent view on `P/N/S/snapshot/L` as the
//! [`policy`] decides. Pixels are converted, drawn and encoded only when a
//! snapshot goes out or the page asks for a picture.

pub mod policy;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tracing::warn;

use crate::frame::{Analysis, FullView, Output};
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

/// One stream's snapshots: its latest analysed frame and status for the
/// page, its open objects, and the policy that picks their views.
pub struct StreamShots {
    latest: Option<Analysis>,
    status: Option<StreamStatus>,
    /// Open objects: ID -> label.
    open: HashMap<Arc<str>, Arc<str>>,
    /// Open objects a `classify` rule named: ID -> sub-label, for captions.
    named: HashMap<Arc<str>, Arc<str>>,
    policy: Policy<FullView>,
}

impl Default for StreamShots {
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

/// A snapshot ready to send: the label's topic and its JPEG.
pub struct Snapshot {
    pub label: Arc<str>,
    pub jpeg: Vec<u8>,
}

impl StreamShots {
    /// What the page shows of the stream.
    pub fn view(&self) -> StreamView {
        let mut open = BTreeMap::new();
        for label in self.open.values() {
            *open.entry(label.clone()).or_insert(0) += 1;
        }
        StreamView {
            status: self.status.clone(),
            open,
            has_frame: self.latest.as_ref().is_some_and(|a| a.meta.full.is_some()),
        }
    }

    /// The latest analysed frame and its detections, to draw; `None`
    /// before a frame was analysed or without kept frames.
    pub fn latest(&self) -> Option<Latest> {
        let a = self.latest.as_ref()?;
        let detections = match &a.output {
            Output::Detections(d) => d.clone(),
            Output::Classes(_) => Vec::new(),
        };
        Some(Latest {
            full: a.meta.full.clone()?,
            detections,
            sight: a.meta.sight.clone(),
        })
    }

    /// A published frame: kept as the latest; its tracked objects' views
    /// offered to the policy. Returns the snapshots due.
    pub fn frame(&mut self, a: &Analysis, counters: &SnapshotCounters) -> Vec<Snapshot> {
        let started = Instant::now();
        let at = a.meta.captured_at;
        self.latest = Some(a.clone());
        let mut shots = Vec::new();
        if let (Some(full), Output::Detections(dets)) = (&a.meta.full, &a.output) {
            // A held object was not seen in this frame: no view of it.
            for d in dets.iter().filter(|d| !d.held) {
                if let Some(id) = &d.track {
                    let view = View {
                        score: d.score,
                        bbox: d.bbox,
                    };
                    shots.extend(self.policy.seen(id, view, full.clone(), at));
                }
            }
        }
        shots.extend(self.policy.due(at));
        counters.frames.fetch_add(1, Ordering::Relaxed);
        counters
            .frame_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.render(&a.meta.stream, shots, counters)
    }

    /// Events of the latest frame (it is the one they are about: the
    /// route hands the frame on first). Returns the snapshots due.
    pub fn events(
        &mut self,
        stream: &str,
        events: &[Event],
        counters: &SnapshotCounters,
    ) -> Vec<Snapshot> {
        let full = self.latest.as_ref().and_then(|a| a.meta.full.clone());
        let mut shots = Vec::new();
        for e in events {
            match e.kind {
                EventKind::New => {
                    self.open.insert(e.id.clone(), e.label.clone());
                    let view = View {
                        score: e.score,
                        bbox: e.bbox,
                    };
                    if let Some(f) = &full {
                        let shot = self.policy.confirmed(
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
                    if let Some(label) = self.open.get_mut(&e.id) {
                        *label = e.label.clone();
                    }
                    if let Some(sub) = &e.sub_label {
                        self.named.insert(e.id.clone(), sub.label.clone());
                    }
                    self.policy.stationary(&e.id, e.stationary);
                }
                EventKind::End { .. } => {
                    self.open.remove(&e.id);
                    self.named.remove(&e.id);
                    self.policy.ended(&e.id);
                }
            }
        }
        self.render(stream, shots, counters)
    }

    /// A status: kept for the page; when the stream stops, its objects end
    /// and waiting views (and their frames) go now.
    pub fn status(&mut self, status: &StreamStatus) {
        if matches!(
            status.state,
            StreamState::Stopped | StreamState::Failed | StreamState::Reconnecting
        ) {
            self.policy.clear();
            self.open.clear();
            self.named.clear();
        }
        self.status = Some(status.clone());
    }

    fn render(
        &self,
        stream: &str,
        shots: Vec<Shot<FullView>>,
        counters: &SnapshotCounters,
    ) -> Vec<Snapshot> {
        let mut out = Vec::new();
        for s in shots {
            let started = Instant::now();
            let caption = match self.named.get(&s.id) {
                Some(sub) => format!("{} {} ({}) {:.2}", s.id, sub, s.label, s.view.score),
                None => format!("{} {} {:.2}", s.id, s.label, s.view.score),
            };
            let jpeg =
                overlay::snapshot(&*s.frame.0, s.view.bbox, &caption).and_then(|c| c.jpeg(QUALITY));
            let us = started.elapsed().as_micros() as u64;
            counters.render_us.fetch_add(us, Ordering::Relaxed);
            match jpeg {
                Ok(jpeg) => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    out.push(Snapshot {
                        label: s.label,
                        jpeg,
                    });
                }
                Err(e) => {
                    // Once per kind of failure would be nicer; snapshots are
                    // rare enough (one per label per 5 s) for a line each.
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    warn!(stream, label = %s.label, error = %e, "snapshot not sent");
                }
            }
        }
        out
    }
}

/// The latest frame with its boxes, track IDs and `geometry` drawn, as a
/// JPEG for the status page.
pub fn latest_jpeg(latest: &Latest, geometry: Option<&Geometry>) -> Result<Vec<u8>, RenderError> {
    let Latest {
        full,
        detections,
        sight,
    } = latest;
    overlay::frame(
        &*full.0,
        overlay::FRAME_MAX_WIDTH,
        detections,
        geometry,
        sight,
    )
    .and_then(|c| c.jpeg(QUALITY))
}

/// A stream's latest analysed frame, what was found in it and how it was
/// looked at: the status page's picture.
pub struct Latest {
    pub full: FullView,
    pub detections: Vec<crate::frame::Detection>,
    pub sight: std::sync::Arc<crate::frame::Sight>,
}
