//! Wires the stages: sources -> channels -> inference engines -> publisher,
//! and runs them until a signal says stop.

pub mod watchdog;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tracing::{error, info, warn};

use crate::config::{
    HttpSettings, Loaded, ModelSettings, SettingsError, StreamConfig, StreamSettings, Task,
};
use crate::inference::{Engine, Input, Model, ModelError, runtime};
use crate::publish::{MqttPublisher, MqttSettings, Publish};
use crate::source::{PipelineSettings, StreamHandle, StreamSetup, fps_phase, spawn_stream};

/// SIGTERM to exit: PRODUCT.md allows 5 s; MQTT gets what is left of it.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(4500);
/// How long the streams wait for the broker at start.
const BROKER_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("stream {stream:?}: {message}")]
    Stream { stream: String, message: String },
    #[error("MQTT: {0}")]
    Mqtt(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Loads every model a stream uses, once, with its configured threads.
pub fn load_models(loaded: &Loaded) -> Result<HashMap<String, Vec<Model>>, DaemonError> {
    load_models_where(loaded, |_| true)
}

/// Loads the models streams use that `wanted` names.
fn load_models_where(
    loaded: &Loaded,
    wanted: impl Fn(&str) -> bool,
) -> Result<HashMap<String, Vec<Model>>, DaemonError> {
    runtime::init(loaded.config.onnxruntime.as_deref())?;
    let mut models = HashMap::new();
    for s in &loaded.config.streams {
        if models.contains_key(&s.model) || !wanted(&s.model) {
            continue;
        }
        let cfg = loaded.model(&s.model).ok_or_else(|| DaemonError::Stream {
            stream: s.name.clone(),
            message: format!("no model named {:?}", s.model),
        })?;
        let settings = ModelSettings::resolve(cfg);
        let (workers, threads) = (settings.workers, settings.threads);
        // Name the streams that need the model: that is where users look.
        let users: Vec<&str> = loaded
            .config
            .streams
            .iter()
            .filter(|x| x.model == s.model)
            .map(|x| x.name.as_str())
            .collect();
        let in_streams = |e: ModelError| DaemonError::Stream {
            stream: users.join(", "),
            message: e.to_string(),
        };
        let (sessions, ms) = Model::load_workers(cfg, workers, threads).map_err(in_streams)?;
        if let Some(model) = sessions.first() {
            info!(model = %cfg.name, task = %model.task, provider = %model.provider, input = ?(model.input.width, model.input.height), workers, threads, warm_up_ms = ms.round(), "model loaded");
        }
        models.insert(s.model.clone(), sessions);
    }
    Ok(models)
}

/// Runs the configured streams until SIGTERM or SIGINT.
pub fn run(loaded: Loaded) -> Result<(), DaemonError> {
    crate::redact::register(&loaded.secrets);
    gstreamer::init().map_err(|e| DaemonError::Stream {
        stream: "*".into(),
        message: format!("GStreamer: {e}"),
    })?;
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let models = load_models(&loaded)?;

    let settings = MqttSettings::from_config(&loaded).map_err(DaemonError::Mqtt)?;
    info!(broker = %format!("{}:{}", settings.host, settings.port), node = %loaded.node, "starting");
    let mqtt =
        Arc::new(MqttPublisher::start(settings).map_err(|e| DaemonError::Mqtt(e.to_string()))?);
    // A reachable broker gets the first frames too (a file's first frames
    // would otherwise be analysed before the connection is up); an
    // unreachable one does not hold the streams back for long.
    if !mqtt.wait_connected(BROKER_GRACE) {
        warn!("MQTT broker not reachable yet; starting the streams anyway");
    }
    let publisher: Arc<dyn Publish> = mqtt.clone();

    let mut running = Running::start(&loaded, models, &publisher)?;
    let http = HttpSettings::resolve(loaded.config.http.as_ref()).unwrap_or_default();
    let monitor = Arc::new(crate::http::Monitor::new(mqtt.counters(), http.grace));
    monitor.set_streams(running.stats());
    let _http = match &loaded.config.http {
        Some(_) => Some(
            crate::http::HttpServer::start(&http.listen, monitor.clone())
                .map_err(DaemonError::Http)?,
        ),
        None => None,
    };
    let streams = running.streams.len();
    info!(streams, "running");
    crate::notify::notify(&format!("READY=1\nSTATUS={streams} streams"));
    let watchdog = watchdog::Watchdog::start(
        watchdog::interval_from_env(),
        running.heartbeats(),
        mqtt.counters(),
        mqtt.stuck_after(),
    )?;
    let mut loaded = loaded;

    for signal in signals.forever() {
        if signal != SIGHUP {
            break;
        }
        crate::notify::notify("RELOADING=1");
        let started = Instant::now();
        match crate::config::load(&loaded.file) {
            Err(e) => {
                let why = crate::redact::text(&e.to_string());
                error!("reload refused, the running config stays: {why}");
                tell_reload_refused(&running, &publisher, &why);
            }
            Ok(new)
                if new.node != loaded.node
                    || new.client_id != loaded.client_id
                    || new.config.mqtt != loaded.config.mqtt =>
            {
                warn!(
                    "reload: node or MQTT settings changed; they take a restart (systemctl restart visiond), the rest is reloaded"
                );
                reload(&mut running, &mut loaded, new, &publisher, started);
            }
            Ok(new) => reload(&mut running, &mut loaded, new, &publisher, started),
        }
        monitor.set_streams(running.stats());
        watchdog.set_heartbeats(running.heartbeats());
        crate::notify::notify(&format!(
            "READY=1\nSTATUS={} streams",
            running.streams.len()
        ));
    }

    let deadline = Instant::now() + SHUTDOWN_BUDGET;
    info!("stopping");
    crate::notify::notify("STOPPING=1");
    drop(watchdog);
    running.stop();
    drop(publisher);
    let mqtt =
        Arc::try_unwrap(mqtt).map_err(|_| DaemonError::Mqtt("publisher still in use".into()))?;
    mqtt.close(deadline.saturating_duration_since(Instant::now()));
    info!("stopped");
    Ok(())
}

/// Puts a refused reload on every stream's status (state unchanged), where
/// the people watching the streams will see it.
fn tell_reload_refused(running: &Running, publisher: &Arc<dyn Publish>, why: &str) {
    for (name, stats) in running.stats() {
        let Some((state, since_ms)) = stats.state.lock().ok().and_then(|s| *s) else {
            continue;
        };
        let mut status = crate::status::StreamStatus::new(state);
        status.since = std::time::UNIX_EPOCH + Duration::from_millis(since_ms);
        status.error = Some(format!(
            "config reload refused, running the previous config: {why}"
        ));
        publisher.status(&name, &status);
    }
}

/// Applies a new, valid config; on failure the running one stays.
fn reload(
    running: &mut Running,
    loaded: &mut Loaded,
    new: Loaded,
    publisher: &Arc<dyn Publish>,
    started: Instant,
) {
    crate::redact::register(&new.secrets);
    let mut new = new;
    // Node and MQTT settings stay as they run until a restart.
    new.node = loaded.node.clone();
    new.client_id = loaded.client_id.clone();
    new.config.mqtt = loaded.config.mqtt.clone();
    match running.reload(loaded, &new, publisher) {
        Ok(r) => {
            info!(
                kept = r.kept,
                restarted = r.restarted,
                added = r.added,
                removed = r.removed,
                ms = started.elapsed().as_millis() as u64,
                "reloaded"
            );
            *loaded = new;
        }
        Err(e) => {
            error!("reload refused, the running config stays: {e}");
            tell_reload_refused(running, publisher, &e.to_string());
        }
    }
}

/// What a reload did, in streams.
#[derive(Debug, Default, PartialEq)]
pub struct ReloadReport {
    pub kept: usize,
    pub restarted: usize,
    pub added: usize,
    pub removed: usize,
}

/// The stages of a running configuration.
pub struct Running {
    pub streams: HashMap<String, StreamHandle>,
    pub engines: HashMap<String, (Engine, Task)>,
}

impl Running {
    /// Starts an engine per model and a supervisor per stream of `loaded`.
    pub fn start(
        loaded: &Loaded,
        models: HashMap<String, Vec<Model>>,
        publisher: &Arc<dyn Publish>,
    ) -> Result<Self, DaemonError> {
        let mut running = Self {
            streams: HashMap::new(),
            engines: HashMap::new(),
        };
        running.start_engines(models, publisher)?;
        for (i, s) in loaded.config.streams.iter().enumerate() {
            running.start_stream(s, i, publisher)?;
        }
        Ok(running)
    }

    fn start_engines(
        &mut self,
        models: HashMap<String, Vec<Model>>,
        publisher: &Arc<dyn Publish>,
    ) -> Result<(), DaemonError> {
        for (name, sessions) in models {
            let Some(task) = sessions.first().map(|m| m.task) else {
                continue;
            };
            self.engines
                .insert(name, (Engine::start(sessions, publisher.clone())?, task));
        }
        Ok(())
    }

    /// `index`: the stream's place in the config, which sets its fps phase.
    fn start_stream(
        &mut self,
        s: &StreamConfig,
        index: usize,
        publisher: &Arc<dyn Publish>,
    ) -> Result<(), DaemonError> {
        if let Some((engine, task)) = self.engines.get(&s.model) {
            let handle = start_stream(s, fps_phase(index), engine, *task, publisher)?;
            self.streams.insert(s.name.clone(), handle);
        }
        Ok(())
    }

    /// Moves from `old` to `new`: restarts only the streams whose settings
    /// (or model) changed, starts new ones, stops removed ones. New models
    /// are loaded first: if that fails nothing has changed.
    pub fn reload(
        &mut self,
        old: &Loaded,
        new: &Loaded,
        publisher: &Arc<dyn Publish>,
    ) -> Result<ReloadReport, DaemonError> {
        let changed_model =
            |name: &str| old.model(name) != new.model(name) || !self.engines.contains_key(name);
        let models = load_models_where(new, changed_model)?;
        let mut report = ReloadReport::default();
        let mut going: Vec<StreamHandle> = Vec::new();
        let names: Vec<String> = self.streams.keys().cloned().collect();
        for name in names {
            let before = old.config.streams.iter().find(|s| s.name == name);
            let after = new.config.streams.iter().find(|s| s.name == name);
            let keep = match (before, after) {
                (Some(b), Some(a)) => b == a && !models.contains_key(&a.model),
                _ => false,
            };
            if keep {
                report.kept += 1;
            } else if let Some(mut h) = self.streams.remove(&name) {
                if after.is_some() {
                    report.restarted += 1;
                } else {
                    report.removed += 1;
                }
                h.stop();
                going.push(h);
            }
        }
        for h in going {
            h.join();
        }
        // Engines whose model changed, or that no stream uses any more.
        let unused: Vec<String> = self
            .engines
            .keys()
            .filter(|m| {
                models.contains_key(*m) || !new.config.streams.iter().any(|s| &s.model == *m)
            })
            .cloned()
            .collect();
        for m in unused {
            if let Some((e, _)) = self.engines.remove(&m) {
                e.join();
            }
        }
        self.start_engines(models, publisher)?;
        for (i, s) in new.config.streams.iter().enumerate() {
            if !self.streams.contains_key(&s.name) {
                if !old.config.streams.iter().any(|o| o.name == s.name) {
                    report.added += 1;
                }
                self.start_stream(s, i, publisher)?;
            }
        }
        Ok(report)
    }

    /// Each stream's counters, by name.
    pub fn stats(&self) -> Vec<(String, Arc<crate::source::StreamStats>)> {
        self.streams
            .iter()
            .map(|(n, h)| (n.clone(), h.stats.clone()))
            .collect()
    }

    /// Every inference worker's heartbeat.
    pub fn heartbeats(&self) -> Vec<Arc<crate::inference::Heartbeat>> {
        self.engines
            .values()
            .flat_map(|(e, _)| e.heartbeats())
            .collect()
    }

    /// Stops the sources, lets the engines finish the frames in flight.
    pub fn stop(self) {
        let mut streams: Vec<StreamHandle> = self.streams.into_values().collect();
        for s in &mut streams {
            s.stop();
        }
        for s in streams {
            s.join();
        }
        for (_, (e, _)) in self.engines {
            e.join();
        }
    }
}

fn start_stream(
    s: &StreamConfig,
    phase: f64,
    engine: &Engine,
    task: Task,
    publisher: &Arc<dyn Publish>,
) -> Result<StreamHandle, DaemonError> {
    let settings = StreamSettings::resolve(s, task)?;
    let name: Arc<str> = settings.name.as_str().into();
    let stats = Arc::default();
    // One frame in flight per stream: a live source replaces it when the
    // model is busy, a file waits.
    let (tx, rx) = crossbeam_channel::bounded(1);
    engine.add(Input {
        stream: name.clone(),
        frames: rx.clone(),
        filter: settings.filter(),
        stats: Arc::clone(&stats),
    });
    let setup = StreamSetup {
        name,
        settings: PipelineSettings {
            spec: settings.spec,
            width: engine.input_size.0,
            height: engine.input_size.1,
            fps: settings.fps,
            fps_phase: phase,
            realtime: settings.realtime,
            resize: engine.resize,
            options: settings.options,
        },
        stats,
        looping: settings.looping,
    };
    Ok(spawn_stream(setup, tx, rx, publisher.clone())?)
}
