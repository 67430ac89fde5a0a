//! What every part of the validation shares: the bounds, the range check,
//! the nearest-name hint, the rule for names.

use std::fmt::Display;

// Bounds. Each is far beyond any sensible setting and short of where a value
// breaks something (an overflow, a division by zero, a busy loop, memory a
// device does not have), so a typo is caught before it runs.

/// Analysed frames per second: no camera delivers more; the fps gate
/// divides by it, so 1e12 makes a period of zero and 0 divides by zero.
pub(super) const MAX_FPS: f64 = 1000.0;
/// Frames per run: each waits for the run; past 64 latency and memory grow
/// with no throughput gain on edge devices (docs/BENCHMARKS.md).
pub(super) const MAX_BATCH: usize = 64;
/// Sessions (each holds the model) and intra-op threads: more than 256 is
/// more than the cores of any edge device, and each costs memory.
pub(super) const MAX_WORKERS: usize = 256;
pub(super) const MAX_THREADS: usize = 256;
/// Classifier calls per object: each costs a classification.
pub(super) const MAX_ATTEMPTS: u32 = 100;
/// Classes published per frame: ImageNet has 1000.
pub(super) const MAX_TOP_K: usize = 1000;
/// MQTT's keep-alive is a 16-bit number of seconds; 0 would turn pings off
/// and the link's timeout (3 keep-alives) with them.
pub(super) const MAX_KEEP_ALIVE: u64 = u16::MAX as u64;
/// MQTT 5's message expiry interval is a 32-bit number of seconds.
pub(super) const MAX_EXPIRY: u64 = u32::MAX as u64;
/// The spool in MiB: 1 TiB is more disk than an edge device has.
pub(super) const MAX_SPOOL_MB: u64 = 1 << 20;
/// /healthz grace in seconds: a day; beyond it the check never fails (and
/// an Instant plus u64::MAX seconds panics).
pub(super) const MAX_GRACE: u64 = 86_400;
/// Software decoder threads (0: one per core).
pub(super) const MAX_DECODER_THREADS: u32 = 256;
/// RTSP jitter buffer: a minute of delay is no live view any more.
pub(super) const MAX_LATENCY_MS: u32 = 60_000;
/// Capture sizes up to 8K, rates up to what cameras offer.
pub(super) const MAX_CAPTURE_SIDE: u32 = 8192;
pub(super) const MAX_FRAMERATE: u32 = 1000;

/// `name` must be within `lo..=hi`; NaN is not.
pub(super) fn within<T: PartialOrd + Display>(
    problems: &mut Vec<(String, String)>,
    path: String,
    name: &str,
    value: Option<T>,
    lo: T,
    hi: T,
) {
    if let Some(v) = value
        && !(v >= lo && v <= hi)
    {
        problems.push((path, format!("{name} must be from {lo} to {hi}, not {v}")));
    }
}

/// `; did you mean "x"?` for the closest of `known`, or nothing.
pub(super) fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| {
            (
                strsim::jaro_winkler(&k.to_lowercase(), &name.to_lowercase()),
                k,
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.7)
        .map(|(_, k)| format!("; did you mean {k:?}?"))
        .unwrap_or_default()
}

pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
