//! Real parts for integration tests: a mosquitto broker and an RTSP server on
//! free 127.0.0.1 ports, the visiond binary, an MQTT subscriber, the assets
//! that `scripts/setup-assets.sh` built.
#![allow(dead_code)]
pub mod certs;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cache the set-up fills: ONNX Runtime, media.
pub fn cache() -> PathBuf {
    std::env::var_os("VISIOND_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/visiond")
        })
}

/// A file the set-up made; a clear failure when it is missing.
pub fn asset(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup-assets.sh first",
        path.display()
    );
    path
}

pub fn media(name: &str) -> PathBuf {
    asset(cache().join("media").join(name))
}

pub fn model(name: &str) -> PathBuf {
    asset(repo().join("models").join(name))
}

/// Kills the child when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Mosquitto {
    pub port: u16,
    pub proc: Proc,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A broker with `extra` lines in its config (`DIR` stands for its
    /// folder); its log goes to `DIR/mosquitto.log`.
    pub fn start_with(extra: &str) -> Self {
        Self::start_on(free_port(), extra)
    }

    pub fn start_on(port: u16, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Started as root, mosquitto runs as its own user: let it write here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let extra = extra.replace("DIR", &dir.path().display().to_string());
        let mut conf = format!("listener {port} 127.0.0.1\nlog_dest stderr\nlog_type all\n");
        if !extra.contains("persistence") {
            conf.push_str("persistence false\n");
        }
        if !extra.contains("allow_anonymous") && !extra.contains("password_file") {
            conf.push_str("allow_anonymous true\n");
        }
        conf.push_str(&extra);
        std::fs::write(dir.path().join("mosquitto.conf"), conf + "\n")
            .expect("write mosquitto.conf");
        let proc = Self::spawn(dir.path(), port);
        Self { port, proc, dir }
    }

    fn spawn(dir: &Path, port: u16) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("mosquitto.log"))
            .expect("mosquitto log");
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto runs (scripts/apt-deps.sh installs it)");
        let proc = Proc(child);
        wait_for_port(port, Duration::from_secs(10));
        proc
    }

    /// kill -9: no clean shutdown, nothing saved.
    pub fn kill(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
    }

    /// Starts it again on the same port with the same config and folder.
    pub fn restart(&mut self) {
        self.proc = Self::spawn(self.dir.path(), self.port);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

fn mosquitto_bin() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("mosquitto"))
}

/// The RTSP test server (examples/rtsp-server.rs), built by `cargo test`.
pub struct RtspServer {
    pub url: String,
    pub proc: Proc,
}

impl RtspServer {
    pub fn file(path: &Path) -> Self {
        Self::start(&["--file", &path.display().to_string()])
    }

    pub fn start(args: &[&str]) -> Self {
        let exe = std::env::current_exe().expect("test exe");
        // target/<profile>/deps/<test> -> target/<profile>/examples/rtsp-server
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("examples/rtsp-server"))
            .expect("target dir");
        assert!(
            bin.is_file(),
            "{} missing: run via cargo test",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rtsp-server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("READY line");
        let url = line
            .strip_prefix("READY ")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("rtsp-server said {line:?}"));
        Self {
            url,
            proc: Proc(child),
        }
    }
}

/// The visiond binary running a config.
pub struct Daemon {
    pub proc: Proc,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("visiond.yaml");
        std::fs::write(&conf, config).expect("write config");
        let log = dir.path().join("visiond.log");
        let child = Command::new(env!("CARGO_BIN_EXE_visiond"))
            .args(["run", "-c"])
            .arg(&conf)
            .envs(env.iter().copied())
            .env("VISIOND_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("visiond starts");
        Self {
            proc: Proc(child),
            dir,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM; returns the exit code and how long the exit took.
    pub fn terminate(&mut self) -> (Option<i32>, Duration) {
        let pid = self.proc.0.id() as i32;
        let t = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.proc.0.try_wait() {
                return (status.code(), t.elapsed());
            }
            if Instant::now() > deadline {
                return (None, t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One received MQTT message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub at: Instant,
}

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.topic, self.text()))
    }
}

/// A real MQTT client subscribed to `filter`.
pub fn subscribe(port: u16, filter: &str) -> Receiver<Msg> {
    let opts = rumqttc::MqttOptions::new(format!("test-sub-{}", free_port()), "127.0.0.1", port);
    subscribe_with(opts, filter)
}

/// A real MQTT client with `opts`, subscribed to `filter` at QoS 1.
pub fn subscribe_with(mut opts: rumqttc::MqttOptions, filter: &str) -> Receiver<Msg> {
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut connection) = rumqttc::Client::new(opts, 64);
    client
        .subscribe(filter, rumqttc::QoS::AtLeastOnce)
        .expect("subscribe");
    let (tx, rx) = crossbeam_channel::unbounded();
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _client = client;
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = ready_tx.try_send(());
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let m = Msg {
                        topic: p.topic.clone(),
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

/// A broker that keeps its subscribers' sessions across kill -9 (saved every second).
pub const PERSISTENT: &str = "persistence true\npersistence_location DIR/\nautosave_interval 1";

/// A subscriber whose session the broker keeps while it is away, so what is
/// published during its absence waits for it.
pub fn subscribe_session(port: u16, filter: &str, id: &str) -> crossbeam_channel::Receiver<Msg> {
    let mut opts = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    opts.set_clean_session(false);
    subscribe_with(opts, filter)
}

/// Waits until the broker has saved its sessions (the subscriber's included).
/// Mosquitto logs "Saving" before it writes, so a save is known complete only
/// once the next one starts: a kill -9 in between would keep the older file.
pub fn saved(broker: &Mosquitto) {
    let count = || {
        broker
            .log_text()
            .matches("Saving in-memory database")
            .count()
    };
    let before = count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() < before + 2 {
        assert!(Instant::now() < deadline, "{}", broker.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}
