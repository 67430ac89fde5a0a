//! MQTT with real mosquitto: QoS 1 across a broker killed with -9, across a
//! daemon restart while the broker is down, MQTT 5 properties, and a wrong
//! password refused with a clear error and retried.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn config(node: &str, url: &str, spool: &std::path::Path, stream: &str) -> String {
    format!(
        r#"
node: {node}
mqtt:
  url: {url}
  qos: 1
  keep_alive: 2
  spool: {spool}
models:
  - name: imagenet
    path: {effnet}
streams:
  - name: {stream}
    source: test://?width=320&height=240
    model: imagenet
    fps: 10
"#,
        spool = spool.display(),
        effnet = model("efficientnet_lite0.onnx").display(),
    )
}

/// Frame numbers in arrival order, with how many arrived twice.
fn first_arrivals(frames: &[u64]) -> (Vec<u64>, usize) {
    let mut seen = HashSet::new();
    let firsts: Vec<u64> = frames.iter().copied().filter(|f| seen.insert(*f)).collect();
    let dups = frames.len() - firsts.len();
    (firsts, dups)
}

#[test]
fn qos1_detections_survive_a_broker_killed_with_minus_9() {
    let mut broker = Mosquitto::start_with(PERSISTENT);
    let messages = subscribe_session(broker.port, "visiond/q1/+/detections", "sub-q1");
    saved(&broker);
    let spool = tempfile::tempdir().expect("tempdir");
    let mut daemon = Daemon::start(
        &config("q1", &broker.url(), &spool.path().join("spool"), "cam"),
        &[],
    );
    let frame = |m: &Msg| m.json()["frame"].as_u64().expect("frame");
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames.len() < 20 && Instant::now() < deadline {
        if let Ok(m) = messages.recv_timeout(Duration::from_millis(200)) {
            frames.push(frame(&m));
        }
    }
    assert!(frames.len() >= 20, "log:\n{}", daemon.log_text());
    broker.kill();
    let before = *frames.iter().max().unwrap_or(&0);
    std::thread::sleep(Duration::from_secs(4));
    broker.restart();
    // 10 frames/s: the outage and the reconnect are over well before +120.
    let target = before + 120;
    let deadline = Instant::now() + Duration::from_secs(60);
    while frames.iter().max() < Some(&target) && Instant::now() < deadline {
        if let Ok(m) = messages.recv_timeout(Duration::from_millis(200)) {
            frames.push(frame(&m));
        }
    }
    let log = daemon.log_text();
    assert_eq!(daemon.terminate().0, Some(0), "log:\n{log}");
    let (firsts, dups) = first_arrivals(&frames);
    let last = *firsts.iter().max().expect("frames");
    assert!(last >= target, "only up to {last}; log:\n{log}");
    let missing: Vec<u64> = (0..=last).filter(|f| !firsts.contains(f)).collect();
    assert!(missing.is_empty(), "lost across the outage: {missing:?}");
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "out of order: {firsts:?}"
    );
    eprintln!("frames 0..={last} all arrived; {dups} duplicates; outage after frame {before}");
}

#[test]
fn spooled_messages_survive_a_daemon_restart_while_the_broker_is_down() {
    let mut broker = Mosquitto::start_with(PERSISTENT);
    let messages = subscribe_session(broker.port, "visiond/q2/+/detections", "sub-q2");
    saved(&broker);
    broker.kill();
    let spool = tempfile::tempdir().expect("tempdir");
    let dir = spool.path().join("spool");

    // The first run analyses with no broker, then stops: all of it is spooled.
    let mut first = Daemon::start(&config("q2", &broker.url(), &dir, "before"), &[]);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(first.terminate().0, Some(0), "log:\n{}", first.log_text());
    let log = first.log_text();
    let kept: u64 = log
        .lines()
        .find(|l| l.contains("stay in the spool"))
        .and_then(|l| l.split("messages=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no spool count at exit; log:\n{log}"));
    assert!(kept >= 10, "{kept}");

    // The second run starts while the broker is still down; then it comes back.
    let mut second = Daemon::start(&config("q2", &broker.url(), &dir, "after"), &[]);
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    let mut before = Vec::new();
    let mut after = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (before.len() < kept as usize || after < 10) && Instant::now() < deadline {
        if let Ok(m) = messages.recv_timeout(Duration::from_millis(200)) {
            let f = m.json()["frame"].as_u64().expect("frame");
            if m.topic.contains("/before/") {
                before.push(f);
            } else {
                after += 1;
            }
        }
    }
    let log2 = second.log_text();
    assert_eq!(second.terminate().0, Some(0), "log:\n{log2}");
    assert!(
        log2.contains("spooled messages from before the restart"),
        "log:\n{log2}"
    );
    let (firsts, _) = first_arrivals(&before);
    assert_eq!(
        firsts,
        (0..kept).collect::<Vec<u64>>(),
        "the first run's spool, in order; {after} of the second run's own; log:\n{log2}\nbroker:\n{}",
        broker.log_text()
    );
    assert!(after >= 10, "the second run's own messages: {after}");
}

#[test]
fn mqtt5_sets_content_type_and_expiry() {
    use rumqttc::v5::mqttbytes::v5::Packet;
    let broker = Mosquitto::start();
    let opts = rumqttc::v5::MqttOptions::new("sub-v5", "127.0.0.1", broker.port);
    let (client, mut connection) = rumqttc::v5::Client::new(opts, 64);
    client
        .subscribe("visiond/v5/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .expect("subscribe");
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        let _client = client;
        for event in connection.iter() {
            if let Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) = event
                && tx.send(p).is_err()
            {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let config = format!(
        "node: v5\nmqtt:\n  url: {}\n  protocol: 5\n  expiry: 30\nmodels:\n  - name: m\n    path: {}\nstreams:\n  - name: s\n    source: test://?width=160&height=120\n    model: m\n    fps: 5\n",
        broker.url(),
        model("efficientnet_lite0.onnx").display()
    );
    let mut daemon = Daemon::start(&config, &[]);
    let (mut detections, mut status, mut available) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while (detections.is_none() || status.is_none() || available.is_none())
        && Instant::now() < deadline
    {
        let Ok(p) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let slot = if topic.ends_with("/detections") {
            &mut detections
        } else if topic.ends_with("/status") {
            &mut status
        } else {
            &mut available
        };
        *slot = Some(p);
    }
    let log = daemon.log_text();
    assert_eq!(daemon.terminate().0, Some(0));
    let props = |p: &Option<rumqttc::v5::mqttbytes::v5::Publish>| {
        p.as_ref()
            .unwrap_or_else(|| panic!("missing a message; log:\n{log}"))
            .properties
            .clone()
            .unwrap_or_default()
    };
    let d = props(&detections);
    assert_eq!(d.content_type.as_deref(), Some("application/json"));
    // The broker passes on what is left of the expiry.
    assert!(matches!(d.message_expiry_interval, Some(29..=30)), "{d:?}");
    let s = props(&status);
    assert_eq!(s.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        s.message_expiry_interval, None,
        "retained state never expires"
    );
    assert_eq!(props(&available).content_type, None, "online is text");
}

#[test]
fn a_wrong_password_is_a_clear_error_and_retried() {
    let files = tempfile::tempdir().expect("tempdir");
    let passwd = files.path().join("passwd");
    let ok = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["visiond", "right-pw-77"])
        .status()
        .expect("mosquitto_passwd");
    assert!(ok.success());
    // Started as root, mosquitto reads it as its own user.
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [(files.path(), 0o755), (passwd.as_path(), 0o644)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let broker = Mosquitto::start_with(&format!(
        "password_file {}\nallow_anonymous false",
        passwd.display()
    ));
    let config = |pw: &str| {
        format!(
            "node: pw\nmqtt:\n  url: {}\n  username: visiond\n  password: {pw}\n  client_id: pw-{pw}\nmodels:\n  - name: m\n    path: {}\nstreams:\n  - name: s\n    source: test://?width=160&height=120\n    model: m\n    fps: 2\n",
            broker.url(),
            model("efficientnet_lite0.onnx").display()
        )
    };
    let messages = {
        let mut opts = rumqttc::MqttOptions::new("sub-pw", "127.0.0.1", broker.port);
        opts.set_credentials("visiond", "right-pw-77");
        subscribe_with(opts, "visiond/pw/available")
    };
    let mut wrong = Daemon::start(&config("wrong-pw-1"), &[]);
    let mut right = Daemon::start(&config("right-pw-77"), &[]);
    let online = std::iter::from_fn(|| messages.recv_timeout(Duration::from_secs(20)).ok())
        .any(|m| m.text() == "online");
    assert!(
        online,
        "right password not online; log:\n{}",
        right.log_text()
    );
    std::thread::sleep(Duration::from_secs(4));
    let log = wrong.log_text();
    let refusals = log
        .lines()
        .filter(|l| l.contains("wrong user name or password (mqtt.username, mqtt.password)"))
        .count();
    assert_eq!(refusals, 1, "one log line per incident; log:\n{log}");
    assert!(!log.contains("wrong-pw-1"), "the password is never logged");
    let attempts = broker
        .log_text()
        .lines()
        .filter(|l| l.contains("not authorised"))
        .count();
    assert!(
        attempts >= 2,
        "retried with backoff: {attempts}\n{}",
        broker.log_text()
    );
    assert_eq!(wrong.terminate().0, Some(0));
    assert_eq!(right.terminate().0, Some(0));
}

/// Steady QoS 1 traffic to a healthy broker (two streams, 30 messages a
/// second), then `kill -9` and a restart on the same spool: the file stayed
/// small while the daemon ran, and the restart replays only what the broker
/// had not acknowledged (the window in flight and the last tick), not the
/// whole session.
#[test]
fn under_steady_qos1_traffic_the_spool_stays_small_and_a_crash_replays_only_the_tail() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "visiond/steady/+/detections");
    let spool = tempfile::tempdir().expect("tempdir");
    let dir = spool.path().join("spool");
    let conf = format!(
        "{}  - name: cam2\n    source: test://?width=320&height=240\n    model: imagenet\n    fps: 15\n",
        config("steady", &broker.url(), &dir, "cam1").replace("fps: 10", "fps: 15")
    );
    let mut daemon = Daemon::start(&conf, &[]);
    let mut received = 0usize;
    let mut largest = 0u64;
    let deadline = Instant::now() + Duration::from_secs(25);
    while Instant::now() < deadline {
        if messages.recv_timeout(Duration::from_millis(100)).is_ok() {
            received += 1;
        }
        let size = std::fs::metadata(dir.join("spool.log")).map_or(0, |m| m.len());
        largest = largest.max(size);
    }
    let log = daemon.log_text();
    assert!(received > 300, "only {received} messages; log:\n{log}");
    // The compaction bound (256 KiB dead, half the file) and a window's worth.
    assert!(
        largest < 600 << 10,
        "spool.log reached {largest} bytes with a healthy broker after {received} messages"
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(daemon.proc.0.id() as i32, libc::SIGKILL) };
    let _ = daemon.proc.0.wait();
    let mut again = Daemon::start(&conf, &[]);
    // The spool is read before the streams start ("running").
    let deadline = Instant::now() + Duration::from_secs(20);
    while !again.log_text().contains("running") {
        assert!(Instant::now() < deadline, "log:\n{}", again.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = again.log_text();
    let replayed = log
        .lines()
        .find(|l| l.contains("spooled messages from before the restart"))
        .map_or(0, |line| {
            line.split("messages=")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("no count in {line}"))
        });
    assert_eq!(again.terminate().0, Some(0), "log:\n{}", again.log_text());
    // 64 in flight at most, plus a tick (200 ms) of 30 messages a second.
    assert!(
        replayed <= 64 + 10,
        "a crash replayed {replayed} of {received} messages"
    );
    eprintln!(
        "{received} messages in 25 s; spool.log at most {largest} bytes; {replayed} replayed after kill -9"
    );
}
