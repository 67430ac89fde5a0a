//! The inference stage: a worker per model that takes frames from the
//! streams using it, runs the model, and hands each result to publishing.

mod decode;
mod describe;
mod fill;
mod geometry;
mod model;
pub mod runtime;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError};
use tracing::{debug, error, info_span, warn};

pub use decode::{Labels, softmax, ssd_postprocessed, ssd_raw, top_k};
pub use fill::{FillError, fill_f32, fill_u8};
pub use geometry::{ResizeMode, output_to_source, to_source};
pub use model::{
    Colour, DType, Decoder, InputSpec, Layout, MAX_INPUT_SIDE, MAX_TENSOR_VALUES, Model, tensor_len,
};

use crate::frame::{Analysis, Frame, Image, Output};
use crate::publish::Publish;
use crate::source::StreamStats;

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

/// A stream's connection to a model's worker.
pub struct Input {
    pub stream: Arc<str>,
    pub frames: Receiver<Frame>,
    pub filter: Filter,
    pub stats: Arc<StreamStats>,
}

/// A stream as the workers see it: its frames, and the order its results
/// are released in (several workers may analyse its frames at once).
struct Served {
    input: Input,
    order: Mutex<Order>,
}

#[derive(Default)]
struct Order {
    /// Key of the next frame taken from the channel: the source's order.
    next: u64,
    in_flight: BTreeSet<u64>,
    /// Finished results waiting for earlier frames; `None`: inference failed.
    done: BTreeMap<u64, Option<Analysis>>,
    session: Option<Arc<str>>,
    /// Published frames in the current session.
    analysed: u64,
}

enum Take {
    Frame(u64, Frame),
    Empty,
    Closed,
}

impl Served {
    /// Takes the stream's next frame and its release key in one step, so
    /// keys follow the channel's order whichever worker takes a frame.
    fn take(&self) -> Take {
        let Ok(mut o) = self.order.lock() else {
            return Take::Closed;
        };
        match self.input.frames.try_recv() {
            Ok(frame) => {
                let key = o.next;
                o.next += 1;
                o.in_flight.insert(key);
                Take::Frame(key, frame)
            }
            Err(TryRecvError::Empty) => Take::Empty,
            Err(TryRecvError::Disconnected) => Take::Closed,
        }
    }

    /// Records a result and publishes every result no earlier frame is
    /// still waiting for, in the source's order.
    fn finish(&self, key: u64, result: Option<Analysis>, publisher: &dyn Publish) {
        let Ok(mut o) = self.order.lock() else { return };
        o.in_flight.remove(&key);
        o.done.insert(key, result);
        let limit = o.in_flight.first().copied().unwrap_or(u64::MAX);
        while let Some(entry) = o.done.first_entry() {
            if *entry.key() >= limit {
                break;
            }
            let Some(mut analysis) = entry.remove() else {
                self.input
                    .stats
                    .frames_failed
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if o.session.as_ref() != Some(&analysis.meta.session) {
                o.session = Some(analysis.meta.session.clone());
                o.analysed = 0;
            }
            analysis.meta.seq = o.analysed;
            o.analysed += 1;
            publisher.analysis(&analysis);
            // Counted once handed to the publisher: a file stream reports
            // `stopped` when every frame is counted, and its last results
            // must be queued before that status.
            self.input
                .stats
                .frames_analysed
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

enum Control {
    Add(Arc<Served>),
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
    workers: Vec<(Sender<Control>, JoinHandle<()>)>,
    heartbeats: Vec<Arc<Heartbeat>>,
}

impl Engine {
    /// Starts one worker per loaded session of the same model.
    pub fn start(models: Vec<Model>, publisher: Arc<dyn Publish>) -> std::io::Result<Self> {
        let first = models
            .first()
            .ok_or_else(|| std::io::Error::other("an engine needs at least one session"))?;
        let name = first.name.clone();
        let input_size = (first.input.width, first.input.height);
        let resize = first.input.resize;
        let mut workers = Vec::new();
        let mut heartbeats = Vec::new();
        for (i, model) in models.into_iter().enumerate() {
            let (control, control_rx) = crossbeam_channel::unbounded();
            let heartbeat = Arc::new(Heartbeat::new());
            heartbeats.push(heartbeat.clone());
            let publisher = publisher.clone();
            let thread = std::thread::Builder::new()
                .name(format!("infer-{name}-{i}"))
                .spawn(move || {
                    let span = info_span!("model", model = %model.name, worker = i);
                    let _enter = span.enter();
                    work(model, control_rx, &*publisher, &heartbeat);
                })?;
            workers.push((control, thread));
        }
        Ok(Self {
            model: name,
            input_size,
            resize,
            workers,
            heartbeats,
        })
    }

    /// Starts serving a stream; it leaves by itself when its frame sender goes.
    pub fn add(&self, input: Input) {
        let served = Arc::new(Served {
            input,
            order: Mutex::default(),
        });
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

/// Whether `VISIOND_FAULT=stall-inference` asks the workers to hang.
fn stall_for_tests() -> bool {
    static STALL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STALL.get_or_init(|| std::env::var("VISIOND_FAULT").is_ok_and(|v| v == "stall-inference"))
}

fn work(
    mut model: Model,
    control: Receiver<Control>,
    publisher: &dyn Publish,
    heartbeat: &Heartbeat,
) {
    let mut served: Vec<Arc<Served>> = Vec::new();
    let mut control_open = true;
    let mut failures = 0u64;
    loop {
        if !control_open && served.is_empty() {
            return;
        }
        let mut sel = Select::new();
        let control_index = control_open.then(|| sel.recv(&control));
        for s in &served {
            sel.recv(&s.input.frames);
        }
        let i = if control_open {
            sel.ready()
        } else {
            // Shutting down: every source has stopped, so only frames in
            // flight remain; a quiet second means there are none.
            match sel.ready_timeout(Duration::from_secs(1)) {
                Ok(i) => i,
                Err(_) => return,
            }
        };
        if Some(i) == control_index {
            match control.try_recv() {
                Ok(Control::Add(s)) => {
                    debug!(stream = %s.input.stream, "serving stream");
                    served.push(s);
                }
                Err(TryRecvError::Disconnected) => control_open = false,
                Err(TryRecvError::Empty) => {}
            }
            continue;
        }
        let k = i - usize::from(control_index.is_some());
        let s = served[k].clone();
        let (key, frame) = match s.take() {
            Take::Frame(key, frame) => (key, frame),
            // Another worker took it.
            Take::Empty => continue,
            Take::Closed => {
                served.swap_remove(k);
                continue;
            }
        };
        let mut batch = vec![(s, key, frame)];
        // Frames already waiting in other streams share the run.
        while batch.len() < model.max_batch {
            let before = batch.len();
            for j in 1..=served.len() {
                let other = &served[(k + j) % served.len()];
                if batch.len() < model.max_batch
                    && let Take::Frame(key, frame) = other.take()
                {
                    batch.push((other.clone(), key, frame));
                }
            }
            if batch.len() == before {
                break;
            }
        }
        let started = Instant::now();
        heartbeat.busy();
        let images: Vec<&Image> = batch.iter().map(|b| &b.2.image).collect();
        let min_scores: Vec<f32> = batch.iter().map(|b| b.0.input.filter.min_score).collect();
        if stall_for_tests() {
            // Fault injection (VISIOND_FAULT=stall-inference): a stuck stage,
            // so the watchdog's refusal to ping can be tested for real.
            std::thread::sleep(Duration::from_secs(3600));
        }
        let results = model.infer_batch(&images, &min_scores);
        let inference_ms = started.elapsed().as_secs_f32() * 1e3;
        heartbeat.idle();
        match results {
            Ok(outputs) => {
                failures = 0;
                for ((s, key, frame), mut output) in batch.into_iter().zip(outputs) {
                    geometry::output_to_source(
                        &mut output,
                        model.input.resize,
                        (frame.meta.source_width, frame.meta.source_height),
                        (model.input.width, model.input.height),
                    );
                    s.input.filter.apply(&mut output);
                    let Frame { meta, image } = frame;
                    // The frame's memory goes back to GStreamer before publishing.
                    drop(image);
                    let analysis = Analysis {
                        meta,
                        model: model.name.clone(),
                        output,
                        inference_ms,
                    };
                    s.finish(key, Some(analysis), publisher);
                }
            }
            Err(e) => {
                failures += 1;
                // One line per failure streak, not per frame.
                if failures == 1 {
                    error!(error = %e, "inference failed");
                } else if failures.is_multiple_of(1000) {
                    warn!(failures, "inference still failing");
                }
                for (s, key, _) in batch {
                    s.finish(key, None, publisher);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameMeta;
    use crate::status::StreamStatus;

    /// Records how many results the stream had counted when each was published.
    struct Seen(Arc<StreamStats>, Mutex<Vec<u64>>);

    impl Publish for Seen {
        fn analysis(&self, _: &Analysis) {
            if let Ok(mut v) = self.1.lock() {
                v.push(self.0.frames_analysed.load(Ordering::Relaxed));
            }
        }
        fn status(&self, _: &str, _: &StreamStatus) {}
    }

    fn analysis() -> Analysis {
        Analysis {
            meta: FrameMeta {
                stream: "s".into(),
                session: "a".into(),
                seq: 0,
                pts_ns: None,
                captured_at: std::time::SystemTime::UNIX_EPOCH,
                source_width: 1,
                source_height: 1,
            },
            model: "m".into(),
            output: Output::Detections(Vec::new()),
            inference_ms: 0.0,
        }
    }

    #[test]
    fn a_result_is_counted_only_once_handed_to_the_publisher() {
        // A file stream says `stopped` once every frame is counted; its last
        // results must be on their way by then.
        let stats = Arc::new(StreamStats::default());
        let served = Served {
            input: Input {
                stream: "s".into(),
                frames: crossbeam_channel::never(),
                filter: Filter {
                    min_score: 0.0,
                    labels: None,
                    max_objects: None,
                },
                stats: stats.clone(),
            },
            order: Mutex::default(),
        };
        if let Ok(mut o) = served.order.lock() {
            o.in_flight.extend([0, 1]);
        }
        let seen = Seen(stats.clone(), Mutex::default());
        served.finish(1, Some(analysis()), &seen);
        served.finish(0, Some(analysis()), &seen);
        assert_eq!(*seen.1.lock().unwrap(), vec![0, 1]);
        assert_eq!(stats.frames_analysed.load(Ordering::Relaxed), 2);
    }
}
