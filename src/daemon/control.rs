//! What comes in from the broker: the detect switch (`P/N/S/detect/set`),
//! Home Assistant's birth message, and at start-up the retained state of
//! the switches and of visiond's discovery configs. Also keeps the
//! discovery configs current across reloads.
//!
//! [`Control`] is the state machine, driven by messages and instants and
//! publishing through [`Broker`], so it is tested without a broker; the
//! daemon runs it on its own thread ([`ControlThread`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, select};
use tracing::{info, warn};

use crate::homeassistant::{Discovery, StreamEntities};
use crate::publish::{Incoming, MqttPublisher, Topics};

/// Retained messages of the start-up scan come right after the broker
/// confirms the subscription; this long after the last confirmation the
/// scan is over.
const SCAN_SETTLE: Duration = Duration::from_millis(500);
/// The scan ends by then whatever the broker does.
const SCAN_LIMIT: Duration = Duration::from_secs(5);
/// Home Assistant's `online`: configs go again after a random delay in
/// this range, so that many nodes do not answer at the same instant.
const BIRTH_DELAY_MS: (u64, u64) = (500, 2500);
/// A switch command is `ON` or `OFF`; anything longer is not one.
const MAX_COMMAND: usize = 16;
/// Distinct problems logged, at most: a hostile broker cannot grow the set.
const MAX_WARNED: usize = 256;

/// Publishing and subscribing as the control loop needs it.
pub trait Broker: Send + Sync {
    /// A retained message of ours (QoS 1), sent again after every connect.
    fn retain(&self, topic: &str, payload: Vec<u8>);
    /// Deletes a retained message.
    fn clear(&self, topic: &str);
    fn subscribe(&self, filter: &str);
    fn unsubscribe(&self, filter: &str);
}

impl Broker for MqttPublisher {
    fn retain(&self, topic: &str, payload: Vec<u8>) {
        MqttPublisher::retain(self, topic, payload)
    }
    fn clear(&self, topic: &str) {
        MqttPublisher::clear(self, topic)
    }
    fn subscribe(&self, filter: &str) {
        MqttPublisher::subscribe(self, filter)
    }
    fn unsubscribe(&self, filter: &str) {
        MqttPublisher::unsubscribe(self, filter)
    }
}

/// Each stream's detect switch, `true` when off (paused). The daemon keeps
/// it across reloads, so a restarted stream starts as its switch says.
#[derive(Debug, Default)]
pub struct Switches(Mutex<HashMap<String, Arc<AtomicBool>>>);

impl Switches {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        crate::sync::locked(&self.0)
    }

    /// The stream's flag (a new stream's is on, not paused).
    pub fn flag(&self, stream: &str) -> Arc<AtomicBool> {
        self.map().entry(stream.to_string()).or_default().clone()
    }

    pub fn paused(&self, stream: &str) -> bool {
        self.map()
            .get(stream)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    fn set(&self, stream: &str, paused: bool) {
        self.flag(stream).store(paused, Ordering::Relaxed);
    }

    fn keep_only(&self, streams: &BTreeSet<String>) {
        self.map().retain(|name, _| streams.contains(name));
    }
}

/// What the daemon runs, as far as this loop cares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Setup {
    /// Stream names.
    pub streams: BTreeSet<String>,
    /// Home Assistant discovery and the streams' entities; `None`: off.
    pub discovery: Option<(Discovery, Vec<StreamEntities>)>,
}

#[derive(Debug, PartialEq)]
enum Scan {
    Waiting,
    Running {
        settle: Option<Instant>,
        limit: Instant,
        /// Retained `detect/state` found, by stream: paused or not.
        states: HashMap<String, bool>,
    },
    Done,
}

pub struct Control {
    topics: Topics,
    setup: Setup,
    /// Discovery configs as last published, by topic.
    published: BTreeMap<String, Vec<u8>>,
    switches: Arc<Switches>,
    scan: Scan,
    /// Switches set by a command since start: the scan does not undo them.
    commanded: BTreeSet<String>,
    resend_at: Option<Instant>,
    warned: BTreeSet<String>,
    ready: Arc<AtomicBool>,
}

fn on_off(paused: bool) -> &'static [u8] {
    if paused { b"OFF" } else { b"ON" }
}

impl Control {
    /// Subscribes to the commands and publishes the discovery configs
    /// (they wait in the outbox until the broker is there).
    pub fn new(topics: Topics, setup: Setup, switches: Arc<Switches>, b: &dyn Broker) -> Self {
        b.subscribe(&format!("{}+/detect/set", topics.node()));
        let mut c = Self {
            topics,
            setup: Setup::default(),
            published: BTreeMap::new(),
            switches,
            scan: Scan::Waiting,
            commanded: BTreeSet::new(),
            resend_at: None,
            warned: BTreeSet::new(),
            ready: Arc::default(),
        };
        c.set(setup, b);
        c
    }

    /// Becomes true once the start-up scan is over (the switches are known).
    pub fn ready(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    fn state_topic(&self, stream: &str) -> String {
        format!("{}detect/state", self.topics.stream(stream))
    }

    fn scan_filters(&self) -> Vec<String> {
        let mut f = vec![format!("{}+/detect/state", self.topics.node())];
        if let Some((d, _)) = &self.setup.discovery {
            f.push(format!("{}/device/+/config", d.prefix));
        }
        f
    }

    /// Takes a new setup (start, or a reload): publishes the discovery
    /// configs that changed, removes those of streams that are gone (and
    /// everything under a prefix that is no longer used).
    pub fn set(&mut self, setup: Setup, b: &dyn Broker) {
        let old_birth = self.setup.discovery.as_ref().map(|(d, _)| d.birth_topic());
        let new_birth = setup.discovery.as_ref().map(|(d, _)| d.birth_topic());
        if old_birth != new_birth {
            if let Some(t) = &old_birth {
                b.unsubscribe(t);
            }
            if let Some(t) = &new_birth {
                b.subscribe(t);
            }
        }
        let configs: BTreeMap<String, Vec<u8>> = match &setup.discovery {
            Some((d, streams)) => d.configs(streams).into_iter().collect(),
            None => BTreeMap::new(),
        };
        for topic in self.published.keys() {
            if !configs.contains_key(topic) {
                b.clear(topic);
                info!(topic = %topic, "Home Assistant device removed");
            }
        }
        for (topic, body) in &configs {
            if self.published.get(topic) != Some(body) {
                b.retain(topic, body.clone());
            }
        }
        self.published = configs;
        self.switches.keep_only(&setup.streams);
        if self.scan == Scan::Done {
            for s in setup.streams.difference(&self.setup.streams) {
                b.retain(
                    &self.state_topic(s),
                    on_off(self.switches.paused(s)).to_vec(),
                );
            }
        }
        self.setup = setup;
    }

    /// One message from the broker.
    pub fn on(&mut self, m: Incoming, now: Instant, b: &dyn Broker) {
        match m {
            Incoming::Connected => {
                if self.scan == Scan::Waiting {
                    for f in self.scan_filters() {
                        b.subscribe(&f);
                    }
                    self.scan = Scan::Running {
                        settle: None,
                        limit: now + SCAN_LIMIT,
                        states: HashMap::new(),
                    };
                }
            }
            Incoming::Subscribed => {
                if let Scan::Running { settle, .. } = &mut self.scan {
                    *settle = Some(now + SCAN_SETTLE);
                }
            }
            Incoming::Message {
                topic,
                payload,
                retain,
            } => self.message(&topic, &payload, retain, now, b),
        }
        self.tick(now, b);
    }

    fn message(&mut self, topic: &str, payload: &[u8], retain: bool, now: Instant, b: &dyn Broker) {
        let base = self.topics.node();
        if let Some(stream) = topic
            .strip_prefix(&base)
            .and_then(|t| t.strip_suffix("/detect/set"))
        {
            return self.command(stream, payload, b);
        }
        if let Some(stream) = topic
            .strip_prefix(&base)
            .and_then(|t| t.strip_suffix("/detect/state"))
        {
            if let (true, Scan::Running { states, .. }) = (retain, &mut self.scan)
                && let Some(paused) = parse_switch(payload)
            {
                states.insert(stream.to_string(), paused);
            }
            return;
        }
        let Some((d, _)) = &self.setup.discovery else {
            return;
        };
        if topic == d.birth_topic() {
            if payload.trim_ascii() == b"online" {
                let ms = rand::random_range(BIRTH_DELAY_MS.0..=BIRTH_DELAY_MS.1);
                self.resend_at = Some(now + Duration::from_millis(ms));
            }
            return;
        }
        // A retained config under the prefix, seen by the start-up scan:
        // ours but of a stream this config no longer has.
        let scanning = matches!(self.scan, Scan::Running { .. });
        let config =
            topic.starts_with(&format!("{}/device/", d.prefix)) && topic.ends_with("/config");
        if scanning
            && retain
            && config
            && !payload.is_empty()
            && !self.published.contains_key(topic)
            && d.is_ours(payload)
        {
            info!(topic = %topic, "removing a Home Assistant device this config no longer has");
            b.clear(topic);
        }
    }

    fn command(&mut self, stream: &str, payload: &[u8], b: &dyn Broker) {
        if !self.setup.streams.contains(stream) {
            return self.warn_once(format!("unknown:{stream}"), || {
                warn!(
                    stream = %crate::redact::text(&stream.chars().take(64).collect::<String>()),
                    "detect/set for a stream this node does not run; ignored"
                )
            });
        }
        let Some(paused) = parse_switch(payload) else {
            return self.warn_once(
                format!("payload:{stream}"),
                || warn!(stream = %stream, "detect/set takes ON or OFF; ignored"),
            );
        };
        self.commanded.insert(stream.to_string());
        if self.switches.paused(stream) != paused {
            info!(stream = %stream, detect = if paused { "off" } else { "on" }, "detect switch");
        }
        self.switches.set(stream, paused);
        b.retain(&self.state_topic(stream), on_off(paused).to_vec());
    }

    fn warn_once(&mut self, key: String, log: impl FnOnce()) {
        if self.warned.len() < MAX_WARNED && self.warned.insert(key) {
            log();
        }
    }

    /// Acts on what is due: the end of the scan, a re-send for Home Assistant.
    pub fn tick(&mut self, now: Instant, b: &dyn Broker) {
        if let Scan::Running {
            settle,
            limit,
            states,
        } = &mut self.scan
            && (settle.is_some_and(|s| now >= s) || now >= *limit)
        {
            let states = std::mem::take(states);
            for f in self.scan_filters() {
                b.unsubscribe(&f);
            }
            for s in &self.setup.streams {
                if let Some(&paused) = states.get(s)
                    && !self.commanded.contains(s)
                {
                    if paused {
                        info!(stream = %s, "detect switch off, as it was before the restart");
                    }
                    self.switches.set(s, paused);
                }
                b.retain(
                    &self.state_topic(s),
                    on_off(self.switches.paused(s)).to_vec(),
                );
            }
            self.scan = Scan::Done;
            self.ready.store(true, Ordering::Relaxed);
        }
        if self.resend_at.is_some_and(|t| now >= t) {
            self.resend_at = None;
            info!(
                devices = self.published.len(),
                "Home Assistant is online; discovery sent again"
            );
            for (topic, body) in &self.published {
                b.retain(topic, body.clone());
            }
        }
    }

    /// When [`Control::tick`] next has something to do.
    pub fn next_due(&self) -> Option<Instant> {
        let scan = match &self.scan {
            Scan::Running { settle, limit, .. } => Some(settle.map_or(*limit, |s| s.min(*limit))),
            _ => None,
        };
        [scan, self.resend_at].into_iter().flatten().min()
    }
}

/// `ON` (analysis on: not paused) or `OFF`; anything else is no command.
fn parse_switch(payload: &[u8]) -> Option<bool> {
    if payload.len() > MAX_COMMAND {
        return None;
    }
    let p = payload.trim_ascii();
    if p.eq_ignore_ascii_case(b"ON") {
        Some(false)
    } else if p.eq_ignore_ascii_case(b"OFF") {
        Some(true)
    } else {
        None
    }
}

/// The control loop on its own thread.
pub struct ControlThread {
    setups: Option<Sender<Setup>>,
    ready: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlThread {
    pub fn start(
        mqtt: Arc<MqttPublisher>,
        topics: Topics,
        setup: Setup,
        switches: Arc<Switches>,
    ) -> std::io::Result<Self> {
        let inbox = mqtt.listen();
        let mut control = Control::new(topics, setup, switches, &*mqtt);
        let ready = control.ready();
        let (tx, setups) = crossbeam_channel::unbounded::<Setup>();
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                loop {
                    let wait = control.next_due().map_or(Duration::from_secs(1), |t| {
                        t.saturating_duration_since(Instant::now())
                    });
                    select! {
                        recv(inbox) -> m => match m {
                            Ok(m) => control.on(m, Instant::now(), &*mqtt),
                            Err(_) => break,
                        },
                        recv(setups) -> s => match s {
                            Ok(s) => control.set(s, &*mqtt),
                            Err(_) => break,
                        },
                        default(wait) => control.tick(Instant::now(), &*mqtt),
                    }
                }
            })?;
        Ok(Self {
            setups: Some(tx),
            ready,
            thread: Some(thread),
        })
    }

    /// Waits up to `timeout` for the start-up scan (the switches' state).
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.ready.load(Ordering::Relaxed) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    pub fn set(&self, setup: Setup) {
        if let Some(tx) = &self.setups {
            let _ = tx.send(setup);
        }
    }
}

impl Drop for ControlThread {
    fn drop(&mut self) {
        self.setups.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
