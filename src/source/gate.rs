//! The fps gate: which decoded frames go on to analysis.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// Keeps at most `fps` frames a second, counted in stream time (the
/// buffers' timestamps): on a 30 fps source `fps: 5` keeps every sixth frame.
/// `phase` (0 to 1) shifts which frame of each interval is kept.
///
/// Time is cut into slots of one interval and the first frame of a slot is
/// kept: a regular source gets exactly `fps` on average, even when its rate
/// is not a multiple (20 of 30 fps alternates gaps of one and two frames).
/// Timestamps come from the source and may be anything: the arithmetic
/// saturates, and two kept frames are never less than about half an
/// interval apart, so irregular timestamps cannot hand the model a burst.
#[derive(Debug)]
pub struct FpsGate {
    interval_ns: Option<u64>,
    offset_ns: u64,
    /// The last kept slot; `NO_SLOT` before the first frame. Atomic so the
    /// gate needs no lock on the streaming thread (its only caller: the two
    /// atomics need not change together).
    last_slot: AtomicU64,
    /// The timestamp of the last kept frame.
    last_kept: AtomicU64,
}

const NO_SLOT: u64 = u64::MAX;

/// A millisecond of slack absorbs timestamp rounding (6 x 33.333 ms is
/// 199.999998 ms, which must count as 200 ms).
const SLACK_NS: u64 = 1_000_000;

impl FpsGate {
    /// `fps` that is not a positive number (never from a checked config)
    /// keeps every frame.
    pub fn new(fps: Option<f64>, phase: f64) -> Self {
        let interval_ns = fps
            .filter(|f| f.is_finite() && *f > 0.0)
            // `as` saturates: a rate too low for u64 nanoseconds is u64::MAX.
            .map(|f| ((1e9 / f).round() as u64).max(1));
        let phase = if phase.is_nan() {
            0.0
        } else {
            phase.clamp(0.0, 1.0)
        };
        Self {
            interval_ns,
            offset_ns: interval_ns.map_or(0, |i| (phase * i as f64) as u64),
            last_slot: AtomicU64::new(NO_SLOT),
            last_kept: AtomicU64::new(0),
        }
    }

    /// The gate's interval in ns, `None` when it keeps every frame.
    pub fn interval_ns(&self) -> Option<u64> {
        self.interval_ns
    }

    pub fn keep(&self, pts_ns: Option<u64>) -> bool {
        let (Some(interval), Some(pts)) = (self.interval_ns, pts_ns) else {
            return true;
        };
        // Saturates near u64::MAX (every later frame shares the last slot)
        // and never reaches the NO_SLOT sentinel.
        let slot_of = |t: u64| {
            (t.saturating_add(self.offset_ns).saturating_add(SLACK_NS) / interval).min(NO_SLOT - 1)
        };
        let slot = slot_of(pts);
        match self.last_slot.load(Relaxed) {
            last if last == NO_SLOT || slot.saturating_add(1) < last => {
                // The first frame, or a timestamp going backwards (a new
                // segment: a seek or a loop). It passes at once, mid-slot, so
                // the next slot may start sooner than an interval on: skip
                // it then, or the rate would be broken at the start.
                self.last_slot.store(
                    slot_of(pts.saturating_add(interval - interval / 20)),
                    Relaxed,
                );
                self.last_kept.store(pts, Relaxed);
                true
            }
            last if slot <= last => false,
            _ => {
                // Regular sources never come this close (their kept frames
                // are at least half an interval apart, less rounding);
                // irregular timestamps would pass a frame at the end of one
                // slot and the next at the start of the following one.
                let min_gap = interval / 2 - interval / 50;
                let gap = pts.checked_sub(self.last_kept.load(Relaxed));
                if gap.is_none_or(|g| g < min_gap) {
                    return false;
                }
                self.last_slot.store(slot, Relaxed);
                self.last_kept.store(pts, Relaxed);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::source::fps_phase;

    /// Property-test cases: `PROPTEST_CASES`, or a default that keeps
    /// `cargo test` fast.
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(default)
    }

    #[test]
    fn fps_gate_keeps_every_sixth_frame_of_30fps_at_5() {
        let gate = FpsGate::new(Some(5.0), 0.0);
        let frame_ns = 1_000_000_000u64 / 30;
        let kept: Vec<u64> = (0..60)
            .filter(|i| gate.keep(Some(i * frame_ns + i / 7)))
            .collect();
        assert_eq!(kept, vec![0, 6, 12, 18, 24, 30, 36, 42, 48, 54]);
    }

    #[test]
    fn fps_gate_passes_everything_without_fps_or_pts() {
        let gate = FpsGate::new(None, 0.0);
        assert!((0..10).all(|i| gate.keep(Some(i))));
        let gate = FpsGate::new(Some(1.0), 0.0);
        assert!(gate.keep(None) && gate.keep(None));
    }

    #[test]
    fn fps_gate_restarts_when_time_jumps_back() {
        let gate = FpsGate::new(Some(1.0), 0.0);
        assert!(gate.keep(Some(10_000_000_000)));
        assert!(!gate.keep(Some(10_500_000_000)));
        assert!(gate.keep(Some(0)));
        assert!(gate.keep(Some(1_000_000_000)));
    }

    #[test]
    fn fps_phase_shifts_the_kept_frames_and_keeps_the_rate() {
        let frame_ns = 1_000_000_000u64 / 30;
        let kept = |phase| {
            let gate = FpsGate::new(Some(5.0), phase);
            (0..60)
                .filter(|i| gate.keep(Some(i * frame_ns)))
                .collect::<Vec<u64>>()
        };
        // The first frame always passes; then every sixth, three frames on,
        // never sooner than an interval after the first.
        assert_eq!(kept(0.5), vec![0, 9, 15, 21, 27, 33, 39, 45, 51, 57]);
        assert_eq!(kept(0.0), vec![0, 6, 12, 18, 24, 30, 36, 42, 48, 54]);
    }

    #[test]
    fn fps_gate_never_keeps_frames_closer_than_the_interval() {
        let frame_ns = 1_000_000_000u64 / 30;
        for start in [0, 14_190_325, 5 * frame_ns + 7] {
            for phase in (0..8).map(fps_phase) {
                let gate = FpsGate::new(Some(5.0), phase);
                let kept: Vec<u64> = (0..90)
                    .map(|i| start + i * frame_ns)
                    .filter(|pts| gate.keep(Some(*pts)))
                    .collect();
                assert!(
                    kept.windows(2).all(|w| w[1] - w[0] >= 190_000_000),
                    "start {start}, phase {phase}: {kept:?}"
                );
                assert!(kept.len() >= 14, "{kept:?}");
            }
        }
    }

    #[test]
    fn fps_gate_survives_the_end_of_time() {
        // A hostile or broken source: timestamps at the top of u64.
        let gate = FpsGate::new(Some(5.0), 1.0);
        assert!(gate.keep(Some(u64::MAX - 10)));
        assert!(!gate.keep(Some(u64::MAX)));
        assert!(!gate.keep(Some(u64::MAX)));
        // Absurd rates keep every frame or one per eon, without a panic.
        for fps in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e300] {
            let gate = FpsGate::new(Some(fps), f64::NAN);
            for pts in [0, 1, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
                gate.keep(Some(pts));
            }
        }
    }

    #[test]
    fn irregular_timestamps_never_pass_a_burst() {
        // One frame at the end of a slot, the next at the start of the
        // following one: a millisecond apart, both in new slots.
        let gate = FpsGate::new(Some(5.0), 0.0);
        assert!(gate.keep(Some(0)));
        assert!(gate.keep(Some(398_000_000)));
        assert!(!gate.keep(Some(399_500_000)));
        assert!(gate.keep(Some(600_000_000)));
    }

    /// Timestamps that only go forward (saturating at the top of u64).
    fn forward(start: u64, steps: &[u64]) -> Vec<u64> {
        steps
            .iter()
            .scan(start, |t, s| {
                *t = t.saturating_add(*s);
                Some(*t)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(256)))]

        #[test]
        fn the_gate_never_panics(
            fps in prop_oneof![any::<f64>(), 0.01f64..1000.0],
            phase in any::<f64>(),
            pts in proptest::collection::vec(any::<Option<u64>>(), 0..64),
        ) {
            let gate = FpsGate::new(Some(fps), phase);
            for p in pts {
                gate.keep(p);
            }
        }

        #[test]
        fn forward_timestamps_keep_one_frame_a_slot_never_a_burst(
            fps in 0.01f64..2000.0,
            phase in 0.0f64..=1.0,
            start in prop_oneof![any::<u64>(), u64::MAX - 1_000_000_000..=u64::MAX, 0..1_000_000_000u64],
            steps in proptest::collection::vec(
                prop_oneof![0..2_000_000u64, 0..200_000_000u64, 0..20_000_000_000u64],
                1..200,
            ),
        ) {
            let gate = FpsGate::new(Some(fps), phase);
            let Some(i) = gate.interval_ns() else { unreachable!("fps is positive") };
            let kept: Vec<u64> = forward(start, &steps)
                .into_iter()
                .filter(|t| gate.keep(Some(*t)))
                .collect();
            let i = u128::from(i);
            for (j, w) in kept.windows(2).enumerate() {
                let gap = u128::from(w[1] - w[0]);
                // The first frame passes mid-slot: the next one is an
                // interval on (less 5 %); later ones never a burst.
                let least = if j == 0 { i - i / 20 } else { i / 2 - i / 50 };
                prop_assert!(gap >= least, "gap {gap} < {least} at {j}: {kept:?}");
            }
            // One frame a slot: k + 1 kept frames span more than k - 1 intervals.
            for k in 2..kept.len().min(12) {
                for w in kept.windows(k + 1) {
                    let span = u128::from(w[k] - w[0]);
                    prop_assert!(span > (k as u128 - 1) * i, "{k} frames in {span} ns");
                }
            }
        }

        #[test]
        fn a_regular_source_keeps_fps_frames_a_second(
            source_fps in 1u32..=120,
            ratio in 1.0f64..12.0,
            phase in 0.0f64..=1.0,
            start in 0..1u64 << 62,
        ) {
            let fps = f64::from(source_fps) / ratio;
            let gate = FpsGate::new(Some(fps), phase);
            let frames = (f64::from(source_fps) * 30.0) as u64;
            let kept: Vec<u64> = (0..frames)
                .filter(|k| {
                    let pts = start + (*k as f64 * 1e9 / f64::from(source_fps)).round() as u64;
                    gate.keep(Some(pts))
                })
                .collect();
            // 30 s at `fps`, give or take the first and last interval.
            let expected = 30.0 * fps;
            prop_assert!(
                (kept.len() as f64 - expected).abs() <= 2.0,
                "{} kept, {expected} expected",
                kept.len()
            );
        }

        #[test]
        fn a_multiple_of_fps_keeps_every_nth_frame(
            fps in 1u32..=30,
            n in 1u32..=8,
            phase in 0.0f64..=1.0,
            start in 0..1u64 << 62,
        ) {
            let source = fps * n;
            let gate = FpsGate::new(Some(f64::from(fps)), phase);
            let kept: Vec<u64> = (0..u64::from(source) * 10)
                .filter(|k| {
                    let pts = start + (*k as f64 * 1e9 / f64::from(source)).round() as u64;
                    gate.keep(Some(pts))
                })
                .collect();
            // After the first (phase-shifted) gap, every n-th frame: never
            // closer than an interval, less rounding.
            for w in kept.windows(2).skip(1) {
                prop_assert_eq!(w[1] - w[0], u64::from(n), "{:?}", kept);
            }
            prop_assert!(kept.get(1).is_none_or(|k| *k >= u64::from(n)), "{:?}", kept);
        }
    }
}
