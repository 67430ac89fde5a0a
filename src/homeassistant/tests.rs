//! Golden payloads, and rules for what Home Assistant would drop without a
//! word (it ignores unknown keys and refuses bad ids only in its log).

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::publish::Topics;
use crate::tracking::Tally;

const GOLDEN: &str = "src/homeassistant/golden/discovery.json";

fn discovery() -> Discovery {
    let ha = HomeAssistantConfig {
        prefix: "homeassistant".into(),
    };
    Discovery::new(&ha, "edge-01", Topics::new("visiond", "edge-01"))
}

fn stream(yaml: &str) -> StreamConfig {
    serde_yaml::from_str(yaml).expect("stream entry")
}

fn coco() -> Vec<String> {
    ["person", "bicycle", "car", "dog", "cat", "teddy bear"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A tracking stream with its own labels (one with a space) and a zone, a
/// stream with the default labels, and a classifier.
fn streams() -> Vec<StreamEntities> {
    vec![
        entities(
            &stream(
                "{name: front-door, source: \"test://\", model: coco, labels: [person, teddy bear], \
                 zones: [{name: driveway, polygon: [[0, 0], [1, 0], [1, 1]], labels: [person]}]}",
            ),
            Task::Detection,
            &coco(),
        ),
        entities(
            &stream("{name: yard, source: \"test://\", model: coco}"),
            Task::Detection,
            &coco(),
        ),
        entities(
            &stream("{name: pattern, source: \"test://\", model: imagenet}"),
            Task::Classification,
            &coco(),
        ),
    ]
}

fn golden_text() -> String {
    let all: Vec<Value> = discovery()
        .configs(&streams())
        .into_iter()
        .map(|(topic, body)| {
            let payload: Value = serde_json::from_slice(&body).expect("JSON");
            serde_json::json!({"topic": topic, "payload": payload})
        })
        .collect();
    serde_json::to_string_pretty(&all).expect("JSON") + "\n"
}

/// `VISIOND_BLESS=1 cargo test --lib homeassistant` writes the file.
#[test]
fn every_discovery_payload_is_the_golden_one() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let generated = golden_text();
    if std::env::var_os("VISIOND_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the golden file");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{GOLDEN} differs from the generated payloads; if the change is meant, \
         regenerate it with: VISIOND_BLESS=1 cargo test --lib homeassistant"
    );
}

fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Home Assistant's rule for entity ids: `domain.object_id`, lowercase
/// letters, digits and single underscores inside.
fn entity_id_ok(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('_')
            && !p.ends_with('_')
            && !p.contains("__")
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    matches!(s.split_once('.'), Some((d, o)) if part(d) && part(o))
}

/// Every topic visiond publishes for these streams (what the daemon, the
/// tracker and the snapshot stage write), built from the publishing code.
fn published_topics(d: &Discovery, streams: &[StreamEntities]) -> HashSet<String> {
    let t = &d.topics;
    let mut out = HashSet::from([t.available()]);
    for s in streams {
        out.insert(t.status(&s.name));
        out.insert(format!("{}detect/state", t.stream(&s.name)));
        for l in &s.labels {
            let label = l.as_str().into();
            out.insert(t.tally(&s.name, &Tally::Objects { label, count: 0 }));
            out.insert(format!(
                "{}snapshot/{}",
                t.stream(&s.name),
                crate::publish::level(l)
            ));
        }
        for (z, labels) in &s.zones {
            for l in labels {
                out.insert(t.tally(
                    &s.name,
                    &Tally::Zone {
                        zone: z.as_str().into(),
                        label: l.as_str().into(),
                        count: 0,
                    },
                ));
            }
        }
    }
    out
}

#[test]
fn discovery_follows_the_rules_home_assistant_drops_silently() {
    let d = discovery();
    let streams = streams();
    let published = published_topics(&d, &streams);
    let mut unique_ids = HashSet::new();
    let mut entity_ids = HashSet::new();
    let configs = d.configs(&streams);
    assert_eq!(configs.len(), 4, "the node and three streams");
    for (topic, body) in &configs {
        let levels: Vec<&str> = topic.split('/').collect();
        assert_eq!(levels.len(), 4, "{topic}");
        assert_eq!(
            (levels[0], levels[1], levels[3]),
            ("homeassistant", "device", "config")
        );
        assert!(id_ok(levels[2]), "object id of {topic}");
        let v: Value = serde_json::from_slice(body).expect("JSON");
        assert!(body.len() < 64 * 1024, "{topic}: {} bytes", body.len());
        let config: DeviceConfig = serde_json::from_value(v.clone()).expect("our schema");
        assert_eq!(config.origin.name, ORIGIN);
        assert!(d.is_ours(body), "{topic}");
        let dev_name = config.device.name.to_lowercase();
        let Value::Object(cmps) = &v["cmps"] else {
            panic!("{topic}: no cmps")
        };
        assert!(!cmps.is_empty());
        for (key, c) in cmps {
            let at = format!("{topic} {key}");
            assert!(id_ok(key), "{at}: component id");
            assert!(
                c.get("object_id").is_none() && c.get("obj_id").is_none(),
                "{at}"
            );
            let platform = c["p"].as_str().expect("p");
            assert!(
                ["binary_sensor", "sensor", "switch", "image"].contains(&platform),
                "{at}"
            );
            let uid = c["unique_id"].as_str().expect("unique_id");
            assert!(unique_ids.insert(uid.to_string()), "{at}: {uid} twice");
            let eid = c["default_entity_id"].as_str().expect("default_entity_id");
            assert!(entity_id_ok(eid), "{at}: {eid}");
            assert!(eid.starts_with(&format!("{platform}.")), "{at}: {eid}");
            assert!(entity_ids.insert(eid.to_string()), "{at}: {eid} twice");
            let name = c["name"].as_str().expect("name");
            assert!(!name.is_empty(), "{at}");
            assert!(
                !name.to_lowercase().contains(&dev_name),
                "{at}: {name:?} repeats the device name"
            );
            let cat = c.get("entity_category").and_then(Value::as_str);
            assert!(cat.is_none() || cat == Some("diagnostic"), "{at}: {cat:?}");
            if platform == "sensor" || platform == "binary_sensor" {
                assert_ne!(cat, Some("config"), "{at}");
            }
            for k in ["state_topic", "image_topic"] {
                if let Some(t) = c.get(k).and_then(Value::as_str) {
                    assert!(published.contains(t), "{at}: {k} {t} is never published");
                }
            }
            if platform == "switch" {
                let cmd = c["command_topic"].as_str().expect("command_topic");
                assert_eq!(
                    cmd,
                    format!("{}detect/set", d.topics.stream(&config.device.name))
                );
            }
            if platform == "image" {
                assert_eq!(c["content_type"], "image/jpeg", "{at}");
            }
            if let Some(list) = c.get("availability").and_then(Value::as_array) {
                for a in list {
                    let t = a["topic"].as_str().expect("availability topic");
                    assert!(published.contains(t), "{at}: {t}");
                }
                if list.len() > 1 {
                    assert_eq!(c["availability_mode"], "all", "{at}");
                }
            }
            // Every key is one Home Assistant documents for the platform.
            let allowed: BTreeSet<&str> = [
                "p",
                "name",
                "unique_id",
                "default_entity_id",
                "availability",
                "availability_mode",
                "state_topic",
                "value_template",
                "command_topic",
                "payload_on",
                "payload_off",
                "image_topic",
                "content_type",
                "device_class",
                "state_class",
                "unit_of_measurement",
                "suggested_display_precision",
                "options",
                "entity_category",
                "icon",
            ]
            .into();
            for k in c.as_object().expect("object").keys() {
                assert!(allowed.contains(k.as_str()), "{at}: unexpected key {k}");
            }
        }
        if levels[2] != d.node_id() {
            assert_eq!(
                config.device.via_device.as_deref(),
                Some(d.node_id().as_str())
            );
        }
    }
}

#[test]
fn entities_per_stream_follow_labels_zones_and_the_task() {
    let s = streams();
    assert_eq!(s[0].labels, ["person", "teddy bear"]);
    assert_eq!(
        s[0].zones,
        [("driveway".to_string(), vec!["person".to_string()])]
    );
    // No labels: the default list, only what the model knows.
    assert_eq!(s[1].labels, ["person", "car", "dog", "cat"]);
    let few = ["person".to_string(), "cat".to_string()];
    let yard = stream("{name: yard, source: \"test://\", model: coco}");
    assert_eq!(
        entities(&yard, Task::Detection, &few).labels,
        ["person", "cat"]
    );
    // No tracking: no counts, so no count entities.
    let off = stream("{name: y, source: \"test://\", model: coco, track: false}");
    assert!(entities(&off, Task::Detection, &coco()).labels.is_empty());
    assert!(s[2].labels.is_empty());
    let (_, cfg) = discovery().stream_config(&s[2]);
    let keys: Vec<&String> = cfg.components.keys().collect();
    assert_eq!(keys, ["detect", "fps_analysed", "fps_in", "state"]);
    // A zone without labels counts the stream's.
    let z = stream(
        "{name: z, source: \"test://\", model: coco, labels: [car], \
         zones: [{name: gate, polygon: [[0, 0], [1, 0], [1, 1]]}]}",
    );
    assert_eq!(
        entities(&z, Task::Detection, &coco()).zones,
        [("gate".to_string(), vec!["car".to_string()])]
    );
}

#[test]
fn labels_with_spaces_keep_their_topic_and_get_safe_ids() {
    let (_, cfg) = discovery().stream_config(&streams()[0]);
    let c = &cfg.components["teddy_bear_count"];
    assert_eq!(c.name, "Teddy bear count");
    assert_eq!(
        c.state_topic.as_deref(),
        Some("visiond/edge-01/front-door/count/teddy bear")
    );
    assert_eq!(c.unique_id, "visiond_edge-01_front-door_teddy_bear_count");
    assert_eq!(
        c.default_entity_id,
        "sensor.visiond_edge_01_front_door_teddy_bear_count"
    );
    let img = &cfg.components["teddy_bear_snapshot"];
    assert_eq!(
        img.image_topic.as_deref(),
        Some("visiond/edge-01/front-door/snapshot/teddy bear")
    );
    // Labels Home Assistant cannot tell apart stay two entities.
    let twins = StreamEntities {
        name: "s".into(),
        model: "m".into(),
        labels: vec!["teddy bear".into(), "teddy_bear".into()],
        zones: Vec::new(),
        sub_labels: Vec::new(),
    };
    let (_, cfg) = discovery().stream_config(&twins);
    assert!(cfg.components.contains_key("teddy_bear_count"));
    assert!(cfg.components.contains_key("teddy_bear_count_2"));
    assert_eq!(
        cfg.components["teddy_bear_count_2"].state_topic.as_deref(),
        Some("visiond/edge-01/s/count/teddy_bear")
    );
}

#[test]
fn unique_ids_do_not_depend_on_names_people_change() {
    let (_, a) = discovery().stream_config(&streams()[1]);
    // Home Assistant lets a user rename the device; the payload's name
    // only seeds it. Ids come from node, stream and kind.
    for (key, c) in &a.components {
        assert_eq!(c.unique_id, format!("visiond_edge-01_yard_{key}"));
        assert!(!c.unique_id.contains(&c.name));
    }
}

#[test]
fn only_this_nodes_configs_are_ours() {
    let d = discovery();
    let other = Discovery {
        node: "edge".into(),
        ..discovery()
    };
    for (_, body) in d.configs(&streams()) {
        assert!(d.is_ours(&body));
        // Node `edge` is not node `edge-01`, though `visiond_edge` prefixes it.
        assert!(!other.is_ours(&body));
    }
    let foreign = br#"{"dev": {"identifiers": ["visiond_edge-01"]}, "o": {"name": "zigbee2mqtt"}}"#;
    assert!(!d.is_ours(foreign));
    for garbage in [
        &b""[..],
        b"{",
        b"[]",
        b"\xff\xfe",
        b"{\"o\": 1, \"dev\": []}",
    ] {
        assert!(!d.is_ours(garbage));
    }
}

#[test]
fn slugs_and_object_ids_are_what_home_assistant_takes() {
    assert_eq!(
        slug("visiond_edge-01_Front Door__x_"),
        "visiond_edge_01_front_door_x"
    );
    assert_eq!(object_id("teddy bear/é"), "teddy_bear__");
    assert!(entity_id_ok("sensor.a_b"));
    assert!(!entity_id_ok("sensor.a__b") && !entity_id_ok("sensor._a") && !entity_id_ok("a"));
}

#[test]
fn classify_rules_get_a_sensor_of_the_latest_sub_label_per_label() {
    let feeder = stream(
        "{name: feeder, source: \"test://\", model: coco, labels: [bird, cat], \
         classify: [{labels: [bird], model: imagenet, group: birds}, \
                    {labels: [cat, bird], model: imagenet, group: cats}]}",
    );
    let e = entities(&feeder, Task::Detection, &coco());
    assert_eq!(e.sub_labels, ["bird", "cat"]);
    let (_, cfg) = discovery().stream_config(&e);
    let bird = &cfg.components["bird_sub_label"];
    assert_eq!(bird.platform, "sensor");
    assert_eq!(bird.name, "Bird sub-label");
    let topic = "visiond/edge-01/feeder/sub_label/bird";
    assert_eq!(bird.state_topic.as_deref(), Some(topic));
    assert_eq!(bird.json_attributes_topic.as_deref(), Some(topic));
    assert_eq!(
        bird.value_template.as_deref(),
        Some("{{ value_json.label }}")
    );
    assert!(cfg.components.contains_key("cat_sub_label"));
    // Without tracking there are no objects to name.
    let off = stream(
        "{name: f, source: \"test://\", model: coco, track: false, \
         classify: [{labels: [bird], model: imagenet}]}",
    );
    assert!(
        entities(&off, Task::Detection, &coco())
            .sub_labels
            .is_empty()
    );
}
