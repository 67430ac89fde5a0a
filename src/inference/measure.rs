//! What a model achieves on this device: pure inference (pre-processing,
//! run, decoding) per thread layout and batch. `visiond bench` shows it,
//! `visiond eval` and `pick: auto` choose a variant by it.

use std::time::Instant;

use super::error::ModelError;
use super::model::Model;
use super::spec::ModelSpec;
use crate::frame::Image;

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

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Pure inference (pre-processing, run, decoding) of the model `spec`
/// with `workers` sessions of `threads` intra-op threads each, in parallel,
/// each run taking `batch` frames (at most what the model allows), as the
/// daemon loads them. Latency is per run; the runtime is initialised.
pub fn inference(
    spec: &ModelSpec,
    workers: usize,
    threads: usize,
    batch: usize,
    frames: usize,
) -> Result<InferenceRow, ModelError> {
    let model_name = spec.name.as_str();
    let mut spec = spec.clone();
    if batch > 1 {
        spec.declared.batch = Some(batch);
        spec.settings.batch = batch;
    }
    let (mut models, _) = Model::load_workers(&spec, workers, threads)?;
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
pub fn max_batch(spec: &ModelSpec) -> Result<usize, ModelError> {
    let mut probe = spec.clone();
    let batch = spec.declared.batch.unwrap_or(4);
    probe.declared.batch = Some(batch);
    probe.settings.batch = batch;
    match Model::load(&probe, 1) {
        Ok(m) => Ok(m.max_batch),
        // A fixed batch dimension.
        Err(ModelError::Mismatch { .. }) => Ok(1),
        Err(e) => Err(e),
    }
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
