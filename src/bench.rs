//! `visiond bench`: what a model and a stream achieve on this device.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Loaded, ModelConfig};
use crate::daemon::{DaemonError, Running};
use crate::frame::{Analysis, Image};
use crate::inference::{Model, ModelError, runtime};
use crate::publish::{Publish, payload};
use crate::status::{StreamState, StreamStatus};

/// One thread layout's result of pure inference.
#[derive(Debug, Clone)]
pub struct InferenceRow {
    pub model: String,
    pub workers: usize,
    pub threads: usize,
    pub batch: usize,
    pub frames: usize,
    pub fps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu_ms_per_frame: f64,
}

/// Thread layouts worth comparing on `cores` cores: one session using every
/// core, one single-thread session per core, and one single thread.
pub fn layouts(cores: usize) -> Vec<(usize, usize)> {
    let mut l = vec![(1, 1), (1, cores), (cores, 1)];
    l.dedup();
    l
}

/// A deterministic test image (a diagonal gradient) at the model's input size.
fn test_image(w: u32, h: u32) -> Image {
    let stride = (w as usize * 3).div_ceil(4) * 4;
    let mut data = vec![0u8; stride * h as usize];
    for y in 0..h as usize {
        for x in 0..w as usize {
            let p = &mut data[y * stride + x * 3..y * stride + x * 3 + 3];
            p.copy_from_slice(&[
                (x * 255 / w as usize) as u8,
                (y * 255 / h as usize) as u8,
                128,
            ]);
        }
    }
    Image::from_vec(w, h, stride, data)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Pure inference (pre-processing, run, decoding) of `model_name` with
/// `workers` sessions of `threads` intra-op threads each, in parallel, each
/// run taking `batch` frames (at most what the model allows). Latency is per run.
pub fn inference(
    loaded: &Loaded,
    model_name: &str,
    workers: usize,
    threads: usize,
    batch: usize,
    frames: usize,
) -> Result<InferenceRow, ModelError> {
    runtime::init(loaded.config.onnxruntime.as_deref())?;
    let cfg = loaded
        .model(model_name)
        .ok_or_else(|| ModelError::Runtime(format!("no model named {model_name:?}")))?;
    inference_of(cfg, workers, threads, batch, frames)
}

/// As [`inference`], for a model entry as it is (a variant's, say); the
/// runtime is initialised.
pub fn inference_of(
    cfg: &ModelConfig,
    workers: usize,
    threads: usize,
    batch: usize,
    frames: usize,
) -> Result<InferenceRow, ModelError> {
    let model_name = cfg.name.as_str();
    let mut cfg = cfg.clone();
    if batch > 1 {
        cfg.batch = Some(batch);
    }
    let cfg = &cfg;
    // As the daemon loads them.
    let (mut models, _) = Model::load_workers(cfg, workers, threads)?;
    let batch = batch.clamp(1, models.first().map_or(1, |m| m.max_batch));
    let per_worker = frames.div_ceil(workers * batch);
    let cpu_before = cpu_time();
    let started = Instant::now();
    let results: Vec<Result<Vec<f64>, ModelError>> = std::thread::scope(|s| {
        let handles: Vec<_> = models
            .iter_mut()
            .map(|m| {
                s.spawn(move || {
                    let image = test_image(m.input.width, m.input.height);
                    let images = vec![&image; batch];
                    let scores = vec![0.5; batch];
                    let mut lat = Vec::with_capacity(per_worker);
                    for _ in 0..per_worker {
                        let t = Instant::now();
                        m.infer_batch(&images, &scores)?;
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ModelError::Runtime("bench thread panicked".into())))
            })
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu_before;
    let mut lat = Vec::new();
    for r in results {
        lat.extend(r?);
    }
    lat.sort_by(f64::total_cmp);
    let frames = lat.len() * batch;
    Ok(InferenceRow {
        model: model_name.to_string(),
        workers,
        threads,
        batch,
        frames,
        fps: frames as f64 / wall,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        cpu_ms_per_frame: cpu * 1e3 / frames.max(1) as f64,
    })
}

/// The largest batch worth measuring: what the config allows, or 4 when
/// the model's batch dimension is dynamic and the config leaves it open.
pub fn max_batch(loaded: &Loaded, model_name: &str) -> Result<usize, ModelError> {
    runtime::init(loaded.config.onnxruntime.as_deref())?;
    let cfg = loaded
        .model(model_name)
        .ok_or_else(|| ModelError::Runtime(format!("no model named {model_name:?}")))?;
    let mut probe = cfg.clone();
    probe.batch = Some(cfg.batch.unwrap_or(4));
    match Model::load(&probe, 1) {
        Ok(m) => Ok(m.max_batch),
        // A fixed batch dimension.
        Err(ModelError::Mismatch { .. }) => Ok(1),
        Err(e) => Err(e),
    }
}

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
        let now = std::time::SystemTime::now();
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
    fn tallies(&self, _: &str, _: &[crate::publish::Tally], _: std::time::SystemTime) {}
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
    routes.set_models(&only.config.models);
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
    running.stop();
    let cpu = cpu_time() - cpu_before;
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
    Ok(StreamReport {
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
    })
}

/// User + system CPU seconds of this process.
pub fn cpu_time() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// (current RSS, peak RSS) in MiB, from /proc/self/status.
pub fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_samples() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn layouts_cover_one_session_and_one_per_core() {
        assert_eq!(layouts(2), vec![(1, 1), (1, 2), (2, 1)]);
        assert_eq!(layouts(1), vec![(1, 1)]);
    }
}
