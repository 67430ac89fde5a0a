use std::time::{Duration, SystemTime};

use super::*;
use crate::frame::{BBox, Detection, FrameMeta};
use crate::tracking::Tally;
use crate::tracking::{Event, Line, TrackSettings, Zone};

/// Everything the stage hands on, in order.
#[derive(Default)]
struct Seen(Mutex<Vec<Out>>);

#[derive(Debug, Clone)]
enum Out {
    Analysis(Vec<Detection>),
    Event(String, String, Option<&'static str>),
    Tally(Tally),
    Status(StreamState),
}

impl Publish for Seen {
    fn analysis(&self, a: &Analysis) {
        if let Output::Detections(d) = &a.output {
            locked(&self.0).push(Out::Analysis(d.clone()));
        }
    }
    fn status(&self, _: &str, s: &StreamStatus) {
        locked(&self.0).push(Out::Status(s.state));
    }
    fn events(&self, _: &str, _: &str, events: &[Event]) {
        for e in events {
            let reason = e.end_reason().map(|r| r.as_str());
            locked(&self.0).push(Out::Event(e.type_str().into(), e.id.to_string(), reason));
        }
    }
    fn tallies(&self, _: &str, t: &[Tally], _: SystemTime) {
        locked(&self.0).extend(t.iter().cloned().map(Out::Tally));
    }
    fn removed(&self, _: &str) {}
    fn snapshot(&self, _: &str, _: &str, _: &[u8]) {}
}

impl Seen {
    fn take(&self) -> Vec<Out> {
        std::mem::take(&mut *locked(&self.0))
    }
}

fn spec() -> TrackSpec {
    TrackSpec {
        settings: TrackSettings::default(),
        geometry: Geometry {
            zones: vec![Zone {
                name: "right".into(),
                polygon: vec![[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]],
                labels: None,
            }],
            lines: vec![Line {
                name: "gate".into(),
                from: [0.5, 0.0],
                to: [0.5, 1.0],
                labels: Some(vec!["person".into()]),
            }],
        },
        min_score: 0.5,
        labels: vec!["person".into()],
    }
}

fn person(x: f32, score: f32) -> Detection {
    Detection {
        label: "person".into(),
        label_id: 0,
        score,
        bbox: BBox {
            x,
            y: 0.3,
            w: 0.2,
            h: 0.6,
        },
        track: None,
        sub_label: None,
        held: false,
    }
}

fn frame(session: &str, seq: u64, dets: Vec<Detection>) -> Analysis {
    Analysis {
        meta: FrameMeta {
            stream: "cam".into(),
            session: session.into(),
            seq,
            pts_ns: Some(seq * 200_000_000),
            captured_at: SystemTime::UNIX_EPOCH + Duration::from_millis(seq * 200),
            delivered: std::time::Instant::now(),
            source_width: 1280,
            source_height: 720,
            full: None,
            sight: Default::default(),
        },
        model: "coco".into(),
        output: Output::Detections(dets),
        inference_ms: 1.0,
    }
}

fn events(out: &[Out]) -> Vec<(String, Option<&'static str>)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Event(kind, _, reason) => Some((kind.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn count(out: &[Out], zone: Option<&str>) -> Vec<u32> {
    out.iter()
        .filter_map(|o| match (o, zone) {
            (Out::Tally(Tally::Objects { count, .. }), None) => Some(*count),
            (Out::Tally(Tally::Zone { zone: z, count, .. }), Some(w)) if &**z == w => Some(*count),
            _ => None,
        })
        .collect()
}

/// A person walks from the left edge to the right one and the stream stops:
/// one `new`, a zone entry and a line crossing in between, one `end`, the
/// counts 0 -> 1 -> 0, detections marked with the object's ID.
#[test]
fn a_person_crossing_then_the_stream_stopping() {
    let seen = Arc::new(Seen::default());
    let stage = Routes::new(seen.clone());
    stage.track("cam", spec(), Vec::new());
    stage.status(
        "cam",
        StreamStatus::new(StreamState::Starting, std::time::SystemTime::now()),
    );
    for i in 0..30u64 {
        let x = 0.05 + 0.025 * i as f32;
        stage.analysis(&frame("s1", i, vec![person(x, 0.9)]));
    }
    stage.status(
        "cam",
        StreamStatus::new(StreamState::Stopped, std::time::SystemTime::now()),
    );
    let out = seen.take();
    let ev = events(&out);
    assert_eq!(ev.first().map(|e| e.0.as_str()), Some("new"), "{ev:?}");
    assert_eq!(ev.iter().filter(|e| e.0 == "new").count(), 1, "{ev:?}");
    assert_eq!(
        ev.last(),
        Some(&("end".to_string(), Some("stream_stopped"))),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| e.0 == "update"),
        "zone entry and crossing: {ev:?}"
    );
    let objects = count(&out, None);
    assert_eq!(objects.first(), Some(&0), "zero at start: {objects:?}");
    assert!(objects.contains(&1), "{objects:?}");
    assert_eq!(objects.last(), Some(&0), "zero at stop: {objects:?}");
    let zone = count(&out, Some("right"));
    assert!(zone.contains(&1) && zone.last() == Some(&0), "{zone:?}");
    let lines: Vec<(u64, u64)> = out
        .iter()
        .filter_map(|o| match o {
            Out::Tally(Tally::Line { into, out, .. }) => Some((*into, *out)),
            _ => None,
        })
        .collect();
    // Left to right over from [0.5, 0] to [0.5, 1] is `out`.
    assert_eq!(lines.last(), Some(&(0, 1)), "{lines:?}");
    let id = out.iter().find_map(|o| match o {
        Out::Event(k, id, _) if k == "new" => Some(id.clone()),
        _ => None,
    });
    let marked = out.iter().any(
        |o| matches!(o, Out::Analysis(d) if d.iter().any(|d| d.track.as_deref() == id.as_deref())),
    );
    assert!(marked, "detections carry the event's id");
}

#[test]
fn weak_detections_carry_the_object_but_are_not_published() {
    let seen = Arc::new(Seen::default());
    let stage = Routes::new(seen.clone());
    stage.track("cam", spec(), Vec::new());
    for i in 0..10u64 {
        let score = if i >= 5 { 0.3 } else { 0.9 };
        stage.analysis(&frame("s1", i, vec![person(0.1, score)]));
    }
    let out = seen.take();
    let published: Vec<usize> = out
        .iter()
        .filter_map(|o| match o {
            Out::Analysis(d) => Some(d.len()),
            _ => None,
        })
        .collect();
    assert_eq!(published, [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
    assert!(!events(&out).iter().any(|e| e.0 == "end"), "{out:?}");
}

#[test]
fn a_new_session_ends_the_old_objects_and_line_counts_add_up() {
    let seen = Arc::new(Seen::default());
    let stage = Routes::new(seen.clone());
    stage.track("cam", spec(), Vec::new());
    let cross = |session: &str, stage: &Routes| {
        for i in 0..30u64 {
            stage.analysis(&frame(
                session,
                i,
                vec![person(0.05 + 0.025 * i as f32, 0.9)],
            ));
        }
    };
    cross("s1", &stage);
    cross("s2", &stage);
    let out = seen.take();
    let ev = events(&out);
    assert_eq!(ev.iter().filter(|e| e.0 == "new").count(), 2, "{ev:?}");
    assert!(
        ev.contains(&("end".to_string(), Some("stream_stopped"))),
        "{ev:?}"
    );
    let last_line = out.iter().rev().find_map(|o| match o {
        Out::Tally(Tally::Line { into, out, .. }) => Some((*into, *out)),
        _ => None,
    });
    assert_eq!(last_line, Some((0, 2)), "since the daemon started");
}

#[test]
fn at_shutdown_objects_end_with_shutdown_once() {
    let seen = Arc::new(Seen::default());
    let stage = Routes::new(seen.clone());
    stage.track("cam", spec(), Vec::new());
    for i in 0..5u64 {
        stage.analysis(&frame("s1", i, vec![person(0.2, 0.9)]));
    }
    stage.shutting_down();
    stage.status(
        "cam",
        StreamStatus::new(StreamState::Stopped, std::time::SystemTime::now()),
    );
    stage.finish(SystemTime::now());
    let ev = events(&seen.take());
    let ends: Vec<_> = ev.iter().filter(|e| e.0 == "end").collect();
    assert_eq!(ends, [&("end".to_string(), Some("shutdown"))], "{ev:?}");
}

#[test]
fn untracked_streams_and_statuses_pass_through() {
    let seen = Arc::new(Seen::default());
    let stage = Routes::new(seen.clone());
    stage.analysis(&frame("s1", 0, vec![person(0.2, 0.3)]));
    stage.status(
        "cam",
        StreamStatus::new(StreamState::Playing, std::time::SystemTime::now()),
    );
    let out = seen.take();
    assert!(matches!(&out[0], Out::Analysis(d) if d.len() == 1 && d[0].track.is_none()));
    assert!(matches!(out[1], Out::Status(StreamState::Playing)));
}

/// The detect switch off: objects end with `stream_stopped`, counts go to
/// 0; back on in the same session, new objects get ids never used before.
#[test]
fn a_pause_ends_objects_zeroes_counts_and_resuming_keeps_ids_unique() {
    let seen = Arc::new(Seen::default());
    let stage = Routes::new(seen.clone());
    stage.track("cam", spec(), Vec::new());
    for i in 0..5u64 {
        stage.analysis(&frame("s1", i, vec![person(0.2, 0.9)]));
    }
    let before = seen.take();
    assert_eq!(count(&before, None).last(), Some(&1), "one person in view");
    let first_id = before.iter().find_map(|o| match o {
        Out::Event(kind, id, _) if kind == "new" => Some(id.clone()),
        _ => None,
    });
    stage.status(
        "cam",
        StreamStatus::new(StreamState::Paused, std::time::SystemTime::now()),
    );
    let paused = seen.take();
    assert_eq!(
        events(&paused),
        [("end".to_string(), Some("stream_stopped"))]
    );
    assert_eq!(count(&paused, None), [0], "no stale count while paused");
    assert!(matches!(
        paused.last(),
        Some(Out::Status(StreamState::Paused))
    ));
    stage.status(
        "cam",
        StreamStatus::new(StreamState::Playing, std::time::SystemTime::now()),
    );
    for i in 5..10u64 {
        stage.analysis(&frame("s1", i, vec![person(0.2, 0.9)]));
    }
    let after = seen.take();
    let second_id = after.iter().find_map(|o| match o {
        Out::Event(kind, id, _) if kind == "new" => Some(id.clone()),
        _ => None,
    });
    assert!(first_id.is_some() && second_id.is_some(), "{after:?}");
    assert_ne!(
        first_id, second_id,
        "same session, a new object with a new id"
    );
    assert_eq!(count(&after, None).last(), Some(&1));
}

/// The route tells the source's motion gate where to look next: the
/// tracker's objects, moving or still; nothing once the stream stops.
#[test]
fn the_route_feeds_the_trackers_view_back_to_the_motion_gate() {
    let seen = Arc::new(Seen::default());
    let stage = Routes::new(seen.clone());
    stage.track("cam", spec(), Vec::new());
    let feedback = stage.route("cam").feedback();
    assert!(feedback.get().tracking && feedback.get().through.is_none());
    for i in 0..5u64 {
        stage.analysis(&frame("s1", i, vec![person(0.1 + 0.02 * i as f32, 0.9)]));
    }
    let view = feedback.get();
    assert_eq!((view.moving.len(), view.still.len()), (1, 0), "{view:?}");
    assert!((view.moving[0].x - 0.18).abs() < 0.05, "{view:?}");
    stage.status(
        "cam",
        StreamStatus::new(StreamState::Stopped, std::time::SystemTime::now()),
    );
    let stopped = feedback.get();
    assert!(
        stopped.moving.is_empty() && stopped.through.is_none(),
        "nothing after a stop"
    );
    stage.untrack("cam");
    assert_eq!(
        feedback.get(),
        Lookout::default(),
        "nothing to wait for untracked"
    );
}
