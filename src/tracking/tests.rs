//! Scenario tests on synthetic tracks (5 fps unless said otherwise).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::frame::{BBox, Detection};

pub(super) fn det(label: &str, score: f32, x: f32, y: f32, w: f32, h: f32) -> Detection {
    Detection {
        label: Arc::from(label),
        label_id: match label {
            "person" => 0,
            "car" => 2,
            "truck" => 7,
            _ => 99,
        },
        score,
        bbox: BBox { x, y, w, h },
        track: None,
        sub_label: None,
        held: false,
    }
}

/// A person box of 0.08 x 0.3 whose anchor (bottom centre) is at (ax, ay).
pub(super) fn person_at(score: f32, ax: f32, ay: f32) -> Detection {
    det("person", score, ax - 0.04, ay - 0.3, 0.08, 0.3)
}

/// Deterministic noise in [-1, 1).
pub(super) struct Noise(pub u64);

impl Noise {
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f32) -> bool {
        (self.next() + 1.0) / 2.0 < p
    }
}

pub(super) struct Sim {
    pub t: Tracker,
    pub frame: u64,
    pub pts: u64,
    pub base: SystemTime,
    pub events: Vec<Event>,
}

impl Sim {
    pub fn new(geometry: Geometry) -> Sim {
        Sim {
            t: Tracker::new(TrackSettings::default(), geometry, "drive-5f2c"),
            frame: 0,
            pts: 0,
            base: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            events: Vec::new(),
        }
    }

    pub fn info(&self) -> FrameInfo {
        FrameInfo {
            pts_ns: Some(self.pts),
            captured_at: self.base + Duration::from_nanos(self.pts),
            frame: self.frame,
        }
    }

    /// One frame `dt` seconds after the previous one.
    pub fn step(&mut self, dt: f64, dets: &[Detection]) -> FrameOutput {
        self.step_in(dt, dets, &crate::frame::Look::Whole)
    }

    /// One frame the model saw only through `look` (of a 1000x1000 frame).
    pub fn step_in(
        &mut self,
        dt: f64,
        dets: &[Detection],
        look: &crate::frame::Look,
    ) -> FrameOutput {
        if self.frame > 0 || self.pts > 0 {
            self.pts += (dt * 1e9).round() as u64;
        }
        let out = self.t.update_in(&self.info(), dets, look, (1000, 1000));
        self.frame += 1;
        self.events.extend(out.events.iter().cloned());
        check_lifecycle(&self.events);
        out
    }

    pub fn of(&self, kind: &str) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.type_str() == kind)
            .collect()
    }

    pub fn changes(&self) -> Vec<String> {
        self.events
            .iter()
            .flat_map(|e| e.changes.iter().map(|c| c.to_string()))
            .collect()
    }
}

/// Per id: one `new` first, `update`s with changes, at most one `end` last.
pub(super) fn check_lifecycle(events: &[Event]) {
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 open, 2 ended
    for e in events {
        let s = state.get(&*e.id).copied();
        match e.kind {
            EventKind::New => {
                assert_eq!(s, None, "second new for {}", e.id);
                assert!(e.changes.is_empty());
                state.insert(&e.id, 1);
            }
            EventKind::Update => {
                assert_eq!(s, Some(1), "update for {} outside its life", e.id);
                assert!(!e.changes.is_empty(), "update without changes: {e:?}");
            }
            EventKind::End { .. } => {
                assert_eq!(s, Some(1), "end for {} outside its life", e.id);
                state.insert(&e.id, 2);
            }
        }
        assert!(e.id.starts_with("drive-5f2c-"), "{}", e.id);
    }
}

pub(super) fn gate() -> Line {
    Line {
        name: "gate".into(),
        from: [0.5, 0.0],
        to: [0.5, 1.0],
        labels: None,
    }
}

pub(super) fn square_zone(name: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> Zone {
    Zone {
        name: name.into(),
        polygon: vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
        labels: None,
    }
}

#[test]
fn a_walker_is_confirmed_after_confirm_s_and_two_frames() {
    let mut sim = Sim::new(Geometry::default());
    let out = sim.step(0.2, &[person_at(0.9, 0.2, 0.8)]);
    assert_eq!(out.track_of, vec![None]);
    sim.step(0.2, &[person_at(0.9, 0.22, 0.8)]);
    assert!(sim.events.is_empty());
    let out = sim.step(0.2, &[person_at(0.9, 0.24, 0.8)]);
    assert_eq!(sim.of("new").len(), 1, "{:?}", sim.events);
    assert_eq!(out.track_of[0].as_deref(), Some("drive-5f2c-1"));
    assert!(out.counts_changed);
    assert_eq!(sim.t.counts().objects.get("person"), Some(&1));
}

#[test]
fn two_people_crossing_keep_their_ids() {
    let mut sim = Sim::new(Geometry::default());
    let (mut a_id, mut b_id) = (None, None);
    for i in 0..40 {
        let t = i as f32 * 0.2;
        let (ax, bx) = (0.1 + 0.1 * t, 0.9 - 0.1 * t);
        let a = person_at(0.85, ax, 0.70);
        let b = person_at(0.8, bx, 0.72);
        // B is hidden behind A for two frames where they meet.
        let hidden = (ax - bx).abs() < 0.05;
        let dets = if hidden { vec![a] } else { vec![a, b] };
        let out = sim.step(0.2, &dets);
        if let Some(id) = &out.track_of[0] {
            assert_eq!(
                a_id.get_or_insert(id.clone()),
                id,
                "A switched at frame {i}"
            );
        }
        if let Some(Some(id)) = out.track_of.get(1).filter(|_| !hidden) {
            assert_eq!(
                b_id.get_or_insert(id.clone()),
                id,
                "B switched at frame {i}"
            );
        }
    }
    assert!(a_id.is_some() && b_id.is_some() && a_id != b_id);
    assert_eq!(sim.of("new").len(), 2);
    assert!(sim.of("end").is_empty());
}

#[test]
fn an_occlusion_of_one_second_keeps_the_id() {
    let mut sim = Sim::new(Geometry::default());
    let mut ids = Vec::new();
    for i in 0..40 {
        let x = 0.1 + 0.03 * i as f32; // 0.15 a second
        let dets = if (15..20).contains(&i) {
            vec![]
        } else {
            vec![person_at(0.8, x, 0.8)]
        };
        let out = sim.step(0.2, &dets);
        if let Some(Some(id)) = out.track_of.first() {
            ids.push(id.clone());
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(sim.of("new").len(), 1);
    assert!(sim.of("end").is_empty());
}

#[test]
fn a_one_second_jump_at_low_fps_still_associates_a_walker() {
    let mut sim = Sim::new(Geometry::default());
    let mut x = 0.1;
    for _ in 0..8 {
        sim.step(0.2, &[person_at(0.8, x, 0.8)]);
        x += 0.03;
    }
    // The next frame comes a second later; the walker went on at 0.15/s.
    x += 0.15 - 0.03;
    for _ in 0..4 {
        let out = sim.step(1.0, &[person_at(0.8, x, 0.8)]);
        assert_eq!(out.track_of[0].as_deref(), Some("drive-5f2c-1"));
        x += 0.15;
    }
    assert_eq!(sim.of("new").len(), 1);
    assert!(sim.of("end").is_empty());
}

#[test]
fn a_parked_car_with_flickering_scores_and_misses_is_one_quiet_object() {
    let mut sim = Sim::new(Geometry {
        zones: vec![square_zone("drive", 0.2, 0.4, 0.7, 0.9)],
        lines: vec![],
    });
    let mut n = Noise(0x5eed);
    let mut frames_missed = 0;
    for i in 0..1500 {
        // Five minutes: about a third of frames missed, and from 1 min on,
        // five-second blackouts (dusk, a van passing) every minute.
        let blackout = i >= 300 && i % 300 < 25;
        let missed = blackout || n.chance(0.3);
        frames_missed += missed as u32;
        let dets = if missed {
            vec![]
        } else {
            let j = 0.003;
            let score = 0.5 + 0.25 * n.next(); // 0.25 - 0.75
            vec![det(
                "car",
                score,
                0.3 + j * n.next(),
                0.5 + j * n.next(),
                0.2 + j * n.next(),
                0.12 + j * n.next(),
            )]
        };
        sim.step(0.2, &dets);
    }
    assert!(frames_missed > 500);
    assert_eq!(sim.of("new").len(), 1, "{:?}", sim.events);
    assert!(sim.of("end").is_empty(), "{:?}", sim.of("end"));
    assert_eq!(sim.changes(), ["stationary"]);
    // The new already said it is in the zone.
    assert_eq!(sim.of("new")[0].zones.len(), 1);
    // It drives away: one `moving`, then it is gone.
    for i in 0..10 {
        let x = 0.3 + 0.05 * i as f32;
        sim.step(0.2, &[det("car", 0.7, x, 0.5, 0.2, 0.12)]);
    }
    for _ in 0..15 {
        sim.step(0.2, &[]);
    }
    assert_eq!(sim.changes(), ["stationary", "moving", "zone_exit:drive"]);
    assert_eq!(sim.of("end").len(), 1);
    assert_eq!(sim.of("end")[0].end_reason(), Some(EndReason::Lost));
}

#[test]
fn a_car_truck_flicker_is_one_object_and_a_real_change_one_label_update() {
    let mut sim = Sim::new(Geometry::default());
    let mut n = Noise(42);
    let frame = |sim: &mut Sim, label: &str, n: &mut Noise| {
        let j = 0.003;
        let car = det(label, 0.7, 0.4 + j * n.next(), 0.5, 0.2, 0.12);
        // SSD's second box for the same vehicle, now and then.
        let dup = det("truck", 0.55, 0.402, 0.501, 0.2, 0.12);
        let dets = if n.chance(0.2) {
            vec![car, dup]
        } else {
            vec![car]
        };
        sim.step(0.2, &dets);
    };
    // 30 s of car/truck alternating, 30 s of 30 % truck.
    for i in 0..150 {
        frame(&mut sim, if i % 2 == 0 { "car" } else { "truck" }, &mut n);
    }
    for _ in 0..150 {
        let label = if n.chance(0.3) { "truck" } else { "car" };
        frame(&mut sim, label, &mut n);
    }
    assert_eq!(sim.of("new").len(), 1);
    assert!(
        !sim.changes().contains(&"label".to_string()),
        "{:?}",
        sim.changes()
    );
    // Now it really is read as a truck (90 %).
    for _ in 0..50 {
        let label = if n.chance(0.9) { "truck" } else { "car" };
        frame(&mut sim, label, &mut n);
    }
    let labels: Vec<&Event> = sim
        .events
        .iter()
        .filter(|e| e.changes.contains(&Change::Label))
        .collect();
    assert_eq!(labels.len(), 1, "{:?}", sim.changes());
    assert_eq!(&*labels[0].label, "truck");
    assert_eq!(labels[0].label_id, 7);
    assert_eq!(sim.of("new").len(), 1);
    assert_eq!(sim.t.counts().objects.get("truck"), Some(&1));
    assert_eq!(sim.t.counts().objects.get("car"), Some(&0));
}

#[test]
fn a_duplicate_detection_at_birth_starts_one_track() {
    let mut sim = Sim::new(Geometry::default());
    for i in 0..10 {
        let x = 0.2 + 0.02 * i as f32;
        let out = sim.step(
            0.2,
            &[
                person_at(0.9, x, 0.8),
                det("person", 0.7, x - 0.035, 0.505, 0.075, 0.29),
                det("car", 0.8, 0.6, 0.2, 0.2, 0.1),
                det("truck", 0.6, 0.605, 0.2, 0.2, 0.1),
            ],
        );
        if i >= 2 {
            assert!(out.track_of[0].is_some() && out.track_of[1].is_none());
            assert!(out.track_of[2].is_some() && out.track_of[3].is_none());
        }
    }
    assert_eq!(sim.of("new").len(), 2, "{:?}", sim.events);
}

#[test]
fn low_scores_carry_a_track_but_never_start_one() {
    let mut sim = Sim::new(Geometry::default());
    for i in 0..20 {
        sim.step(0.2, &[person_at(0.35, 0.1 + 0.01 * i as f32, 0.8)]);
    }
    assert!(sim.events.is_empty());
    for i in 0..5 {
        sim.step(0.2, &[person_at(0.8, 0.5 + 0.01 * i as f32, 0.5)]);
    }
    // Weak for 5 s, longer than lost_s: carried, not lost.
    for i in 5..30 {
        let out = sim.step(0.2, &[person_at(0.3, 0.5 + 0.01 * i as f32, 0.5)]);
        assert!(out.track_of[0].is_some());
    }
    assert_eq!(sim.of("new").len(), 1);
    assert!(sim.of("end").is_empty());
}

#[test]
fn end_all_ends_every_open_object_once() {
    let mut sim = Sim::new(Geometry {
        zones: vec![square_zone("z", 0.0, 0.0, 1.0, 1.0)],
        lines: vec![],
    });
    for i in 0..5 {
        let x = 0.1 + 0.01 * i as f32;
        let mut dets = vec![
            person_at(0.9, x, 0.5),
            person_at(0.9, x + 0.3, 0.5),
            person_at(0.9, x + 0.6, 0.5),
        ];
        if i == 4 {
            dets.push(person_at(0.9, 0.5, 0.95)); // tentative
        }
        sim.step(0.2, &dets);
    }
    assert_eq!(sim.of("new").len(), 3);
    let at = sim.base + Duration::from_secs(10);
    let ends = sim.t.end_all(EndReason::StreamStopped, at);
    assert_eq!(ends.len(), 3);
    for e in &ends {
        assert_eq!(e.end_reason(), Some(EndReason::StreamStopped));
        assert_eq!(e.end(), Some(at));
        assert_eq!(e.frame, 4);
    }
    sim.events.extend(ends);
    check_lifecycle(&sim.events);
    assert!(sim.t.end_all(EndReason::Shutdown, at).is_empty());
    let c = sim.t.counts();
    assert_eq!(c.objects.get("person"), Some(&0));
    assert_eq!(c.zones["z"].get("person"), Some(&0));
    // It goes on with new IDs.
    for _ in 0..3 {
        sim.step(0.2, &[person_at(0.9, 0.5, 0.5)]);
    }
    assert_eq!(&*sim.of("new")[3].id, "drive-5f2c-4");
}

#[test]
fn a_lost_object_ends_after_lost_s_with_its_last_sighting() {
    let mut sim = Sim::new(Geometry::default());
    for i in 0..5 {
        sim.step(0.2, &[person_at(0.9, 0.2 + 0.03 * i as f32, 0.5)]);
    }
    let seen = sim.info().captured_at;
    for _ in 0..9 {
        sim.step(0.2, &[]);
    }
    assert!(sim.of("end").is_empty());
    let out = sim.step(0.2, &[]); // 2.0 s unseen
    assert!(out.counts_changed);
    let end = sim.of("end");
    assert_eq!(end.len(), 1);
    assert_eq!(end[0].end(), Some(seen));
    assert_eq!(end[0].last_seen, seen);
    assert_eq!(end[0].frame, 14);
    assert_eq!(sim.t.counts().objects.get("person"), Some(&0));
}

/// Motion looked elsewhere, or nowhere: the object is held (no `end`, its
/// count stays, it is listed as held); where the model looks and misses
/// it, it ages as before.
#[test]
fn an_object_the_model_was_not_asked_about_is_held_not_lost() {
    use crate::frame::{Crop, Look};
    let mut sim = Sim::new(Geometry::default());
    for _ in 0..5 {
        sim.step(0.2, &[person_at(0.9, 0.2, 0.5)]);
    }
    let elsewhere = Look::Regions(vec![Crop {
        x: 600,
        y: 0,
        width: 300,
        height: 300,
    }]);
    // A minute of frames looked at elsewhere or not at all.
    for i in 0..300 {
        let look = if i % 2 == 0 {
            &elsewhere
        } else {
            &Look::Nothing
        };
        sim.step_in(0.2, &[], look);
        let held = sim.t.held();
        assert_eq!(held.len(), 1, "frame {i}");
        assert!(held[0].held && held[0].track.is_some());
    }
    assert!(sim.of("end").is_empty());
    assert_eq!(sim.t.counts().objects.get("person"), Some(&1));
    // Looked at and not there: it ends once its lost time has passed.
    sim.step(0.2, &[]);
    assert!(sim.t.held().is_empty(), "looked at: not held");
    assert!(
        sim.of("end").len() == 1,
        "unseen for a minute, looked at: lost"
    );
    assert_eq!(sim.t.counts().objects.get("person"), Some(&0));
}

/// Someone walking out of the frame: the prediction past the edge counts
/// at the edge, where the gate's region is, so the object ends in its lost
/// time, not at the next whole frame.
#[test]
fn an_object_walking_out_ends_in_its_lost_time_under_regions() {
    use crate::frame::{Crop, Look};
    let mut sim = Sim::new(Geometry::default());
    for i in 0..10 {
        sim.step(0.2, &[person_at(0.9, 0.6 + 0.04 * i as f32, 0.5)]);
    }
    let lookout = sim.t.lookout();
    assert_eq!(lookout.moving.len(), 1);
    let b = lookout.moving[0];
    assert!(b.x + b.w <= 1.0 && b.x + b.w > 0.99, "at the edge: {b:?}");
    let edge = Look::Regions(vec![Crop {
        x: 700,
        y: 200,
        width: 300,
        height: 300,
    }]);
    for _ in 0..10 {
        sim.step_in(0.2, &[], &edge);
    }
    assert_eq!(sim.of("end").len(), 1, "ended after 2 s unseen");
}

#[test]
fn counts_change_only_when_they_do() {
    let mut sim = Sim::new(Geometry {
        zones: vec![square_zone("z", 0.5, 0.0, 1.0, 1.0)],
        lines: vec![],
    });
    assert!(!sim.step(0.2, &[]).counts_changed);
    let mut changed = Vec::new();
    for i in 0..20 {
        let out = sim.step(0.2, &[person_at(0.9, 0.3 + 0.02 * i as f32, 0.5)]);
        changed.push(out.counts_changed);
    }
    for _ in 0..12 {
        changed.push(sim.step(0.2, &[]).counts_changed);
    }
    // Confirmed, in the zone, ended: three snapshots, the zeros kept.
    let at: Vec<usize> = (0..changed.len()).filter(|&i| changed[i]).collect();
    assert_eq!(at.len(), 3, "{at:?}");
    let c = sim.t.counts();
    assert_eq!(c.objects.get("person"), Some(&0));
    assert_eq!(c.zones["z"].get("person"), Some(&0));
}

#[test]
fn a_min_score_under_low_score_tracks_what_the_stream_keeps() {
    let s = TrackSettings {
        high_score: 0.1,
        ..TrackSettings::default()
    };
    let mut t = Tracker::new(s, Geometry::default(), "drive-5f2c");
    let mut events = Vec::new();
    for f in 0..5u64 {
        let info = FrameInfo {
            pts_ns: Some(f * 200_000_000),
            captured_at: SystemTime::UNIX_EPOCH,
            frame: f,
        };
        events.extend(t.update(&info, &[person_at(0.15, 0.5, 0.5)]).events);
    }
    assert_eq!(events.len(), 1);
}

#[test]
fn a_car_driving_past_a_parked_one_takes_neither_its_id_nor_its_rest() {
    let mut sim = Sim::new(Geometry::default());
    let parked = det("car", 0.8, 0.4, 0.5, 0.2, 0.12);
    for _ in 0..75 {
        sim.step(0.2, std::slice::from_ref(&parked));
    }
    let (mut parked_id, mut driver_id) = (None, None);
    for i in 0..25 {
        let x = -0.1 + 0.05 * i as f32;
        let driver = det("car", 0.8, x.max(0.0), 0.52, 0.22, 0.13);
        // The parked car is hidden while the other one is in front of it.
        let hidden = (x - 0.4).abs() < 0.15;
        let dets = if hidden {
            vec![driver]
        } else {
            vec![driver, parked.clone()]
        };
        let out = sim.step(0.2, &dets);
        if let Some(id) = &out.track_of[0] {
            assert_eq!(driver_id.get_or_insert(id.clone()), id, "frame {i}");
        }
        if let Some(Some(id)) = out.track_of.get(1) {
            assert_eq!(parked_id.get_or_insert(id.clone()), id, "frame {i}");
        }
    }
    assert_ne!(parked_id, driver_id);
    assert_eq!(parked_id.as_deref(), Some("drive-5f2c-1"));
    assert_eq!(sim.of("new").len(), 2);
    assert_eq!(sim.changes(), ["stationary"]);
}
