//! Data at scale with real parts (docs/FLEET.md): visiond publishes to a site
//! mosquitto bridged to a central one (mqttv311, cleansession false, QoS 1),
//! and consumers share the events through an MQTT 5 shared subscription.
//! The real daemon, SSD-MobileNetV2 and walk.mp4 (a person crossing).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use crossbeam_channel::Receiver;

fn config(node: &str, broker: &str, looping: bool) -> String {
    format!(
        r#"node: {node}
mqtt:
  url: {broker}
models:
  - name: coco
    path: {model}
    labels: {labels}
streams:
  - name: walk
    source: file://{clip}
    model: coco
    fps: 5
    loop: {looping}
    labels: [person]
    zones:
      - {{name: middle, polygon: [[0.3, 0], [0.6, 0], [0.6, 1], [0.3, 1]]}}
    lines:
      - {{name: gate, from: [0.5, 0], to: [0.5, 1]}}
"#,
        model = model("ssd_mobilenet_v2_coco.onnx").display(),
        labels = model("coco_labels.txt").display(),
        clip = media("walk.mp4").display(),
    )
}

/// The site broker's bridge to the central one, as docs/FLEET.md gives it,
/// with a short reconnect backoff (1 to 2 s) to keep the test short. A base
/// and a cap: mosquitto before 2.0.15 (Debian 12 has 2.0.11) ignores a
/// single `restart_timeout` value and keeps its default 5 to 30 s backoff.
fn bridge(central: u16) -> String {
    format!(
        "connection central
address 127.0.0.1:{central}
remote_clientid site-a
local_clientid site-a.bridge
bridge_protocol_version mqttv311
cleansession false
restart_timeout 1 2
topic visiond/# out 1
"
    )
}

/// Everything that has arrived so far.
fn drain(rx: &Receiver<Msg>, into: &mut Vec<Msg>) {
    into.extend(rx.try_iter());
}

/// Polls `done` every 50 ms, at most `limit`.
fn wait(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_event(m: &Msg) -> bool {
    m.topic.ends_with("/events")
}

/// Event payloads, each once (QoS 1 is at least once: a resend may come twice).
fn event_set(msgs: &[Msg]) -> BTreeSet<String> {
    msgs.iter().filter(|m| is_event(m)).map(Msg::text).collect()
}

/// (session, frame) of the detections received in `window`.
fn detections_in(msgs: &[Msg], from: Instant, to: Instant) -> BTreeSet<(String, u64)> {
    msgs.iter()
        .filter(|m| m.topic.ends_with("/detections") && m.at >= from && m.at < to)
        .map(|m| {
            let v = m.json();
            (
                v["session"].as_str().unwrap_or_default().to_string(),
                v["frame"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

fn summary(events: &BTreeSet<String>) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(e).expect("event JSON");
            format!("{} {} {}", v["id"], v["type"], v["frame"])
        })
        .collect()
}

/// The central broker is killed (-9) while the person walks, stays down for
/// a few seconds, and comes back: every QoS 1 event the site saw reaches the
/// consumer on the central broker, those of the outage included; the
/// retained status and availability on the central broker end up those of
/// the site; QoS 0 detections of the outage are (nearly all) dropped.
#[test]
fn qos1_events_cross_the_bridge_after_the_central_broker_comes_back() {
    let t0 = Instant::now();
    let mut central = Mosquitto::start_with(PERSISTENT);
    // A persistent session: the central broker keeps it (and what arrives
    // for it) over the outage.
    let consumer = subscribe_session(central.port, "visiond/br/#", "central-consumer");
    saved(&central);
    let site = Mosquitto::start_with(&bridge(central.port));
    let reference = subscribe(site.port, "visiond/br/#");
    let mut daemon = Daemon::start(&config("br", &site.url(), true), &[]);
    let (mut on_site, mut on_central) = (Vec::new(), Vec::new());

    // The bridge carries events while both brokers are up.
    let flowing = wait(Duration::from_secs(60), || {
        drain(&consumer, &mut on_central);
        on_central.iter().any(is_event)
    });
    assert!(
        flowing,
        "no event reached the central broker; visiond:\n{}\nsite:\n{}",
        daemon.log_text(),
        site.log_text()
    );

    // Killed just after an event reached the consumer: the central broker
    // acknowledges a QoS 1 message once it holds it in memory, so one killed
    // between that and the delivery (and before a save) would lose it; that
    // is the crash, not the bridge, and not what this test is about.
    central.kill();
    let down = Instant::now();
    // Down for 3 s at least, and until the site has seen 3 events meanwhile.
    let outage_events = |on_site: &[Msg]| {
        on_site
            .iter()
            .filter(|m| is_event(m) && m.at > down)
            .count()
    };
    let enough = wait(Duration::from_secs(30), || {
        drain(&reference, &mut on_site);
        down.elapsed() >= Duration::from_secs(3) && outage_events(&on_site) >= 3
    });
    assert!(
        enough,
        "events during the outage: {}",
        outage_events(&on_site)
    );
    central.restart();
    let up = Instant::now();
    drain(&reference, &mut on_site);
    let during: BTreeSet<String> = event_set(
        &on_site
            .iter()
            .filter(|m| m.at > down && m.at < up)
            .cloned()
            .collect::<Vec<_>>(),
    );

    // The bridge is back (detections reach the central consumer again) and
    // a few more events came; then the daemon stops (its `end ... shutdown`
    // events and `offline` go through the bridge too).
    let more = wait(Duration::from_secs(30), || {
        drain(&reference, &mut on_site);
        drain(&consumer, &mut on_central);
        on_site.iter().filter(|m| is_event(m) && m.at > up).count() >= 3
            && on_central
                .iter()
                .any(|m| m.at > up && m.topic.ends_with("/detections"))
    });
    assert!(
        more,
        "the bridge did not come back; site broker:\n{}",
        site.log_text()
    );
    assert_eq!(daemon.terminate().0, Some(0), "{}", daemon.log_text());
    let offline = wait(Duration::from_secs(10), || {
        drain(&reference, &mut on_site);
        on_site
            .iter()
            .any(|m| m.topic == "visiond/br/available" && m.text() == "offline")
    });
    assert!(offline, "no offline on the site broker");
    let site_events = event_set(&on_site);

    // Every event the site saw arrives at the central consumer.
    let all = wait(Duration::from_secs(30), || {
        drain(&consumer, &mut on_central);
        event_set(&on_central).is_superset(&site_events)
    });
    let central_events = event_set(&on_central);
    let missing: Vec<String> = summary(&site_events.difference(&central_events).cloned().collect());
    assert!(
        all,
        "{} of {} events missing at the central broker ({} of them from the outage): {missing:?}\nsite broker:\n{}",
        missing.len(),
        site_events.len(),
        during.difference(&central_events).count(),
        site.log_text()
    );
    assert!(
        central_events.is_subset(&site_events),
        "the central broker has events the site never saw"
    );
    let copies = on_central.iter().filter(|m| is_event(m)).count();

    // Status: seen at the central consumer, and the retained state there is
    // the last one of the site (retain passes the bridge).
    let status = "visiond/br/walk/status";
    assert!(
        on_central
            .iter()
            .any(|m| m.topic == status && m.json()["state"] == "playing"),
        "no playing status at the central broker"
    );
    let last_on_site = |topic: &str| {
        on_site
            .iter()
            .rev()
            .find(|m| m.topic == topic)
            .map(Msg::text)
            .unwrap_or_else(|| panic!("no {topic} on the site broker"))
    };
    let late = subscribe(central.port, "visiond/br/+/status");
    let late_available = subscribe(central.port, "visiond/br/available");
    let retained = late
        .recv_timeout(Duration::from_secs(5))
        .expect("a retained status on the central broker");
    assert!(retained.retain, "{retained:?}");
    assert_eq!(retained.text(), last_on_site(status));
    assert_eq!(retained.json()["state"], "stopped");
    let available = late_available
        .recv_timeout(Duration::from_secs(5))
        .expect("a retained availability on the central broker");
    assert!(available.retain);
    assert_eq!(available.text(), "offline");

    // QoS 0 detections published while the bridge was down are dropped
    // (mosquitto queues only QoS 1 and 2 for a disconnected session). Not
    // quite all: in 3 runs of about 21 one came later (the one looked at was
    // published at down + 1.9 s, about when the bridge tried to reconnect).
    let gone = detections_in(&on_site, down + Duration::from_millis(500), up);
    let central_detections =
        detections_in(&on_central, t0, Instant::now() + Duration::from_secs(1));
    assert!(
        gone.len() >= 5,
        "detections during the outage: {}",
        gone.len()
    );
    let crossed: Vec<String> = gone
        .intersection(&central_detections)
        .map(|(sess, f)| {
            let at = |msgs: &[Msg]| {
                msgs.iter()
                    .find(|m| {
                        m.topic.ends_with("/detections")
                            && m.json()["frame"].as_u64() == Some(*f)
                            && m.json()["session"].as_str() == Some(sess)
                    })
                    .map(|m| m.at)
            };
            let s = at(&on_site).map(|t| (t - down).as_secs_f64());
            let c = at(&on_central).map(|t| t.duration_since(up).as_secs_f64());
            format!("{f}: site down+{s:?} central up+{c:?}")
        })
        .collect();
    assert!(
        crossed.len() * 10 < gone.len(),
        "QoS 0 detections of the outage ({:.1} s) reached the central broker: {crossed:?}",
        (up - down).as_secs_f64()
    );

    eprintln!(
        "{} events on the site, {} of them while central was down ({:.1} s), all at the central consumer ({copies} copies); {} of {} outage detections dropped; {:.1} s",
        site_events.len(),
        during.len(),
        (up - down).as_secs_f64(),
        gone.len() - crossed.len(),
        gone.len(),
        t0.elapsed().as_secs_f64()
    );
}

/// An MQTT 5 client subscribed to `filter` (a `$share/GROUP/...` one here).
fn subscribe_v5(port: u16, filter: &str, id: &str) -> Receiver<Msg> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    let opts = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
    let (client, mut connection) = rumqttc::v5::Client::new(opts, 64);
    client
        .subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .expect("subscribe");
    let (tx, rx) = crossbeam_channel::unbounded();
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _client = client;
        for event in connection.iter() {
            match event {
                Ok(rumqttc::v5::Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.try_send(());
                }
                Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                    let m = Msg {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                        at: Instant::now(),
                    };
                    if tx.send(m).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("subscribed");
    rx
}

/// Three consumers in one shared subscription (two MQTT 5 clients and one
/// MQTT 3.1.1 client, which mosquitto 2 also lets share): each event goes to
/// exactly one of them, each gets some, and together they get what a plain
/// subscriber gets.
#[test]
fn a_shared_subscription_gives_each_event_to_exactly_one_consumer() {
    let t0 = Instant::now();
    let broker = Mosquitto::start();
    let shared = "$share/workers/visiond/sh/+/events";
    let group = [
        ("v5-a", subscribe_v5(broker.port, shared, "worker-v5-a")),
        ("v5-b", subscribe_v5(broker.port, shared, "worker-v5-b")),
        ("v311", subscribe(broker.port, shared)),
    ];
    let plain = subscribe(broker.port, "visiond/sh/#");
    let mut daemon = Daemon::start(&config("sh", &broker.url(), false), &[]);
    let mut all = Vec::new();
    let stopped = wait(Duration::from_secs(90), || {
        drain(&plain, &mut all);
        all.iter()
            .any(|m| m.topic == "visiond/sh/walk/status" && m.json()["state"] == "stopped")
    });
    let log = daemon.log_text();
    assert!(stopped, "the clip did not end; log:\n{log}");
    assert_eq!(daemon.terminate().0, Some(0), "log:\n{log}");
    let events: Vec<String> = all.iter().filter(|m| is_event(m)).map(Msg::text).collect();
    assert!(events.len() >= 3, "{events:?}");

    let mut got: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    wait(Duration::from_secs(10), || {
        for (name, rx) in &group {
            got.entry(name)
                .or_default()
                .extend(rx.try_iter().map(|m| m.text()));
        }
        got.values().map(Vec::len).sum::<usize>() >= events.len()
    });
    std::thread::sleep(Duration::from_millis(300));
    for (name, rx) in &group {
        got.entry(name)
            .or_default()
            .extend(rx.try_iter().map(|m| m.text()));
    }
    let counts: BTreeMap<&str, usize> = got.iter().map(|(k, v)| (*k, v.len())).collect();
    let mut union: Vec<String> = got.values().flatten().cloned().collect();
    union.sort();
    let mut expected = events.clone();
    expected.sort();
    assert_eq!(
        union, expected,
        "each event once across the group: {counts:?}"
    );
    assert!(
        counts.values().all(|n| *n > 0),
        "every consumer gets some: {counts:?}"
    );
    eprintln!(
        "{} events shared as {counts:?}; {:.1} s",
        events.len(),
        t0.elapsed().as_secs_f64()
    );
}
