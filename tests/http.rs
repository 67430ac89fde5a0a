//! `/metrics` and `/healthz` as a monitoring system sees them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const CAMERA: &str = "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=15/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay name=pay0 pt=96";

/// A plain HTTP GET; returns the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn value(metrics: &prometheus_parse::Scrape, name: &str, stream: Option<&str>) -> Option<f64> {
    metrics
        .samples
        .iter()
        .find(|s| s.metric == name && stream.is_none_or(|st| s.labels.get("stream") == Some(st)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

#[test]
fn metrics_parse_and_healthz_turns_503_while_a_camera_is_down() {
    let broker = Mosquitto::start();
    let http = free_port();
    let rtsp_port = free_port().to_string();
    let mut camera = RtspServer::start(&["--port", &rtsp_port, "--launch", CAMERA]);
    let config = format!(
        "node: h\nhttp:\n  listen: 127.0.0.1:{http}\n  grace: 1\nmqtt:\n  url: {}\nmodels:\n  - name: coco\n    path: {}\nstreams:\n  - name: cam\n    source: {}\n    model: coco\n    fps: 5\n  - name: pattern\n    source: test://?width=160&height=120\n    model: coco\n    fps: 5\n",
        broker.url(),
        model("ssd_mobilenet_v2_coco.onnx").display(),
        camera.url
    );
    let mut daemon = Daemon::start(&config, &[]);
    // Up: both streams playing, frames counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        std::thread::sleep(Duration::from_millis(300));
        if TcpStream::connect(("127.0.0.1", http)).is_err() {
            continue; // not listening yet
        }
        let (code, body) = get(http, "/metrics");
        assert_eq!(code, 200);
        let lines = body.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
        let analysed = |s| value(&scrape, "visiond_frames_analysed_total", Some(s)).unwrap_or(0.0);
        if analysed("cam") >= 3.0 && analysed("pattern") >= 3.0 {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "no frames counted; log:\n{}",
            daemon.log_text()
        );
    };
    assert_eq!(value(&scrape, "visiond_mqtt_connected", None), Some(1.0));
    assert!(value(&scrape, "visiond_mqtt_published_total", None).unwrap_or(0.0) > 0.0);
    assert_eq!(value(&scrape, "visiond_mqtt_spooled", None), Some(0.0));
    // Tens of MiB at least: the model alone is 18 MB.
    assert!(value(&scrape, "visiond_heap_in_use_bytes", None).unwrap_or(0.0) > 20e6);
    let playing = scrape.samples.iter().any(|s| {
        s.metric == "visiond_stream_state"
            && s.labels.get("stream") == Some("cam")
            && s.labels.get("state") == Some("playing")
            && matches!(s.value, prometheus_parse::Value::Gauge(v) if v == 1.0)
    });
    assert!(playing, "cam not playing");
    let histogram = scrape
        .samples
        .iter()
        .any(|s| s.metric == "visiond_inference_ms" && s.labels.get("stream") == Some("pattern"));
    assert!(histogram, "no inference histogram");
    // Filled, not only declared: every analysed frame's time is in it.
    for stream in ["cam", "pattern"] {
        let analysed = value(&scrape, "visiond_frames_analysed_total", Some(stream));
        let count = value(&scrape, "visiond_inference_ms_count", Some(stream)).unwrap_or(0.0);
        let sum = value(&scrape, "visiond_inference_ms_sum", Some(stream)).unwrap_or(0.0);
        assert!(
            count > 0.0 && count >= analysed.unwrap_or(0.0),
            "{stream}: count {count}"
        );
        assert!(sum > 0.0, "{stream}: sum {sum}");
    }
    assert_eq!(
        value(&scrape, "visiond_inference_panics_total", Some("pattern")),
        Some(0.0)
    );
    assert_eq!(get(http, "/healthz").0, 200);

    // Down: 503 with the reason, the other stream fine.
    let _ = camera.proc.0.kill();
    let _ = camera.proc.0.wait();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (code, body) = get(http, "/healthz");
        if code == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "healthz stayed {code}: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "unhealthy");
    assert!(
        v["streams"]["cam"]
            .as_str()
            .is_some_and(|r| r.starts_with("reconnecting")),
        "{v}"
    );
    assert!(v["streams"].get("pattern").is_none(), "{v}");
    // Back: healthy again.
    let _back = RtspServer::start(&["--port", &rtsp_port, "--launch", CAMERA]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while get(http, "/healthz").0 != 200 {
        assert!(Instant::now() < deadline, "never healthy again");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(daemon.terminate().0, Some(0));
}

/// The status page shows every camera: beyond loopback `visiond run`
/// refuses to serve it unless the config says `open: true`, and then warns
/// at the start.
#[test]
fn the_page_beyond_loopback_is_refused_unless_open_and_then_warned_about() {
    let broker = Mosquitto::start();
    let http = free_port();
    let config = |open: &str| {
        format!(
            "node: o\nmqtt:\n  url: {}\nhttp:\n  listen: 0.0.0.0:{http}\n{open}models:\n  - name: coco\n    path: {}\nstreams:\n  - name: pattern\n    source: test://?width=160&height=120\n    model: coco\n    fps: 1\n",
            broker.url(),
            model("ssd_mobilenet_v2_coco.onnx").display()
        )
    };
    let mut refused = Daemon::start(&config(""), &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Ok(Some(status)) = refused.proc.0.try_wait() {
            break status.code();
        }
        assert!(
            Instant::now() < deadline,
            "still running: {}",
            refused.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = refused.log_text();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "visiond.yaml:5:11: 0.0.0.0:{http} would show every camera to anyone who can reach it"
        )),
        "{log}"
    );

    let mut open = Daemon::start(&config("  open: true\n"), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "no page: {}", open.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(http, "/healthz").0, 200);
    let log = open.log_text();
    assert!(
        log.contains("WARN")
            && log.contains("the status page shows every camera to anyone who can reach this port"),
        "{log}"
    );
    assert_eq!(open.terminate().0, Some(0));
}
