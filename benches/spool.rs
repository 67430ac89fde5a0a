//! The QoS 1 spool: what a synced append costs per message, alone and in
//! groups, and how many detections/s the whole QoS 1 path (spool, client,
//! broker's PUBACK) carries against a real mosquitto, next to QoS 0.
//!
//!   cargo bench --bench spool [-- DIR]
//!
//! DIR (default /var/tmp) must be on the disk the spool would use: a tmpfs
//! makes syncs free and the numbers meaningless.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use visiond::frame::{Analysis, BBox, Detection, FrameMeta, Output};
use visiond::publish::spool::Spool;
use visiond::publish::{MqttPublisher, MqttSettings, Protocol, Publish, Topics, Wire};

fn analysis(seq: u64) -> Analysis {
    let person = Detection {
        label: Arc::from("person"),
        label_id: 0,
        score: 0.91,
        bbox: BBox {
            x: 0.1,
            y: 0.2,
            w: 0.3,
            h: 0.4,
        },
        track: None,
        sub_label: None,
        held: false,
    };
    Analysis {
        meta: FrameMeta {
            stream: "cam".into(),
            session: "bench".into(),
            seq,
            pts_ns: Some(seq * 33_000_000),
            captured_at: SystemTime::now(),
            delivered: std::time::Instant::now(),
            source_width: 1280,
            source_height: 720,
            full: None,
            sight: Default::default(),
        },
        model: "coco".into(),
        output: Output::Detections(vec![person; 3]),
        inference_ms: 20.0,
    }
}

/// Appends `n` messages of `size` bytes in groups of `group`; µs per message.
fn appends(dir: &std::path::Path, n: usize, group: usize, size: usize) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    let (mut spool, _, _) = Spool::open(dir, 1 << 30).expect("spool");
    let payload = vec![b'x'; size];
    let t = Instant::now();
    for _ in 0..n / group {
        let records = spool
            .stamp((0..group).map(|_| ("visiond/n/cam/detections".into(), payload.clone(), false)));
        spool.write(&records).expect("append");
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

struct Broker(std::process::Child, u16);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn broker() -> Broker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let child = Command::new("/usr/sbin/mosquitto")
        .args(["-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (scripts/apt-deps.sh installs it)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker(child, port)
}

/// Publishes `n` detections as fast as they are taken; returns messages/s
/// until the last one is sent (QoS 0) or acknowledged (QoS 1).
fn through_broker(port: u16, qos: u8, spool: Option<PathBuf>, n: u64) -> f64 {
    if let Some(d) = &spool {
        let _ = std::fs::remove_dir_all(d);
    }
    let settings = MqttSettings {
        host: "127.0.0.1".into(),
        port,
        client_id: format!("bench-{qos}-{}", spool.is_some()),
        username: None,
        password: None,
        keep_alive: Duration::from_secs(30),
        topics: Topics::new("visiond", "bench"),
        qos,
        node: "bench".into(),
        tls: None,
        protocol: Protocol::V311,
        expiry: Duration::ZERO,
        spool,
        spool_max_bytes: 1 << 30,
    };
    let p = Arc::new(MqttPublisher::start(settings).expect("publisher"));
    // The daemon's path: the contract's message made, then handed to MQTT.
    let clock = Arc::new(visiond::clock::SystemClock);
    let wire = Wire::new(Topics::new("visiond", "bench"), "bench", p.clone(), clock);
    assert!(p.wait_connected(Duration::from_secs(5)));
    let c = p.counters();
    // `online` is one acknowledged message before ours.
    while c.published.load(Ordering::Relaxed) < 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let t = Instant::now();
    let mut refused = c.dropped.load(Ordering::Relaxed);
    for seq in 0..n {
        // As fast as the path takes them, no faster: a full queue is
        // back-pressure here, so the message is offered again.
        loop {
            wire.analysis(&analysis(seq));
            let now = c.dropped.load(Ordering::Relaxed);
            if now == refused {
                break;
            }
            refused = now;
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    while c.published.load(Ordering::Relaxed) < n + 1 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(wire);
    let Ok(p) = Arc::try_unwrap(p) else {
        panic!("the publisher is still shared")
    };
    p.close(Duration::from_secs(2));
    rate
}

fn main() {
    let base = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
        .join(format!("visiond-spool-bench-{}", std::process::id()));
    let size =
        visiond::publish::payload::detections(&analysis(1), "bench", SystemTime::now()).len();
    println!(
        "payload: {size} bytes (3 detections); spool folder: {}",
        base.display()
    );
    println!();
    println!("| append | µs per message | messages/s |");
    println!("|---|---|---|");
    for group in [1, 16, 256] {
        let n = if group == 1 { 2000 } else { 20_000 };
        let us = appends(&base.join("append"), n, group, size);
        println!(
            "| groups of {group} (one sync each) | {us:.1} | {:.0} |",
            1e6 / us
        );
    }
    let b = broker();
    let n = 20_000;
    println!();
    println!("| path to mosquitto ({n} detections) | messages/s |");
    println!("|---|---|");
    let q0 = through_broker(b.1, 0, None, n);
    println!("| QoS 0 (no spool) | {q0:.0} |");
    let mem = through_broker(b.1, 1, None, n);
    println!("| QoS 1, spool in memory | {mem:.0} |");
    let disk = through_broker(b.1, 1, Some(base.join("path")), n);
    println!("| QoS 1, spool on disk (synced) | {disk:.0} |");
    let _ = std::fs::remove_dir_all(&base);
}
