//! Scenario tests of zones and lines: hysteresis, crossings, labels,
//! reloads, one event per step.

use std::collections::HashMap;
use std::sync::Arc;

use super::tests::{Noise, Sim, det, gate, person_at, square_zone};
use super::*;

#[test]
fn an_anchor_jittering_on_a_zone_edge_never_flaps() {
    // The zone's top edge at y = 0.5; a person stands on it for a minute.
    let mut sim = Sim::new(Geometry {
        zones: vec![square_zone("yard", 0.1, 0.5, 0.9, 1.0)],
        lines: vec![],
    });
    let mut n = Noise(7);
    for _ in 0..300 {
        // Jitter of 4 % of the box height (0.3).
        let y = 0.5 + 0.012 * n.next();
        sim.step(
            0.2,
            &[person_at(
                0.5 + 0.3 * n.next().abs(),
                0.5 + 0.003 * n.next(),
                y,
            )],
        );
    }
    assert_eq!(sim.of("new").len(), 1);
    let zone_changes: Vec<String> = sim
        .changes()
        .into_iter()
        .filter(|c| c.starts_with("zone"))
        .collect();
    assert!(zone_changes.is_empty(), "{zone_changes:?}");
    // Then it walks in: one enter, and it is counted there.
    for i in 0..10 {
        sim.step(0.2, &[person_at(0.8, 0.5, 0.52 + 0.03 * i as f32)]);
    }
    assert_eq!(
        sim.changes()
            .iter()
            .filter(|c| *c == "zone_enter:yard")
            .count(),
        1
    );
    assert_eq!(sim.t.counts().zones["yard"].get("person"), Some(&1));
}

#[test]
fn an_anchor_jittering_on_a_line_crosses_once() {
    let mut sim = Sim::new(Geometry {
        zones: vec![],
        lines: vec![gate()],
    });
    let mut n = Noise(99);
    // Walks from the right up to the line, dithers on it for 10 s, goes on.
    for i in 0..10 {
        sim.step(0.2, &[person_at(0.8, 0.75 - 0.025 * i as f32, 0.8)]);
    }
    for _ in 0..50 {
        sim.step(0.2, &[person_at(0.8, 0.5 + 0.012 * n.next(), 0.8)]);
    }
    for i in 0..10 {
        sim.step(0.2, &[person_at(0.8, 0.48 - 0.025 * i as f32, 0.8)]);
    }
    // Standing 10 s on the line it also became stationary, then moved.
    let lines: Vec<String> = sim
        .changes()
        .into_iter()
        .filter(|c| c.starts_with("line"))
        .collect();
    assert_eq!(lines, ["line:gate:in"]);
    let c = sim.t.counts();
    assert_eq!(c.lines["gate"]["person"], LineCount { r#in: 1, out: 0 });
}

#[test]
fn real_crossings_count_in_each_direction_once() {
    let mut sim = Sim::new(Geometry {
        zones: vec![],
        lines: vec![gate()],
    });
    // PRODUCT.md: from [0.5, 0] to [0.5, 1], right half to left half is `in`.
    for i in 0..20 {
        let t = i as f32 * 0.2;
        sim.step(
            0.2,
            &[
                person_at(0.8, 0.8 - 0.15 * t, 0.5),
                person_at(0.8, 0.2 + 0.15 * t, 0.9),
            ],
        );
    }
    let news = sim.of("new");
    assert_eq!(news.len(), 2);
    let mut by_id: HashMap<&str, Vec<String>> = HashMap::new();
    for e in &sim.events {
        for c in &e.changes {
            by_id.entry(&e.id).or_default().push(c.to_string());
        }
    }
    assert_eq!(by_id[&*news[0].id], ["line:gate:in"]);
    assert_eq!(by_id[&*news[1].id], ["line:gate:out"]);
    let last = sim.events.last().unwrap();
    assert_eq!(last.lines.len(), 1);
    assert_eq!(
        sim.t.counts().lines["gate"]["person"],
        LineCount { r#in: 1, out: 1 }
    );
}

#[test]
fn passing_beyond_the_end_of_a_line_is_no_crossing() {
    let short = Line {
        to: [0.5, 0.4],
        ..gate()
    };
    let mut sim = Sim::new(Geometry {
        zones: vec![],
        lines: vec![short],
    });
    for i in 0..20 {
        sim.step(0.2, &[person_at(0.8, 0.8 - 0.03 * i as f32, 0.8)]);
    }
    assert_eq!(sim.of("new").len(), 1);
    assert!(sim.changes().is_empty(), "{:?}", sim.changes());
}

#[test]
fn one_event_per_step_with_every_change_of_the_frame() {
    // A zone whose edge is the line: the walker enters and crosses together.
    let mut sim = Sim::new(Geometry {
        zones: vec![square_zone("left", 0.0, 0.0, 0.5, 1.0)],
        lines: vec![gate()],
    });
    for i in 0..20 {
        sim.step(0.2, &[person_at(0.8, 0.8 - 0.03 * i as f32, 0.8)]);
    }
    let updates = sim.of("update");
    assert_eq!(updates.len(), 2, "{:?}", sim.changes());
    assert_eq!(sim.changes(), ["line:gate:in", "zone_enter:left"]);
    let last = sim.events.last().unwrap();
    assert_eq!(last.entered_zones, [Arc::<str>::from("left")]);
    assert_eq!(&*last.zones[0].zone, "left");
    assert!(last.zones[0].seconds >= 0.0);
    // Nothing more while it walks on inside the zone.
    let n = sim.events.len();
    for i in 0..10 {
        sim.step(0.2, &[person_at(0.8, 0.2 - 0.01 * i as f32, 0.8)]);
    }
    assert_eq!(sim.events.len(), n);
}

#[test]
fn set_geometry_keeps_the_tracks() {
    let mut sim = Sim::new(Geometry {
        zones: vec![square_zone("a", 0.0, 0.0, 1.0, 1.0)],
        lines: vec![gate()],
    });
    for i in 0..10 {
        sim.step(0.2, &[person_at(0.8, 0.7 - 0.03 * i as f32, 0.6)]);
    }
    assert_eq!(sim.t.counts().lines["gate"]["person"].r#in, 1);
    sim.t.set_geometry(Geometry {
        zones: vec![
            square_zone("a", 0.0, 0.0, 1.0, 1.0),
            square_zone("b", 0.0, 0.0, 0.5, 1.0),
        ],
        lines: vec![gate()],
    });
    for _ in 0..5 {
        sim.step(0.2, &[person_at(0.8, 0.4, 0.6)]);
    }
    assert_eq!(sim.of("new").len(), 1);
    assert!(sim.of("end").is_empty());
    // Kept: its state in `a` (no second enter) and the line totals.
    assert_eq!(sim.changes(), ["line:gate:in", "zone_enter:b"]);
    assert_eq!(sim.t.counts().lines["gate"]["person"].r#in, 1);
    assert_eq!(sim.t.counts().zones["b"]["person"], 1);
}

#[test]
fn zone_labels_limit_who_is_in_it() {
    let mut z = square_zone("drive", 0.0, 0.0, 1.0, 1.0);
    z.labels = Some(vec!["car".into()]);
    let mut sim = Sim::new(Geometry {
        zones: vec![z],
        lines: vec![],
    });
    for i in 0..10 {
        let x = 0.1 + 0.01 * i as f32;
        sim.step(
            0.2,
            &[person_at(0.9, x, 0.5), det("car", 0.9, 0.6, 0.2, 0.2, 0.1)],
        );
    }
    let c = sim.t.counts();
    assert_eq!(c.zones["drive"].get("car"), Some(&1));
    assert_eq!(c.zones["drive"].get("person"), None);
    let news = sim.of("new");
    assert!(
        news.iter()
            .any(|e| &*e.label == "person" && e.zones.is_empty())
    );
    assert!(
        news.iter()
            .any(|e| &*e.label == "car" && e.zones.len() == 1)
    );
}
