//! The whole daemon, end to end, with real parts: mosquitto, an RTSP server
//! serving real photographs, the real SSD-MobileNetV2 and EfficientNet-Lite0.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const RTSP_PASSWORD: &str = "rtsp-pw-8231";
const MQTT_PASSWORD: &str = "mqtt-pw-5519";

fn config(broker: &str, rtsp_url: &str) -> String {
    let rtsp_url = rtsp_url.replacen("rtsp://", &format!("rtsp://viewer:{RTSP_PASSWORD}@"), 1);
    format!(
        r#"
node: test-node
mqtt:
  url: {broker}
  username: visiond
  password: ${{MQTT_PASSWORD}}
  prefix: visiond
models:
  - name: coco
    path: {ssd}
    labels: {coco}
  - name: imagenet
    path: {effnet}
    labels: {imagenet}
streams:
  - name: cam
    source: {rtsp_url}
    model: coco
    options: {{transport: tcp, latency_ms: 100}}
  - name: pattern
    source: test://?width=640&height=480
    model: imagenet
    fps: 5
"#,
        ssd = model("ssd_mobilenet_v2_coco.onnx").display(),
        coco = model("coco_labels.txt").display(),
        effnet = model("efficientnet_lite0.onnx").display(),
        imagenet = model("imagenet_labels.txt").display(),
    )
}

fn validator(name: &str) -> jsonschema::Validator {
    let path = repo().join("docs/schema").join(name);
    let schema: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("schema file")).expect("schema JSON");
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every contract field is there with the right type.
fn check_fields(m: &Value, stream: &str) {
    assert_eq!(m["v"], 1);
    assert_eq!(m["node"], "test-node");
    assert_eq!(m["stream"], stream);
    assert!(m["session"].as_str().is_some_and(|s| s.len() >= 16), "{m}");
    assert!(m["frame"].is_u64(), "{m}");
    assert!(m["pts_ns"].is_u64(), "{m}");
    let captured = m["captured_at"].as_str().expect("captured_at");
    assert!(
        captured.len() == 24 && captured.ends_with('Z') && captured.as_bytes()[10] == b'T',
        "{captured}"
    );
    let latency = m["latency_ms"].as_f64().expect("latency_ms");
    assert!((0.0..5000.0).contains(&latency), "{latency}");
    assert!(m["width"].is_u64() && m["height"].is_u64(), "{m}");
    assert!(m["model"].is_string(), "{m}");
}

#[test]
fn rtsp_and_test_streams_to_mqtt_then_sigterm() {
    let broker = Mosquitto::start();
    let rtsp = RtspServer::file(&media("photos.mp4"));
    let messages = subscribe(broker.port, "visiond/test-node/#");
    let mut daemon = Daemon::start(
        &config(&broker.url(), &rtsp.url),
        &[("MQTT_PASSWORD", MQTT_PASSWORD)],
    );

    let mut by_stream: HashMap<String, Vec<Value>> = HashMap::new();
    let mut retained_online = false;
    let mut statuses: Vec<(String, Value)> = Vec::new();
    let mut cat: Option<Value> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Ok(m) = messages.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        match m.topic.as_str() {
            "visiond/test-node/available" if m.text() == "online" => retained_online = true,
            t if t.ends_with("/status") => statuses.push((t.to_string(), m.json())),
            t if t.ends_with("/detections") => {
                let v = m.json();
                let stream = v["stream"].as_str().unwrap_or("").to_string();
                if stream == "cam"
                    && cat.is_none()
                    && v["objects"].as_array().is_some_and(|o| {
                        o.iter()
                            .any(|o| o["label"] == "cat" && o["score"].as_f64() > Some(0.5))
                    })
                {
                    cat = Some(v.clone());
                }
                by_stream.entry(stream).or_default().push(v);
            }
            _ => {}
        }
        let enough = |s: &str| by_stream.get(s).is_some_and(|v| v.len() >= 10);
        if cat.is_some() && enough("cam") && enough("pattern") {
            break;
        }
    }
    let log = daemon.log_text();
    assert!(retained_online, "no online on available; log:\n{log}");
    let cam = by_stream
        .get("cam")
        .unwrap_or_else(|| panic!("no cam messages; log:\n{log}"));
    let pattern = by_stream
        .get("pattern")
        .unwrap_or_else(|| panic!("no pattern messages; log:\n{log}"));
    assert!(
        cam.len() >= 10 && pattern.len() >= 10,
        "{} {}",
        cam.len(),
        pattern.len()
    );

    for m in cam {
        check_fields(m, "cam");
        assert_eq!(m["model"], "coco");
        assert_eq!(
            (m["width"].as_u64(), m["height"].as_u64()),
            (Some(1280), Some(720))
        );
        assert!(m["objects"].is_array() && m.get("classes").is_none(), "{m}");
    }
    for m in pattern {
        check_fields(m, "pattern");
        assert_eq!(m["model"], "imagenet");
        assert_eq!(
            (m["width"].as_u64(), m["height"].as_u64()),
            (Some(640), Some(480))
        );
        let classes = m["classes"].as_array().expect("classes");
        assert_eq!(classes.len(), 5, "{m}");
        for c in classes {
            assert!(c["label"].is_string() && c["label_id"].is_u64() && c["score"].is_f64());
        }
    }
    // Frame counters rise within a session; fps: 5 on a 30 fps pattern.
    for msgs in [cam, pattern] {
        let same_session: Vec<u64> = msgs
            .iter()
            .filter(|m| m["session"] == msgs[0]["session"])
            .map(|m| m["frame"].as_u64().unwrap_or(0))
            .collect();
        assert!(
            same_session.windows(2).all(|w| w[1] > w[0]),
            "{same_session:?}"
        );
    }
    let pts: Vec<u64> = pattern
        .iter()
        .filter_map(|m| m["pts_ns"].as_u64())
        .collect();
    assert!(
        pts.windows(2).all(|w| w[1] - w[0] >= 190_000_000),
        "fps: 5 keeps frames 200 ms apart: {pts:?}"
    );

    let cat = cat.unwrap_or_else(|| panic!("no cat detected on the RTSP stream; log:\n{log}"));
    let o = cat["objects"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["label"] == "cat"))
        .expect("cat object");
    let b = &o["box"];
    let (x, y, w, h) = (
        b["x"].as_f64().unwrap(),
        b["y"].as_f64().unwrap(),
        b["w"].as_f64().unwrap(),
        b["h"].as_f64().unwrap(),
    );
    // chelsea.png fills the frame; the cat spans most of it, left of centre.
    assert!(
        w * h > 0.25 && x < 0.35 && y < 0.35 && x + w > 0.6,
        "cat box {b}"
    );
    assert_eq!(o["label_id"], 16);

    // Every message against the JSON Schemas users get in docs/schema.
    let detections = validator("detections.schema.json");
    assert!(
        !detections.is_valid(&serde_json::json!({"v": 2})),
        "the schema checks something"
    );
    for m in cam.iter().chain(pattern) {
        if let Err(e) = detections.validate(m) {
            panic!("{m} does not match docs/schema/detections.schema.json: {e}");
        }
    }
    let status = validator("status.schema.json");
    for (t, v) in &statuses {
        if let Err(e) = status.validate(v) {
            panic!("{t} {v} does not match docs/schema/status.schema.json: {e}");
        }
    }
    let available = validator("available.schema.json");
    assert!(available.is_valid(&Value::from("online")) && !available.is_valid(&Value::from("up")));

    let playing: Vec<&String> = statuses
        .iter()
        .filter(|(_, v)| v["state"] == "playing")
        .map(|(t, _)| t)
        .collect();
    assert!(
        playing.contains(&&"visiond/test-node/cam/status".to_string()),
        "{statuses:?}"
    );
    assert!(
        playing.contains(&&"visiond/test-node/pattern/status".to_string()),
        "{statuses:?}"
    );

    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0), "exit code; log:\n{}", daemon.log_text());
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    let offline = std::iter::from_fn(|| messages.recv_timeout(Duration::from_secs(2)).ok())
        .any(|m| m.topic == "visiond/test-node/available" && m.text() == "offline");
    assert!(offline, "offline not published");

    let log = daemon.log_text();
    let playing = |stream: &str| {
        log.lines()
            .find(|l| l.contains("playing") && l.contains(&format!("stream={stream}")))
            .unwrap_or_else(|| panic!("no playing line for {stream}:\n{log}"))
    };
    // Which decoder a stream got (a hardware one, or software and its threads).
    assert!(
        playing("cam").contains("decoders=avdec_h264 (1 thread)"),
        "{log}"
    );
    assert!(playing("pattern").contains("decoders=none"), "{log}");
    for secret in [RTSP_PASSWORD, MQTT_PASSWORD] {
        assert!(!log.contains(secret), "secret {secret} in the log:\n{log}");
    }
}

#[test]
fn file_source_analyses_every_frame_in_order() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/file-node/#");
    let clip = media("chelsea.mp4"); // 120 frames at 30 fps
    let config = format!(
        r#"
node: file-node
mqtt:
  url: {broker}
models:
  - name: coco
    path: {ssd}
    labels: {coco}
    workers: 2
streams:
  - name: clip
    source: file://{clip}
    model: coco
"#,
        broker = broker.url(),
        ssd = model("ssd_mobilenet_v2_coco.onnx").display(),
        coco = model("coco_labels.txt").display(),
        clip = clip.display(),
    );
    let mut daemon = Daemon::start(&config, &[]);
    let mut frames = Vec::new();
    let mut stopped = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !stopped {
        let Ok(m) = messages.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if m.topic.ends_with("/detections") {
            let v = m.json();
            frames.push((v["frame"].as_u64().unwrap(), v["pts_ns"].as_u64().unwrap()));
        } else if m.topic.ends_with("/status") && m.json()["state"] == "stopped" {
            stopped = true;
        }
    }
    let log = daemon.log_text();
    assert!(
        stopped,
        "the file stream did not stop at its end; log:\n{log}"
    );
    // Messages published before the stopped status have all arrived (same connection, in order).
    assert_eq!(frames.len(), 120, "log:\n{log}");
    let numbers: Vec<u64> = frames.iter().map(|f| f.0).collect();
    assert_eq!(numbers, (0..120).collect::<Vec<u64>>());
    assert!(
        frames.windows(2).all(|w| w[1].1 > w[0].1),
        "pts out of order"
    );
    assert_eq!(daemon.terminate().0, Some(0));
}

#[test]
fn a_killed_daemon_is_announced_offline_by_its_last_will() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/will-node/available");
    let config = format!(
        "node: will-node\nmqtt:\n  url: {}\n  keep_alive: 2\nmodels:\n  - name: coco\n    path: {}\nstreams:\n  - name: p\n    source: test://?width=160&height=120\n    model: coco\n    fps: 1\n",
        broker.url(),
        model("ssd_mobilenet_v2_coco.onnx").display()
    );
    let mut daemon = Daemon::start(&config, &[]);
    let online = std::iter::from_fn(|| messages.recv_timeout(Duration::from_secs(20)).ok())
        .any(|m| m.text() == "online");
    assert!(online, "never online; log:\n{}", daemon.log_text());
    let _ = daemon.proc.0.kill();
    let killed = Instant::now();
    let offline = std::iter::from_fn(|| messages.recv_timeout(Duration::from_secs(10)).ok())
        .find(|m| m.text() == "offline");
    let offline = offline.expect("no offline after kill -9");
    assert!(offline.retain || offline.at.duration_since(killed) < Duration::from_secs(5));
    // 1.5 keep-alives of 2 s, and some slack for the broker's timer.
    assert!(
        offline.at.duration_since(killed) <= Duration::from_millis(4500),
        "{:?}",
        offline.at.duration_since(killed)
    );
}
