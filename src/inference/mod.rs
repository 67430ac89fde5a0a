//! The inference stage: a worker per model that takes frames from the
//! streams using it, runs the model, and hands each result to publishing.

mod decode;
mod model;
pub mod runtime;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Select, Sender};
use tracing::{debug, error, info_span, warn};

pub use decode::{Labels, softmax, ssd_raw, top_k};
pub use model::{DType, Decoder, InputSpec, Layout, Model, fill_f32, fill_u8};

use crate::frame::{Analysis, Frame, Output};
use crate::publish::Publish;
use crate::source::StreamStats;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Runtime(String),
    #[error("model {model:?}: cannot load: {message}")]
    Load { model: String, message: String },
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
}

impl Filter {
    fn apply(&self, output: &mut Output) {
        let Some(keep) = &self.labels else { return };
        let wanted = |l: &str| keep.iter().any(|k| k == l);
        match output {
            Output::Detections(d) => d.retain(|d| wanted(&d.label)),
            Output::Classes(c) => c.retain(|c| wanted(&c.label)),
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

enum Control {
    Add(Input),
}

/// A model's worker thread.
pub struct Engine {
    pub model: Arc<str>,
    /// The model's input size: the size sources scale frames to.
    pub input_size: (u32, u32),
    control: Option<Sender<Control>>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    pub fn start(model: Model, publisher: Arc<dyn Publish>) -> std::io::Result<Self> {
        let (control, control_rx) = crossbeam_channel::unbounded();
        let name = model.name.clone();
        let input_size = (model.input.width, model.input.height);
        let thread = std::thread::Builder::new()
            .name(format!("infer-{name}"))
            .spawn(move || {
                let span = info_span!("model", model = %model.name);
                let _enter = span.enter();
                work(model, control_rx, &*publisher);
            })?;
        Ok(Self {
            model: name,
            input_size,
            control: Some(control),
            thread: Some(thread),
        })
    }

    /// Starts serving a stream; it leaves by itself when its frame sender goes.
    pub fn add(&self, input: Input) {
        if let Some(c) = &self.control {
            let _ = c.send(Control::Add(input));
        }
    }

    /// Finishes the frames in flight once every stream has stopped, then ends.
    pub fn join(mut self) {
        self.control.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Served {
    input: Input,
    session: Arc<str>,
    analysed: u64,
}

fn work(mut model: Model, control: Receiver<Control>, publisher: &dyn Publish) {
    let mut served: Vec<Served> = Vec::new();
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
        let op = sel.select();
        let i = op.index();
        if Some(i) == control_index {
            match op.recv(&control) {
                Ok(Control::Add(input)) => {
                    debug!(stream = %input.stream, "serving stream");
                    served.push(Served {
                        input,
                        session: Arc::from(""),
                        analysed: 0,
                    });
                }
                Err(_) => control_open = false,
            }
            continue;
        }
        let k = i - usize::from(control_index.is_some());
        let frame = match op.recv(&served[k].input.frames) {
            Ok(f) => f,
            Err(_) => {
                served.swap_remove(k);
                continue;
            }
        };
        let s = &mut served[k];
        let started = Instant::now();
        match model.infer(&frame.image, s.input.filter.min_score) {
            Ok(mut output) => {
                failures = 0;
                s.input.filter.apply(&mut output);
                if s.session != frame.meta.session {
                    s.session = frame.meta.session.clone();
                    s.analysed = 0;
                }
                let mut meta = frame.meta;
                meta.seq = s.analysed;
                s.analysed += 1;
                s.input
                    .stats
                    .frames_analysed
                    .fetch_add(1, Ordering::Relaxed);
                // The frame's memory goes back to GStreamer before publishing.
                drop(frame.image);
                publisher.analysis(&Analysis {
                    meta,
                    model: model.name.clone(),
                    output,
                    inference_ms: started.elapsed().as_secs_f32() * 1e3,
                });
            }
            Err(e) => {
                failures += 1;
                // One line per failure streak, not per frame.
                if failures == 1 {
                    error!(stream = %s.input.stream, error = %e, "inference failed");
                } else if failures.is_multiple_of(1000) {
                    warn!(stream = %s.input.stream, failures, "inference still failing");
                }
            }
        }
    }
}
