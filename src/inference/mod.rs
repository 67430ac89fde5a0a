//! The inference stage: a worker per model that takes frames from the
//! streams using it, runs the model, and hands each result to publishing.

mod decode;
mod describe;
mod error;
mod fill;
mod geometry;
mod input;
mod looks;
pub mod measure;
mod model;
pub mod runtime;
mod spec;
mod worker;

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use tracing::info_span;

pub use decode::{Labels, softmax, ssd_postprocessed, ssd_raw, top_k};
pub use fill::{FillError, fill_f32, fill_u8};
pub use geometry::{ResizeMode, output_to_source, to_source};
use worker::{Control, Served, work};

pub use error::ModelError;
pub use input::{Filter, Heartbeat, Input, Outlet};

pub use model::{MAX_INPUT_SIDE, MAX_TENSOR_VALUES, Model, tensor_len};
pub use spec::{
    Colour, DType, Declared, Decoder, DecoderKind, InputSpec, Layout, ModelSettings, ModelSpec,
    Provider, Task, cores,
};

/// A model's workers: each runs its own session of the model.
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
