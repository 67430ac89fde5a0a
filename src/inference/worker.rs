//! A model's worker: takes frames from the streams it serves, runs the
//! model, and releases each stream's results in the source's order, with
//! the stream's statuses in their places between them.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, TryRecvError};
use tracing::{debug, error, warn};

use super::error::ModelError;
use super::input::{Heartbeat, Input};
use super::looks;
use super::model::Model;
use super::spec::InputSpec;
use crate::frame::{Analysis, Frame, Image, Item, Look, Output};
use crate::status::StreamStatus;

/// What a worker runs: a loaded model in the daemon, a fake in tests.
pub(super) trait Runner {
    fn name(&self) -> &Arc<str>;
    fn max_batch(&self) -> usize;
    fn input(&self) -> &InputSpec;
    fn infer_batch(
        &mut self,
        images: &[&Image],
        min_scores: &[f32],
    ) -> Result<Vec<Output>, ModelError>;
}

impl Runner for Model {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    fn input(&self) -> &InputSpec {
        &self.input
    }
    fn infer_batch(
        &mut self,
        images: &[&Image],
        min_scores: &[f32],
    ) -> Result<Vec<Output>, ModelError> {
        Model::infer_batch(self, images, min_scores)
    }
}

/// A stream as the workers see it: its frames, and the order its results
/// are released in (several workers may analyse its frames at once).
pub(super) struct Served {
    input: Input,
    order: Mutex<Order>,
}

#[derive(Default)]
struct Order {
    /// Key of the next frame taken from the channel: the source's order.
    next: u64,
    in_flight: BTreeSet<u64>,
    /// What waits for earlier frames' results.
    done: BTreeMap<u64, Done>,
    session: Option<Arc<str>>,
    /// Published frames in the current session.
    analysed: u64,
}

enum Done {
    Analysis(Analysis),
    Failed,
    /// Its sender, where there is one, is dropped once it is published.
    Status(StreamStatus, Option<crossbeam_channel::Sender<()>>),
}

enum Take {
    Frame(Ticket, Frame),
    Empty,
    Closed,
}

pub(super) enum Control {
    Add(Arc<Served>),
}

/// A result a stream waits for. Dropped unfinished (a panic on the way)
/// it counts as failed: its key must leave the order, or every later
/// result of the stream would wait for it forever.
struct Ticket {
    served: Arc<Served>,
    key: u64,
    open: bool,
}

impl Ticket {
    fn finish(mut self, result: Option<Analysis>) {
        self.open = false;
        let done = result.map_or(Done::Failed, Done::Analysis);
        self.served.finish(self.key, done);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.open {
            // Only bookkeeping here (this may run while unwinding); the
            // worker releases what it unblocks once the panic is caught.
            self.served.abandon(self.key);
        }
    }
}

impl Served {
    pub(super) fn new(input: Input) -> Self {
        Self {
            input,
            order: Mutex::default(),
        }
    }

    /// The order survives a panic while it was held: its data is consistent
    /// between statements, and a poisoned lock must not end the stream.
    fn order(&self) -> MutexGuard<'_, Order> {
        crate::sync::locked(&self.order)
    }

    /// Takes the stream's next frame and its release key in one step, so
    /// keys follow the channel's order whichever worker takes a frame. A
    /// status on the way takes its key too and is released as soon as the
    /// frames before it are.
    fn take(self: &Arc<Self>) -> Take {
        let mut o = self.order();
        loop {
            let frame = match self.input.items.try_recv() {
                Ok(Item::Frame(frame)) => frame,
                Ok(Item::Status(status, published)) => {
                    let key = o.next;
                    o.next += 1;
                    o.done.insert(key, Done::Status(status, published));
                    self.release(&mut o);
                    continue;
                }
                Err(TryRecvError::Empty) => return Take::Empty,
                Err(TryRecvError::Disconnected) => return Take::Closed,
            };
            {
                let key = o.next;
                o.next += 1;
                o.in_flight.insert(key);
                let ticket = Ticket {
                    served: self.clone(),
                    key,
                    open: true,
                };
                return Take::Frame(ticket, frame);
            }
        }
    }

    /// Records a result and publishes every result no earlier frame is
    /// still waiting for, in the source's order.
    fn finish(&self, key: u64, done: Done) {
        let mut o = self.order();
        o.in_flight.remove(&key);
        o.done.insert(key, done);
        self.release(&mut o);
    }

    /// Marks a frame failed without publishing anything.
    fn abandon(&self, key: u64) {
        let mut o = self.order();
        if o.in_flight.remove(&key) {
            o.done.insert(key, Done::Failed);
        }
    }

    /// Publishes what [`Served::abandon`] left waiting.
    fn release_waiting(&self) {
        let mut o = self.order();
        self.release(&mut o);
    }

    fn release(&self, o: &mut Order) {
        let limit = o.in_flight.first().copied().unwrap_or(u64::MAX);
        while let Some(entry) = o.done.first_entry() {
            if *entry.key() >= limit {
                break;
            }
            let mut analysis = match entry.remove() {
                Done::Analysis(a) => a,
                Done::Failed => {
                    self.input
                        .stats
                        .frames_failed
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Done::Status(status, published) => {
                    self.input.out.status(status);
                    drop(published);
                    continue;
                }
            };
            if o.session.as_ref() != Some(&analysis.meta.session) {
                o.session = Some(analysis.meta.session.clone());
                o.analysed = 0;
            }
            analysis.meta.seq = o.analysed;
            o.analysed += 1;
            self.input.out.analysis(analysis);
            self.input
                .stats
                .frames_analysed
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Fault injection, in test builds only (`--features test-support`,
/// which `scripts/test.sh` uses; release builds have no such code):
/// `VISIOND_FAULT=stall-inference` hangs the workers, a stuck stage for
/// the watchdog's test under a real systemd.
#[cfg(feature = "test-support")]
fn stall_if_asked() {
    static STALL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *STALL.get_or_init(|| std::env::var("VISIOND_FAULT").is_ok_and(|v| v == "stall-inference")) {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Failure streaks, so a model failing on every frame logs one line, not
/// one per frame.
#[derive(Default)]
struct Streaks {
    failures: u64,
    panics: u64,
}

pub(super) fn work<R: Runner>(mut model: R, control: Receiver<Control>, heartbeat: &Heartbeat) {
    let mut served: Vec<Arc<Served>> = Vec::new();
    let mut control_open = true;
    let mut streaks = Streaks::default();
    loop {
        if !control_open && served.is_empty() {
            return;
        }
        let mut sel = Select::new();
        let control_index = control_open.then(|| sel.recv(&control));
        for s in &served {
            sel.recv(&s.input.items);
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
        let Some(s) = served.get(k).cloned() else {
            continue;
        };
        let first = match s.take() {
            Take::Frame(ticket, frame) => (ticket, frame),
            // Another worker took it.
            Take::Empty => continue,
            Take::Closed => {
                served.swap_remove(k);
                continue;
            }
        };
        let batch = gather(first, &served, k, model.max_batch());
        run_guarded(&mut model, batch, heartbeat, &mut streaks);
    }
}

/// `first` and the frames already waiting in the other streams (from the
/// one after `k` round), up to `max`: they share the run.
fn gather(
    first: (Ticket, Frame),
    served: &[Arc<Served>],
    k: usize,
    max: usize,
) -> Vec<(Ticket, Frame)> {
    let mut batch = vec![first];
    while batch.len() < max {
        let before = batch.len();
        for j in 1..=served.len() {
            let other = &served[(k + j) % served.len()];
            if batch.len() < max
                && let Take::Frame(ticket, frame) = other.take()
            {
                batch.push((ticket, frame));
            }
        }
        if batch.len() == before {
            break;
        }
    }
    batch
}

/// Analyses `batch`; a panic in the model, its decoding or the geometry
/// costs these frames, not the worker: their tickets drop as failed while
/// unwinding.
fn run_guarded<R: Runner>(
    model: &mut R,
    batch: Vec<(Ticket, Frame)>,
    heartbeat: &Heartbeat,
    streaks: &mut Streaks,
) {
    let streams: Vec<Arc<Served>> = batch.iter().map(|(t, _)| t.served.clone()).collect();
    heartbeat.busy();
    let run = catch_unwind(AssertUnwindSafe(|| {
        analyse(model, batch, &mut streaks.failures)
    }));
    heartbeat.idle();
    let Err(panic) = run else {
        streaks.panics = 0;
        return;
    };
    streaks.panics += 1;
    for s in &streams {
        s.input
            .stats
            .inference_panics
            .fetch_add(1, Ordering::Relaxed);
    }
    if streaks.panics == 1 {
        let names: Vec<&str> = streams.iter().map(|s| &*s.input.stream).collect();
        error!(
            model = %model.name(),
            streams = %names.join(","),
            panic = panic_text(&*panic),
            "inference panicked; its frames count as failed"
        );
    } else if streaks.panics.is_multiple_of(1000) {
        warn!(model = %model.name(), panics = streaks.panics, "inference still panicking");
    }
    for s in &streams {
        s.release_waiting();
    }
}

/// Runs one batch and finishes its tickets.
fn analyse<R: Runner>(model: &mut R, batch: Vec<(Ticket, Frame)>, failures: &mut u64) {
    let started = Instant::now();
    #[cfg(feature = "test-support")]
    stall_if_asked();
    let (tickets, frames): (Vec<Ticket>, Vec<Frame>) = batch.into_iter().unzip();
    let refs: Vec<&Frame> = frames.iter().collect();
    let input = model.input().clone();
    let parts = looks::parts(&refs, &input);
    let images: Vec<&Image> = parts.iter().map(|p| p.image(&refs)).collect();
    let min_scores: Vec<f32> = parts
        .iter()
        .map(|p| tickets[p.frame].served.input.filter.min_score)
        .collect();
    let results = run_parts(model, &images, &min_scores);
    drop(images);
    let inference_ms = started.elapsed().as_secs_f32() * 1e3;
    let mut outputs: Vec<Option<Output>> = match results {
        // A batch the model was not asked about says nothing of its health.
        Ok(outputs) if parts.is_empty() => outputs,
        Ok(outputs) => {
            *failures = 0;
            outputs
        }
        Err(e) => {
            *failures += 1;
            // One line per failure streak, not per frame.
            if *failures == 1 {
                error!(error = %e, "inference failed");
            } else if failures.is_multiple_of(1000) {
                warn!(failures = *failures, "inference still failing");
            }
            Vec::new()
        }
    };
    outputs.resize_with(parts.len(), || None);
    for (i, (ticket, mut frame)) in tickets.into_iter().zip(frames).enumerate() {
        let stream = &ticket.served.input;
        let inputs = parts.iter().filter(|p| p.frame == i).count() as u64;
        looks::record_fallback(i, &mut frame, &parts);
        count_look(&stream.stats, &frame.meta.sight.look, inputs);
        // A model that returns fewer outputs than inputs fails the rest.
        let Some(mut output) = looks::assemble(i, &frame, &parts, &mut outputs, &input) else {
            ticket.finish(None);
            continue;
        };
        stream.filter.apply(&mut output);
        let ms = if inputs > 0 {
            stream.stats.inference.observe(f64::from(inference_ms));
            inference_ms
        } else {
            0.0
        };
        let Frame { mut meta, image } = frame;
        // The frame's memory goes back to GStreamer before publishing.
        drop(image);
        if !stream.pictures {
            meta.full = None;
        }
        let analysis = Analysis {
            meta,
            model: model.name().clone(),
            output,
            inference_ms: ms,
        };
        ticket.finish(Some(analysis));
    }
}

/// Runs `images` through the model in batches it takes: one output per
/// image, `None` where a run gave fewer outputs than images.
fn run_parts<R: Runner>(
    model: &mut R,
    images: &[&Image],
    min_scores: &[f32],
) -> Result<Vec<Option<Output>>, ModelError> {
    let mut outputs = Vec::with_capacity(images.len());
    let max = model.max_batch().max(1);
    for (imgs, scores) in images.chunks(max).zip(min_scores.chunks(max)) {
        let want = outputs.len() + imgs.len();
        let got = model.infer_batch(imgs, scores)?;
        outputs.extend(got.into_iter().take(imgs.len()).map(Some));
        outputs.resize_with(want, || None);
    }
    Ok(outputs)
}

/// The motion stage's counters: how each analysed frame was looked at,
/// and the model inputs it cost.
fn count_look(stats: &crate::stats::StreamStats, look: &Look, inputs: u64) {
    let counter = match look {
        Look::Whole => &stats.looked_whole,
        Look::Regions(crops) => {
            stats
                .regions
                .fetch_add(crops.len() as u64, Ordering::Relaxed);
            &stats.looked_regions
        }
        Look::Nothing => &stats.looked_none,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    stats.model_inputs.fetch_add(inputs, Ordering::Relaxed);
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests;
