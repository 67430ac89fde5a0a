//! Objects and their lifecycle with real parts: the daemon, mosquitto, the
//! real SSD-MobileNetV2, and clips the set-up makes from real photographs:
//! a person crossing the frame (walk.mp4) and still photographs (photos.mp4).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn validator(name: &str) -> jsonschema::Validator {
    let path = repo().join("docs/schema").join(name);
    let schema: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("schema file")).expect("schema JSON");
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config(node: &str, broker: &str, mqtt_extra: &str, streams: &str) -> String {
    format!(
        "node: {node}\nmqtt:\n  url: {broker}\n{mqtt_extra}models:\n  - name: coco\n    path: {}\n    labels: {}\nstreams:\n{streams}",
        model("ssd_mobilenet_v2_coco.onnx").display(),
        model("coco_labels.txt").display(),
    )
}

/// The person walks from the left edge to the right one; the zone is the
/// middle of the frame, the gate its centre line.
fn walk_stream(extra: &str) -> String {
    format!(
        r#"  - name: walk
    source: file://{}
    model: coco
    fps: 5
    labels: [person]
    zones:
      - {{name: middle, polygon: [[0.3, 0], [0.6, 0], [0.6, 1], [0.3, 1]]}}
    lines:
      - {{name: gate, from: [0.5, 0], to: [0.5, 1]}}
{extra}"#,
        media("walk.mp4").display()
    )
}

/// Messages until the stream's status says `stopped` (then a moment more).
fn until_stopped(messages: &crossbeam_channel::Receiver<Msg>, stream: &str) -> Vec<Msg> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut stopped_at: Option<Instant> = None;
    while Instant::now() < deadline
        && stopped_at.is_none_or(|t| t.elapsed() < Duration::from_secs(1))
    {
        if let Ok(m) = messages.recv_timeout(Duration::from_millis(100)) {
            if m.topic.ends_with(&format!("/{stream}/status")) && m.json()["state"] == "stopped" {
                stopped_at = Some(Instant::now());
            }
            out.push(m);
        }
    }
    out
}

fn events(msgs: &[Msg]) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic.ends_with("/events"))
        .map(Msg::json)
        .collect()
}

#[test]
fn a_person_crossing_is_one_object_with_its_zone_its_crossing_and_counts() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/ev/#");
    let mut daemon = Daemon::start(&config("ev", &broker.url(), "", &walk_stream("")), &[]);
    let msgs = until_stopped(&messages, "walk");
    let log = daemon.log_text();
    assert_eq!(daemon.terminate().0, Some(0), "log:\n{log}");

    let event_schema = validator("event.schema.json");
    let evs = events(&msgs);
    for (m, e) in msgs
        .iter()
        .filter(|m| m.topic.ends_with("/events"))
        .zip(&evs)
    {
        assert!(m.payload.len() < 2048, "{} bytes: {e}", m.payload.len());
        if let Err(err) = event_schema.validate(e) {
            panic!("{err}: {e}");
        }
    }
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"new"), "{kinds:?}\nlog:\n{log}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "new").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "end").count(),
        1,
        "{kinds:?}"
    );
    let end = evs.last().expect("events");
    assert_eq!(end["type"], "end");
    assert_eq!(end["end_reason"], "lost", "{end}");
    let id = evs[0]["id"].as_str().expect("id").to_string();
    assert!(evs.iter().all(|e| e["id"] == id.as_str()), "one object");
    let changes: Vec<String> = evs
        .iter()
        .flat_map(|e| e["changes"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().map(String::from))
        .collect();
    // Left to right over from [0.5, 0] to [0.5, 1] is `out` (PRODUCT.md).
    assert_eq!(
        changes,
        ["zone_enter:middle", "line:gate:out", "zone_exit:middle"],
        "{evs:?}"
    );
    assert_eq!(end["entered_zones"], serde_json::json!(["middle"]));

    // Detections of the confirmed object carry its id.
    let tracked = msgs
        .iter()
        .filter(|m| m.topic.ends_with("/walk/detections"))
        .flat_map(|m| m.json()["objects"].as_array().cloned().unwrap_or_default())
        .filter(|o| o["track"] == id.as_str())
        .count();
    assert!(tracked >= 15, "{tracked} detections carry {id}");

    // Counts: 0 at start, 1 while it is there, 0 after.
    let count_schema = validator("count.schema.json");
    let series = |topic: &str| -> Vec<u64> {
        msgs.iter()
            .filter(|m| m.topic == topic)
            .map(|m| {
                let v = m.json();
                if let Err(err) = count_schema.validate(&v) {
                    panic!("{topic}: {err}: {v}");
                }
                v["count"].as_u64().expect("count")
            })
            .collect()
    };
    for topic in [
        "visiond/ev/walk/count/person",
        "visiond/ev/walk/zones/middle/count/person",
    ] {
        let s = series(topic);
        let mut changes = s.clone();
        changes.dedup();
        assert_eq!(changes, [0, 1, 0], "{topic}: {s:?}");
    }
    let line_schema = validator("line.schema.json");
    let line: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic == "visiond/ev/walk/lines/gate/person")
        .map(Msg::json)
        .collect();
    for v in &line {
        assert!(line_schema.validate(v).is_ok(), "{v}");
    }
    let last = line.last().expect("line counts");
    assert_eq!(
        (last["in"].as_u64(), last["out"].as_u64()),
        (Some(0), Some(1))
    );
}

/// Still photographs, three seconds each: every object keeps one identity
/// for as long as it is shown (no end and new while it stands there).
#[test]
fn objects_in_still_photographs_keep_one_identity_while_shown() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/still/#");
    let stream = format!(
        "  - name: photos\n    source: file://{}\n    model: coco\n    fps: 5\n",
        media("photos.mp4").display()
    );
    let mut daemon = Daemon::start(&config("still", &broker.url(), "", &stream), &[]);
    let msgs = until_stopped(&messages, "photos");
    let log = daemon.log_text();
    assert_eq!(daemon.terminate().0, Some(0), "log:\n{log}");
    let evs = events(&msgs);
    let mut news: BTreeMap<String, usize> = BTreeMap::new();
    for e in evs.iter().filter(|e| e["type"] == "new") {
        *news
            .entry(e["label"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    for label in ["cat", "cup", "person"] {
        assert_eq!(news.get(label), Some(&1), "{news:?}\n{evs:?}");
    }
    // Each detection of those labels belongs to its one object.
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in msgs.iter().filter(|m| m.topic.ends_with("/detections")) {
        for o in m.json()["objects"].as_array().cloned().unwrap_or_default() {
            if let Some(t) = o["track"].as_str() {
                ids.entry(o["label"].as_str().unwrap_or("").into())
                    .or_default()
                    .insert(t.into());
            }
        }
    }
    for label in ["cat", "cup", "person"] {
        assert_eq!(ids.get(label).map(BTreeSet::len), Some(1), "{ids:?}");
    }
}

/// The broker is down while the person crosses: the events wait in the
/// spool and arrive, all of them and in order, once it is back.
#[test]
fn events_survive_a_broker_outage() {
    let mut broker = Mosquitto::start_with(PERSISTENT);
    let messages = subscribe_session(broker.port, "visiond/out/walk/events", "sub-events");
    saved(&broker);
    broker.kill();
    let spool = tempfile::tempdir().expect("tempdir");
    let extra = format!("  spool: {}\n", spool.path().join("spool").display());
    let mut daemon = Daemon::start(&config("out", &broker.url(), &extra, &walk_stream("")), &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !daemon.log_text().contains("end of file") {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.restart();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !got.iter().any(|e: &Value| e["type"] == "end") {
        if let Ok(m) = messages.recv_timeout(Duration::from_millis(200)) {
            got.push(m.json());
        }
    }
    let log = daemon.log_text();
    assert_eq!(daemon.terminate().0, Some(0), "log:\n{log}");
    // At least once: a resent message may come twice.
    got.dedup();
    let kinds: Vec<&str> = got.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"new"), "{kinds:?}\nlog:\n{log}");
    assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
    assert_eq!(kinds.len(), 5, "new, 3 updates, end: {kinds:?}");
}
