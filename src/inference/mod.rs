//! The inference stage: a worker per model that takes frames from the
//! streams using it, runs the model, and hands each result to publishing.

mod decode;
mod describe;
mod fill;
mod geometry;
pub mod measure;
mod model;
pub mod runtime;
mod spec;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tracing::info_span;

pub use decode::{Labels, softmax, ssd_postprocessed, ssd_raw, top_k};
pub use fill::{FillError, fill_f32, fill_u8};
pub use geometry::{ResizeMode, output_to_source, to_source};
use worker::{Control, Served, work};

pub use model::{MAX_INPUT_SIDE, MAX_TENSOR_VALUES, Model, tensor_len};
pub use spec::{
    Colour, DType, Declared, Decoder, DecoderKind, InputSpec, Layout, ModelSettings, ModelSpec,
    Provider, Task, cores,
};

use crate::frame::{Analysis, Item, Output};
use crate::stats::StreamStats;
use crate::status::StreamStatus;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Runtime(String),
    #[error("model {model:?}: cannot load: {message}")]
    Load { model: String, message: String },
    #[error("model {model:?}: the config contradicts the model: {message}")]
    Mismatch { model: String, message: String },
    #[error("model {model:?}: unsupported: {message}")]
    Unsupported { model: String, message: String },
    #[error("model {model:?}: inference failed: {message}")]
    Run { model: String, message: String },
}

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
    fn apply(&self, output: &mut Output) {
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
}

/// A model's workers: each runs its own session of the model.
/// When a worker started its current frame, in ms since `epoch`; 0: idle.
/// A worker that stays busy far longer than a frame takes is stuck.
#[derive(Debug)]
pub struct Heartbeat {
    epoch: Instant,
    busy_since_ms: AtomicU64,
}

impl Heartbeat {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            busy_since_ms: AtomicU64::new(0),
        }
    }

    fn busy(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.busy_since_ms.store(ms.max(1), Ordering::Relaxed);
    }

    fn idle(&self) {
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

pub struct Engine {
    pub model: Arc<str>,
    /// The model's input size: the size sources scale frames to.
    pub input_size: (u32, u32),
    /// How sources fit frames to that size.
    pub resize: ResizeMode,
    /// The model's labels, by output index.
    pub labels: Vec<String>,
    workers: Vec<(Sender<Control>, JoinHandle<()>)>,
    heartbeats: Vec<Arc<Heartbeat>>,
}

impl Engine {
    /// Starts one worker per loaded session of the same model.
    pub fn start(models: Vec<Model>) -> std::io::Result<Self> {
        let first = models
            .first()
            .ok_or_else(|| std::io::Error::other("an engine needs at least one session"))?;
        let name = first.name.clone();
        let input_size = (first.input.width, first.input.height);
        let resize = first.input.resize;
        let labels = first.labels.names();
        let mut workers = Vec::new();
        let mut heartbeats = Vec::new();
        for (i, model) in models.into_iter().enumerate() {
            let (control, control_rx) = crossbeam_channel::unbounded();
            let heartbeat = Arc::new(Heartbeat::new());
            heartbeats.push(heartbeat.clone());
            let thread = std::thread::Builder::new()
                .name(format!("infer-{name}-{i}"))
                .spawn(move || {
                    let span = info_span!("model", model = %model.name, worker = i);
                    let _enter = span.enter();
                    work(model, control_rx, &heartbeat);
                })?;
            workers.push((control, thread));
        }
        Ok(Self {
            model: name,
            input_size,
            resize,
            labels,
            workers,
            heartbeats,
        })
    }

    /// Starts serving a stream; it leaves by itself when its frame sender goes.
    pub fn add(&self, input: Input) {
        let served = Arc::new(Served::new(input));
        for (control, _) in &self.workers {
            let _ = control.send(Control::Add(served.clone()));
        }
    }

    /// The workers' heartbeats.
    pub fn heartbeats(&self) -> Vec<Arc<Heartbeat>> {
        self.heartbeats.clone()
    }

    /// Finishes the frames in flight once every stream has stopped, then ends.
    pub fn join(self) {
        let threads: Vec<JoinHandle<()>> = self.workers.into_iter().map(|(_, t)| t).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}
