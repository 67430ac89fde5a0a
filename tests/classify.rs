//! The cascade with real parts: the daemon, mosquitto, the real detector
//! (SSD-MobileNetV2) and classifier (EfficientNet-Lite0), and cat.mp4, a
//! clip the set-up makes from the chelsea photograph: two cats (one
//! mirrored) that come closer for 6 s, then sit still for 13 s.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const CATS: [&str; 5] = [
    "tabby",
    "tiger cat",
    "Persian cat",
    "Siamese cat",
    "Egyptian cat",
];

fn validator(name: &str) -> jsonschema::Validator {
    let path = repo().join("docs/schema").join(name);
    let schema: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("schema file")).expect("schema JSON");
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One stream per rule on the same clip, paced like a camera.
fn config(broker: &str, streams: &[(&str, &str)]) -> String {
    let mut text = format!(
        "node: cl\nmqtt:\n  url: {broker}\nmodels:\n  - name: coco\n    path: {}\n    labels: {}\n  - name: imagenet\n    path: {}\n    labels: {}\nstreams:\n",
        model("ssd_mobilenet_v2_coco.onnx").display(),
        model("coco_labels.txt").display(),
        model("efficientnet_lite0.onnx").display(),
        model("imagenet_labels.txt").display(),
    );
    for (name, rule) in streams {
        text += &format!(
            "  - name: {name}\n    source: file://{}\n    realtime: true\n    model: coco\n    fps: 5\n    labels: [cat]\n    classify:\n      - {rule}\n",
            media("cat.mp4").display()
        );
    }
    text
}

fn events(msgs: &[Msg], stream: &str) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic == format!("visiond/cl/{stream}/events"))
        .map(Msg::json)
        .collect()
}

/// Attempts the daemon logged for the objects of `stream`.
fn attempts(log: &str, stream: &str) -> usize {
    let id = format!("object={stream}-");
    log.lines()
        .filter(|l| l.contains(&id) && (l.contains("classify attempt") || l.contains("classified")))
        .count()
}

#[test]
fn cats_are_named_once_by_their_breed_and_small_or_still_ones_are_not_classified() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/cl/#");
    let cfg = config(
        &broker.url(),
        &[
            ("named", "{labels: [cat], model: imagenet, group: cats}"),
            // Larger than a cat ever is: never classified.
            (
                "small",
                "{labels: [cat], model: imagenet, group: cats, min_size: 1000}",
            ),
            // A class the cats never score: attempts go on while they come
            // closer, and stop when they sit still.
            (
                "unsure",
                "{labels: [cat], model: imagenet, classes: [goldfinch], min_score: 0.9, max_attempts: 100}",
            ),
        ],
    );
    let mut daemon = Daemon::start(&cfg, &[]);
    let mut msgs = Vec::new();
    // Attempts logged when each unsure cat became stationary.
    let mut unsure_at_still = Vec::new();
    let mut stopped = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while stopped.len() < 3 && Instant::now() < deadline {
        let Ok(m) = messages.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if m.topic.ends_with("/status") && m.json()["state"] == "stopped" {
            stopped.insert(m.topic.clone());
        }
        if m.topic == "visiond/cl/unsure/events" && changed(&m.json(), "stationary") {
            // Every attempt of the frames before this one is logged by now.
            unsure_at_still.push(attempts(&daemon.log_text(), "unsure"));
        }
        msgs.push(m);
    }
    let log = daemon.log_text();
    assert_eq!(daemon.terminate().0, Some(0), "log:\n{log}");
    assert_eq!(stopped.len(), 3, "all three streams ended:\n{log}");

    let event_schema = validator("event.schema.json");
    let detections_schema = validator("detections.schema.json");
    for m in &msgs {
        if m.topic.ends_with("/events") {
            let v = m.json();
            assert!(event_schema.is_valid(&v), "{v}");
        } else if m.topic.ends_with("/detections") {
            let v = m.json();
            assert!(detections_schema.is_valid(&v), "{v}");
        }
    }

    // Two cats, each named once by a cat's class; every later event of
    // each keeps its name, and so do its detections.
    let named = events(&msgs, "named");
    let ids: BTreeSet<&str> = named.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 2, "two objects: {named:?}");
    let detections: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic == "visiond/cl/named/detections")
        .flat_map(|m| m.json()["objects"].as_array().cloned().unwrap_or_default())
        .collect();
    let mut kinds = Vec::new();
    for id in &ids {
        let mine: Vec<&Value> = named.iter().filter(|e| e["id"] == *id).collect();
        let at: Vec<usize> = (0..mine.len())
            .filter(|&i| changed(mine[i], "sub_label"))
            .collect();
        assert_eq!(at.len(), 1, "{id} named once: {mine:?}");
        let sub = mine[at[0]]["sub_label"].clone();
        let kind = sub["label"].as_str().expect("a sub_label").to_string();
        assert!(CATS.contains(&kind.as_str()), "{sub}");
        assert!(mine[0].get("sub_label").is_none(), "not named at `new`");
        let after = &mine[at[0]..];
        assert!(after.len() >= 2, "events after the naming: {mine:?}");
        assert!(
            after.iter().all(|e| e["sub_label"] == sub),
            "never flapping"
        );
        let carried = detections
            .iter()
            .filter(|o| o["track"] == **id && o["sub_label"] == sub)
            .count();
        assert!(carried >= 10, "{carried} detections of {id} carry {sub}");
        kinds.push(format!("{kind} ({})", sub["score"]));
    }
    // EfficientNet-Lite0's top class for the chelsea photograph (the
    // set-up's check) is Egyptian cat; the crops say the same of one cat
    // at least.
    assert!(
        kinds.iter().any(|k| k.starts_with("Egyptian cat")),
        "{kinds:?}"
    );
    // The latest sub-label per detector label, retained for dashboards:
    // once per object.
    let latest: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic == "visiond/cl/named/sub_label/cat")
        .map(Msg::json)
        .collect();
    assert_eq!(latest.len(), 2, "once per object: {latest:?}");
    for l in &latest {
        assert!(validator("sub_label.schema.json").is_valid(l), "{l}");
        assert!(ids.contains(l["id"].as_str().unwrap_or("")), "{l}");
    }
    let calls = attempts(&log, "named");
    assert!(
        (4..=10).contains(&calls),
        "{calls} classifier calls for two cats"
    );

    // Too small for its rule: never classified, never named.
    assert_eq!(attempts(&log, "small"), 0);
    assert!(
        events(&msgs, "small")
            .iter()
            .all(|e| e.get("sub_label").is_none())
    );

    // Unsure: tried while they came closer, never once both sat still.
    assert_eq!(
        unsure_at_still.len(),
        2,
        "both unsure cats became stationary"
    );
    let total = attempts(&log, "unsure");
    assert!(
        unsure_at_still[0] >= 4,
        "attempts while they came: {unsure_at_still:?}"
    );
    assert_eq!(total, unsure_at_still[1], "attempts after they sat still");
    assert!(
        events(&msgs, "unsure")
            .iter()
            .all(|e| e.get("sub_label").is_none())
    );
    println!(
        "classify: named {kinds:?} with {calls} calls; unsure: {total} calls, all before they sat still"
    );
}

/// Whether an `update` event's changes include `what`.
fn changed(event: &Value, what: &str) -> bool {
    event["changes"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c == what))
}
