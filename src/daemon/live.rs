//! The live stages: inference engines and stream supervisors, started and
//! stopped for the daemon and its reload plans.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::apply::{Parts, Stages};
use super::control::Switches;
use super::error::DaemonError;
use super::models::load_model;
use crate::clock::{Clock, SystemClock};
use crate::config::{Loaded, StreamConfig, StreamSettings, Task};
use crate::inference::{Engine, Heartbeat, Input, Model};
use crate::route::Routes;
use crate::source::{Inlet, PipelineSettings, StreamHandle, StreamSetup, fps_phase, spawn_stream};

/// The real engines and streams.
pub(super) struct Live<'a> {
    /// Every stream's route from inference to the publisher.
    pub(super) routes: &'a Routes,
    /// Each stream's detect switch.
    pub(super) switches: &'a Arc<Switches>,
    /// Discovery is on: streams without `labels` count the default ones.
    pub(super) homeassistant: bool,
    /// The streams' clock: the system's.
    pub(super) clock: Arc<dyn Clock>,
}

impl Stages for Live<'_> {
    type Engine = (Engine, Task);
    type Stream = StreamHandle;

    fn load(&mut self, config: &Loaded, model: &str) -> Result<(Engine, Task), DaemonError> {
        start_engine(load_model(config, model)?)
    }

    fn start(
        &mut self,
        s: &StreamConfig,
        index: usize,
        (engine, task): &(Engine, Task),
    ) -> Result<StreamHandle, DaemonError> {
        start_stream(s, fps_phase(index), engine, *task, self)
    }

    fn stop(&mut self, streams: Vec<StreamHandle>) {
        stop_streams(streams, Instant::now() + STOP_LIMIT);
    }

    fn retire(&mut self, (engine, _): (Engine, Task)) {
        engine.join();
    }
}

/// The stages of a running configuration.
pub type Running = Parts<(Engine, Task), StreamHandle>;

impl Running {
    /// Starts an engine per model and a supervisor per stream of `loaded`;
    /// on failure stops what it started.
    pub fn start(
        loaded: &Loaded,
        models: HashMap<String, Vec<Model>>,
        routes: &Routes,
        switches: &Arc<Switches>,
    ) -> Result<Self, DaemonError> {
        let mut running = Self::default();
        let live = Live {
            routes,
            switches,
            homeassistant: loaded.config.homeassistant.is_some(),
            clock: Arc::new(SystemClock),
        };
        let result = running.start_all(loaded, models, live);
        match result {
            Ok(()) => Ok(running),
            Err(e) => {
                running.stop(Instant::now() + STOP_LIMIT);
                Err(e)
            }
        }
    }

    fn start_all(
        &mut self,
        loaded: &Loaded,
        models: HashMap<String, Vec<Model>>,
        mut live: Live<'_>,
    ) -> Result<(), DaemonError> {
        for (name, sessions) in models {
            self.engines.insert(name, start_engine(sessions)?);
        }
        for (i, s) in loaded.config.streams.iter().enumerate() {
            let engine = self
                .engines
                .get(&s.model)
                .ok_or_else(|| DaemonError::Stream {
                    stream: s.name.clone(),
                    message: format!("model {:?} is not loaded", s.model),
                })?;
            let handle = live.start(s, i, engine)?;
            self.streams.insert(s.name.clone(), handle);
        }
        Ok(())
    }

    /// Each stream's counters, by name.
    pub fn stats(&self) -> Vec<(String, Arc<crate::stats::StreamStats>)> {
        self.streams
            .iter()
            .map(|(n, h)| (n.clone(), h.stats.clone()))
            .collect()
    }

    /// Every inference worker's heartbeat.
    pub fn heartbeats(&self) -> Vec<Arc<Heartbeat>> {
        self.engines
            .values()
            .flat_map(|(e, _)| e.heartbeats())
            .collect()
    }

    /// Stops the sources, lets the engines finish the frames in flight.
    /// Stops the streams (those not stopped `by` then are left behind),
    /// then the engines.
    pub fn stop(self, by: Instant) {
        stop_streams(self.streams.into_values().collect(), by);
        for (_, (e, _)) in self.engines {
            e.join();
        }
    }
}

/// How long stopping streams may take on a reload: a stream's last status
/// waits at most twice 5 s for the model (`source::Inlet`: to be taken, then
/// published); one that takes longer is stuck in its source and is left
/// behind.
const STOP_LIMIT: Duration = Duration::from_secs(12);

/// Asks every stream to stop, then waits for each until `deadline`: they
/// stop side by side.
fn stop_streams(mut streams: Vec<StreamHandle>, deadline: Instant) {
    for s in &mut streams {
        s.stop();
    }
    for s in streams {
        s.join_by(deadline);
    }
}

fn start_engine(sessions: Vec<Model>) -> Result<(Engine, Task), DaemonError> {
    let task = sessions.first().map(|m| m.task);
    let engine = Engine::start(sessions)?;
    match task {
        Some(task) => Ok((engine, task)),
        // Engine::start refuses no sessions; this is not reached.
        None => Err(DaemonError::Thread(std::io::Error::other(
            "an engine needs at least one session",
        ))),
    }
}

/// How a stream is tracked; with discovery on, a stream that lists no
/// labels zeroes the counts of the default ones its entities show.
pub(super) fn track_spec(
    s: &StreamConfig,
    task: Task,
    model_labels: &[String],
    homeassistant: bool,
) -> Option<(crate::tracking::TrackSpec, Vec<crate::cascade::RuleSpec>)> {
    let settings = StreamSettings::resolve(s, task).ok()?;
    let spec = counted(settings.track?, s, model_labels, homeassistant);
    Some((spec, settings.classify))
}

/// `spec` with the labels whose counts start at 0: with discovery on, a
/// stream that lists none counts the default ones its entities show.
fn counted(
    mut spec: crate::tracking::TrackSpec,
    s: &StreamConfig,
    model_labels: &[String],
    homeassistant: bool,
) -> crate::tracking::TrackSpec {
    if homeassistant && s.labels.is_none() {
        spec.labels = crate::homeassistant::stream_labels(s, model_labels)
            .iter()
            .map(|l| Arc::from(l.as_str()))
            .collect();
    }
    spec
}

fn start_stream(
    s: &StreamConfig,
    phase: f64,
    engine: &Engine,
    task: Task,
    live: &Live<'_>,
) -> Result<StreamHandle, DaemonError> {
    // Resolved once: the source, the filter and the tracking all read it.
    let settings = StreamSettings::resolve(s, task)?;
    match settings.track.clone() {
        Some(spec) => {
            let spec = counted(spec, s, &engine.labels, live.homeassistant);
            live.routes
                .track(&settings.name, spec, settings.classify.clone());
        }
        None => live.routes.untrack(&settings.name),
    }
    let name: Arc<str> = settings.name.as_str().into();
    let stats = Arc::new(crate::stats::StreamStats {
        paused: live.switches.flag(&settings.name),
        ..Default::default()
    });
    let (inlet, items) = Inlet::new(stats.clone());
    engine.add(Input {
        stream: name.clone(),
        items,
        out: live.routes.route(&settings.name),
        filter: settings.filter(),
        stats: Arc::clone(&stats),
        pictures: settings.snapshots,
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
            keep_full: settings.snapshots,
            motion: settings.motion.map(|mut m| {
                m.gate.regions.model_side = engine.input_size.0.max(engine.input_size.1);
                m
            }),
        },
        feedback: live.routes.route(&settings.name).feedback(),
        stats,
        looping: settings.looping,
        clock: live.clock.clone(),
    };
    Ok(spawn_stream(setup, inlet)?)
}
