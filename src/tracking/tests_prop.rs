//! Whatever comes in, the tracker neither panics nor breaks the lifecycle.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::tests::{Noise, check_lifecycle, det};
use super::*;
use crate::frame::{BBox, Detection};

#[derive(Debug, Clone)]
enum Clock {
    Forward(u64),
    Back(u64),
    Max,
    Zero,
    NoPts(i64),
}

fn clock() -> impl Strategy<Value = Clock> {
    prop_oneof![
        8 => (0u64..1_500).prop_map(Clock::Forward),
        1 => (0u64..5_000).prop_map(Clock::Back),
        1 => Just(Clock::Max),
        1 => Just(Clock::Zero),
        1 => (-3_000i64..3_000).prop_map(Clock::NoPts),
    ]
}

fn coord() -> impl Strategy<Value = f32> {
    prop_oneof![
        // Through integers: proptest's own f32 range sampler panicked here
        // once in a few hundred runs.
        6 => (-200i32..1200).prop_map(|v| v as f32 / 1000.0),
        1 => proptest::num::f32::ANY,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(-1e30f32),
    ]
}

fn detection() -> impl Strategy<Value = Detection> {
    let label = prop_oneof![
        Just("person"),
        Just("car"),
        Just("truck"),
        Just("bus"),
        Just("dog"),
        Just("")
    ];
    (
        label,
        any::<u32>(),
        coord(),
        coord(),
        coord(),
        coord(),
        coord(),
    )
        .prop_map(|(label, label_id, score, x, y, w, h)| Detection {
            label: Arc::from(label),
            label_id,
            score,
            bbox: BBox { x, y, w, h },
            track: None,
            sub_label: None,
            held: false,
        })
}

/// Frames that move a few objects around (so tracks live, cross and end)
/// plus arbitrary junk.
fn frames() -> impl Strategy<Value = Vec<(Clock, Vec<Detection>, u8)>> {
    proptest::collection::vec(
        (
            clock(),
            proptest::collection::vec(detection(), 0..12),
            any::<u8>(),
        ),
        1..80,
    )
}

fn geometry() -> Geometry {
    let zone = |name: &str, polygon: Vec<Point>| Zone {
        name: name.into(),
        polygon,
        labels: None,
    };
    Geometry {
        zones: vec![
            zone("a", vec![[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]),
            zone("b", vec![[0.3, 0.0], [1.0, 0.0], [0.6, 0.9]]),
            // Invalid on purpose: the tracker must cope.
            zone("c", vec![[f32::NAN, 0.0], [1.0, f32::INFINITY]]),
        ],
        lines: vec![
            Line {
                name: "gate".into(),
                from: [0.5, 0.0],
                to: [0.5, 1.0],
                labels: Some(vec!["person".into()]),
            },
            Line {
                name: "dot".into(),
                from: [0.2, 0.2],
                to: [0.2, 0.2],
                labels: None,
            },
        ],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_keeps_the_lifecycle(frames in frames()) {
        let mut t = Tracker::new(TrackSettings::default(), geometry(), "drive-5f2c");
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (mut pts, mut wall) = (0u64, 0i64);
        let mut events = Vec::new();
        let mut n = Noise(1);
        for (i, (c, mut dets, walkers)) in frames.into_iter().enumerate() {
            let pts_ns = match c {
                Clock::Forward(ms) => { pts = pts.saturating_add(ms * 1_000_000); Some(pts) }
                Clock::Back(ms) => { pts = pts.saturating_sub(ms * 1_000_000); Some(pts) }
                Clock::Max => { pts = u64::MAX; Some(pts) }
                Clock::Zero => { pts = 0; Some(0) }
                Clock::NoPts(ms) => { wall += ms; None }
            };
            wall += 200;
            let captured_at = if wall >= 0 {
                base + Duration::from_millis(wall as u64)
            } else {
                base - Duration::from_millis(wall.unsigned_abs())
            };
            // Some real walkers so that tracks get confirmed and cross things.
            for k in 0..(walkers % 5) {
                let x = (i as f32 * 0.03 + k as f32 * 0.2) % 1.0;
                dets.push(det("person", 0.6 + 0.3 * n.next(), x, 0.3 + 0.1 * k as f32, 0.08, 0.3));
            }
            let info = FrameInfo { pts_ns, captured_at, frame: i as u64 };
            let out = t.update(&info, &dets);
            prop_assert_eq!(out.track_of.len(), dets.len());
            events.extend(out.events);
            check_lifecycle(&events);
            let _ = t.counts();
        }
        events.extend(t.end_all(EndReason::Shutdown, base));
        check_lifecycle(&events);
        prop_assert!(t.end_all(EndReason::Shutdown, base).is_empty());
    }

    #[test]
    fn validate_never_panics(points in proptest::collection::vec((coord(), coord()), 0..8)) {
        let polygon: Vec<Point> = points.iter().map(|&(x, y)| [x, y]).collect();
        let g = Geometry {
            zones: vec![Zone { name: "z".into(), polygon: polygon.clone(), labels: None }],
            lines: vec![],
        };
        let _ = validate(&g);
        let mut t = Tracker::new(TrackSettings::default(), g, "x");
        t.update(&FrameInfo { pts_ns: Some(0), captured_at: SystemTime::UNIX_EPOCH, frame: 0 }, &[]);
    }
}

#[test]
fn a_huge_frame_is_capped_not_a_panic() {
    let mut t = Tracker::new(TrackSettings::default(), geometry(), "drive-5f2c");
    let mut n = Noise(3);
    let mut events = Vec::new();
    for f in 0..5u64 {
        let dets: Vec<Detection> = (0..20_000)
            .map(|_| {
                let (x, y) = ((n.next() + 1.0) / 2.0, (n.next() + 1.0) / 2.0);
                det("person", 0.9, x, y, 0.05, 0.1)
            })
            .collect();
        let info = FrameInfo {
            pts_ns: Some(f * 200_000_000),
            captured_at: SystemTime::UNIX_EPOCH,
            frame: f,
        };
        let out = t.update(&info, &dets);
        assert_eq!(out.track_of.len(), dets.len());
        events.extend(out.events);
    }
    check_lifecycle(&events);
    assert!(t.counts().objects["person"] <= 256);
}

#[test]
fn odd_settings_do_not_panic() {
    let s = TrackSettings {
        confirm_s: f64::NAN,
        lost_s: -1.0,
        stationary_lost_s: f64::INFINITY,
        label_window: 0,
        label_switch: f32::NAN,
        zone_frames: 0,
        moving_frames: 0,
        max_detections: 0,
        ..TrackSettings::default()
    };
    let mut t = Tracker::new(s, geometry(), "");
    for f in 0..20u64 {
        let info = FrameInfo {
            pts_ns: Some(f * 200_000_000),
            captured_at: SystemTime::UNIX_EPOCH,
            frame: f,
        };
        t.update(&info, &[det("person", 0.9, 0.4, 0.4, 0.1, 0.3)]);
    }
}
