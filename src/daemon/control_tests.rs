//! The control loop with a recording broker, in chosen instants.

use super::*;
use crate::config::HomeAssistantConfig;

#[derive(Default)]
struct Rec(Mutex<Vec<String>>);

impl Rec {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

impl Broker for Rec {
    fn retain(&self, topic: &str, payload: Vec<u8>) {
        let p = String::from_utf8_lossy(&payload);
        let p = if p.starts_with('{') { "{..}".into() } else { p };
        self.push(format!("retain {topic} {p}"));
    }
    fn clear(&self, topic: &str) {
        self.push(format!("clear {topic}"));
    }
    fn subscribe(&self, filter: &str) {
        self.push(format!("sub {filter}"));
    }
    fn unsubscribe(&self, filter: &str) {
        self.push(format!("unsub {filter}"));
    }
}

fn topics() -> Topics {
    Topics::new("v", "n")
}

fn setup(names: &[&str], ha: bool) -> Setup {
    let discovery = ha.then(|| {
        let d = Discovery::new(
            &HomeAssistantConfig {
                prefix: "ha".into(),
            },
            "n",
            topics(),
        );
        let streams = names
            .iter()
            .map(|n| StreamEntities {
                name: n.to_string(),
                model: "m".into(),
                labels: vec!["person".into()],
                zones: Vec::new(),
                sub_labels: Vec::new(),
            })
            .collect();
        (d, streams)
    });
    Setup {
        streams: names.iter().map(|s| s.to_string()).collect(),
        discovery,
    }
}

fn msg(topic: &str, payload: &[u8], retain: bool) -> Incoming {
    Incoming::Message {
        topic: topic.into(),
        payload: payload.to_vec(),
        retain,
    }
}

/// Connected, subscriptions confirmed, the scan over.
fn started(c: &mut Control, b: &Rec, t0: Instant, retained: Vec<Incoming>) {
    c.on(Incoming::Connected, t0, b);
    c.on(Incoming::Subscribed, t0, b);
    for m in retained {
        c.on(m, t0, b);
    }
    c.tick(t0 + SCAN_SETTLE, b);
}

#[test]
fn start_up_publishes_discovery_reads_the_switches_back_and_clears_stale_devices() {
    let b = Rec::default();
    let switches = Arc::new(Switches::default());
    let mut c = Control::new(topics(), setup(&["a", "b"], true), switches.clone(), &b);
    assert_eq!(
        b.take(),
        [
            "sub v/n/+/detect/set",
            "sub ha/status",
            "retain ha/device/visiond_n/config {..}",
            "retain ha/device/visiond_n_a/config {..}",
            "retain ha/device/visiond_n_b/config {..}",
        ]
    );
    assert!(!c.ready().load(Ordering::Relaxed));
    let t0 = Instant::now();
    c.on(Incoming::Connected, t0, &b);
    assert_eq!(
        b.take(),
        ["sub v/n/+/detect/state", "sub ha/device/+/config"]
    );
    c.on(Incoming::Subscribed, t0, &b);
    // What the broker kept: b was switched off before the restart; a
    // device of a stream this config no longer has; ours still current;
    // another node's; another program's.
    let ours_gone = Discovery::new(
        &HomeAssistantConfig {
            prefix: "ha".into(),
        },
        "n",
        topics(),
    )
    .configs(&setup(&["gone"], true).discovery.unwrap().1)
    .pop()
    .unwrap();
    let other_node = Discovery::new(
        &HomeAssistantConfig {
            prefix: "ha".into(),
        },
        "n_x",
        Topics::new("v", "n_x"),
    )
    .configs(&setup(&["y"], true).discovery.unwrap().1)
    .pop()
    .unwrap();
    assert_eq!(other_node.0, "ha/device/visiond_n_x_y/config");
    for m in [
        msg("v/n/b/detect/state", b"OFF", true),
        msg("v/n/zzz/detect/state", b"OFF", true),
        msg(&ours_gone.0, &ours_gone.1, true),
        msg(
            "ha/device/visiond_n_a/config",
            b"{\"o\":{\"name\":\"visiond\"}}",
            true,
        ),
        msg(&other_node.0, &other_node.1, true),
        msg(
            "ha/device/0xabc/config",
            br#"{"o":{"name":"zigbee2mqtt"},"dev":{"ids":["visiond_n"]}}"#,
            true,
        ),
    ] {
        c.on(m, t0, &b);
    }
    assert_eq!(b.take(), ["clear ha/device/visiond_n_gone/config"]);
    assert!(!switches.paused("b"), "applied when the scan ends");
    c.tick(t0 + SCAN_SETTLE / 2, &b);
    assert!(b.take().is_empty(), "still settling");
    c.tick(t0 + SCAN_SETTLE, &b);
    assert_eq!(
        b.take(),
        [
            "unsub v/n/+/detect/state",
            "unsub ha/device/+/config",
            "retain v/n/a/detect/state ON",
            "retain v/n/b/detect/state OFF",
        ]
    );
    assert!(switches.paused("b") && !switches.paused("a"));
    assert!(c.ready().load(Ordering::Relaxed));
    // After the scan a retained config is nobody's business.
    c.on(msg(&ours_gone.0, &ours_gone.1, true), t0, &b);
    // A reconnect does not scan again.
    c.on(Incoming::Connected, t0 + SCAN_LIMIT, &b);
    assert!(b.take().is_empty());
}

#[test]
fn a_silent_broker_ends_the_scan_at_its_limit() {
    let b = Rec::default();
    let mut c = Control::new(topics(), setup(&["a"], false), Arc::default(), &b);
    assert_eq!(
        b.take(),
        ["sub v/n/+/detect/set"],
        "no discovery, no birth topic"
    );
    let t0 = Instant::now();
    c.on(Incoming::Connected, t0, &b);
    assert_eq!(c.next_due(), Some(t0 + SCAN_LIMIT));
    c.tick(t0 + SCAN_LIMIT, &b);
    assert!(c.ready().load(Ordering::Relaxed));
    assert_eq!(
        b.take(),
        [
            "sub v/n/+/detect/state",
            "unsub v/n/+/detect/state",
            "retain v/n/a/detect/state ON"
        ]
    );
}

#[test]
fn commands_switch_streams_and_bad_ones_change_nothing() {
    let b = Rec::default();
    let switches = Arc::new(Switches::default());
    let mut c = Control::new(topics(), setup(&["a"], true), switches.clone(), &b);
    let t0 = Instant::now();
    // A command during the scan wins over the retained state it finds.
    c.on(Incoming::Connected, t0, &b);
    c.on(msg("v/n/a/detect/set", b"OFF", false), t0, &b);
    c.on(msg("v/n/a/detect/state", b"ON", true), t0, &b);
    c.tick(t0 + SCAN_LIMIT, &b);
    assert!(switches.paused("a"));
    b.take();
    c.on(msg("v/n/a/detect/set", b" on\n", false), t0, &b);
    assert!(!switches.paused("a"));
    assert_eq!(b.take(), ["retain v/n/a/detect/state ON"]);
    // Garbage, huge payloads, unknown streams, wildcard-looking names.
    let huge = vec![b'O'; 1 << 20];
    for (topic, payload) in [
        ("v/n/a/detect/set", &b"toggle"[..]),
        ("v/n/a/detect/set", &huge),
        ("v/n/a/detect/set", b"\xff\xfeOFF"),
        ("v/n/a/detect/set", b""),
        ("v/n/nope/detect/set", b"OFF"),
        ("v/n/a/b/detect/set", b"OFF"),
        ("v/n//detect/set", b"OFF"),
        ("v/other/a/detect/set", b"OFF"),
        ("ha/status", b"offline"),
        ("ha/status", &huge),
    ] {
        c.on(msg(topic, payload, false), t0, &b);
    }
    assert!(!switches.paused("a") && !switches.paused("nope"));
    assert!(b.take().is_empty());
    assert_eq!(c.next_due(), None, "no re-send scheduled");
}

#[test]
fn home_assistant_online_resends_every_config_after_a_short_random_delay() {
    let b = Rec::default();
    let mut c = Control::new(topics(), setup(&["a"], true), Arc::default(), &b);
    let t0 = Instant::now();
    started(&mut c, &b, t0, Vec::new());
    b.take();
    c.on(msg("ha/status", b"online", false), t0, &b);
    let due = c.next_due().expect("a re-send is due");
    let delay = due - t0;
    assert!(
        delay >= Duration::from_millis(BIRTH_DELAY_MS.0)
            && delay <= Duration::from_millis(BIRTH_DELAY_MS.1),
        "{delay:?}"
    );
    c.tick(due - Duration::from_millis(1), &b);
    assert!(b.take().is_empty());
    c.tick(due, &b);
    assert_eq!(
        b.take(),
        [
            "retain ha/device/visiond_n/config {..}",
            "retain ha/device/visiond_n_a/config {..}"
        ]
    );
    assert_eq!(c.next_due(), None);
}

#[test]
fn a_reload_sends_what_changed_and_removes_what_is_gone() {
    let b = Rec::default();
    let switches = Arc::new(Switches::default());
    let mut c = Control::new(topics(), setup(&["a", "b"], true), switches.clone(), &b);
    started(
        &mut c,
        &b,
        Instant::now(),
        vec![msg("v/n/b/detect/state", b"OFF", true)],
    );
    b.take();
    // The same setup: nothing goes out.
    c.set(setup(&["a", "b"], true), &b);
    assert!(b.take().is_empty());
    // b goes, c comes: its device, its switch state.
    c.set(setup(&["a", "c"], true), &b);
    assert_eq!(
        b.take(),
        [
            "clear ha/device/visiond_n_b/config",
            "retain ha/device/visiond_n_c/config {..}",
            "retain v/n/c/detect/state ON",
        ]
    );
    // A changed label list re-sends that device only.
    let mut changed = setup(&["a", "c"], true);
    if let Some((_, s)) = &mut changed.discovery {
        s[1].labels.push("car".into());
    }
    c.set(changed, &b);
    assert_eq!(b.take(), ["retain ha/device/visiond_n_c/config {..}"]);
    // Discovery turned off: every device goes, the birth topic too.
    c.set(setup(&["a", "c"], false), &b);
    assert_eq!(
        b.take(),
        [
            "unsub ha/status",
            "clear ha/device/visiond_n/config",
            "clear ha/device/visiond_n_a/config",
            "clear ha/device/visiond_n_c/config",
        ]
    );
    // b's switch went with it; a kept stream keeps its switch.
    c.on(msg("v/n/a/detect/set", b"OFF", false), Instant::now(), &b);
    c.set(setup(&["a"], false), &b);
    assert!(switches.paused("a") && !switches.paused("b"));
}
