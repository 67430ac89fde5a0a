//! `visiond bench`: what a model and a stream achieve on this device. A
//! stream runs as the daemon runs it; a model's own measurement is
//! `inference::measure`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Loaded;
use crate::daemon::{DaemonError, Running};
use crate::frame::Analysis;
use crate::publish::{Publish, payload};

// Measuring a model lives with the models; the CLI's bench shows it.
use crate::inference::measure::percentile;
pub use crate::inference::measure::{
    InferenceRow, cpu_time, inference, layouts, max_batch, memory_mib,
};
use crate::status::{StreamState, StreamStatus};

/// What one stream achieved through the whole pipeline.
#[derive(Debug, Clone)]
pub struct StreamReport {
    pub stream: String,
    pub frames: u64,
    pub seconds: f64,
    pub fps: f64,
    pub cpu_ms_per_frame: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    /// Snapshots sent, and the mean time to convert, draw and encode one.
    pub snapshots: u64,
    pub snapshot_ms: f64,
    /// The snapshot stage's mean time per frame besides that.
    pub snapshot_frame_us: f64,
}

/// Counts what would be published (the JSON is built, not sent).
#[derive(Default)]
struct Counting {
    analysed: AtomicU64,
    first_last: Mutex<Option<(Instant, Instant)>>,
    latencies: Mutex<Vec<f64>>,
    states: Mutex<HashMap<String, StreamState>>,
}

impl Publish for Counting {
    fn analysis(&self, a: &Analysis) {
        use crate::clock::Clock;
        let now = crate::clock::SystemClock.wall();
        let body = payload::detections(a, "bench", now);
        std::hint::black_box(body);
        self.analysed.fetch_add(1, Ordering::Relaxed);
        let t = Instant::now();
        if let Ok(mut fl) = self.first_last.lock() {
            *fl = Some(fl.map_or((t, t), |(f, _)| (f, t)));
        }
        if let (Ok(mut l), Ok(d)) = (
            self.latencies.lock(),
            now.duration_since(a.meta.captured_at),
        ) {
            l.push(d.as_secs_f64() * 1e3);
        }
    }

    fn status(&self, stream: &str, status: &StreamStatus) {
        if let Ok(mut s) = self.states.lock() {
            s.insert(stream.to_string(), status.state);
        }
    }

    // What the rest would send is not counted: bench measures frames.
    fn removed(&self, _: &str) {}
    fn events(&self, _: &str, _: &str, _: &[crate::tracking::Event]) {}
    fn tallies(&self, _: &str, _: &[crate::tracking::Tally], _: std::time::SystemTime) {}
    fn snapshot(&self, _: &str, _: &str, _: &[u8]) {}
}

/// Runs one configured stream through source, inference and payload
/// building until it ends (a file) or `frames` were analysed or `limit` passed.
pub fn stream(
    loaded: &Loaded,
    stream_name: &str,
    frames: u64,
    limit: Duration,
) -> Result<StreamReport, DaemonError> {
    gstreamer::init().map_err(|e| DaemonError::Stream {
        stream: stream_name.into(),
        message: e.to_string(),
    })?;
    let mut only = loaded.clone();
    only.config.streams.retain(|s| s.name == stream_name);
    if only.config.streams.is_empty() {
        return Err(DaemonError::Stream {
            stream: stream_name.into(),
            message: "no such stream in the config".into(),
        });
    }
    let models = crate::daemon::load_models(&only)?;
    let counting = Arc::new(Counting::default());
    // The stream as the daemon runs it, on the daemon's route: tracked when
    // its config says so, with snapshots (made, not sent) unless it says
    // `snapshots: false`.
    let routes = crate::route::Routes::new(counting.clone());
    routes.set_models(&only.model_specs());
    let cpu_before = cpu_time();
    let started = Instant::now();
    let switches = Arc::default();
    let running = Running::start(&only, models, &routes, &switches)?;
    while started.elapsed() < limit && counting.analysed.load(Ordering::Relaxed) < frames {
        let stopped = counting
            .states
            .lock()
            .map(|s| s.get(stream_name) == Some(&StreamState::Stopped))
            .unwrap_or(false);
        if stopped {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    running.stop(Instant::now() + Duration::from_secs(5));
    Ok(report(
        stream_name,
        &counting,
        &routes,
        cpu_time() - cpu_before,
    ))
}

/// What was counted, per frame and per second.
fn report(
    stream_name: &str,
    counting: &Counting,
    routes: &crate::route::Routes,
    cpu: f64,
) -> StreamReport {
    let n = counting.analysed.load(Ordering::Relaxed);
    let seconds = counting
        .first_last
        .lock()
        .ok()
        .and_then(|fl| *fl)
        .map_or(0.0, |(f, l)| (l - f).as_secs_f64());
    let mut lat = counting
        .latencies
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lat.sort_by(f64::total_cmp);
    let (rss, peak) = memory_mib();
    let sent = routes.counters().sent.load(Ordering::Relaxed);
    let c = routes.counters();
    let render_us = c.render_us.load(Ordering::Relaxed);
    let seen = c.frames.load(Ordering::Relaxed);
    StreamReport {
        snapshot_frame_us: if seen > 0 {
            c.frame_ns.load(Ordering::Relaxed) as f64 / 1e3 / seen as f64
        } else {
            0.0
        },
        snapshots: sent,
        snapshot_ms: if sent > 0 {
            render_us as f64 / 1e3 / sent as f64
        } else {
            0.0
        },
        stream: stream_name.to_string(),
        frames: n,
        seconds,
        // Between the first and the last result: n-1 intervals.
        fps: if seconds > 0.0 {
            (n.saturating_sub(1)) as f64 / seconds
        } else {
            0.0
        },
        cpu_ms_per_frame: if n > 0 { cpu * 1e3 / n as f64 } else { 0.0 },
        latency_p50_ms: percentile(&lat, 0.5),
        latency_p99_ms: percentile(&lat, 0.99),
        rss_mib: rss,
        peak_rss_mib: peak,
    }
}
