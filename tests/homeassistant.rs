//! Home Assistant discovery and the detect switch with real parts: the
//! daemon, mosquitto, the real SSD-MobileNetV2 on a live test source.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn config(node: &str, broker: &str, ha: bool, streams: &str) -> String {
    format!(
        "node: {node}\nmqtt:\n  url: {broker}\n{}models:\n  - name: coco\n    path: {}\n    labels: {}\nstreams:\n{streams}",
        if ha { "homeassistant: {}\n" } else { "" },
        model("ssd_mobilenet_v2_coco.onnx").display(),
        model("coco_labels.txt").display(),
    )
}

fn test_stream(name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    source: test://?width=160&height=120\n    model: coco\n    fps: 2\n{extra}"
    )
}

/// Publishes one message and waits until the broker has it.
fn publish(port: u16, topic: &str, payload: &[u8], retain: bool) {
    let mut opts =
        rumqttc::MqttOptions::new(format!("test-pub-{}", free_port()), "127.0.0.1", port);
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut connection) = rumqttc::Client::new(opts, 10);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload.to_vec())
        .expect("publish");
    for event in connection.iter() {
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("publish to {topic}: {e}"),
        }
    }
    let _ = client.disconnect();
}

/// What the broker retains under `filter` now (empty payloads are none).
fn retained(port: u16, filter: &str) -> BTreeMap<String, Vec<u8>> {
    let rx = subscribe(port, filter);
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(m) = rx.recv_timeout(left)
            && m.retain
            && !m.payload.is_empty()
        {
            out.insert(m.topic, m.payload);
        }
    }
    out
}

/// The first message that `ok` accepts, within `secs`.
fn wait_for(
    rx: &crossbeam_channel::Receiver<Msg>,
    secs: u64,
    what: &str,
    ok: impl Fn(&Msg) -> bool,
) -> Msg {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(m) = rx.recv_timeout(left)
            && ok(&m)
        {
            return m;
        }
    }
    // The daemon's log says why (tests run from one folder at a time).
    let log = LOG.with(|l| l.borrow().clone());
    let log = log.map(|p| std::fs::read_to_string(p).unwrap_or_default());
    panic!("no {what} within {secs} s\n{}", log.unwrap_or_default());
}

thread_local! {
    /// The log file of this test's daemon, for failure messages.
    static LOG: std::cell::RefCell<Option<std::path::PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// Failures of `wait_for` show this daemon's log.
fn watch(d: &Daemon) {
    LOG.with(|l| *l.borrow_mut() = Some(d.log.clone()));
}

/// Waits until the broker retains `want` on `topic`.
fn retained_eventually(port: u16, topic: &str, want: &[u8], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = retained(port, topic).remove(topic);
        if got.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {:?}, not {:?}",
            got.map(|g| String::from_utf8_lossy(&g).into_owned()),
            String::from_utf8_lossy(want)
        );
    }
}

fn hup(daemon: &Daemon) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.proc.0.id() as i32, libc::SIGHUP) };
}

fn components(payload: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(payload).expect("JSON");
    v["cmps"]
        .as_object()
        .expect("cmps")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn discovery_is_retained_resent_for_home_assistant_and_follows_the_config() {
    let broker = Mosquitto::start();
    // Left by an earlier run: a stream of this node that the config no
    // longer has, and another program's device.
    let stale = br#"{"o":{"name":"visiond"},"dev":{"identifiers":["visiond_ha_old"],"name":"old","via_device":"visiond_ha"},"cmps":{}}"#;
    publish(
        broker.port,
        "homeassistant/device/visiond_ha_old/config",
        stale,
        true,
    );
    let foreign =
        br#"{"o":{"name":"zigbee2mqtt"},"dev":{"identifiers":["0x1"],"name":"lamp"},"cmps":{}}"#;
    publish(
        broker.port,
        "homeassistant/device/0x1/config",
        foreign,
        true,
    );

    let streams = test_stream(
        "a",
        "    labels: [person, teddy bear]\n    zones:\n      - {name: door, polygon: [[0, 0], [1, 0], [1, 1]]}\n",
    ) + &test_stream("b", "");
    let mut daemon = Daemon::start(&config("ha", &broker.url(), true, &streams), &[]);
    watch(&daemon);
    let status = subscribe(broker.port, "visiond/ha/+/status");
    wait_for(&status, 60, "a playing stream", |m| {
        m.json()["state"] == "playing"
    });

    let all = retained(broker.port, "homeassistant/#");
    let topics: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(
        topics,
        [
            "homeassistant/device/0x1/config",
            "homeassistant/device/visiond_ha/config",
            "homeassistant/device/visiond_ha_a/config",
            "homeassistant/device/visiond_ha_b/config",
        ],
        "the stale device is gone, the foreign one kept\n{}",
        daemon.log_text()
    );
    assert_eq!(
        components(&all["homeassistant/device/visiond_ha_a/config"]),
        [
            "detect",
            "fps_analysed",
            "fps_in",
            "person_count",
            "person_occupancy",
            "person_snapshot",
            "state",
            "teddy_bear_count",
            "teddy_bear_occupancy",
            "teddy_bear_snapshot",
            "zone_door_person_count",
            "zone_door_person_occupancy",
            "zone_door_teddy_bear_count",
            "zone_door_teddy_bear_occupancy",
        ]
    );
    // b lists no labels: the default ones, and their counts are published.
    let b = components(&all["homeassistant/device/visiond_ha_b/config"]);
    for l in ["person", "car", "dog", "cat"] {
        assert!(b.contains(&format!("{l}_count")), "{b:?}");
    }
    let counts = retained(broker.port, "visiond/ha/b/count/#");
    assert_eq!(counts.len(), 4, "{counts:?}");
    // Every state topic the entities read exists on the broker now.
    let state = retained(broker.port, "visiond/ha/#");
    let v: Value =
        serde_json::from_slice(&all["homeassistant/device/visiond_ha_a/config"]).unwrap();
    for (key, c) in v["cmps"].as_object().unwrap() {
        if let Some(t) = c.get("state_topic").and_then(Value::as_str) {
            assert!(
                state.contains_key(t),
                "{key}: {t} not retained: {:?}",
                state.keys()
            );
        }
    }
    assert_eq!(state["visiond/ha/a/detect/state"], b"ON");
    assert_eq!(state["visiond/ha/available"], b"online");

    // Home Assistant restarts and announces itself: everything again.
    let live = subscribe(broker.port, "homeassistant/device/+/config");
    std::thread::sleep(Duration::from_millis(1600)); // the retained copies pass
    while live.try_recv().is_ok() {}
    let t = Instant::now();
    publish(broker.port, "homeassistant/status", b"online", false);
    let mut again = std::collections::BTreeSet::new();
    while again.len() < 3 && t.elapsed() < Duration::from_secs(10) {
        if let Ok(m) = live.recv_timeout(Duration::from_millis(100))
            && m.topic.contains("visiond_ha")
        {
            again.insert(m.topic);
        }
    }
    assert_eq!(again.len(), 3, "{again:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "after a short delay"
    );

    // A reload without b: its device goes.
    let path = daemon.dir.path().join("visiond.yaml");
    let only_a = test_stream("a", "    labels: [person, teddy bear]\n");
    std::fs::write(&path, config("ha", &broker.url(), true, &only_a)).expect("write");
    hup(&daemon);
    wait_for(&live, 20, "b's device removed", |m| {
        m.topic == "homeassistant/device/visiond_ha_b/config" && m.payload.is_empty()
    });
    let a2 = wait_for(&live, 10, "a's new device", |m| {
        m.topic == "homeassistant/device/visiond_ha_a/config"
    });
    assert!(
        !components(&a2.payload)
            .iter()
            .any(|c| c.starts_with("zone_"))
    );
    let now: Vec<String> = retained(broker.port, "homeassistant/device/+/config")
        .into_keys()
        .collect();
    assert_eq!(
        now,
        [
            "homeassistant/device/0x1/config",
            "homeassistant/device/visiond_ha/config",
            "homeassistant/device/visiond_ha_a/config"
        ]
    );

    // kill -9: the last will makes every entity unavailable.
    let available = subscribe(broker.port, "visiond/ha/available");
    wait_for(&available, 5, "online", |m| m.text() == "online");
    let _ = daemon.proc.0.kill();
    let _ = daemon.proc.0.wait();
    let m = wait_for(&available, 90, "the last will", |m| m.text() == "offline");
    assert!(
        m.retain
            || retained(broker.port, "visiond/ha/available")["visiond/ha/available"] == b"offline"
    );
}

/// Detections of `stream` seen in the next `secs` seconds.
fn detections(rx: &crossbeam_channel::Receiver<Msg>, stream: &str, secs: f64) -> usize {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut n = 0;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(m) = rx.recv_timeout(left)
            && m.topic == format!("visiond/sw/{stream}/detections")
        {
            n += 1;
        }
    }
    n
}

#[test]
fn the_detect_switch_pauses_a_stream_across_reloads_and_restarts() {
    let broker = Mosquitto::start();
    let streams = test_stream("cam", "    labels: [person]\n") + &test_stream("other", "");
    let text = config("sw", &broker.url(), false, &streams);
    let mut daemon = Daemon::start(&text, &[]);
    watch(&daemon);
    let rx = subscribe(broker.port, "visiond/sw/#");
    wait_for(&rx, 60, "detections", |m| {
        m.topic == "visiond/sw/cam/detections"
    });
    retained_eventually(broker.port, "visiond/sw/cam/detect/state", b"ON", 10);
    retained_eventually(broker.port, "visiond/sw/other/detect/state", b"ON", 10);

    // Garbage and unknown streams change nothing and stop nothing.
    publish(broker.port, "visiond/sw/cam/detect/set", b"maybe", false);
    publish(broker.port, "visiond/sw/nope/detect/set", b"OFF", false);
    publish(
        broker.port,
        "visiond/sw/cam/detect/set",
        &vec![b'x'; 2 << 20],
        false,
    );
    assert!(detections(&rx, "cam", 2.0) > 0, "{}", daemon.log_text());

    publish(broker.port, "visiond/sw/cam/detect/set", b"OFF", false);
    wait_for(&rx, 10, "paused", |m| {
        m.topic == "visiond/sw/cam/status" && m.json()["state"] == "paused"
    });
    // The other stream goes on; this one publishes nothing more.
    let (cam, other) = {
        let deadline = Instant::now() + Duration::from_secs(3);
        let (mut cam, mut other) = (0, 0);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Ok(m) = rx.recv_timeout(left) {
                cam += usize::from(m.topic == "visiond/sw/cam/detections");
                other += usize::from(m.topic == "visiond/sw/other/detections");
            }
        }
        (cam, other)
    };
    assert_eq!(cam, 0, "no detections while paused");
    assert!(other > 0, "the other stream runs on");
    let kept = retained(broker.port, "visiond/sw/cam/#");
    assert_eq!(kept["visiond/sw/cam/detect/state"], b"OFF");
    let count: Value = serde_json::from_slice(&kept["visiond/sw/cam/count/person"]).unwrap();
    assert_eq!(count["count"], 0);
    assert!(
        String::from_utf8_lossy(&kept["visiond/sw/cam/status"]).contains("\"paused\""),
        "retained status says paused"
    );

    // A reload that restarts the stream keeps it paused.
    let path = daemon.dir.path().join("visiond.yaml");
    let changed = test_stream("cam", "    labels: [person]\n    min_score: 0.6\n")
        + &test_stream("other", "");
    std::fs::write(&path, config("sw", &broker.url(), false, &changed)).expect("write");
    hup(&daemon);
    wait_for(&rx, 30, "the restarted stream, paused", |m| {
        m.topic == "visiond/sw/cam/status" && m.json()["state"] == "paused"
    });
    assert_eq!(detections(&rx, "cam", 2.0), 0, "{}", daemon.log_text());

    // ON resumes it.
    publish(broker.port, "visiond/sw/cam/detect/set", b"ON", false);
    wait_for(&rx, 10, "playing", |m| {
        m.topic == "visiond/sw/cam/status" && m.json()["state"] == "playing"
    });
    assert!(detections(&rx, "cam", 2.0) > 0);

    // OFF again, then a restart of the daemon: it comes back paused.
    publish(broker.port, "visiond/sw/cam/detect/set", b"OFF", false);
    wait_for(&rx, 10, "paused", |m| {
        m.topic == "visiond/sw/cam/status" && m.json()["state"] == "paused"
    });
    assert_eq!(daemon.terminate().0, Some(0));
    let mut daemon = Daemon::start(&std::fs::read_to_string(&path).unwrap(), &[]);
    watch(&daemon);
    let rx = subscribe(broker.port, "visiond/sw/#");
    // Its first state past `starting` is `paused`: it never played.
    let first = wait_for(&rx, 60, "cam's state after the restart", |m| {
        m.topic == "visiond/sw/cam/status"
            && ["playing", "paused"].contains(&m.json()["state"].as_str().unwrap_or(""))
    });
    assert_eq!(first.json()["state"], "paused", "{}", daemon.log_text());
    assert_eq!(detections(&rx, "cam", 2.0), 0, "{}", daemon.log_text());
    assert_eq!(
        retained(broker.port, "visiond/sw/cam/detect/state")["visiond/sw/cam/detect/state"],
        b"OFF"
    );
    assert_eq!(daemon.terminate().0, Some(0));
}

/// MQTT 5, and a broker that restarts (clean sessions keep no
/// subscription): commands still arrive because visiond subscribes again.
#[test]
fn commands_arrive_over_mqtt5_and_after_the_broker_restarts() {
    let mut broker = Mosquitto::start();
    let text = config(
        "v5",
        &broker.url(),
        true,
        &test_stream("cam", "    labels: [person]\n"),
    )
    .replace("mqtt:\n", "mqtt:\n  protocol: 5\n");
    let mut daemon = Daemon::start(&text, &[]);
    watch(&daemon);
    let rx = subscribe(broker.port, "visiond/v5/cam/#");
    wait_for(&rx, 60, "playing", |m| {
        m.topic == "visiond/v5/cam/status" && m.json()["state"] == "playing"
    });
    broker.kill();
    broker.restart();
    // Nothing was persisted: everything retained comes again after the reconnect.
    let configs = subscribe(broker.port, "homeassistant/device/+/config");
    wait_for(&configs, 30, "discovery after the broker's restart", |m| {
        m.topic == "homeassistant/device/visiond_v5_cam/config" && !m.payload.is_empty()
    });
    let rx = subscribe(broker.port, "visiond/v5/cam/#");
    // The re-subscription may trail the configs by a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    let paused = loop {
        publish(broker.port, "visiond/v5/cam/detect/set", b"OFF", false);
        let got = (0..10).any(|_| {
            rx.recv_timeout(Duration::from_millis(100))
                .is_ok_and(|m| m.topic == "visiond/v5/cam/status" && m.json()["state"] == "paused")
        });
        if got || Instant::now() > deadline {
            break got;
        }
    };
    assert!(paused, "{}", daemon.log_text());
    assert_eq!(
        retained(broker.port, "visiond/v5/cam/detect/state")["visiond/v5/cam/detect/state"],
        b"OFF"
    );
    assert_eq!(daemon.terminate().0, Some(0));
}
