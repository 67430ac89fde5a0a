//! What a stream gives the inference stage (its frames and statuses, its
//! filter), where its results go, and the heartbeat the watchdog reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::frame::{Analysis, Item, Output};
use crate::stats::StreamStats;
use crate::status::StreamStatus;

/// What a stream wants from the results.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub min_score: f32,
    /// Publish only these labels; `None`: all.
    pub labels: Option<Vec<String>>,
    /// Detections per frame at most, best first.
    pub max_objects: Option<usize>,
}

impl Filter {
    pub(super) fn apply(&self, output: &mut Output) {
        if let Some(keep) = &self.labels {
            let wanted = |l: &str| keep.iter().any(|k| k == l);
            match output {
                Output::Detections(d) => d.retain(|d| wanted(&d.label)),
                Output::Classes(c) => c.retain(|c| wanted(&c.label)),
            }
        }
        if let (Some(max), Output::Detections(d)) = (self.max_objects, output) {
            d.sort_by(|a, b| b.score.total_cmp(&a.score));
            d.truncate(max);
        }
    }
}

/// Where a stream's results go from inference, one at a time and in the
/// source's order, statuses in their places between them: the stream's
/// route in the daemon.
pub trait Outlet: Send + Sync {
    fn analysis(&self, analysis: Analysis);
    fn status(&self, status: StreamStatus);
}

/// A stream's connection to a model's worker.
pub struct Input {
    pub stream: Arc<str>,
    /// The stream's frames and statuses, in its order.
    pub items: Receiver<Item>,
    /// Where its results and statuses go, in that order.
    pub out: Arc<dyn Outlet>,
    pub filter: Filter,
    pub stats: Arc<StreamStats>,
    /// Pictures of the stream (snapshots, the status page): the decoded
    /// frame stays with the results. Without, it goes once the model's
    /// regions are cut from it.
    pub pictures: bool,
}

/// When a worker started its current frame, in ms since `epoch`; 0: idle.
/// A worker that stays busy far longer than a frame takes is stuck.
#[derive(Debug)]
pub struct Heartbeat {
    epoch: Instant,
    busy_since_ms: AtomicU64,
}

impl Heartbeat {
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            busy_since_ms: AtomicU64::new(0),
        }
    }

    pub(super) fn busy(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.busy_since_ms.store(ms.max(1), Ordering::Relaxed);
    }

    pub(super) fn idle(&self) {
        self.busy_since_ms.store(0, Ordering::Relaxed);
    }

    /// How long the current frame has taken so far; `None` when idle.
    pub fn busy_for(&self) -> Option<Duration> {
        match self.busy_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(since)),
            ),
        }
    }
}
