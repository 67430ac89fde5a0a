//! Wires the stages: sources -> channels -> inference engines -> publisher,
//! and runs them until a signal says stop. A SIGHUP reloads the file as a
//! [`Plan`] applied by [`apply::apply`], all or nothing.

pub mod apply;
pub mod control;
mod endpoint;
mod error;
mod fleet;
mod live;
mod models;
pub mod plan;
mod reload;
mod serving;
mod trim;
pub mod watchdog;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tracing::{info, warn};

pub use apply::{ApplyError, Parts, ReloadReport, Stages};
pub use error::DaemonError;
pub use models::{label_problems, load_models, load_models_each};
pub use plan::{Inventory, Plan, RestartSetting};
use reload::{Ctx, control_setup};
use serving::Serving;

use crate::config::{HttpSettings, Loaded};
use crate::inference::Model;
use crate::page::StatusPage;
use crate::publish::{MqttPublisher, Sink, Wire};
use crate::route::Routes;
use control::{ControlThread, Switches};
use fleet::Command;
pub use live::Running;

/// SIGTERM to exit: PRODUCT.md allows 5 s; MQTT gets what is left of it.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(4500);
/// Of it, what the broker gets at least (`offline`, the spool's last acks).
const MQTT_MIN: Duration = Duration::from_millis(1500);
/// How long the streams wait for the broker at start.
const BROKER_GRACE: Duration = Duration::from_secs(3);

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
    // A stream stuck in its source is left behind in time for `offline`
    // (it sends nothing, so the engines end a quiet second later).
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
