//! The tracking stage: cost per frame of the tracker with 3 zones and 2
//! lines, at 5, 20 and 50 objects moving (5 fps stream time, score wobble,
//! 10 % of detections missed, a weak clutter box per 5 objects).
//!
//!   cargo bench --bench tracking
//!
//! Goal: under 0.2 ms a frame at 20 objects (release).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use visiond::frame::{BBox, Detection};
use visiond::tracking::{FrameInfo, Geometry, Line, TrackSettings, Tracker, Zone};

struct Rng(u64);

impl Rng {
    /// Uniform in [0, 1).
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

struct Walker {
    label: Arc<str>,
    label_id: u32,
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    w: f32,
    h: f32,
}

fn geometry() -> Geometry {
    let zone = |name: &str, polygon: Vec<[f32; 2]>| Zone {
        name: name.into(),
        polygon,
        labels: None,
    };
    let line = |name: &str, from, to| Line {
        name: name.into(),
        from,
        to,
        labels: None,
    };
    Geometry {
        zones: vec![
            zone(
                "drive",
                vec![[0.1, 0.5], [0.6, 0.5], [0.6, 1.0], [0.1, 1.0]],
            ),
            zone(
                "porch",
                vec![
                    [0.6, 0.3],
                    [0.9, 0.35],
                    [0.95, 0.7],
                    [0.7, 0.8],
                    [0.55, 0.6],
                ],
            ),
            zone(
                "street",
                vec![[0.0, 0.0], [1.0, 0.0], [1.0, 0.3], [0.0, 0.25]],
            ),
        ],
        lines: vec![
            line("gate", [0.5, 0.0], [0.5, 1.0]),
            line("kerb", [0.0, 0.4], [1.0, 0.45]),
        ],
    }
}

/// Mean and 99th percentile µs per frame, and events per frame.
fn run(objects: usize, frames: usize) -> (f64, f64, f64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ objects as u64);
    let labels: [(&str, u32); 3] = [("person", 0), ("car", 2), ("dog", 17)];
    let mut walkers: Vec<Walker> = (0..objects)
        .map(|i| {
            let (label, label_id) = labels[i % 3];
            let (w, h) = if label == "car" {
                (0.12, 0.08)
            } else {
                (0.05, 0.15)
            };
            Walker {
                label: label.into(),
                label_id,
                x: rng.next() * (1.0 - w),
                y: rng.next() * (1.0 - h),
                vx: (rng.next() - 0.5) * 0.3,
                vy: (rng.next() - 0.5) * 0.2,
                w,
                h,
            }
        })
        .collect();
    let mut tracker = Tracker::new(TrackSettings::default(), geometry(), "bench");
    let base = SystemTime::now();
    let mut times = Vec::with_capacity(frames);
    let mut events = 0usize;
    let mut dets = Vec::with_capacity(objects + objects / 5 + 1);
    for f in 0..frames {
        dets.clear();
        for w in &mut walkers {
            w.x += w.vx * 0.2;
            w.y += w.vy * 0.2;
            if w.x < 0.0 || w.x + w.w > 1.0 {
                w.vx = -w.vx;
            }
            if w.y < 0.0 || w.y + w.h > 1.0 {
                w.vy = -w.vy;
            }
            if rng.next() < 0.1 {
                continue;
            }
            let j = 0.004;
            dets.push(Detection {
                label: w.label.clone(),
                label_id: w.label_id,
                score: 0.35 + 0.6 * rng.next(),
                bbox: BBox {
                    x: w.x + j * (rng.next() - 0.5),
                    y: w.y + j * (rng.next() - 0.5),
                    w: w.w,
                    h: w.h,
                },
                track: None,
                sub_label: None,
                held: false,
            });
        }
        for _ in 0..objects / 5 {
            dets.push(Detection {
                label: "person".into(),
                label_id: 0,
                score: 0.2 + 0.2 * rng.next(),
                bbox: BBox {
                    x: rng.next() * 0.9,
                    y: rng.next() * 0.9,
                    w: 0.05,
                    h: 0.1,
                },
                track: None,
                sub_label: None,
                held: false,
            });
        }
        let pts = f as u64 * 200_000_000;
        let info = FrameInfo {
            pts_ns: Some(pts),
            captured_at: base + Duration::from_nanos(pts),
            frame: f as u64,
        };
        let start = Instant::now();
        let out = tracker.update(&info, black_box(&dets));
        if out.counts_changed {
            black_box(tracker.counts());
        }
        times.push(start.elapsed());
        events += out.events.len();
    }
    // The first seconds fill the tracker; measure the steady state.
    let mut steady: Vec<f64> = times[frames / 10..]
        .iter()
        .map(|d| d.as_secs_f64() * 1e6)
        .collect();
    let mean = steady.iter().sum::<f64>() / steady.len() as f64;
    steady.sort_by(f64::total_cmp);
    let p99 = steady[steady.len() * 99 / 100];
    (mean, p99, events as f64 / frames as f64)
}

fn main() {
    let frames = 5_000;
    println!("tracker + 3 zones + 2 lines, {frames} frames at 5 fps each");
    println!(
        "{:>8} {:>12} {:>12} {:>14}",
        "objects", "mean µs", "p99 µs", "events/frame"
    );
    for objects in [5, 20, 50] {
        let (mean, p99, events) = run(objects, frames);
        println!("{objects:>8} {mean:>12.1} {p99:>12.1} {events:>14.2}");
    }
}
