//! MQTT publishing with rumqttc. The connection is polled on its own thread
//! (rumqttc sends nothing otherwise); publishing never blocks the caller.
//!
//! QoS 0 detections go straight to the client and are dropped while the
//! broker is away. QoS 1 detections go to the spooler thread, which appends
//! them to the spool in groups (one sync per group, off the inference
//! thread) and hands them to the client through the [`Outbox`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tracing::{info, warn};

use super::counters::MqttCounters;
use super::link::{self, Client, Connection, Ev};
use super::outbox::{Outbox, Submit};
use super::retry::Retry;
use super::settings::MqttSettings;
use super::spool::{Recovery, Spool};
use super::spooler::{self, Spooler, count};
use super::wire::{Keep, Message, Sink};
use crate::sync::locked;

/// QoS 1 messages waiting for the spooler, at most.
const SPOOLER_QUEUE: usize = 4096;

/// What the connection hands to whoever listens ([`MqttPublisher::listen`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A new session: subscriptions are made again.
    Connected,
    /// The broker confirmed a subscription.
    Subscribed,
    Message {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
}

/// Incoming messages waiting for the listener, at most; more are dropped.
const INBOX: usize = 1024;

struct Shared {
    client: Client,
    /// Subscribed again after every connect (clean sessions keep none).
    subscriptions: Mutex<Vec<String>>,
    inbox: Mutex<Option<Sender<Incoming>>>,
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
    /// Hands an incoming message on; a full inbox drops it (a flood from
    /// the broker must not stall the connection).
    fn tell(&self, m: Incoming) {
        if let Some(tx) = locked(&self.inbox).as_ref() {
            let _ = tx.try_send(m);
        }
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        locked(&self.outbox)
    }

    /// Counted as published when the client writes it (`Ev::Sent(0)`), as
    /// dropped when it cannot take it or discards it unsent.
    fn send_qos0(&self, topic: &str, payload: &[u8]) {
        let handed = self.counters.connected.load(Ordering::Relaxed)
            && self.client.publish(topic, payload, 0, false);
        if !handed {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct MqttPublisher {
    shared: Arc<Shared>,
    spool_tx: Option<Sender<(String, Vec<u8>)>>,
    spooler: Option<JoinHandle<Spool>>,
    closing: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MqttPublisher {
    /// Opens the spool and connects in the background; returns at once.
    pub fn start(settings: MqttSettings) -> std::io::Result<Self> {
        let (spool, pending, found) = match &settings.spool {
            Some(dir) => {
                let (spool, pending, found) =
                    Spool::open(dir, settings.spool_max_bytes).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("mqtt.spool {}: {e}", dir.display()))
                    })?;
                if found.cut_bytes > 0 {
                    warn!(spool = %dir.display(), cut_bytes = found.cut_bytes,
                        "spool was torn or corrupt; kept the good records before it");
                }
                if found.dropped > 0 {
                    warn!(spool = %dir.display(), messages = found.dropped, max_mb = settings.spool_max_bytes >> 20,
                        "spool held more than mqtt.spool_max_mb; dropped the oldest");
                }
                if found.pending > 0 {
                    info!(spool = %dir.display(), messages = found.pending,
                        "spooled messages from before the restart will be delivered");
                }
                (spool, pending, found)
            }
            None => {
                let (spool, pending) = Spool::in_memory(settings.spool_max_bytes);
                (spool, pending, Recovery::default())
            }
        };
        let (client, connection) = link::open(&settings)?;
        let mut outbox = Outbox::new(pending);
        outbox.retain(
            &settings.topics.available(),
            b"online".to_vec(),
            &mut Qos1(&client),
        );
        let shared = Arc::new(Shared {
            client,
            subscriptions: Mutex::default(),
            inbox: Mutex::default(),
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
            .dropped
            .store(found.dropped, Ordering::Relaxed);
        shared.counters.turns.fetch_add(1, Ordering::Relaxed);
        let (closing_tx, closing_rx) = crossbeam_channel::bounded(0);
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || poll(connection, &s, &closing_rx))?;
        let (spool_tx, spool_rx) = crossbeam_channel::bounded(SPOOLER_QUEUE);
        let s = shared.clone();
        let spooler = std::thread::Builder::new()
            .name("mqtt-spool".into())
            .spawn(move || {
                let sp = Spooler::new(spool, Instant::now());
                spooler::run(&spool_rx, &s.outbox, &mut Qos1(&s.client), &s.counters, sp)
            })?;
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

    /// Incoming messages from now on; a second call replaces the first.
    pub fn listen(&self) -> Receiver<Incoming> {
        let (tx, rx) = crossbeam_channel::bounded(INBOX);
        // A connect that came first is not missed.
        if self.shared.counters.connected.load(Ordering::Relaxed) {
            let _ = tx.try_send(Incoming::Connected);
        }
        *locked(&self.shared.inbox) = Some(tx);
        rx
    }

    /// Subscribes now (when connected) and after every connect.
    pub fn subscribe(&self, filter: &str) {
        let s = &self.shared;
        let mut subs = locked(&s.subscriptions);
        if !subs.iter().any(|f| f == filter) {
            subs.push(filter.to_string());
            if s.counters.connected.load(Ordering::Relaxed) {
                s.client.subscribe(filter);
            }
        }
    }

    pub fn unsubscribe(&self, filter: &str) {
        let s = &self.shared;
        locked(&s.subscriptions).retain(|f| f != filter);
        if s.counters.connected.load(Ordering::Relaxed) {
            s.client.unsubscribe(filter);
        }
    }

    /// A retained message of our own (QoS 1), sent again after every connect.
    pub fn retain(&self, topic: &str, payload: Vec<u8>) {
        let s = &self.shared;
        s.outbox().retain(topic, payload, &mut Qos1(&s.client));
    }

    /// Deletes a retained message (an empty one), now or after the next connect.
    pub fn clear(&self, topic: &str) {
        let s = &self.shared;
        s.outbox().clear(topic, &mut Qos1(&s.client));
    }

    /// Syncs what waits for the spool, gives the broker part of `timeout` to
    /// acknowledge it, publishes `offline` and disconnects; waits at most
    /// `timeout` in all. What is still unacknowledged stays spooled on disk.
    pub fn close(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.spool_tx.take();
        let spool = self.spooler.take().and_then(|t| t.join().ok());
        let s = &self.shared;
        let drain_until = Instant::now() + timeout / 2;
        while s.counters.connected.load(Ordering::Relaxed)
            && s.outbox().spooled() > 0
            && Instant::now() < drain_until
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        {
            let o = s.outbox();
            if let Some(mut spool) = spool
                && let Err(e) = spool.persist(o.watermark())
            {
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

impl Sink for MqttPublisher {
    fn publish(&self, m: Message) {
        let s = &self.shared;
        match m.keep {
            Keep::Frame if s.settings.qos == 0 => s.send_qos0(&m.topic, &m.payload),
            Keep::Frame => {
                let queued = self
                    .spool_tx
                    .as_ref()
                    .is_some_and(|tx| tx.try_send((m.topic, m.payload)).is_ok());
                if !queued {
                    s.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Keep::Event => {
                // Events are rare and kept: wait a moment for a full queue
                // rather than drop one.
                let queued = self.spool_tx.as_ref().is_some_and(|tx| {
                    tx.send_timeout((m.topic, m.payload), Duration::from_millis(500))
                        .is_ok()
                });
                if !queued {
                    s.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Kept in memory, one per topic, sent now and again after a
            // reconnect, never spooled: an outage would fill the spool with
            // values nobody wants late, and the spool's bound would then
            // drop events, which matter.
            Keep::Latest => s.outbox().retain(&m.topic, m.payload, &mut Qos1(&s.client)),
        }
    }

    fn clear(&self, _stream: &str, prefix: &str) {
        let s = &self.shared;
        s.outbox().clear_under(prefix, &mut Qos1(&s.client));
    }
}

/// Drives the connection: logs each change of the broker's state once,
/// reconnects with backoff, announces `online` and resends the spool after
/// every connect.
fn poll(mut connection: Connection, s: &Shared, closing: &Receiver<()>) {
    let mut retry = Retry::default();
    let broker = format!("{}:{}", s.settings.host, s.settings.port);
    let c = &mut Qos1(&s.client);
    while let Some(event) = connection.next() {
        s.counters.turns.fetch_add(1, Ordering::Relaxed);
        let is_closing = closing.try_recv().is_err_and(|e| e.is_disconnected());
        match event {
            Ev::Connected => {
                s.counters.connected.store(true, Ordering::Relaxed);
                info!(broker = %broker, "connected to MQTT broker");
                retry.connected();
                if !is_closing {
                    s.outbox().connected(c);
                    for f in locked(&s.subscriptions).iter() {
                        s.client.subscribe(f);
                    }
                    s.tell(Incoming::Connected);
                }
            }
            Ev::Subscribed => s.tell(Incoming::Subscribed),
            Ev::Message {
                topic,
                payload,
                retain,
            } => s.tell(Incoming::Message {
                topic,
                payload,
                retain,
            }),
            Ev::Sent(0) => {
                s.counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Ev::Sent(pkid) => s.outbox().sent(pkid),
            Ev::Acked(pkid) => {
                s.counters.published.fetch_add(1, Ordering::Relaxed);
                let mut o = s.outbox();
                o.acked(pkid, c);
                count(&s.counters, &o, o.dropped());
            }
            Ev::Disconnected if is_closing => break,
            Ev::Disconnected | Ev::Other => {}
            Ev::Failed(msg) => {
                {
                    // Under the lock, so no QoS 1 publish slips in between.
                    let mut o = s.outbox();
                    let lost = connection.forget_queued();
                    s.counters.dropped.fetch_add(lost, Ordering::Relaxed);
                    o.disconnected();
                }
                s.counters.connected.store(false, Ordering::Relaxed);
                if is_closing {
                    break;
                }
                let (new, delay) = retry.failed(crate::redact::text(&msg), rand::random());
                if let Some(msg) = new {
                    warn!(broker = %broker, error = %msg, retry_in_ms = delay.as_millis() as u64, "MQTT broker unreachable; retrying");
                }
                if closing
                    .recv_timeout(delay)
                    .is_err_and(|e| e.is_disconnected())
                {
                    break;
                }
            }
        }
    }
    s.counters.connected.store(false, Ordering::Relaxed);
}
