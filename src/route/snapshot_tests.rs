//! Snapshots on a route with the real tracker in front of them, frames in
//! simulated time, and a recorder behind it.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::frame::{BBox, Detection, FrameMeta, FullView, RgbFull};
use crate::tracking::Tally;
use crate::tracking::{Event, EventKind, TrackSettings, TrackSpec};

#[derive(Default)]
struct Sent(Mutex<Vec<(String, String, Vec<u8>)>>, Mutex<Option<String>>);

impl Publish for Sent {
    /// Keeps the latest track ID.
    fn analysis(&self, a: &Analysis) {
        if let Output::Detections(d) = &a.output
            && let Some(id) = d.iter().find_map(|d| d.track.as_ref())
        {
            *locked(&self.1) = Some(id.to_string());
        }
    }
    fn status(&self, _: &str, _: &StreamStatus) {}
    fn removed(&self, _: &str) {}
    fn events(&self, _: &str, _: &str, _: &[Event]) {}
    fn tallies(&self, _: &str, _: &[Tally], _: SystemTime) {}
    fn snapshot(&self, stream: &str, label: &str, jpeg: &[u8]) {
        locked(&self.0).push((stream.into(), label.into(), jpeg.to_vec()));
    }
}

/// A 1280x720 frame: dark, with a bright block where the person is.
fn full(x: f32) -> FullView {
    let (w, h) = (1280u32, 720u32);
    let mut px = vec![30u8; (w * h * 3) as usize];
    let x0 = (x * w as f32) as u32;
    for y in 216..648 {
        for xx in x0..(x0 + 128).min(w) {
            let i = ((y * w + xx) * 3) as usize;
            px[i..i + 3].copy_from_slice(&[200, 120, 80]);
        }
    }
    RgbFull::new(w, h, px).view()
}

fn analysis(seq: u64, x: f32, score: f32) -> Analysis {
    Analysis {
        meta: FrameMeta {
            stream: "cam".into(),
            session: "s1".into(),
            seq,
            pts_ns: Some(seq * 200_000_000),
            captured_at: UNIX_EPOCH + Duration::from_millis(1_000_000 + seq * 200),
            delivered: std::time::Instant::now(),
            source_width: 1280,
            source_height: 720,
            full: Some(full(x)),
            sight: Default::default(),
        },
        model: "coco".into(),
        output: Output::Detections(vec![Detection {
            label: "person".into(),
            label_id: 0,
            score,
            bbox: BBox {
                x,
                y: 0.3,
                w: 0.1,
                h: 0.6,
            },
            track: None,
            sub_label: None,
            held: false,
        }]),
        inference_ms: 1.0,
    }
}

fn stages() -> (Arc<Routes>, Arc<Routes>, Arc<Sent>) {
    let sent = Arc::new(Sent::default());
    let routes = Arc::new(Routes::new(sent.clone()));
    routes.track(
        "cam",
        TrackSpec {
            settings: TrackSettings::default(),
            geometry: Geometry::default(),
            min_score: 0.5,
            labels: vec!["person".into()],
        },
        Vec::new(),
    );
    (routes.clone(), routes, sent)
}

#[test]
fn a_walking_person_gets_a_snapshot_at_new_and_better_views_at_most_every_5_s() {
    let (tracking, snaps, sent) = stages();
    // 20 s at 5 fps, walking right, growing surer.
    for seq in 0..100u64 {
        let x = 0.05 + seq as f32 * 0.008;
        tracking.analysis(&analysis(seq, x, 0.55 + seq as f32 * 0.004));
    }
    let sent = locked(&sent.0).clone();
    assert!(
        sent.len() >= 2,
        "the new one and a better one: {}",
        sent.len()
    );
    assert!(
        sent.len() <= 5,
        "at most one per 5 s over 20 s: {}",
        sent.len()
    );
    assert_eq!(
        snaps.counters().sent.load(Ordering::Relaxed),
        sent.len() as u64
    );
    for (stream, label, jpeg) in &sent {
        assert_eq!((stream.as_str(), label.as_str()), ("cam", "person"));
        let mut d = jpeg_decoder::Decoder::new(&jpeg[..]);
        let pixels = d.decode().expect("a JPEG");
        let info = d.info().expect("info");
        assert!(
            info.width.min(info.height) >= 256,
            "{}x{}",
            info.width,
            info.height
        );
        // The person's colour fills a good part of the crop.
        let person = pixels
            .chunks(3)
            .filter(|p| p[0] > 170 && (90..150).contains(&p[1]) && p[2] < 110)
            .count();
        let share = person as f32 / (info.width as f32 * info.height as f32);
        assert!(share > 0.15, "{share}");
    }
    let view = snaps.view("cam").expect("seen");
    assert_eq!(view.open.get("person"), Some(&1));
    assert!(view.has_frame);
    let jpeg = snaps.latest_jpeg("cam").expect("a frame").expect("renders");
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    assert!(snaps.latest_jpeg("nope").is_none());
}

fn update(id: &str, stationary: bool, at: SystemTime) -> Event {
    Event {
        kind: EventKind::Update,
        id: id.into(),
        label: "person".into(),
        label_id: 0,
        score: 0.6,
        top_score: 0.6,
        bbox: BBox {
            x: 0.4,
            y: 0.3,
            w: 0.1,
            h: 0.6,
        },
        start: at,
        last_seen: at,
        frame: 0,
        captured_at: at,
        stationary,
        zones: Vec::new(),
        entered_zones: Vec::new(),
        sub_label: None,
        changes: vec![if stationary {
            crate::tracking::Change::Stationary
        } else {
            crate::tracking::Change::Moving
        }],
        lines: Vec::new(),
    }
}

#[test]
fn nothing_is_sent_while_the_object_stands_still() {
    let (tracking, snaps, sent) = stages();
    for seq in 0..10u64 {
        tracking.analysis(&analysis(seq, 0.4, 0.6));
    }
    assert_eq!(locked(&sent.0).len(), 1, "its new");
    let id = locked(&sent.1).clone().expect("a track ID");
    let at = UNIX_EPOCH + Duration::from_millis(1_000_000 + 10 * 200);
    snaps.events("cam", &[update(&id, true, at)]);
    // Much surer, long after the interval: still nothing while it stands.
    for seq in 10..60u64 {
        tracking.analysis(&analysis(seq, 0.4, 0.95));
    }
    assert_eq!(locked(&sent.0).len(), 1, "none while stationary");
    snaps.events("cam", &[update(&id, false, at)]);
    tracking.analysis(&analysis(60, 0.4, 0.95));
    assert_eq!(locked(&sent.0).len(), 2, "moving again, a better view");
}
