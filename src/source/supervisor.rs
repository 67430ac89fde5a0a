//! Keeps one stream alive: starts its pipeline, watches it, reconnects with
//! capped, jittered backoff, and reports every state change.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, select};
use tracing::{info, info_span, warn};

use super::{BusEvent, Deliver, Pipeline, PipelineSettings, RawFrame, StreamStats};
use crate::backoff::Backoff;
use crate::frame::{Frame, FrameMeta};
use crate::publish::Publish;
use crate::status::{StreamState, StreamStatus};

/// How often the status (with its rates) is republished while playing.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How long the end of a file waits for its last frames' results.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How long a session must play before the backoff starts again from its minimum.
const GOOD_RUN: Duration = Duration::from_secs(10);

/// Everything a stream needs to run.
pub struct StreamSetup {
    pub name: Arc<str>,
    pub settings: PipelineSettings,
    pub stats: Arc<StreamStats>,
    /// A file starts again at its end instead of stopping.
    pub looping: bool,
}

/// A running stream; dropping `stop` (via [`StreamHandle::stop`]) ends it.
pub struct StreamHandle {
    pub name: Arc<str>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StreamHandle {
    /// Asks the stream to stop; returns at once.
    pub fn stop(&mut self) {
        self.stop.take();
    }

    /// Waits for the stream's thread to end.
    pub fn join(mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the stream's supervisor thread. Frames go to `frames`; when the
/// source is live and the channel is full, the oldest waiting frame is
/// taken back through `taken_back` so the newest wins.
pub fn spawn_stream(
    setup: StreamSetup,
    frames: Sender<Frame>,
    taken_back: Receiver<Frame>,
    publisher: Arc<dyn Publish>,
) -> std::io::Result<StreamHandle> {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let name = setup.name.clone();
    let thread = std::thread::Builder::new()
        .name(format!("stream-{name}"))
        .spawn(move || {
            let span = info_span!("stream", stream = %setup.name);
            let _enter = span.enter();
            supervise(&setup, &frames, &taken_back, &stop_rx, &*publisher);
        })?;
    Ok(StreamHandle {
        name,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

enum Outcome {
    Stopped,
    Eos,
    Error(String),
}

fn supervise(
    setup: &StreamSetup,
    frames: &Sender<Frame>,
    taken_back: &Receiver<Frame>,
    stop: &Receiver<()>,
    publisher: &dyn Publish,
) {
    let mut backoff = Backoff::default();
    let report = |state: StreamState, error: Option<String>| {
        let mut s = StreamStatus::new(state);
        s.error = error;
        publisher.status(&setup.name, &s);
    };
    info!(source = %setup.settings.spec, "starting");
    loop {
        report(StreamState::Starting, None);
        setup.stats.sessions.fetch_add(1, Ordering::Relaxed);
        let session: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let deliver = deliverer(setup, session.clone(), frames, taken_back, stop);
        let started = Instant::now();
        let outcome = match Pipeline::start(&setup.settings, setup.stats.clone(), deliver) {
            Err(e) => Outcome::Error(e.to_string()),
            Ok(p) => {
                let outcome = watch(setup, &p, stop, publisher, &session);
                p.stop();
                outcome
            }
        };
        let is_file = matches!(setup.settings.spec, super::SourceSpec::File { .. });
        let error = match outcome {
            Outcome::Stopped => {
                report(StreamState::Stopped, None);
                info!("stopped");
                return;
            }
            Outcome::Eos if is_file && setup.looping => {
                info!("end of file; starting again");
                continue;
            }
            Outcome::Eos if is_file => {
                // Results of the last frames come before `stopped`.
                let deadline = Instant::now() + DRAIN_LIMIT;
                while !setup.stats.drained() && Instant::now() < deadline {
                    if stop
                        .recv_timeout(Duration::from_millis(5))
                        .is_err_and(|e| e.is_disconnected())
                    {
                        break;
                    }
                }
                report(StreamState::Stopped, None);
                info!("end of file");
                return;
            }
            Outcome::Eos => "the source ended its stream".to_string(),
            Outcome::Error(e) => e,
        };
        if started.elapsed() >= GOOD_RUN {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "source lost; reconnecting");
        report(StreamState::Reconnecting, Some(error));
        if stop.recv_timeout(delay).is_err_and(|e| e.is_disconnected()) {
            report(StreamState::Stopped, None);
            info!("stopped");
            return;
        }
    }
}

/// Watches a running pipeline until it ends, fails or is stopped; reports
/// `playing` at its first frame and the rates every [`STATUS_EVERY`].
fn watch(
    setup: &StreamSetup,
    pipeline: &Pipeline,
    stop: &Receiver<()>,
    publisher: &dyn Publish,
    session: &str,
) -> Outcome {
    let stats = &setup.stats;
    let frames_at_start = stats.frames_in.load(Ordering::Relaxed);
    let mut playing: Option<StreamStatus> = None;
    let mut window = (Instant::now(), 0u64, 0u64);
    loop {
        match pipeline.poll(Duration::from_millis(100)) {
            Some(BusEvent::Eos) => return Outcome::Eos,
            Some(BusEvent::Error(e)) => return Outcome::Error(e),
            None => {}
        }
        if stop.try_recv().is_err_and(|e| e.is_disconnected()) {
            return Outcome::Stopped;
        }
        let frames_in = stats.frames_in.load(Ordering::Relaxed);
        let analysed = stats.frames_analysed.load(Ordering::Relaxed);
        match &mut playing {
            None if frames_in > frames_at_start => {
                let status = StreamStatus::new(StreamState::Playing);
                publisher.status(&setup.name, &status);
                info!(session, "playing");
                playing = Some(status);
                window = (Instant::now(), frames_in, analysed);
            }
            Some(status) if window.0.elapsed() >= STATUS_EVERY => {
                let secs = window.0.elapsed().as_secs_f64();
                status.fps_in = (frames_in - window.1) as f64 / secs;
                status.fps_analysed = analysed.saturating_sub(window.2) as f64 / secs;
                publisher.status(&setup.name, status);
                window = (Instant::now(), frames_in, analysed);
            }
            _ => {}
        }
    }
}

/// The frame handler run on GStreamer's streaming thread.
fn deliverer(
    setup: &StreamSetup,
    session: Arc<str>,
    frames: &Sender<Frame>,
    taken_back: &Receiver<Frame>,
    stop: &Receiver<()>,
) -> Deliver {
    let (frames, taken_back, stop) = (frames.clone(), taken_back.clone(), stop.clone());
    let stats = setup.stats.clone();
    let stream = setup.name.clone();
    Box::new(move |raw: RawFrame| {
        let frame = Frame {
            meta: FrameMeta {
                stream: stream.clone(),
                session: session.clone(),
                seq: 0,
                pts_ns: raw.pts_ns,
                captured_at: raw.captured_at,
                source_width: raw.source_width,
                source_height: raw.source_height,
            },
            image: raw.image,
        };
        if raw.live {
            match frames.try_send(frame) {
                Ok(()) => true,
                Err(TrySendError::Full(frame)) => {
                    // Inference is busy: the waiting frame is stale, replace it.
                    if taken_back.try_recv().is_ok() {
                        stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    if frames.try_send(frame).is_err() {
                        stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        } else {
            // A file waits for the analysis: every kept frame is analysed.
            select! {
                send(frames, frame) -> r => r.is_ok(),
                recv(stop) -> _ => false,
            }
        }
    })
}
