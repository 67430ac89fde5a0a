//! Sources that fail: a camera that goes away and comes back, hosts that
//! refuse, broken files, missing devices. Real RTSP server, real broker.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A live H.264 camera: endless, unlike a file.
const CAMERA: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay name=pay0 pt=96";

fn models_yaml() -> String {
    format!(
        "models:\n  - name: coco\n    path: {}\n    labels: {}\n    workers: 1\n",
        model("ssd_mobilenet_v2_coco.onnx").display(),
        model("coco_labels.txt").display()
    )
}

#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    stream: String,
    kind: String,
    body: Value,
}

fn collect(messages: &crossbeam_channel::Receiver<Msg>, into: &mut Vec<Seen>, for_: Duration) {
    let deadline = Instant::now() + for_;
    while Instant::now() < deadline {
        if let Ok(m) = messages.recv_timeout(Duration::from_millis(50)) {
            let parts: Vec<&str> = m.topic.split('/').collect();
            if parts.len() == 4 {
                into.push(Seen {
                    at: m.at,
                    stream: parts[2].to_string(),
                    kind: parts[3].to_string(),
                    body: m.json(),
                });
            }
        }
    }
}

/// Waits until `pred` holds for a newly received message; returns when it did.
fn wait_for(
    messages: &crossbeam_channel::Receiver<Msg>,
    seen: &mut Vec<Seen>,
    limit: Duration,
    pred: impl Fn(&Seen) -> bool,
) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let before = seen.len();
        collect(messages, seen, Duration::from_millis(50));
        if let Some(s) = seen[before..].iter().find(|s| pred(s)) {
            return Some(s.at);
        }
    }
    None
}

#[test]
fn a_camera_that_goes_away_comes_back_and_the_other_stream_never_notices() {
    let broker = Mosquitto::start();
    let port = free_port().to_string();
    let mut camera = RtspServer::start(&["--port", &port, "--launch", CAMERA]);
    let messages = subscribe(broker.port, "visiond/rec/#");
    let config = format!(
        "node: rec\nmqtt:\n  url: {}\n{}streams:\n  - name: cam\n    source: {}\n    model: coco\n    fps: 5\n  - name: steady\n    source: test://?width=320&height=240\n    model: coco\n    fps: 5\n",
        broker.url(),
        models_yaml(),
        camera.url
    );
    let mut daemon = Daemon::start(&config, &[]);
    let mut seen = Vec::new();
    let cam_up = wait_for(&messages, &mut seen, Duration::from_secs(30), |s| {
        s.stream == "cam" && s.kind == "detections"
    });
    assert!(
        cam_up.is_some(),
        "cam never delivered; log:\n{}",
        daemon.log_text()
    );
    collect(&messages, &mut seen, Duration::from_secs(2));
    let session_of = |seen: &[Seen], stream: &str| -> Vec<String> {
        let mut v: Vec<String> = seen
            .iter()
            .filter(|s| s.stream == stream && s.kind == "detections")
            .map(|s| s.body["session"].as_str().unwrap_or("").to_string())
            .collect();
        v.dedup();
        v
    };
    let cam_session = session_of(&seen, "cam");
    let steady_session = session_of(&seen, "steady");
    assert_eq!(cam_session.len(), 1);

    // The camera dies hard.
    let _ = camera.proc.0.kill();
    let _ = camera.proc.0.wait();
    let killed = Instant::now();
    let outage_from = seen.len();
    let went_reconnecting = wait_for(&messages, &mut seen, Duration::from_secs(20), |s| {
        s.stream == "cam" && s.kind == "status" && s.body["state"] == "reconnecting"
    });
    assert!(
        went_reconnecting.is_some(),
        "cam never went reconnecting; log:\n{}",
        daemon.log_text()
    );
    collect(
        &messages,
        &mut seen,
        Duration::from_secs(5).saturating_sub(killed.elapsed()),
    );

    // The camera comes back on the same address.
    let _camera_back = RtspServer::start(&["--port", &port, "--launch", CAMERA]);
    let back = Instant::now();
    let returned = wait_for(&messages, &mut seen, Duration::from_secs(40), |s| {
        s.stream == "cam"
            && s.kind == "detections"
            && s.body["session"].as_str() != cam_session.first().map(String::as_str)
    });
    let returned =
        returned.unwrap_or_else(|| panic!("cam never came back; log:\n{}", daemon.log_text()));
    let recovery = returned.duration_since(back);
    eprintln!("recovery after the camera returned: {recovery:?}");
    assert!(recovery < Duration::from_secs(20), "{recovery:?}");
    collect(&messages, &mut seen, Duration::from_secs(2));

    // The other stream: same session all along, frames through the outage.
    assert_eq!(session_of(&seen, "steady"), steady_session);
    let during: usize = seen[outage_from..]
        .iter()
        .filter(|s| s.stream == "steady" && s.kind == "detections" && s.at < back)
        .count();
    let outage = back.duration_since(killed).as_secs_f64();
    assert!(
        during as f64 >= 4.0 * outage * 0.8,
        "steady published {during} frames in {outage:.1} s of outage"
    );
    let cam_states: Vec<String> = seen
        .iter()
        .filter(|s| s.stream == "cam" && s.kind == "status")
        .map(|s| s.body["state"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        cam_states.ends_with(&["starting".into(), "playing".into()])
            || cam_states.contains(&"playing".into()),
        "{cam_states:?}"
    );
    assert_eq!(daemon.terminate().0, Some(0));
}

#[test]
fn broken_sources_are_reported_and_the_healthy_one_runs_on() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(
        &garbage,
        (0..200_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .expect("garbage");
    let truncated = dir.path().join("truncated.mp4");
    let clip = std::fs::read(media("photos.mp4")).expect("clip");
    std::fs::write(&truncated, &clip[..clip.len() / 2]).expect("truncated");
    let refused = format!("rtsp://127.0.0.1:{}/nothing", free_port());
    let messages = subscribe(broker.port, "visiond/broken/#");
    let config = format!(
        "node: broken\nmqtt:\n  url: {}\n{}streams:\n  - name: refused\n    source: {refused}\n    model: coco\n  - name: garbage\n    source: file://{}\n    model: coco\n  - name: truncated\n    source: file://{}\n    model: coco\n  - name: nodevice\n    source: v4l2:///dev/video97\n    model: coco\n  - name: healthy\n    source: test://?width=320&height=240\n    model: coco\n    fps: 5\n",
        broker.url(),
        models_yaml(),
        garbage.display(),
        truncated.display(),
    );
    let mut daemon = Daemon::start(&config, &[]);
    let mut seen = Vec::new();
    collect(&messages, &mut seen, Duration::from_secs(11));
    // A truncated file that leaves the demuxer waiting fails after the
    // supervisor's 10 s for a first frame, counted from the stream's start
    // (after the model loads, later on a busy machine): wait for it.
    let failed =
        |s: &Seen| s.stream == "truncated" && s.kind == "status" && s.body["state"] == "failed";
    if !seen.iter().any(failed) {
        wait_for(&messages, &mut seen, Duration::from_secs(20), failed);
    }
    let log = daemon.log_text();
    let last_status: HashMap<String, Value> = seen
        .iter()
        .filter(|s| s.kind == "status")
        .map(|s| (s.stream.clone(), s.body.clone()))
        .collect();
    let state = |s: &str| {
        last_status
            .get(s)
            .map(|v| v["state"].as_str().unwrap_or("").to_string())
    };
    let error = |s: &str| {
        last_status
            .get(s)
            .map(|v| v["error"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };

    assert_eq!(
        state("refused").as_deref(),
        Some("reconnecting"),
        "{last_status:?}\n{log}"
    );
    // What GStreamer said, so a user can tell a closed port from a bad file.
    assert!(
        error("refused").contains("Failed to connect"),
        "{}",
        error("refused")
    );
    assert_eq!(
        state("garbage").as_deref(),
        Some("failed"),
        "{last_status:?}\n{log}"
    );
    assert!(
        error("garbage").contains("Could not determine type of stream"),
        "{}",
        error("garbage")
    );
    // Half an MP4 may play its first frames before failing, or fail at once.
    assert_eq!(
        state("truncated").as_deref(),
        Some("failed"),
        "{last_status:?}\n{log}"
    );
    assert_eq!(
        state("nodevice").as_deref(),
        Some("reconnecting"),
        "{last_status:?}\n{log}"
    );
    assert!(
        error("nodevice").contains("video97"),
        "{}",
        error("nodevice")
    );

    let healthy = seen
        .iter()
        .filter(|s| s.stream == "healthy" && s.kind == "detections")
        .count();
    assert!(healthy >= 20, "healthy published {healthy} in 8 s\n{log}");
    // One line per incident, not a flood.
    let lines = log
        .lines()
        .filter(|l| l.contains("refused") && l.contains("reconnecting"))
        .count();
    assert!(lines <= 5, "{lines} lines for the refused stream in 8 s");
    assert_eq!(daemon.terminate().0, Some(0));
}
