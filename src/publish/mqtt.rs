//! MQTT publishing with rumqttc. The connection is polled on its own thread
//! (rumqttc sends nothing otherwise); publishing never blocks the caller.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use rumqttc::{Client, Connection, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tracing::{info, warn};

use super::{Publish, Topics, payload};
use crate::backoff::Backoff;
use crate::frame::Analysis;
use crate::status::StreamStatus;

/// Requests rumqttc may hold while the connection is busy or down.
const REQUEST_CAPACITY: usize = 4096;
/// Mosquitto's default `max_packet_size` is 256 MiB; ours only needs to
/// exceed any detections payload.
const MAX_PACKET: usize = 16 * 1024 * 1024;

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
        })
    }
}

/// What went out and what did not.
#[derive(Debug, Default)]
pub struct MqttCounters {
    pub published: AtomicU64,
    /// QoS 0 messages dropped because the broker was unreachable or the
    /// request queue was full.
    pub dropped: AtomicU64,
    pub connected: AtomicBool,
    /// When the connection loop last turned (ms since the Unix epoch): it
    /// turns at least every keep-alive while connected, every backoff while not.
    pub last_turn_ms: AtomicU64,
}

struct Shared {
    client: Client,
    settings: MqttSettings,
    counters: Arc<MqttCounters>,
    /// The last status of each stream, republished after a reconnect.
    statuses: Mutex<HashMap<String, Vec<u8>>>,
}

impl Shared {
    fn send(&self, topic: String, qos: QoS, retain: bool, payload: Vec<u8>) {
        if qos == QoS::AtMostOnce && !self.counters.connected.load(Ordering::Relaxed) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn announce(&self) {
        self.send(
            self.settings.topics.available(),
            QoS::AtLeastOnce,
            true,
            b"online".to_vec(),
        );
        let statuses = self.statuses.lock().map(|s| s.clone()).unwrap_or_default();
        for (stream, p) in statuses {
            self.send(
                self.settings.topics.status(&stream),
                QoS::AtLeastOnce,
                true,
                p,
            );
        }
    }
}

pub struct MqttPublisher {
    shared: Arc<Shared>,
    closing: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MqttPublisher {
    /// Connects in the background; returns at once.
    pub fn start(settings: MqttSettings) -> std::io::Result<Self> {
        let mut opts = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
        if let Some(tls) = &settings.tls {
            // rustls needs its crypto chosen once per process.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let read = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
            };
            let client_auth = match &tls.client {
                Some((cert, key)) => Some((read(cert)?, read(key)?)),
                None => None,
            };
            opts.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Simple {
                    ca: read(&tls.ca)?,
                    alpn: None,
                    client_auth,
                },
            ));
        }
        opts.set_keep_alive(settings.keep_alive);
        opts.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        opts.set_last_will(LastWill::new(
            settings.topics.available(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(u) = &settings.username {
            opts.set_credentials(u, settings.password.clone().unwrap_or_default());
        }
        let (client, connection) = Client::new(opts, REQUEST_CAPACITY);
        let shared = Arc::new(Shared {
            client,
            settings,
            counters: Arc::default(),
            statuses: Mutex::default(),
        });
        let (closing_tx, closing_rx) = crossbeam_channel::bounded(0);
        shared
            .counters
            .last_turn_ms
            .store(crate::source::now_ms(), Ordering::Relaxed);
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || poll(connection, &s, &closing_rx))?;
        Ok(Self {
            shared,
            closing: Some(closing_tx),
            thread: Some(thread),
        })
    }

    /// Waits up to `timeout` for the first connection; returns whether it came.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !self.shared.counters.connected.load(Ordering::Relaxed) {
            if std::time::Instant::now() >= deadline {
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

    /// Publishes `offline`, sends what is queued, disconnects; waits at most `timeout`.
    pub fn close(mut self, timeout: Duration) {
        let s = &self.shared;
        let _ = s.client.try_publish(
            s.settings.topics.available(),
            QoS::AtLeastOnce,
            true,
            b"offline".to_vec(),
        );
        let _ = s.client.try_disconnect();
        self.closing.take();
        if let Some(t) = self.thread.take() {
            let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
            std::thread::spawn(move || {
                let _ = t.join();
                let _ = done_tx.send(());
            });
            if done_rx.recv_timeout(timeout).is_err() {
                warn!("MQTT did not finish within {timeout:?}; exiting anyway");
            }
        }
    }
}

impl Publish for MqttPublisher {
    fn analysis(&self, analysis: &Analysis) {
        let s = &self.shared;
        let body = payload::detections(analysis, &s.settings.node, SystemTime::now());
        let qos = if s.settings.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        s.send(
            s.settings.topics.detections(&analysis.meta.stream),
            qos,
            false,
            body,
        );
    }

    fn status(&self, stream: &str, status: &StreamStatus) {
        let s = &self.shared;
        let body = payload::status(status);
        if let Ok(mut m) = s.statuses.lock() {
            m.insert(stream.to_string(), body.clone());
        }
        s.send(
            s.settings.topics.status(stream),
            QoS::AtLeastOnce,
            true,
            body,
        );
    }
}

/// Drives the connection: logs each change of the broker's state once,
/// reconnects with backoff, announces `online` after every connect.
fn poll(mut connection: Connection, s: &Shared, closing: &Receiver<()>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut last_error: Option<String> = None;
    let broker = format!("{}:{}", s.settings.host, s.settings.port);
    for event in connection.iter() {
        s.counters
            .last_turn_ms
            .store(crate::source::now_ms(), Ordering::Relaxed);
        let is_closing = closing.try_recv().is_err_and(|e| e.is_disconnected());
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                s.counters.connected.store(true, Ordering::Relaxed);
                info!(broker = %broker, "connected to MQTT broker");
                last_error = None;
                backoff.reset();
                if !is_closing {
                    s.announce();
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) if is_closing => break,
            Ok(_) => {}
            Err(e) => {
                s.counters.connected.store(false, Ordering::Relaxed);
                if is_closing {
                    break;
                }
                let msg = crate::redact::text(&e.to_string());
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
