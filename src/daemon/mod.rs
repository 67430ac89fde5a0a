//! Wires the stages: sources -> channels -> inference engines -> publisher,
//! and runs them until a signal says stop. A SIGHUP reloads the file as a
//! [`Plan`] applied by [`apply::apply`], all or nothing.

pub mod apply;
pub mod control;
mod endpoint;
mod fleet;
mod live;
pub mod plan;
mod trim;
pub mod watchdog;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tracing::{error, info, warn};

pub use apply::{ApplyError, Parts, ReloadReport, Stages};
pub use plan::{Inventory, Plan, RestartSetting};

use crate::config::{HttpSettings, Loaded, SettingsError, Task};
use crate::inference::{Model, ModelError, runtime};
use crate::page::StatusPage;
use crate::publish::{MqttPublisher, Sink, Wire};
use crate::route::Routes;
use control::{ControlThread, Switches};
use fleet::Command;
pub use live::Running;
use live::{Live, track_spec};

/// SIGTERM to exit: PRODUCT.md allows 5 s; MQTT gets what is left of it.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(4500);
/// Of it, what the broker gets at least (`offline`, the spool's last acks).
const MQTT_MIN: Duration = Duration::from_millis(1500);
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
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Labels(Vec<crate::config::Problem>),
}

/// Labels the config names (streams, zones, lines) that their loaded
/// model lacks: a typo there would publish empty lists forever.
pub fn label_problems(
    loaded: &Loaded,
    models: &HashMap<String, Vec<Model>>,
) -> Vec<crate::config::Problem> {
    let labels = |m: &Model| m.labels.names();
    let mut problems = crate::config::check_labels(loaded, |name| {
        let m = models.get(name)?.first()?;
        (!m.labels.is_empty()).then(|| labels(m))
    });
    problems.extend(crate::config::check_classify(loaded, |name| {
        let m = models.get(name)?.first()?;
        Some((m.task == crate::config::Task::Classification).then(|| labels(m)))
    }));
    problems
}

/// Loads every model a stream uses, once, with its configured threads.
pub fn load_models(loaded: &Loaded) -> Result<HashMap<String, Vec<Model>>, DaemonError> {
    let mut models = HashMap::new();
    for s in &loaded.config.streams {
        if !models.contains_key(&s.model) {
            models.insert(s.model.clone(), load_model(loaded, &s.model)?);
        }
    }
    Ok(models)
}

/// As [`load_models`], going on past a model that does not load: those
/// that did, and why each other did not. A model the config does not
/// define is left to the config's own problem.
pub fn load_models_each(loaded: &Loaded) -> (HashMap<String, Vec<Model>>, Vec<DaemonError>) {
    let (mut models, mut failed) = (HashMap::new(), Vec::new());
    let named = loaded
        .config
        .streams
        .iter()
        .flat_map(|s| std::iter::once(&s.model).chain(s.classify.iter().map(|r| &r.model)));
    for name in named {
        let defined = loaded.config.models.iter().any(|m| m.name == *name);
        if !defined || models.contains_key(name) {
            continue;
        }
        match load_model(loaded, name) {
            Ok(m) => {
                models.insert(name.clone(), m);
            }
            // The first failure stands for every stream of that model.
            Err(e) => {
                models.insert(name.clone(), Vec::new());
                failed.push(e);
            }
        }
    }
    models.retain(|_, m| !m.is_empty());
    (models, failed)
}

/// Loads the sessions of the model named `name`.
fn load_model(loaded: &Loaded, name: &str) -> Result<Vec<Model>, DaemonError> {
    runtime::init(loaded.config.onnxruntime.as_deref())?;
    // Name the streams that need the model: that is where users look.
    let users: Vec<&str> = loaded
        .config
        .streams
        .iter()
        .filter(|x| x.model == name)
        .map(|x| x.name.as_str())
        .collect();
    let in_streams = |message: String| DaemonError::Stream {
        stream: users.join(", "),
        message,
    };
    let cfg = loaded
        .model(name)
        .ok_or_else(|| in_streams(format!("no model named {name:?}")))?;
    let settings = cfg.settings();
    let (workers, threads) = (settings.workers, settings.threads);
    let cfg = &crate::evaluate::pick::resolve(loaded, cfg, workers, threads);
    let (sessions, ms) = Model::load_workers(&cfg.spec(), workers, threads)
        .map_err(|e| in_streams(e.to_string()))?;
    if let Some(model) = sessions.first() {
        info!(model = %cfg.name, path = %cfg.path.display(), task = %model.task, provider = %model.provider, input = ?(model.input.width, model.input.height), workers, threads, warm_up_ms = ms.round(), "model loaded");
    }
    Ok(sessions)
}

/// Runs the configured streams until SIGTERM or SIGINT.
///
/// Long: the daemon's whole life in order, start, serve, stop, read top to
/// bottom; each step is a call, and the order of the stop is the contract
/// (objects end with `shutdown` before `offline`, the lease goes with the
/// cameras).
pub fn run(loaded: Loaded) -> Result<(), DaemonError> {
    crate::redact::register(&loaded.secrets);
    gstreamer::init().map_err(|e| DaemonError::Stream {
        stream: "*".into(),
        message: format!("GStreamer: {e}"),
    })?;
    // Signals and the fleet's changes reach the main loop on one channel.
    let (commands, inbox) = crossbeam_channel::unbounded();
    forward_signals(commands.clone())?;
    let models = load_models(&loaded)?;
    let problems = label_problems(&loaded, &models);
    if !problems.is_empty() {
        return Err(DaemonError::Labels(problems));
    }

    let switches = Arc::new(Switches::default());
    let (mqtt, topics, control) = connect(&loaded, &models, &switches)?;
    // Fleet cameras come as commands once the loop below runs.
    let fleet = start_fleet(&loaded, commands)?;
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
    let routes = data_plane(&loaded, &mqtt, topics, fleet.as_ref(), &clock);
    let fleet_state = fleet.as_ref().map(|f| f.state.clone());
    let page = Arc::new(StatusPage::new(routes.clone()).with_fleet(fleet_state.clone()));

    let running = Running::start(&loaded, models, &routes, &switches)?;
    let mut http = endpoint::Http::start(
        HttpSettings::resolve(loaded.config.http.as_ref()),
        mqtt.counters(),
        Some(page),
        running.stats(),
    )
    .map_err(DaemonError::Http)?;
    http.set_fleet(fleet_state);
    let streams = running.streams.len();
    info!(streams, "running");
    crate::notify::notify(&format!("READY=1\nSTATUS={streams} streams"));
    let _trim = trim::Trimmer::start(clock.clone(), trim::EVERY, trim::malloc_trim);
    let watchdog = watchdog::Watchdog::start(
        watchdog::interval_from_env(),
        running.heartbeats(),
        mqtt.counters(),
        mqtt.stuck_after(),
    )?;
    let mut serving = Serving {
        running,
        file: loaded.clone(),
        loaded,
        fleet_now: crate::fleet::Desired::new(),
        http,
    };
    for command in inbox.iter() {
        let ctx = Ctx {
            routes: &routes,
            switches: &switches,
            control: &control,
        };
        match command {
            Command::Signal(SIGHUP) => serving.reload_file(ctx, fleet.as_ref()),
            Command::Signal(_) => break,
            Command::Fleet(seq, desired) => serving.fleet(seq, &desired, ctx, fleet.as_ref()),
        }
        serving.http.set_streams(serving.running.stats());
        watchdog.set_heartbeats(serving.running.heartbeats());
        crate::notify::notify(&format!(
            "READY=1\nSTATUS={} streams",
            serving.running.streams.len()
        ));
    }

    let deadline = Instant::now() + SHUTDOWN_BUDGET;
    info!("stopping");
    crate::notify::notify("STOPPING=1");
    drop(watchdog);
    // Every open object ends with `shutdown` before `offline`.
    routes.shutting_down();
    // A stream stuck in its source is left behind in time for `offline`.
    serving
        .running
        .stop(deadline.checked_sub(MQTT_MIN).unwrap_or(deadline));
    // The lease goes with the cameras: the others take them at once.
    drop(fleet);
    routes.finish(clock.wall());
    drop(control);
    drop(serving.http);
    drop(routes);
    let mqtt =
        Arc::try_unwrap(mqtt).map_err(|_| DaemonError::Mqtt("publisher still in use".into()))?;
    mqtt.close(deadline.saturating_duration_since(Instant::now()));
    info!("stopped");
    Ok(())
}

/// Inference -> each stream's route -> the contract's messages -> (the
/// fleet's fence) -> MQTT.
fn data_plane(
    loaded: &Loaded,
    mqtt: &Arc<MqttPublisher>,
    topics: crate::publish::Topics,
    fleet: Option<&crate::fleet::Fleet>,
    clock: &Arc<dyn crate::clock::Clock>,
) -> Arc<Routes> {
    let sink: Arc<dyn Sink> = match fleet {
        Some(f) => Arc::new(crate::fleet::Fenced {
            next: mqtt.clone(),
            fence: f.fence.clone(),
        }),
        None => mqtt.clone(),
    };
    let wire = Wire::new(topics, &loaded.node, sink, clock.clone());
    let routes = Arc::new(Routes::new(Arc::new(wire)));
    routes.set_models(&loaded.model_specs());
    routes
}

/// The broker connection and the control loop (the detect switches, Home
/// Assistant's discovery), given a moment to connect.
fn connect(
    loaded: &Loaded,
    models: &HashMap<String, Vec<Model>>,
    switches: &Arc<Switches>,
) -> Result<(Arc<MqttPublisher>, crate::publish::Topics, ControlThread), DaemonError> {
    let settings = crate::config::mqtt(loaded).map_err(DaemonError::Mqtt)?;
    let topics = settings.topics.clone();
    info!(broker = %format!("{}:{}", settings.host, settings.port), node = %loaded.node, "starting");
    let mqtt =
        Arc::new(MqttPublisher::start(settings).map_err(|e| DaemonError::Mqtt(e.to_string()))?);
    let setup = control_setup(loaded, |m| {
        let first = models.get(m)?.first()?;
        Some((first.task, first.labels.names()))
    });
    let control = ControlThread::start(mqtt.clone(), topics.clone(), setup, switches.clone())?;
    // A reachable broker gets the first frames too (a file's first frames
    // would otherwise be analysed before the connection is up); an
    // unreachable one does not hold the streams back for long.
    if !mqtt.wait_connected(BROKER_GRACE) {
        warn!("MQTT broker not reachable yet; starting the streams anyway");
    } else if !control.wait_ready(BROKER_GRACE) {
        // The switches' retained state was not read: they start on.
        warn!("the broker did not answer the start-up subscriptions in time");
    }
    Ok((mqtt, topics, control))
}

/// SIGTERM, SIGINT and SIGHUP as commands to the main loop.
fn forward_signals(to_loop: crossbeam_channel::Sender<Command>) -> Result<(), DaemonError> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if to_loop.send(Command::Signal(s)).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}

/// The fleet's session, where the config has a `cluster`: its changes
/// come to the main loop as commands.
fn start_fleet(
    loaded: &Loaded,
    to_loop: crossbeam_channel::Sender<Command>,
) -> Result<Option<crate::fleet::Fleet>, DaemonError> {
    let Some(c) = &loaded.config.cluster else {
        return Ok(None);
    };
    let settings = crate::fleet::FleetSettings::resolve(&loaded.node, c);
    let fleet = crate::fleet::Fleet::start(settings, loaded.config.clone(), move |seq, d| {
        let _ = to_loop.send(Command::Fleet(seq, d));
    })?;
    Ok(Some(fleet))
}

/// What the main loop changes as commands come.
struct Serving {
    running: Running,
    /// What runs: the file's part and the fleet's.
    loaded: Loaded,
    /// The file's part of what runs.
    file: Loaded,
    /// The fleet's part.
    fleet_now: crate::fleet::Desired,
    http: endpoint::Http,
}

impl Serving {
    /// SIGHUP: the file again, applied as a plan, or refused with the
    /// running config kept.
    fn reload_file(&mut self, ctx: Ctx<'_>, fleet: Option<&crate::fleet::Fleet>) {
        crate::notify::notify("RELOADING=1");
        let started = Instant::now();
        let result = crate::config::load(&self.file.file)
            .map_err(|e| {
                let why = crate::redact::text(&e.to_string());
                error!("reload refused, the running config stays: {why}");
                why
            })
            .and_then(|new_file| {
                let new = fleet::effective(&new_file, &self.fleet_now);
                reload(
                    &mut self.running,
                    &mut self.loaded,
                    new,
                    ctx,
                    &mut self.http,
                    started,
                )?;
                Ok(new_file)
            });
        match result {
            Ok(new_file) => {
                self.file = Plan::running_config(&self.file, &new_file);
                if let Some(f) = fleet {
                    let config = Box::new(self.file.config.clone());
                    f.report(crate::fleet::Report::Reloaded(config));
                }
            }
            Err(why) => tell_reload_refused(&self.running, ctx.routes, &why),
        }
    }

    /// The fleet's cameras for this node changed.
    fn fleet(
        &mut self,
        seq: u64,
        desired: &crate::fleet::Desired,
        ctx: Ctx<'_>,
        fleet: Option<&crate::fleet::Fleet>,
    ) {
        let failed = fleet::apply(
            desired,
            &mut self.fleet_now,
            &mut self.running,
            &mut self.loaded,
            &self.file,
            ctx,
            &mut self.http,
        );
        if let Some(f) = fleet {
            f.report(crate::fleet::Report::Applied {
                seq,
                running: self.fleet_now.keys().cloned().collect(),
                failed,
            });
        }
    }
}

/// Puts a refused reload on every stream's status (state unchanged), where
/// the people watching the streams will see it.
fn tell_reload_refused(running: &Running, routes: &Routes, why: &str) {
    for (name, stats) in running.stats() {
        let Some((state, since_ms)) = stats.state.lock().ok().and_then(|s| *s) else {
            continue;
        };
        let since = std::time::UNIX_EPOCH + Duration::from_millis(since_ms);
        let mut status = crate::status::StreamStatus::new(state, since);
        status.error = Some(format!(
            "config reload refused, running the previous config: {why}"
        ));
        routes.status(&name, status);
    }
}

/// What a reload works with, besides the config and the running parts.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    routes: &'a Routes,
    switches: &'a Arc<Switches>,
    control: &'a ControlThread,
}

/// The control loop's view of a config: stream names and, with
/// `homeassistant`, each stream's entities; `model` gives a model's task
/// and labels (streams on a model that is not there get none).
fn control_setup(
    loaded: &Loaded,
    model: impl Fn(&str) -> Option<(Task, Vec<String>)>,
) -> control::Setup {
    control::Setup {
        streams: loaded
            .config
            .streams
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        discovery: crate::homeassistant::setup(loaded, model),
    }
}

/// New zones and lines on a running stream: its objects stay. Discovery
/// turned on or off changes which labels a stream without `labels` zeroes:
/// running streams take that too.
fn retrack(routes: &Routes, running: &Running, loaded: &Loaded, new: &Loaded, plan: &Plan) {
    let ha = new.config.homeassistant.is_some();
    let ha_toggled = loaded.config.homeassistant.is_some() != ha;
    for s in new.config.streams.iter().filter(|s| {
        plan.regeometry.contains(&s.name) || (ha_toggled && plan.keep.contains(&s.name))
    }) {
        if let Some((spec, rules)) = running
            .engines
            .get(&s.model)
            .and_then(|(e, t)| track_spec(s, *t, &e.labels, ha))
        {
            routes.track(&s.name, spec, rules);
        }
    }
}

/// Applies a new, valid config as a plan: all of it, or none of it. On
/// failure, says why (the error is logged here already).
fn reload(
    running: &mut Running,
    loaded: &mut Loaded,
    new: Loaded,
    ctx: Ctx<'_>,
    http: &mut endpoint::Http,
    started: Instant,
) -> Result<(), String> {
    let Ctx {
        routes,
        switches,
        control,
    } = ctx;
    crate::redact::register(&new.secrets);
    let plan = Plan::new(loaded, &new, &running.inventory());
    if let Some(notice) = plan.restart_notice(loaded, &new) {
        warn!("{notice}");
    }
    let mut live = Live {
        routes,
        switches,
        homeassistant: new.config.homeassistant.is_some(),
        clock: Arc::new(crate::clock::SystemClock),
    };
    routes.set_models(&new.model_specs());
    let result = apply::apply(&mut live, running, loaded, &new, &plan);
    let failed = match result {
        Ok(r) => {
            let mut next = Plan::running_config(loaded, &new);
            if plan.http {
                let to = HttpSettings::resolve(new.config.http.as_ref());
                match http.restart(to, running.stats()) {
                    Ok(what) => info!("reload: http changed; {what}"),
                    Err(e) => {
                        error!("reload: http changed but {e}; the previous http settings stay");
                        next.config.http = loaded.config.http.clone();
                    }
                }
            }
            // What is retained for a removed stream goes with it.
            for name in &plan.remove {
                routes.removed(name);
            }
            retrack(routes, running, loaded, &new, &plan);
            info!(
                kept = r.kept,
                restarted = r.restarted,
                added = r.added,
                removed = r.removed,
                ms = started.elapsed().as_millis() as u64,
                "reloaded"
            );
            *loaded = next;
            if !plan.discovery.is_empty() {
                info!(streams = %plan.discovery.join(", "), "reload: Home Assistant discovery changes");
            }
            control.set(control_setup(loaded, |m| {
                running.engines.get(m).map(|(e, t)| (*t, e.labels.clone()))
            }));
            return Ok(());
        }
        Err(e) => e,
    };
    // Errors may quote a source, credentials and all.
    let why = crate::redact::text(&failed.to_string());
    match failed {
        ApplyError::Refused(_) => error!("reload refused, the running config stays: {why}"),
        ApplyError::RolledBack(_) => {
            error!("reload rolled back: {why}; the previous streams run again as they were")
        }
        ApplyError::Incomplete { .. } => error!("reload rolled back, incompletely: {why}"),
    }
    Err(why)
}
