//! The daemon under systemd's notify protocol: READY, WATCHDOG, STOPPING.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// A daemon run as systemd would: its own notify socket, WATCHDOG_USEC 1 s.
struct UnderSystemd {
    socket: UnixDatagram,
    daemon: Daemon,
    _broker: Mosquitto,
    _dir: tempfile::TempDir,
}

fn under_systemd(node: &str, env: &[(&str, &str)]) -> UnderSystemd {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let config = format!(
        "node: {node}\nmqtt:\n  url: {}\nmodels:\n  - name: coco\n    path: {}\n    workers: 1\nstreams:\n  - name: pattern\n    source: test://?width=160&height=120\n    model: coco\n    fps: 2\n",
        broker.url(),
        model("ssd_mobilenet_v2_coco.onnx").display()
    );
    let socket_env = socket_path.display().to_string();
    let mut all = vec![
        ("NOTIFY_SOCKET", socket_env.as_str()),
        ("WATCHDOG_USEC", "1000000"),
    ];
    all.extend_from_slice(env);
    let daemon = Daemon::start(&config, &all);
    UnderSystemd {
        socket,
        daemon,
        _broker: broker,
        _dir: dir,
    }
}

#[test]
fn ready_then_watchdog_pings_then_stopping() {
    let UnderSystemd {
        socket,
        mut daemon,
        _broker,
        _dir,
    } = under_systemd("sd", &[]);
    let mut got: Vec<(Instant, String)> = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
        let pings = got.iter().filter(|g| g.1 == "WATCHDOG=1").count();
        if pings >= 5 {
            break;
        }
    }
    let ready = got.iter().position(|g| g.1.starts_with("READY=1"));
    assert!(ready.is_some(), "{got:?}\n{}", daemon.log_text());
    let pings: Vec<Instant> = got
        .iter()
        .filter(|g| g.1 == "WATCHDOG=1")
        .map(|g| g.0)
        .collect();
    assert!(pings.len() >= 5, "{got:?}");
    // Half of WATCHDOG_USEC apart.
    for w in pings.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(350) && gap <= Duration::from_millis(800),
            "{gap:?}"
        );
    }
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0));
    let mut stopping = false;
    while let Ok(n) = socket.recv(&mut buf) {
        stopping |= &buf[..n] == b"STOPPING=1";
    }
    assert!(stopping, "no STOPPING=1");
}

/// Needs the test build's fault injection (`scripts/test.sh` builds with
/// `--features test-support`).
#[cfg(feature = "test-support")]
#[test]
fn a_stuck_inference_stage_stops_the_watchdog_pings() {
    let UnderSystemd {
        socket,
        mut daemon,
        _broker,
        _dir,
    } = under_systemd("sd2", &[("VISIOND_FAULT", "stall-inference")]);
    let mut pings = Vec::new();
    let mut buf = [0u8; 512];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        if let Ok(n) = socket.recv(&mut buf)
            && &buf[..n] == b"WATCHDOG=1"
        {
            pings.push(start.elapsed());
        }
    }
    // Pings while the first frame is on its way, then none: the worker hangs.
    let last = pings.last().copied().unwrap_or_default();
    assert!(last < Duration::from_secs(5), "pings went on: {pings:?}");
    assert!(daemon.log_text().contains("stuck"), "{}", daemon.log_text());
    let _ = daemon.proc.0.kill();
}
