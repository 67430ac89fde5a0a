//! MQTT publishing with rumqttc. The connection is polled on its own thread
//! (rumqttc sends nothing otherwise); publishing never blocks the caller.
//!
//! QoS 0 detections go straight to the client and are dropped while the
//! broker is away. QoS 1 detections go to the spooler thread, which appends
//! them to the spool in groups (one sync per group, off the inference
//! thread) and hands them to the client through the [`Outbox`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tracing::{info, warn};

use super::link::{self, Client, Connection, Ev};
use super::outbox::{Outbox, Submit};
use super::spool::Spool;
use super::{Publish, Topics, payload};
use crate::backoff::Backoff;
use crate::frame::Analysis;
use crate::status::StreamStatus;

pub use link::Protocol;

/// QoS 1 messages waiting for the spooler, at most.
const SPOOLER_QUEUE: usize = 4096;
/// Messages appended with one sync, at most.
const GROUP: usize = 256;
/// How often the spooler persists the acknowledgement watermark and retries.
const TICK: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    pub topics: Topics,
    /// QoS of `detections`.
    pub qos: u8,
    pub node: String,
    /// mqtts://: CA, and optionally a client certificate and key (PEM files).
    pub tls: Option<TlsFiles>,
    pub protocol: Protocol,
    /// MQTT 5: message expiry of detections (zero: none).
    pub expiry: Duration,
    /// Folder of the QoS 1 spool; `None` keeps it in memory.
    pub spool: Option<PathBuf>,
    pub spool_max_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl MqttSettings {
    pub fn from_config(c: &crate::config::Loaded) -> Result<Self, String> {
        let url = url::Url::parse(&c.config.mqtt.url).map_err(|e| e.to_string())?;
        let host = url
            .host_str()
            .ok_or_else(|| "mqtt.url has no host".to_string())?
            .trim_matches(['[', ']'])
            .to_string();
        let m = &c.config.mqtt;
        let tls = (url.scheme() == "mqtts").then(|| TlsFiles {
            ca: m.ca_file.clone().unwrap_or_default(),
            client: m.cert_file.clone().zip(m.key_file.clone()),
        });
        Ok(Self {
            host,
            port: url
                .port()
                .unwrap_or(if tls.is_some() { 8883 } else { 1883 }),
            tls,
            client_id: c.client_id.clone(),
            username: c.config.mqtt.username.clone(),
            password: c.config.mqtt.password.clone(),
            keep_alive: Duration::from_secs(c.config.mqtt.keep_alive.max(1)),
            topics: Topics::new(&c.config.mqtt.prefix, &c.node),
            qos: c.config.mqtt.qos,
            node: c.node.clone(),
            protocol: if m.protocol == "5" {
                Protocol::V5
            } else {
                Protocol::V311
            },
            expiry: Duration::from_secs(m.expiry),
            spool: m.spool.clone(),
            spool_max_bytes: usize::try_from(m.spool_max_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
        })
    }
}

/// What went out and what did not.
#[derive(Debug, Default)]
pub struct MqttCounters {
    /// Messages handed to the client (QoS 0) or acknowledged by the broker (QoS 1).
    pub published: AtomicU64,
    /// Messages lost: QoS 0 while the broker was unreachable or the queue
    /// full; QoS 1 when the spool's bound was reached.
    pub dropped: AtomicU64,
    /// QoS 1 messages in the spool, not yet acknowledged.
    pub spooled: AtomicU64,
    pub connected: AtomicBool,
    /// When the connection loop last turned (ms since the Unix epoch): it
    /// turns at least every keep-alive while connected, every backoff while not.
    pub last_turn_ms: AtomicU64,
}

struct Shared {
    client: Client,
    settings: MqttSettings,
    counters: Arc<MqttCounters>,
    outbox: Mutex<Outbox>,
}

/// The client, as the outbox sees it: QoS 1 only.
struct Qos1<'a>(&'a Client);

impl Submit for Qos1<'_> {
    fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> bool {
        self.0.publish(topic, payload, 1, retain)
    }
}

impl Shared {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // A panic elsewhere must not stop publishing: the outbox stays usable.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the spool's counters current (called with the outbox locked).
    fn count(&self, o: &Outbox, dropped_before: u64) {
        self.counters
            .spooled
            .store(o.spooled() as u64, Ordering::Relaxed);
        let lost = o.dropped() - dropped_before;
        if lost > 0 {
            self.counters.dropped.fetch_add(lost, Ordering::Relaxed);
        }
    }

    fn send_qos0(&self, topic: &str, payload: &[u8]) {
        let sent = self.counters.connected.load(Ordering::Relaxed)
            && self.client.publish(topic, payload, 0, false);
        let counter = if sent {
            &self.counters.published
        } else {
            &self.counters.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct MqttPublisher {
    shared: Arc<Shared>,
    spool_tx: Option<Sender<(String, Vec<u8>)>>,
    spooler: Option<JoinHandle<()>>,
    closing: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MqttPublisher {
    /// Opens the spool and connects in the background; returns at once.
    pub fn start(settings: MqttSettings) -> std::io::Result<Self> {
        let spool = match &settings.spool {
            Some(dir) => {
                let (spool, found) = Spool::open(dir, settings.spool_max_bytes).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("mqtt.spool {}: {e}", dir.display()))
                })?;
                if found.cut_bytes > 0 {
                    warn!(spool = %dir.display(), cut_bytes = found.cut_bytes,
                        "spool was torn or corrupt; kept the good records before it");
                }
                if found.pending > 0 {
                    info!(spool = %dir.display(), messages = found.pending,
                        "spooled messages from before the restart will be delivered");
                }
                spool
            }
            None => Spool::in_memory(settings.spool_max_bytes),
        };
        let (client, connection) = link::open(&settings)?;
        let mut outbox = Outbox::new(spool);
        outbox.retain(
            &settings.topics.available(),
            b"online".to_vec(),
            &mut Qos1(&client),
        );
        let shared = Arc::new(Shared {
            client,
            settings,
            counters: Arc::default(),
            outbox: Mutex::new(outbox),
        });
        shared
            .counters
            .spooled
            .store(shared.outbox().spooled() as u64, Ordering::Relaxed);
        shared
            .counters
            .last_turn_ms
            .store(crate::source::now_ms(), Ordering::Relaxed);
        let (closing_tx, closing_rx) = crossbeam_channel::bounded(0);
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || poll(connection, &s, &closing_rx))?;
        let (spool_tx, spool_rx) = crossbeam_channel::bounded(SPOOLER_QUEUE);
        let s = shared.clone();
        let spooler = std::thread::Builder::new()
            .name("mqtt-spool".into())
            .spawn(move || spooler(&s, &spool_rx))?;
        Ok(Self {
            shared,
            spool_tx: Some(spool_tx),
            spooler: Some(spooler),
            closing: Some(closing_tx),
            thread: Some(thread),
        })
    }

    /// Waits up to `timeout` for the first connection; returns whether it came.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.shared.counters.connected.load(Ordering::Relaxed) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// The longest the connection loop may rest without being stuck.
    pub fn stuck_after(&self) -> Duration {
        (self.shared.settings.keep_alive * 3).max(Duration::from_secs(90))
    }

    pub fn counters(&self) -> Arc<MqttCounters> {
        self.shared.counters.clone()
    }

    /// Syncs what waits for the spool, gives the broker part of `timeout` to
    /// acknowledge it, publishes `offline` and disconnects; waits at most
    /// `timeout` in all. What is still unacknowledged stays spooled on disk.
    pub fn close(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.spool_tx.take();
        if let Some(t) = self.spooler.take() {
            let _ = t.join();
        }
        let s = &self.shared;
        let drain_until = Instant::now() + timeout / 2;
        while s.counters.connected.load(Ordering::Relaxed)
            && s.outbox().spooled() > 0
            && Instant::now() < drain_until
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        {
            let mut o = s.outbox();
            if let Err(e) = o.persist() {
                warn!(error = %e, "could not write the spool's acknowledgements");
            }
            match (o.spooled(), &s.settings.spool) {
                (0, _) => {}
                (n, Some(dir)) => info!(messages = n, spool = %dir.display(),
                    "QoS 1 messages stay in the spool for the next start"),
                (n, None) => warn!(
                    messages = n,
                    "QoS 1 messages lost at exit: set mqtt.spool to keep them across restarts"
                ),
            }
        }
        s.client
            .publish(&s.settings.topics.available(), b"offline", 1, true);
        s.client.disconnect();
        self.closing.take();
        if let Some(t) = self.thread.take() {
            let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
            std::thread::spawn(move || {
                let _ = t.join();
                let _ = done_tx.send(());
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                warn!("MQTT did not finish within {timeout:?}; exiting anyway");
            }
        }
    }
}

impl Publish for MqttPublisher {
    fn analysis(&self, analysis: &Analysis) {
        let s = &self.shared;
        let body = payload::detections(analysis, &s.settings.node, SystemTime::now());
        let topic = s.settings.topics.detections(&analysis.meta.stream);
        if s.settings.qos == 0 {
            s.send_qos0(&topic, &body);
            return;
        }
        let queued = self
            .spool_tx
            .as_ref()
            .is_some_and(|tx| tx.try_send((topic, body)).is_ok());
        if !queued {
            s.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn status(&self, stream: &str, status: &StreamStatus) {
        let s = &self.shared;
        let body = payload::status(status);
        s.outbox().retain(
            &s.settings.topics.status(stream),
            body,
            &mut Qos1(&s.client),
        );
    }
}

/// Appends what arrives to the spool, a group per sync, and hands it to the
/// client; persists the acknowledgements every tick. Returns once every
/// sender is gone and everything received is on disk.
fn spooler(s: &Shared, rx: &Receiver<(String, Vec<u8>)>) {
    let mut failing = false;
    loop {
        let first = match rx.recv_timeout(TICK) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let group: Vec<_> = first
            .into_iter()
            .chain(rx.try_iter().take(GROUP - 1))
            .collect();
        let mut o = s.outbox();
        let dropped_before = o.dropped();
        let mut c = Qos1(&s.client);
        let result = if group.is_empty() {
            o.fill(&mut c);
            o.persist()
        } else {
            o.append(group, &mut c)
        };
        s.count(&o, dropped_before);
        drop(o);
        match result {
            Err(e) if !failing => {
                warn!(error = %e, "cannot write the MQTT spool; QoS 1 messages are kept in memory only");
                failing = true;
            }
            Ok(()) if failing => {
                info!("MQTT spool writable again");
                failing = false;
            }
            _ => {}
        }
    }
    let mut o = s.outbox();
    if let Err(e) = o.persist() {
        warn!(error = %e, "could not write the spool's acknowledgements");
    }
}

/// Drives the connection: logs each change of the broker's state once,
/// reconnects with backoff, announces `online` and resends the spool after
/// every connect.
fn poll(mut connection: Connection, s: &Shared, closing: &Receiver<()>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut last_error: Option<String> = None;
    let broker = format!("{}:{}", s.settings.host, s.settings.port);
    let c = &mut Qos1(&s.client);
    while let Some(event) = connection.next() {
        s.counters
            .last_turn_ms
            .store(crate::source::now_ms(), Ordering::Relaxed);
        let is_closing = closing.try_recv().is_err_and(|e| e.is_disconnected());
        match event {
            Ev::Connected => {
                s.counters.connected.store(true, Ordering::Relaxed);
                info!(broker = %broker, "connected to MQTT broker");
                last_error = None;
                backoff.reset();
                if !is_closing {
                    s.outbox().connected(c);
                }
            }
            Ev::Sent(pkid) => s.outbox().sent(pkid),
            Ev::Acked(pkid) => {
                s.counters.published.fetch_add(1, Ordering::Relaxed);
                let mut o = s.outbox();
                o.acked(pkid, c);
                s.count(&o, o.dropped());
            }
            Ev::Disconnected if is_closing => break,
            Ev::Disconnected | Ev::Other => {}
            Ev::Failed(msg) => {
                {
                    // Under the lock, so no QoS 1 publish slips in between.
                    let mut o = s.outbox();
                    connection.forget_queued();
                    o.disconnected();
                }
                s.counters.connected.store(false, Ordering::Relaxed);
                if is_closing {
                    break;
                }
                let msg = crate::redact::text(&msg);
                if last_error.as_deref() != Some(&msg) {
                    warn!(broker = %broker, error = %msg, "MQTT broker unreachable; retrying");
                    last_error = Some(msg);
                }
                if closing
                    .recv_timeout(backoff.next_delay())
                    .is_err_and(|e| e.is_disconnected())
                {
                    break;
                }
            }
        }
    }
    s.counters.connected.store(false, Ordering::Relaxed);
}
