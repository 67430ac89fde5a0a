//! Wires the stages: sources -> channels -> inference engines -> publisher,
//! and runs them until a signal says stop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tracing::{info, warn};

use crate::config::{Loaded, StreamConfig, Task};
use crate::inference::{Engine, Filter, Input, Model, ModelError, runtime};
use crate::publish::{MqttPublisher, MqttSettings, Publish};
use crate::source::{PipelineSettings, StreamHandle, StreamSetup, spawn_stream};

/// SIGTERM to exit: PRODUCT.md allows 5 s; MQTT gets what is left of it.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(4500);
/// How long the streams wait for the broker at start.
const BROKER_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("stream {stream:?}: {message}")]
    Stream { stream: String, message: String },
    #[error("MQTT: {0}")]
    Mqtt(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Loads every model a stream uses, once, with its configured threads.
pub fn load_models(loaded: &Loaded) -> Result<HashMap<String, Vec<Model>>, DaemonError> {
    runtime::init(loaded.config.onnxruntime.as_deref())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut models = HashMap::new();
    for s in &loaded.config.streams {
        if models.contains_key(&s.model) {
            continue;
        }
        let cfg = loaded.model(&s.model).ok_or_else(|| DaemonError::Stream {
            stream: s.name.clone(),
            message: format!("no model named {:?}", s.model),
        })?;
        // Single-thread sessions side by side get the most frames through:
        // intra-op threads wait on each other whenever GStreamer takes a core.
        let workers = cfg.workers.unwrap_or(cores);
        let threads = cfg.threads.unwrap_or(1);
        let mut sessions = Vec::with_capacity(workers);
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
        for _ in 0..workers {
            let mut model = Model::load(cfg, threads).map_err(in_streams)?;
            let ms = model.warm_up().map_err(in_streams)?;
            if sessions.is_empty() {
                info!(model = %cfg.name, task = %model.task, provider = %model.provider, input = ?(model.input.width, model.input.height), workers, threads, warm_up_ms = ms.round(), "model loaded");
            }
            sessions.push(model);
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
    let mqtt = Arc::new(MqttPublisher::start(settings)?);
    // A reachable broker gets the first frames too (a file's first frames
    // would otherwise be analysed before the connection is up); an
    // unreachable one does not hold the streams back for long.
    if !mqtt.wait_connected(BROKER_GRACE) {
        warn!("MQTT broker not reachable yet; starting the streams anyway");
    }
    let publisher: Arc<dyn Publish> = mqtt.clone();

    let running = Running::start(&loaded, models, &publisher)?;
    let streams = running.streams.len();
    info!(streams, "running");
    crate::notify::notify(&format!("READY=1\nSTATUS={streams} streams"));
    let watchdog = Watchdog::start(&running)?;

    for signal in signals.forever() {
        match signal {
            SIGHUP => warn!("SIGHUP: reloading is not supported yet; keeping the running config"),
            _ => break,
        }
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

/// The stages of a running configuration.
pub struct Running {
    pub streams: Vec<StreamHandle>,
    pub engines: HashMap<String, Engine>,
}

impl Running {
    /// Starts an engine per model and a supervisor per stream of `loaded`.
    pub fn start(
        loaded: &Loaded,
        models: HashMap<String, Vec<Model>>,
        publisher: &Arc<dyn Publish>,
    ) -> Result<Self, DaemonError> {
        let mut tasks: HashMap<String, Task> = HashMap::new();
        let mut engines: HashMap<String, Engine> = HashMap::new();
        for (name, sessions) in models {
            if let Some(m) = sessions.first() {
                tasks.insert(name.clone(), m.task);
            }
            engines.insert(name, Engine::start(sessions, publisher.clone())?);
        }
        let mut streams = Vec::new();
        for s in &loaded.config.streams {
            let (Some(engine), Some(task)) = (engines.get(&s.model), tasks.get(&s.model)) else {
                continue;
            };
            streams.push(start_stream(s, engine, *task, publisher)?);
        }
        Ok(Self { streams, engines })
    }

    /// Stops the sources, lets the engines finish the frames in flight.
    pub fn stop(mut self) {
        for s in &mut self.streams {
            s.stop();
        }
        for s in self.streams {
            s.join();
        }
        for (_, e) in self.engines {
            e.join();
        }
    }
}

fn start_stream(
    s: &StreamConfig,
    engine: &Engine,
    task: Task,
    publisher: &Arc<dyn Publish>,
) -> Result<StreamHandle, DaemonError> {
    let spec = s.source_spec().map_err(|message| DaemonError::Stream {
        stream: s.name.clone(),
        message,
    })?;
    let name: Arc<str> = s.name.as_str().into();
    let stats = Arc::default();
    // One frame in flight per stream: a live source replaces it when the
    // model is busy, a file waits.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let default_score = match task {
        Task::Detection => 0.5,
        Task::Classification => 0.0,
    };
    engine.add(Input {
        stream: name.clone(),
        frames: rx.clone(),
        filter: Filter {
            min_score: s.min_score.unwrap_or(default_score),
            labels: s.labels.clone(),
            max_objects: s.max_objects,
        },
        stats: Arc::clone(&stats),
    });
    let setup = StreamSetup {
        name,
        settings: PipelineSettings {
            spec,
            width: engine.input_size.0,
            height: engine.input_size.1,
            fps: s.fps,
            realtime: s.realtime,
            resize: engine.resize,
            options: s.options.clone(),
        },
        stats,
        looping: s.looping,
    };
    Ok(spawn_stream(setup, tx, rx, publisher.clone())?)
}

/// Pings systemd's watchdog at half `WATCHDOG_USEC` while no inference
/// worker is stuck on a frame; a stuck stage stops the pings and systemd
/// restarts the service.
struct Watchdog {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(running: &Running) -> std::io::Result<Self> {
        let interval = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|us| *us > 0)
            .map(Duration::from_micros);
        let Some(interval) = interval else {
            return Ok(Self {
                stop: None,
                thread: None,
            });
        };
        let beats: Vec<Arc<crate::inference::Heartbeat>> = running
            .engines
            .values()
            .flat_map(|e| e.heartbeats())
            .collect();
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let mut was_stuck = false;
                loop {
                    let stuck = beats
                        .iter()
                        .filter_map(|b| b.busy_for())
                        .any(|d| d >= interval / 2);
                    if !stuck {
                        crate::notify::notify("WATCHDOG=1");
                    } else if !was_stuck {
                        tracing::error!("an inference worker is stuck; no more watchdog pings");
                    }
                    was_stuck = stuck;
                    if stopped
                        .recv_timeout(interval / 2)
                        .is_err_and(|e| e.is_disconnected())
                    {
                        return;
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
