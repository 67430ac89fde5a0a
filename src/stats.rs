//! A stream's counters, in a file of their own: its source, the inlet and
//! inference write them; the status, the health check, `/metrics` and
//! the page read them.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::clock::epoch_ms;
use crate::status::{StreamState, StreamStatus};

/// Counters of one stream, shared by its source and the inference stage.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Decoded frames that reached the fps gate.
    pub frames_in: AtomicU64,
    /// Frames the fps gate let through to analysis.
    pub frames_kept: AtomicU64,
    /// Frames left out by the fps setting (by design, not a loss).
    pub frames_skipped: AtomicU64,
    /// Kept frames replaced by a newer one because inference was busy.
    pub frames_dropped: AtomicU64,
    /// Frames the model analysed and published.
    pub frames_analysed: AtomicU64,
    /// Frames the model failed on.
    pub frames_failed: AtomicU64,
    /// Frames whose analysis panicked (also counted as failed).
    pub inference_panics: AtomicU64,
    /// Source (re)connections.
    pub sessions: AtomicU64,
    /// Analysed frames by what the model was asked (the motion stage's
    /// look): the whole frame, regions of it, nothing (no motion).
    pub looked_whole: AtomicU64,
    pub looked_regions: AtomicU64,
    pub looked_none: AtomicU64,
    /// Regions analysed, each one model input.
    pub regions: AtomicU64,
    /// Model inputs run for the stream: whole frames and regions.
    pub model_inputs: AtomicU64,
    /// Time in the motion stage, µs.
    pub motion_us: AtomicU64,
    /// The current state and since when (ms since the Unix epoch), for
    /// people: the `since` of a status.
    pub state: Mutex<Option<(StreamState, u64)>>,
    /// The current state and since when on the supervisor's clock
    /// (monotonic), for the health check: a wall clock stepped by NTP (a
    /// board without a real-time clock boots in the past) must not turn a
    /// stream unhealthy at once, or keep a dead one healthy.
    pub state_at: Mutex<Option<(StreamState, Instant)>>,
    /// Time in the model per analysed frame: the run's time, each frame of
    /// a batch counting it once.
    pub inference: Histogram,
    /// The detect switch is off: the fps gate lets no frame through (they
    /// count as skipped), the source keeps running so resuming is instant.
    pub paused: Arc<AtomicBool>,
}

/// Upper bounds, in ms, of the inference-latency histogram's buckets.
pub const LATENCY_BUCKETS_MS: [f64; 9] = [5.0, 10.0, 20.0, 35.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// A fixed-bucket histogram of milliseconds (Prometheus style: cumulative
/// when read, plain counts when written).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, ms: f64) {
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add((ms * 1000.0) as u64, Relaxed);
    }

    /// Cumulative counts per bucket (the last is +Inf), and the sum in ms.
    pub fn read(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                total += c.load(Relaxed);
                total
            })
            .collect();
        (cumulative, self.sum_us.load(Relaxed) as f64 / 1000.0)
    }
}

impl StreamStats {
    /// Records a new state: its date for people, and `at` on the
    /// supervisor's monotonic clock for the health check.
    pub fn set_state(&self, status: &StreamStatus, at: Instant) {
        if let Ok(mut st) = self.state.lock() {
            *st = Some((status.state, epoch_ms(status.since)));
        }
        if let Ok(mut st) = self.state_at.lock() {
            *st = Some((status.state, at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_a_sum() {
        let h = Histogram::default();
        assert_eq!(h.read(), (vec![0; LATENCY_BUCKETS_MS.len() + 1], 0.0));
        // On a bound counts in that bucket; past the last, in +Inf.
        for ms in [1.0, 5.0, 5.001, 35.0, 1000.0, 1500.0] {
            h.observe(ms);
        }
        let (counts, sum) = h.read();
        assert_eq!(counts, vec![2, 3, 3, 4, 4, 4, 4, 4, 5, 6]);
        assert!((sum - 2546.001).abs() < 1e-9, "{sum}");
        // Nonsense times land in +Inf and add nothing to the sum.
        h.observe(f64::NAN);
        h.observe(-3.0);
        let (counts, sum2) = h.read();
        assert_eq!(counts.last(), Some(&8));
        assert_eq!(counts[0], 3);
        assert_eq!(sum2, sum);
    }
}
