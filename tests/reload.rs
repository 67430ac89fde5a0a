//! SIGHUP: a changed stream restarts, the others keep their session; an
//! invalid file is refused and everything keeps running; settings that take
//! a restart are named, the HTTP server moves.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn config(broker: &str, b_fps: u32) -> String {
    config_with(broker, b_fps, "")
}

/// `top`: more top-level keys.
fn config_with(broker: &str, b_fps: u32, top: &str) -> String {
    format!(
        "node: rl\n{top}mqtt:\n  url: {broker}\nmodels:\n  - name: coco\n    path: {}\nstreams:\n  - name: a\n    source: test://?width=160&height=120\n    model: coco\n    fps: 2\n  - name: b\n    source: test://?width=160&height=120\n    model: coco\n    fps: {b_fps}\n",
        model("ssd_mobilenet_v2_coco.onnx").display()
    )
}

/// The sessions each stream published in the next `secs` seconds.
fn sessions(
    messages: &crossbeam_channel::Receiver<Msg>,
    secs: u64,
) -> HashMap<String, Vec<String>> {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(m) = messages.recv_timeout(Duration::from_millis(100))
            && m.topic.ends_with("/detections")
        {
            let v = m.json();
            let list = seen
                .entry(v["stream"].as_str().unwrap_or("").to_string())
                .or_default();
            let s = v["session"].as_str().unwrap_or("").to_string();
            if list.last() != Some(&s) {
                list.push(s);
            }
        }
    }
    seen
}

/// Sessions until every stream of `names` has published (at most 20 s: a
/// loaded machine starts slowly).
fn sessions_of(
    messages: &crossbeam_channel::Receiver<Msg>,
    names: &[&str],
) -> HashMap<String, Vec<String>> {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for _ in 0..20 {
        for (k, v) in sessions(messages, 1) {
            let list = seen.entry(k).or_default();
            for s in v {
                if list.last() != Some(&s) {
                    list.push(s);
                }
            }
        }
        if names.iter().all(|n| seen.contains_key(*n)) {
            break;
        }
    }
    seen
}

fn hup(daemon: &Daemon) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.proc.0.id() as i32, libc::SIGHUP) };
}

#[test]
fn reload_restarts_only_what_changed_and_refuses_a_bad_file() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/rl/#");
    let mut daemon = Daemon::start(&config(&broker.url(), 2), &[]);
    let before = sessions_of(&messages, &["a", "b"]);
    let (a0, b0) = (before.get("a").cloned(), before.get("b").cloned());
    assert!(
        a0.is_some() && b0.is_some(),
        "{before:?}\n{}",
        daemon.log_text()
    );

    // b changes, a does not.
    let path = daemon.dir.path().join("visiond.yaml");
    std::fs::write(&path, config(&broker.url(), 1)).expect("write");
    hup(&daemon);
    let after = sessions(&messages, 4);
    assert_eq!(
        after.get("a").and_then(|v| v.first()),
        a0.as_ref().and_then(|v| v.last()),
        "a kept its session: {after:?}"
    );
    assert_eq!(after.get("a").map(Vec::len), Some(1), "{after:?}");
    let b1 = after
        .get("b")
        .and_then(|v| v.last())
        .expect("b runs after the reload");
    assert_ne!(
        Some(b1),
        b0.as_ref().and_then(|v| v.last()),
        "b restarted: {after:?}"
    );
    assert!(
        daemon.log_text().contains("reloaded"),
        "{}",
        daemon.log_text()
    );

    // A broken file: refused, both keep running as they were, and their
    // status says so.
    let statuses = subscribe(broker.port, "visiond/rl/+/status");
    std::fs::write(&path, "mqtt: [nope\n").expect("write");
    hup(&daemon);
    let broken = sessions(&messages, 3);
    let told = std::iter::from_fn(|| statuses.recv_timeout(Duration::from_millis(100)).ok())
        .filter(|m| {
            let v = m.json();
            v["state"] == "playing"
                && v["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("config reload refused"))
        })
        .count();
    assert!(told >= 2, "the refusal is not on the statuses");
    assert_eq!(
        broken.get("a").and_then(|v| v.first()),
        after.get("a").and_then(|v| v.last())
    );
    assert_eq!(broken.get("b").and_then(|v| v.first()), Some(b1));
    let log = daemon.log_text();
    assert!(
        log.contains("reload refused") && log.contains("visiond.yaml:"),
        "{log}"
    );
    assert_eq!(daemon.terminate().0, Some(0));
}

/// The status code of a GET, or `None` when nothing listens.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_reload_names_what_takes_a_restart_and_moves_the_http_server() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/rl/#");
    let (old_port, new_port) = (free_port(), free_port());
    let top = format!("http:\n  listen: \"127.0.0.1:{old_port}\"\n");
    let mut daemon = Daemon::start(&config_with(&broker.url(), 2, &top), &[]);
    let before = sessions_of(&messages, &["a", "b"]);
    assert!(
        before.contains_key("a") && before.contains_key("b"),
        "{before:?}\n{}",
        daemon.log_text()
    );
    assert_eq!(
        http_status(old_port, "/healthz"),
        Some(200),
        "{}",
        daemon.log_text()
    );

    // Before: both changes were ignored without a word.
    let ort = cache().join("onnxruntime/libonnxruntime.so");
    let top = format!(
        "onnxruntime: {}\nhttp:\n  listen: \"127.0.0.1:{new_port}\"\n  grace: 5\n",
        ort.display()
    );
    let path = daemon.dir.path().join("visiond.yaml");
    std::fs::write(&path, config_with(&broker.url(), 2, &top)).expect("write");
    hup(&daemon);
    let after = sessions(&messages, 4);
    for s in ["a", "b"] {
        assert_eq!(
            after.get(s).cloned(),
            before
                .get(s)
                .and_then(|v| v.last())
                .map(|l| vec![l.clone()]),
            "{s} kept its session: {before:?} {after:?}"
        );
    }
    let log = daemon.log_text();
    assert!(
        log.contains(&format!(
            "reload: onnxruntime (the default -> {}) changed; the running value stays until a restart",
            ort.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "reload: http changed; serving on 127.0.0.1:{new_port} (grace 5 s)"
        )),
        "{log}"
    );
    assert_eq!(http_status(new_port, "/healthz"), Some(200), "{log}");
    assert_eq!(
        http_status(old_port, "/healthz"),
        None,
        "the old port is closed"
    );
    assert_eq!(daemon.terminate().0, Some(0));
}

#[test]
fn a_model_that_does_not_load_refuses_the_reload_and_touches_nothing() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/rl/#");
    let mut daemon = Daemon::start(&config(&broker.url(), 1), &[]);
    let before = sessions_of(&messages, &["a", "b"]);
    assert!(
        before.contains_key("a") && before.contains_key("b"),
        "{before:?}\n{}",
        daemon.log_text()
    );

    // b moves to a model whose file is there (so the file is valid) but is
    // no model: it fails to load, after validation, before anything stops.
    let bad = daemon.dir.path().join("bad.onnx");
    std::fs::write(&bad, b"not a model").expect("write");
    let text = config(&broker.url(), 1)
        .replace(
            "streams:\n",
            &format!("  - name: bad\n    path: {}\nstreams:\n", bad.display()),
        )
        .replace(
            "    fps: 2\n",
            "    fps: 2\n  - name: c\n    source: test://?width=160&height=120\n    model: bad\n",
        );
    let path = daemon.dir.path().join("visiond.yaml");
    std::fs::write(&path, text).expect("write");
    hup(&daemon);
    let after = sessions_of(&messages, &["a", "b"]);
    for s in ["a", "b"] {
        assert_eq!(
            after.get(s).cloned(),
            before
                .get(s)
                .and_then(|v| v.last())
                .map(|l| vec![l.clone()]),
            "{s} kept its session: {before:?} {after:?}"
        );
    }
    assert!(!after.contains_key("c"), "{after:?}");
    let log = daemon.log_text();
    assert!(
        log.contains("reload refused, the running config stays") && log.contains("bad.onnx"),
        "{log}"
    );
    assert_eq!(daemon.terminate().0, Some(0));
}

/// A stream removed by a reload leaves no retained status behind: a
/// subscriber that comes later sees only the streams that exist.
#[test]
fn a_removed_stream_leaves_no_retained_status() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/rl/#");
    let mut daemon = Daemon::start(&config(&broker.url(), 2), &[]);
    let before = sessions_of(&messages, &["a", "b"]);
    assert!(
        before.contains_key("b"),
        "{before:?}\n{}",
        daemon.log_text()
    );
    let only_a = config(&broker.url(), 2);
    let only_a = &only_a[..only_a.find("  - name: b").expect("stream b")];
    std::fs::write(daemon.dir.path().join("visiond.yaml"), only_a).expect("write");
    hup(&daemon);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.log_text().contains("reloaded") {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let late = subscribe(broker.port, "visiond/rl/+/status");
    let retained: Vec<String> =
        std::iter::from_fn(|| late.recv_timeout(Duration::from_millis(500)).ok())
            .filter(|m| !m.payload.is_empty())
            .map(|m| m.topic)
            .collect();
    assert!(
        retained.iter().any(|t| t == "visiond/rl/a/status"),
        "{retained:?}"
    );
    assert!(
        !retained.iter().any(|t| t == "visiond/rl/b/status"),
        "the removed stream's status is still retained: {retained:?}"
    );
    assert_eq!(daemon.terminate().0, Some(0));
}
