//! Keeps one stream alive: starts its pipeline, watches it, reconnects with
//! capped, jittered backoff, and reports every state change.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tracing::{debug, error, info, info_span, warn};

use super::{BusEvent, Deliver, Inlet, Pipeline, PipelineSettings, RawFrame, StreamStats};
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::frame::{Frame, FrameMeta};
use crate::status::{StreamState, StreamStatus};

/// The supervisor's rules. Defaults suit cameras on flaky networks.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Reconnect delays grow from `backoff_min` to `backoff_max`, jittered.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A live source with no frame for this long is restarted.
    pub stall: Duration,
    /// How long a session must deliver frames (its first to its last)
    /// before the backoff starts again from its minimum.
    pub good_run: Duration,
    /// How often the status (with its rates) is republished while playing.
    pub status_every: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            stall: Duration::from_secs(10),
            good_run: Duration::from_secs(10),
            status_every: Duration::from_secs(10),
        }
    }
}

/// A source session once started. Dropping it stops it.
pub trait Session {
    /// Waits up to `timeout` for its end or an error.
    fn poll(&mut self, timeout: Duration) -> Option<BusEvent>;
    /// Whether it produces frames in real time (only live sources stall).
    fn is_live(&self) -> bool;
    /// The decoders it runs, by factory name, with their thread limit where
    /// they have one (see [`Pipeline::decoders`]).
    fn decoders(&self) -> Vec<(String, Option<i32>)> {
        Vec::new()
    }
}

impl Session for Pipeline {
    fn poll(&mut self, timeout: Duration) -> Option<BusEvent> {
        Pipeline::poll(self, timeout)
    }

    fn is_live(&self) -> bool {
        Pipeline::is_live(self)
    }

    fn decoders(&self) -> Vec<(String, Option<i32>)> {
        Pipeline::decoders(self)
    }
}

/// The decoders for the log: whether a hardware one was picked is the first
/// question on a small board.
fn describe_decoders(decoders: &[(String, Option<i32>)]) -> String {
    if decoders.is_empty() {
        return "none".into();
    }
    let named: Vec<String> = decoders
        .iter()
        .map(|(name, threads)| match threads {
            Some(1) => format!("{name} (1 thread)"),
            Some(0) => format!("{name} (a thread per core)"),
            Some(n) => format!("{name} ({n} threads)"),
            None => name.clone(),
        })
        .collect();
    named.join(", ")
}

/// Where a stream's statuses go: in the daemon its [`Inlet`], in band
/// behind the frames they follow.
pub trait Report {
    fn status(&self, status: StreamStatus);
}

impl Report for Inlet {
    fn status(&self, status: StreamStatus) {
        Inlet::status(self, status);
    }
}

/// Starts source sessions for a stream.
pub trait Opener {
    /// `session` is the new session's id.
    fn open(&self, session: Arc<str>) -> Result<Box<dyn Session>, String>;
}

/// What ended a file's stream is final; a live source comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File { looping: bool },
    Live,
}

/// Everything a stream needs to run.
pub struct StreamSetup {
    pub name: Arc<str>,
    pub settings: PipelineSettings,
    pub stats: Arc<StreamStats>,
    /// A file starts again at its end instead of stopping.
    pub looping: bool,
    /// Dates frames and statuses, times the retries.
    pub clock: Arc<dyn Clock>,
    /// The tracker's view, for the motion stage (see `motion::stage`).
    pub feedback: Arc<crate::motion::stage::Feedback>,
}

/// A running stream; dropping `stop` (via [`StreamHandle::stop`]) ends it.
pub struct StreamHandle {
    pub name: Arc<str>,
    pub stats: Arc<StreamStats>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Closes when the thread ends (its sender goes with the thread).
    ended: Receiver<()>,
}

impl StreamHandle {
    /// Asks the stream to stop; returns at once.
    pub fn stop(&mut self) {
        self.stop.take();
    }

    /// Waits for the stream's thread to end, until `deadline`; false when
    /// it has not. A stream stuck in its source (a GStreamer element that
    /// will not stop) is then left behind, and said, so that it holds up
    /// neither the other streams nor the daemon's exit.
    pub fn join_by(mut self, deadline: Instant) -> bool {
        self.stop();
        // Nothing is ever sent: the channel only closes, when the thread ends.
        if let Err(RecvTimeoutError::Timeout) = self.ended.recv_deadline(deadline) {
            error!(stream = %self.name, "the stream did not stop in time; left behind");
            return false;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        true
    }
}

/// Starts the stream's supervisor thread. Frames and statuses go to inference
/// through `inlet`.
pub fn spawn_stream(setup: StreamSetup, inlet: Inlet) -> std::io::Result<StreamHandle> {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let (ended_tx, ended) = crossbeam_channel::bounded::<()>(0);
    let name = setup.name.clone();
    let stats = setup.stats.clone();
    let thread = std::thread::Builder::new()
        .name(format!("stream-{name}"))
        .spawn(move || {
            let _ended = ended_tx;
            let span = info_span!("stream", stream = %setup.name);
            let _enter = span.enter();
            supervise_pipeline(&setup, &Arc::new(inlet), &stop_rx);
        })?;
    Ok(StreamHandle {
        name,
        stats,
        stop: Some(stop_tx),
        thread: Some(thread),
        ended,
    })
}

enum Outcome {
    Stopped,
    Eos,
    Error(String),
}

/// How a session ended, and how long it delivered frames: from its first
/// frame to its last, zero without one.
struct Ended {
    outcome: Outcome,
    played: Duration,
}

/// Opens real pipelines for a stream.
struct PipelineOpener<'a> {
    setup: &'a StreamSetup,
    inlet: &'a Arc<Inlet>,
    stop: &'a Receiver<()>,
}

impl Opener for PipelineOpener<'_> {
    fn open(&self, session: Arc<str>) -> Result<Box<dyn Session>, String> {
        let deliver = deliverer(self.setup, session, self.inlet, self.stop);
        let (settings, stats) = (&self.setup.settings, self.setup.stats.clone());
        let (clock, feedback) = (self.setup.clock.clone(), self.setup.feedback.clone());
        Pipeline::start(settings, stats, clock, feedback, deliver)
            .map(|p| Box::new(p) as Box<dyn Session>)
            // The error goes to the log and the status: no credentials.
            .map_err(|e| crate::redact::text(&e.to_string()))
    }
}

fn supervise_pipeline(setup: &StreamSetup, inlet: &Arc<Inlet>, stop: &Receiver<()>) {
    info!(source = %setup.settings.spec, "starting");
    let kind = match setup.settings.spec {
        super::SourceSpec::File { .. } => Kind::File {
            looping: setup.looping,
        },
        _ => Kind::Live,
    };
    let opener = PipelineOpener { setup, inlet, stop };
    supervise(
        kind,
        &setup.stats,
        &opener,
        &*setup.clock,
        stop,
        &**inlet,
        &Policy::default(),
    );
}

/// Runs a stream until `stop` closes (or a file ends): opens a session,
/// watches it, and on failure reports `reconnecting` and retries after a
/// capped, jittered backoff. File errors are final (`failed`). Every
/// status goes to `out`, behind the frames sent before it.
pub fn supervise(
    kind: Kind,
    stats: &StreamStats,
    opener: &dyn Opener,
    clock: &dyn Clock,
    stop: &Receiver<()>,
    out: &dyn Report,
    policy: &Policy,
) {
    let mut backoff = Backoff::new(policy.backoff_min, policy.backoff_max);
    let mut incident: Option<String> = None;
    let report = |state: StreamState, error: Option<String>| {
        let mut s = StreamStatus::new(state, clock.wall());
        s.error = error;
        stats.set_state(&s, clock.now());
        out.status(s);
    };
    loop {
        // While an incident lasts, the status stays `reconnecting`.
        if incident.is_none() {
            report(StreamState::Starting, None);
        }
        stats.sessions.fetch_add(1, Ordering::Relaxed);
        let session: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let frames_before = stats.frames_in.load(Ordering::Relaxed);
        let Ended { outcome, played } = match opener.open(session.clone()) {
            Err(e) => Ended {
                outcome: Outcome::Error(e),
                played: Duration::ZERO,
            },
            Ok(mut running) => watch(&mut *running, stats, clock, stop, out, policy, &session),
        };
        if stats.frames_in.load(Ordering::Relaxed) > frames_before {
            // It played (and said so): a new failure is a new incident.
            incident = None;
        }
        let error = match (outcome, kind) {
            (Outcome::Stopped, _) => {
                report(StreamState::Stopped, None);
                info!("stopped");
                return;
            }
            (Outcome::Eos, Kind::File { looping: true }) => {
                info!("end of file; starting again");
                continue;
            }
            (Outcome::Eos, Kind::File { looping: false }) => {
                // Behind the last frames: their results go out first.
                report(StreamState::Stopped, None);
                info!("end of file");
                return;
            }
            (Outcome::Error(e), Kind::File { .. }) => {
                // A missing or broken file does not mend itself.
                error!(error = %e, "file source failed");
                report(StreamState::Failed, Some(e));
                return;
            }
            (Outcome::Eos, Kind::Live) => "the source ended its stream".to_string(),
            (Outcome::Error(e), Kind::Live) => e,
        };
        // Only time with frames counts: a camera that accepts the
        // connection and then stalls has not recovered, however long the
        // session lasted.
        if played >= policy.good_run {
            backoff.reset();
            incident = None;
        }
        let delay = backoff.next_delay();
        // One line and one status per incident: a retry failing the same
        // way says nothing new.
        if incident.as_ref() != Some(&error) {
            warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "source lost; reconnecting");
            report(StreamState::Reconnecting, Some(error.clone()));
            incident = Some(error);
        } else {
            debug!(
                retry_in_ms = delay.as_millis() as u64,
                "still failing the same way"
            );
        }
        if clock.sleep(delay, stop) {
            report(StreamState::Stopped, None);
            info!("stopped");
            return;
        }
    }
}

/// Why a session that gave no frame for `quiet` is over, if it is: a live
/// one without a frame for `stall`, or one that never gave its first (a
/// damaged file can leave the demuxer waiting, `starting` forever).
fn stalled(live: bool, seen_any: bool, quiet: Duration, stall: Duration) -> Option<Outcome> {
    if quiet < stall {
        None
    } else if live {
        Some(Outcome::Error(format!(
            "no frame for {} s; restarting the source",
            stall.as_secs()
        )))
    } else if !seen_any {
        Some(Outcome::Error(format!(
            "no first frame within {} s",
            stall.as_secs()
        )))
    } else {
        None
    }
}

/// Watches a running session until it ends, fails, stalls or is stopped;
/// reports `playing` at its first frame and the rates every `status_every`.
fn watch(
    running: &mut dyn Session,
    stats: &StreamStats,
    clock: &dyn Clock,
    stop: &Receiver<()>,
    out: &dyn Report,
    policy: &Policy,
    session: &str,
) -> Ended {
    let frames_at_start = stats.frames_in.load(Ordering::Relaxed);
    let mut last_frames = frames_at_start;
    let mut last_progress = clock.now();
    // When the first and the latest frame came.
    let mut frames_seen: Option<(Instant, Instant)> = None;
    let mut playing: Option<StreamStatus> = None;
    let mut window = (clock.now(), 0u64, 0u64);
    let ended = |outcome, seen: Option<(Instant, Instant)>| Ended {
        outcome,
        played: seen.map_or(Duration::ZERO, |(first, last)| {
            last.saturating_duration_since(first)
        }),
    };
    loop {
        match running.poll(Duration::from_millis(100)) {
            Some(BusEvent::Eos) => return ended(Outcome::Eos, frames_seen),
            Some(BusEvent::Error(e)) => return ended(Outcome::Error(e), frames_seen),
            None => {}
        }
        if stop.try_recv().is_err_and(|e| e.is_disconnected()) {
            return ended(Outcome::Stopped, frames_seen);
        }
        let now = clock.now();
        let frames_in = stats.frames_in.load(Ordering::Relaxed);
        let analysed = stats.frames_analysed.load(Ordering::Relaxed);
        if frames_in != last_frames {
            last_frames = frames_in;
            last_progress = now;
            frames_seen = Some((frames_seen.map_or(now, |s| s.0), now));
        } else if let Some(stalled) = stalled(
            running.is_live(),
            frames_seen.is_some(),
            now.saturating_duration_since(last_progress),
            policy.stall,
        ) {
            return ended(stalled, frames_seen);
        }
        // The detect switch: `paused` while it is off, `playing` otherwise.
        let want = if stats.paused.load(Ordering::Relaxed) {
            StreamState::Paused
        } else {
            StreamState::Playing
        };
        match &mut playing {
            None if frames_in > frames_at_start => {
                let status = StreamStatus::new(want, clock.wall());
                stats.set_state(&status, now);
                out.status(status.clone());
                let decoders = describe_decoders(&running.decoders());
                info!(session, %decoders, "playing");
                playing = Some(status);
                window = (now, frames_in, analysed);
            }
            Some(status) if status.state != want => {
                // `paused` goes behind the frames already past the gate,
                // and the inlet lets none through after it.
                *status = StreamStatus::new(want, clock.wall());
                stats.set_state(status, now);
                out.status(status.clone());
                info!(session, state = ?want, "detect switch");
                window = (now, frames_in, analysed);
            }
            Some(status) if now.saturating_duration_since(window.0) >= policy.status_every => {
                let secs = now
                    .saturating_duration_since(window.0)
                    .as_secs_f64()
                    .max(1e-9);
                status.fps_in = frames_in.saturating_sub(window.1) as f64 / secs;
                status.fps_analysed = analysed.saturating_sub(window.2) as f64 / secs;
                out.status(status.clone());
                window = (now, frames_in, analysed);
            }
            _ => {}
        }
    }
}

/// The frame handler run on GStreamer's streaming thread.
fn deliverer(
    setup: &StreamSetup,
    session: Arc<str>,
    inlet: &Arc<Inlet>,
    stop: &Receiver<()>,
) -> Deliver {
    let (inlet, stop) = (inlet.clone(), stop.clone());
    let stream = setup.name.clone();
    Box::new(move |raw: RawFrame| {
        let frame = Frame {
            meta: FrameMeta {
                stream: stream.clone(),
                session: session.clone(),
                seq: 0,
                pts_ns: raw.pts_ns,
                captured_at: raw.captured_at,
                delivered: std::time::Instant::now(),
                source_width: raw.source_width,
                source_height: raw.source_height,
                full: raw.full,
                sight: Arc::new(raw.sight),
            },
            image: raw.image,
        };
        if raw.live {
            inlet.live(frame)
        } else {
            // A file waits for the analysis: every kept frame is analysed.
            inlet.wait(frame, &stop)
        }
    })
}

#[cfg(test)]
mod tests;
