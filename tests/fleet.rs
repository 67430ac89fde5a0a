//! The fleet with real parts: etcd (one member, or three), mosquitto, the
//! daemons and the real SSD on cheap `test://` cameras at 2 frames/s.
//! Who published a camera when is read from the `detections` messages'
//! own capture times, so a message queued before a freeze and delivered
//! after it counts when it was made.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const LEASE_S: u64 = 3;
const CAMERA: &str = r#"{"source": "test://?width=160&height=120", "model": "coco", "fps": 2}"#;

/// A real etcd member on free loopback ports, with its data in a folder
/// that outlives a kill, so a restart is the same member.
struct Etcd {
    name: String,
    client: u16,
    peer: u16,
    cluster: String,
    dir: tempfile::TempDir,
    proc: Option<Proc>,
}

impl Etcd {
    /// `n` members of one cluster.
    fn cluster(n: usize) -> Vec<Etcd> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("e{i}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Etcd> = ports
            .iter()
            .enumerate()
            .map(|(i, (c, p))| Etcd {
                name: format!("e{i}"),
                client: *c,
                peer: *p,
                cluster: cluster.clone(),
                dir: tempfile::tempdir().expect("tempdir"),
                proc: None,
            })
            .collect();
        for m in &mut members {
            m.start();
        }
        for m in &members {
            m.wait_healthy();
        }
        members
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log");
        let url = |p: u16| format!("http://127.0.0.1:{p}");
        let child = Command::new("etcd")
            .args(["--name", &self.name, "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &url(self.client)])
            .args(["--advertise-client-urls", &url(self.client)])
            .args(["--listen-peer-urls", &url(self.peer)])
            .args(["--initial-advertise-peer-urls", &url(self.peer)])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-state", "new"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd runs (scripts/apt-deps.sh installs etcd-server)");
        self.proc = Some(Proc(child));
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !etcdctl(&[self.url()], &["endpoint", "health"]).0 {
            assert!(Instant::now() < deadline, "etcd {} not healthy", self.name);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }
}

/// Runs etcdctl (API v3); returns whether it succeeded, and its output.
fn etcdctl(endpoints: &[String], args: &[&str]) -> (bool, String) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["--dial-timeout=2s", "--command-timeout=3s"])
        .args(args)
        .output()
        .expect("etcdctl runs (scripts/apt-deps.sh installs etcd-client)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn put(endpoints: &[String], key: &str, value: &str) {
    let (ok, out) = etcdctl(endpoints, &["put", key, value]);
    assert!(ok, "etcdctl put {key}: {out}");
}

/// Keys and values under `prefix`.
fn get_prefix(endpoints: &[String], prefix: &str) -> BTreeMap<String, String> {
    let (_, out) = etcdctl(endpoints, &["get", "--prefix", prefix]);
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].to_string(), c[1].to_string()))
        .collect()
}

fn owners(endpoints: &[String]) -> BTreeMap<String, String> {
    get_prefix(endpoints, "/visiond/owners/")
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("/visiond/owners/").to_string(), v))
        .collect()
}

fn node_config(node: &str, broker: u16, endpoints: &[String], http: u16, streams: &str) -> String {
    format!(
        "node: {node}\nmqtt:\n  url: mqtt://127.0.0.1:{broker}\nhttp:\n  listen: 127.0.0.1:{http}\ncluster:\n  etcd: [{}]\n  lease_s: {LEASE_S}\nmodels:\n  - name: coco\n    path: {}\n    labels: {}\n    workers: 1\n    threads: 1\nstreams:{streams}\n",
        endpoints.join(", "),
        model("ssd_mobilenet_v2_coco.onnx").display(),
        model("coco_labels.txt").display(),
    )
}

/// One `detections` message: camera, node, capture time (s since the epoch), width.
#[derive(Debug, Clone)]
struct Seen {
    camera: String,
    node: String,
    at: f64,
    /// When it reached the test's subscriber (s since the epoch).
    arrived: f64,
    width: u64,
}

/// Every detections message so far, collected on a thread.
struct Watch {
    rx: crossbeam_channel::Receiver<Msg>,
    seen: Vec<Seen>,
}

impl Watch {
    fn new(port: u16) -> Self {
        Self {
            rx: subscribe(port, "visiond/+/+/detections"),
            seen: Vec::new(),
        }
    }

    /// Takes what arrived; returns all seen.
    fn poll(&mut self) -> &[Seen] {
        while let Ok(m) = self.rx.try_recv() {
            let v = m.json();
            let at = v["captured_at"].as_str().map(rfc3339).unwrap_or_default();
            self.seen.push(Seen {
                camera: v["stream"].as_str().unwrap_or_default().into(),
                node: v["node"].as_str().unwrap_or_default().into(),
                at,
                arrived: now() - m.at.elapsed().as_secs_f64(),
                width: v["width"].as_u64().unwrap_or_default(),
            });
        }
        &self.seen
    }

    /// Camera -> the nodes that published it with a capture time after `since`.
    fn publishers(&mut self, since: f64) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in self.poll().iter().filter(|s| s.at > since) {
            out.entry(s.camera.clone())
                .or_default()
                .insert(s.node.clone());
        }
        out
    }

    /// Waits until `done` holds for who published in the last 2 s.
    fn until(
        &mut self,
        what: &str,
        limit: Duration,
        done: impl Fn(&BTreeMap<String, BTreeSet<String>>) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let p = self.publishers(now() - 2.0);
            if done(&p) {
                return now();
            }
            assert!(Instant::now() < deadline, "{what}: publishers {p:?}");
        }
    }

    /// The longest time two nodes published one camera side by side, as a
    /// consumer saw it: each node's runs of messages (split where a gap
    /// exceeds 0.8 s; the cameras send every 0.5 s), intersected pairwise
    /// by arrival time. (Capture times are no measure here: a live
    /// source's first frames are dated back by the pipeline's start-up.)
    fn longest_overlap(&mut self) -> f64 {
        let mut runs: BTreeMap<String, Vec<(String, f64, f64)>> = BTreeMap::new();
        let mut seen = self.poll().to_vec();
        seen.sort_by(|a, b| a.arrived.total_cmp(&b.arrived));
        for s in &seen {
            let list = runs.entry(s.camera.clone()).or_default();
            match list.iter_mut().rev().find(|r| r.0 == s.node) {
                Some(r) if s.arrived - r.2 < 0.8 => r.2 = s.arrived,
                _ => list.push((s.node.clone(), s.arrived, s.arrived)),
            }
        }
        let mut worst: f64 = 0.0;
        for (camera, list) in &runs {
            for (i, a) in list.iter().enumerate() {
                for b in &list[i + 1..] {
                    let both = a.2.min(b.2) - a.1.max(b.1);
                    if a.0 != b.0 && both >= 0.0 {
                        eprintln!("{camera} side by side for {both:.2} s: {a:?} and {b:?}");
                        worst = worst.max(both);
                    }
                }
            }
        }
        worst
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// `2026-11-28T17:00:00.123Z` as seconds since the epoch.
fn rfc3339(s: &str) -> f64 {
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).unwrap_or(0);
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm) = (num(11..13), num(14..16));
    let secs: f64 = s
        .get(17..)
        .map(|r| r.trim_end_matches('Z'))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0.0);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60) as f64 + secs
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The status page at `/`.
fn page(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

fn signal(d: &Daemon, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(d.proc.0.id() as i32, sig) };
}

fn spread(p: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, usize> {
    let mut per_node = BTreeMap::new();
    for nodes in p.values() {
        for n in nodes {
            *per_node.entry(n.clone()).or_default() += 1;
        }
    }
    per_node
}

fn wait_nodes(endpoints: &[String], n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_prefix(endpoints, "/visiond/nodes/").len() != n {
        assert!(Instant::now() < deadline, "{n} nodes did not register");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn six_cameras_spread_over_three_nodes_move_on_death_and_never_run_twice() {
    let mut etcd = Etcd::cluster(3);
    let endpoints: Vec<String> = etcd.iter().map(Etcd::url).collect();
    let broker = Mosquitto::start();
    let mut watch = Watch::new(broker.port);
    let names = ["n1", "n2", "n3"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let start = |i: usize| {
        Daemon::start(
            &node_config(names[i], broker.port, &endpoints, ports[i], " []"),
            &[],
        )
    };
    let mut daemons: Vec<Daemon> = (0..3).map(start).collect();
    wait_nodes(&endpoints, 3);
    let cameras: Vec<String> = (0..6).map(|i| format!("cam{i}")).collect();
    for c in &cameras {
        put(&endpoints, &format!("/visiond/streams/{c}"), CAMERA);
    }

    // Each camera on exactly one node, two on each.
    watch.until("spread", Duration::from_secs(60), |p| {
        p.len() == 6 && p.values().all(|n| n.len() == 1) && spread(p).values().all(|&n| n == 2)
    });
    let before = owners(&endpoints);
    assert_eq!(before.len(), 6, "{before:?}");
    let on_n1: Vec<String> = before
        .iter()
        .filter(|(_, n)| *n == "n1")
        .map(|(c, _)| c.clone())
        .collect();

    // kill -9: n1's cameras are published elsewhere within lease_s + 10 s.
    let killed = now();
    let _ = daemons[0].proc.0.kill();
    let taken = watch.until("takeover", Duration::from_secs(LEASE_S + 10), |p| {
        on_n1
            .iter()
            .all(|c| p.get(c).is_some_and(|n| !n.is_empty() && !n.contains("n1")))
    });
    let takeover = taken - killed;
    eprintln!("takeover after kill -9: {takeover:.1} s (lease_s {LEASE_S})");

    // SIGSTOP past the lease: n3 takes n2's cameras; continued, n2 has
    // stopped them (its fence closed), then takes its share back.
    watch.until("settled on two", Duration::from_secs(20), |p| {
        p.len() == 6 && p.values().all(|n| n.len() == 1)
    });
    signal(&daemons[1], libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(LEASE_S + 4));
    watch.until("n3 runs all", Duration::from_secs(20), |p| {
        spread(p).get("n3") == Some(&6)
    });
    let continued = now();
    signal(&daemons[1], libc::SIGCONT);
    let stopped_at = continued - (LEASE_S + 4) as f64;
    watch.until("n2 back with its share", Duration::from_secs(40), |p| {
        p.len() == 6 && p.values().all(|n| n.len() == 1) && spread(p).get("n2") == Some(&3)
    });
    // What n2 delivered after it woke and before it owned a camera again
    // was made before it froze: it had left for the broker already. Nothing
    // its pipeline made after waking gets out (the fence holds it back).
    for late in watch
        .poll()
        .iter()
        .filter(|s| s.node == "n2" && s.arrived > continued && s.arrived < continued + 0.3)
    {
        eprintln!(
            "n2 delivered after SIGCONT: {} captured {:+.2} s from SIGSTOP",
            late.camera,
            late.at - stopped_at
        );
        // `stopped_at` is no earlier than the SIGSTOP itself.
        assert!(
            late.at <= stopped_at,
            "n2 published a frame captured {:.2} s after it froze",
            late.at - stopped_at
        );
    }
    // What the frozen node's pipeline still made after it woke was held back, and counted.
    let fenced = metric(ports[1], "visiond_fleet_messages_fenced_total").unwrap_or(0.0);
    eprintln!("n2's messages held back by the fence: {fenced}");
    assert!(fenced >= 1.0, "the fence held nothing back");
    let log = daemons[1].log_text();
    assert!(
        log.contains("fleet cameras stop"),
        "n2 said it stopped: {log}"
    );
    eprintln!(
        "n2 continued at +{:.1} s; back with 3 cameras",
        now() - continued
    );

    // A node joins: only its share moves.
    let settled = owners(&endpoints);
    daemons[0] = start(0);
    watch.until("n1 joined", Duration::from_secs(40), |p| {
        p.len() == 6 && p.values().all(|n| n.len() == 1) && spread(p).values().all(|&n| n == 2)
    });
    let joined = owners(&endpoints);
    let moved = settled
        .iter()
        .filter(|(c, n)| joined.get(*c) != Some(n))
        .count();
    eprintln!("cameras moved when a node joined: {moved} of 6");
    assert_eq!(moved, 2, "{settled:?} -> {joined:?}");

    // One etcd member of three dies: nothing moves.
    etcd[0].kill();
    std::thread::sleep(Duration::from_secs(2 * LEASE_S));
    let live: Vec<String> = endpoints[1..].to_vec();
    assert_eq!(
        owners(&live),
        joined,
        "an etcd member's death moved cameras"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while watch.publishers(now() - 2.0).len() != 6 {
        if Instant::now() > deadline {
            for d in &daemons {
                let log = d.log_text();
                let fleet: Vec<&str> = log.lines().filter(|l| l.contains("fleet")).collect();
                eprintln!("{}", fleet.join("\n"));
            }
            panic!("not all running after an etcd member died");
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    let overlap = watch.longest_overlap();
    eprintln!("longest double publishing: {overlap:.2} s");
    assert!(
        overlap <= 1.0,
        "two nodes published one camera for {overlap:.2} s"
    );
    assert!(
        takeover <= (LEASE_S + 10) as f64,
        "takeover {takeover:.1} s"
    );
    for d in &mut daemons[1..] {
        d.terminate();
    }
}

#[test]
fn cameras_follow_their_keys_and_outlive_an_etcd_restart() {
    let mut etcd = Etcd::cluster(1);
    let endpoints = vec![etcd[0].url()];
    let broker = Mosquitto::start();
    let mut watch = Watch::new(broker.port);
    let http = free_port();
    let local =
        "\n  - name: local\n    source: test://?width=160&height=120\n    model: coco\n    fps: 2";
    let mut daemon = Daemon::start(
        &node_config("solo", broker.port, &endpoints, http, local),
        &[],
    );
    wait_nodes(&endpoints, 1);

    put(&endpoints, "/visiond/streams/cam", CAMERA);
    watch.until("cam and local run", Duration::from_secs(30), |p| {
        p.contains_key("cam") && p.contains_key("local")
    });
    assert_eq!(metric(http, "visiond_fleet_lease_ok"), Some(1.0));
    assert_eq!(metric(http, "visiond_fleet_streams_owned"), Some(1.0));

    // Changed: restarted with the new spec.
    let wider = CAMERA.replace("width=160", "width=320");
    put(&endpoints, "/visiond/streams/cam", &wider);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !watch
        .poll()
        .iter()
        .any(|s| s.camera == "cam" && s.width == 320)
    {
        assert!(Instant::now() < deadline, "the new spec did not run");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Invalid: refused, named, and the others run on.
    put(
        &endpoints,
        "/visiond/streams/bad",
        r#"{"source": "test://", "model": "yolo", "fps": 2}"#,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.log_text().contains("camera refused") {
        assert!(Instant::now() < deadline, "no refusal logged");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = daemon.log_text();
    assert!(
        log.contains("/visiond/streams/bad:1:") && log.contains("yolo"),
        "{log}"
    );
    assert_eq!(metric(http, "visiond_fleet_streams_refused"), Some(1.0));
    let page = page(http);
    assert!(
        page.contains("Fleet: etcd reachable, lease alive, 1 cameras owned here")
            && page.contains("Refused <b>bad</b>"),
        "{page}"
    );

    // etcd down for longer than the lease: what runs keeps running.
    let t0 = now();
    etcd[0].kill();
    std::thread::sleep(Duration::from_secs(2 * LEASE_S + 1));
    assert_eq!(metric(http, "visiond_fleet_etcd_up"), Some(0.0));
    let during = watch.publishers(t0 + LEASE_S as f64);
    assert!(
        during.contains_key("cam") && during.contains_key("local"),
        "stopped while etcd was down: {during:?}"
    );
    etcd[0].start();
    etcd[0].wait_healthy();
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(http, "visiond_fleet_etcd_up") != Some(1.0) {
        assert!(Instant::now() < deadline, "etcd_up did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        owners(&endpoints).get("cam").map(String::as_str),
        Some("solo")
    );
    // No gap in the camera's messages through it all.
    let mut times: Vec<f64> = watch
        .poll()
        .iter()
        .filter(|s| s.camera == "cam" && s.at > t0)
        .map(|s| s.at)
        .collect();
    times.sort_by(f64::total_cmp);
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(gap < 2.0, "a {gap:.1} s gap in the camera's messages");

    // Deleted: stopped, its retained status cleared.
    let (ok, _) = etcdctl(&endpoints, &["del", "/visiond/streams/cam"]);
    assert!(ok);
    std::thread::sleep(Duration::from_secs(3));
    let after = watch.publishers(now() - 1.0);
    assert!(
        !after.contains_key("cam") && after.contains_key("local"),
        "{after:?}"
    );
    let status = subscribe(broker.port, "visiond/solo/cam/status");
    assert!(
        status
            .recv_timeout(Duration::from_secs(1))
            .map_or(true, |m| m.payload.is_empty()),
        "the deleted camera's status is still retained"
    );
    assert!(Path::new(&daemon.log).exists());
    daemon.terminate();
}
