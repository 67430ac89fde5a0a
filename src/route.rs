//! A stream's route: what happens to its results between the model and the
//! publisher, in one place and in order.
//!
//! Inference hands each stream's results to the stream's [`Route`] one at a
//! time, in the source's order, with the stream's statuses in their places
//! between them (`source::Inlet` sends a status behind the frames before it;
//! the worker releases both in that order). For a frame, [`Route::analysis`]:
//!
//! 1. tracks it (`tracking::StreamTracking::frame`): object IDs, lifecycle
//!    events, counts, sub-labels from the classifier cascade; a frame of a
//!    new source session first ends the objects of the old one;
//! 2. publishes its detections (`Publish::analysis`);
//! 3. offers its objects' views to the snapshot policy
//!    (`snapshot::StreamShots::frame`) and publishes the snapshots due;
//! 4. publishes its events, then the snapshots they make due
//!    (`StreamShots::events`), then the counts that changed.
//!
//! A status ([`Route::status`]) is a boundary: `starting` sets every count to
//! 0; a stop, a failure, a lost source or a pause ends the objects and sets
//! the counts to 0; then the status itself goes out. Everything leaves
//! through one [`Publish`]: MQTT in the daemon (behind the fleet's fence
//! where there is one), a counter in `visiond bench`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::cascade::{Cascade, Classifiers, RuleSpec};
use crate::frame::{Analysis, ObjectView, Output};
use crate::inference::{ModelSpec, Outlet};
use crate::motion::gate::Tracked as Lookout;
use crate::motion::stage::Feedback;
use crate::publish::Publish;
use crate::render::RenderError;
use crate::snapshot::{Snapshot, SnapshotCounters, StreamShots, StreamView};
use crate::status::{StreamState, StreamStatus};
use crate::sync::locked;
use crate::tracking::{EndReason, Ended, Geometry, Namer, StreamTracking, TrackSpec, Tracked};

/// What every route shares.
#[derive(Default)]
struct Shared {
    counters: SnapshotCounters,
    /// Set before the streams stop at shutdown: their objects end with
    /// `shutdown`, not `stream_stopped`.
    shutting_down: AtomicBool,
}

/// One stream's route.
pub struct Route {
    name: Arc<str>,
    out: Arc<dyn Publish>,
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// The tracker's view after each frame, for the source's motion gate.
    feedback: Arc<Feedback>,
}

#[derive(Default)]
struct State {
    /// `None`: the stream does not track (a classifier, `track: false`).
    tracking: Option<StreamTracking>,
    /// The `classify` rules, and the cascade where one of them can run.
    rules: Vec<RuleSpec>,
    cascade: Option<Cascade>,
    shots: StreamShots,
}

impl Outlet for Route {
    fn analysis(&self, a: Analysis) {
        let mut state = locked(&self.state);
        let State {
            tracking,
            cascade,
            shots,
            ..
        } = &mut *state;
        let Tracked {
            analysis,
            events,
            tallies,
        } = match (tracking, &a.output) {
            (Some(t), Output::Detections(dets)) => {
                // The cascade names objects on the full frame kept for snapshots.
                let mut name = cascade.as_mut().zip(a.meta.full.as_ref()).map(|(c, full)| {
                    move |objects: &[ObjectView], now_ns| c.frame(objects, full, now_ns)
                });
                let namer = name.as_mut().map(|n| n as &mut Namer<'_>);
                let (ended, tracked) = t.frame(&a, dets, namer);
                self.feedback.set(Lookout {
                    tracking: true,
                    through: a.meta.pts_ns,
                    ..t.lookout()
                });
                self.ended(ended, shots, a.meta.captured_at);
                tracked
            }
            _ => Tracked {
                analysis: a,
                events: Vec::new(),
                tallies: Vec::new(),
            },
        };
        self.out.analysis(&analysis);
        let due = shots.frame(&analysis, &self.shared.counters);
        self.send(due);
        if !events.is_empty() {
            self.out.events(&self.name, &analysis.meta.session, &events);
            let due = shots.events(&self.name, &events, &self.shared.counters);
            self.send(due);
        }
        if !tallies.is_empty() {
            self.out
                .tallies(&self.name, &tallies, analysis.meta.captured_at);
        }
    }

    fn status(&self, status: StreamStatus) {
        let mut state = locked(&self.state);
        let State {
            tracking, shots, ..
        } = &mut *state;
        if let Some(t) = tracking {
            match status.state {
                StreamState::Starting => {
                    let zeros = t.starting();
                    self.out.tallies(&self.name, &zeros, status.since);
                }
                StreamState::Stopped
                | StreamState::Failed
                | StreamState::Reconnecting
                | StreamState::Paused => {
                    let ended = t.stopped(self.end_reason(), status.since);
                    self.feedback.set(Lookout {
                        tracking: true,
                        ..Lookout::default()
                    });
                    self.ended(ended, shots, status.since);
                }
                StreamState::Playing => {}
            }
        }
        shots.status(&status);
        self.out.status(&self.name, &status);
    }
}

impl Route {
    /// The tracker's view the stream's motion gate reads.
    pub fn feedback(&self) -> Arc<Feedback> {
        self.feedback.clone()
    }

    fn end_reason(&self) -> EndReason {
        if self.shared.shutting_down.load(Ordering::Relaxed) {
            EndReason::Shutdown
        } else {
            EndReason::StreamStopped
        }
    }

    /// Publishes what a boundary ended: the `end` events (and the snapshots
    /// they make due), then the counts at 0.
    fn ended(&self, ended: Ended, shots: &mut StreamShots, at: SystemTime) {
        if let Some((session, events)) = ended.events {
            self.out.events(&self.name, &session, &events);
            let due = shots.events(&self.name, &events, &self.shared.counters);
            self.send(due);
        }
        if !ended.tallies.is_empty() {
            self.out.tallies(&self.name, &ended.tallies, at);
        }
    }

    fn send(&self, snapshots: Vec<Snapshot>) {
        for s in snapshots {
            self.out.snapshot(&self.name, &s.label, &s.jpeg);
        }
    }
}

/// Every stream's route, by name: the daemon's data plane. A route
/// outlives its stream's restarts (line totals count since the daemon
/// started); it goes when the stream is removed from the config.
pub struct Routes {
    out: Arc<dyn Publish>,
    shared: Arc<Shared>,
    routes: Mutex<HashMap<Arc<str>, Arc<Route>>>,
    /// The config's models, for the streams' `classify` rules, and their
    /// classifier sessions.
    models: Mutex<Vec<ModelSpec>>,
    classifiers: Classifiers,
}

impl Routes {
    pub fn new(out: Arc<dyn Publish>) -> Self {
        Self {
            out,
            shared: Arc::default(),
            routes: Mutex::default(),
            models: Mutex::default(),
            classifiers: Classifiers::default(),
        }
    }

    /// The models `classify` rules may name (at start and on reload,
    /// before the streams are tracked).
    pub fn set_models(&self, models: &[ModelSpec]) {
        *locked(&self.models) = models.to_vec();
    }

    /// The route of `stream`, made on first use (not tracking).
    pub fn route(&self, stream: &str) -> Arc<Route> {
        locked(&self.routes)
            .entry(stream.into())
            .or_insert_with(|| {
                Arc::new(Route {
                    name: stream.into(),
                    out: self.out.clone(),
                    shared: self.shared.clone(),
                    state: Mutex::default(),
                    feedback: Arc::default(),
                })
            })
            .clone()
    }

    fn get(&self, stream: &str) -> Option<Arc<Route>> {
        locked(&self.routes).get(stream).cloned()
    }

    /// Tracks `stream` as `spec` says, naming objects by `rules`. A stream
    /// already tracked keeps its objects and takes the new zones, lines and
    /// rules (its cascade starts afresh only when the rules changed).
    pub fn track(&self, stream: &str, spec: TrackSpec, rules: Vec<RuleSpec>) {
        let route = self.route(stream);
        let changed = locked(&route.state).rules != rules;
        // Classifiers load outside the route's lock: its frames go on.
        let cascade = changed.then(|| self.cascade(stream, &rules)).flatten();
        let mut state = locked(&route.state);
        match &mut state.tracking {
            Some(t) => t.respec(spec),
            None => {
                state.tracking = Some(StreamTracking::new(spec));
                route.feedback.set(Lookout {
                    tracking: true,
                    ..Lookout::default()
                });
            }
        }
        if changed {
            state.rules = rules;
            state.cascade = cascade;
        }
    }

    fn cascade(&self, stream: &str, rules: &[RuleSpec]) -> Option<Cascade> {
        if rules.is_empty() {
            return None;
        }
        let models = locked(&self.models).clone();
        let (cascade, problems) = Cascade::new(rules, &models, &self.classifiers);
        for p in problems {
            tracing::error!(stream, "{p}: the rule is left out");
        }
        cascade
    }

    /// Stops tracking `stream` (tracking turned off).
    pub fn untrack(&self, stream: &str) {
        if let Some(r) = self.get(stream) {
            let mut state = locked(&r.state);
            state.tracking = None;
            state.rules.clear();
            state.cascade = None;
            r.feedback.set(Lookout::default());
        }
    }

    /// `stream` left the config: its route goes, and what is retained for it.
    pub fn removed(&self, stream: &str) {
        locked(&self.routes).remove(stream);
        self.out.removed(stream);
    }

    /// A status from outside the stream's flow (a refused reload), on its
    /// route as if in band.
    pub fn status(&self, stream: &str, status: StreamStatus) {
        self.route(stream).status(status);
    }

    /// The zones and lines of a tracked stream (for the status page).
    pub fn geometry(&self, stream: &str) -> Option<Geometry> {
        let r = self.get(stream)?;
        let state = locked(&r.state);
        Some(state.tracking.as_ref()?.spec().geometry.clone())
    }

    /// What the page shows of `stream`; `None` for a stream never started.
    pub fn view(&self, stream: &str) -> Option<StreamView> {
        let r = self.get(stream)?;
        let view = locked(&r.state).shots.view();
        Some(view)
    }

    /// The latest analysed frame of `stream` as a JPEG, with its boxes,
    /// track IDs, zones and lines drawn; `None` before a frame was analysed.
    pub fn latest_jpeg(&self, stream: &str) -> Option<Result<Vec<u8>, RenderError>> {
        let r = self.get(stream)?;
        // Render outside the lock: the stream's frames keep flowing.
        let (latest, geometry) = {
            let state = locked(&r.state);
            let geometry = state.tracking.as_ref().map(|t| t.spec().geometry.clone());
            (state.shots.latest()?, geometry)
        };
        Some(crate::snapshot::latest_jpeg(&latest, geometry.as_ref()))
    }

    /// Frame `a` on its stream's route (for tests).
    #[cfg(test)]
    fn analysis(&self, a: &Analysis) {
        self.route(&a.meta.stream).analysis(a.clone());
    }

    /// Events on `stream`'s snapshots as if its tracker had made them (for
    /// tests).
    #[cfg(test)]
    fn events(&self, stream: &str, events: &[crate::tracking::Event]) {
        let r = self.route(stream);
        let due = locked(&r.state)
            .shots
            .events(stream, events, &self.shared.counters);
        r.send(due);
    }

    /// What the snapshots cost, all streams.
    pub fn counters(&self) -> &SnapshotCounters {
        &self.shared.counters
    }

    /// From now on a stopping stream's objects end with `shutdown`.
    pub fn shutting_down(&self) {
        self.shared.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Ends every object still open (frames analysed after their stream
    /// stopped) with `shutdown`, at `now`; call once the engines are drained.
    pub fn finish(&self, now: SystemTime) {
        let routes: Vec<Arc<Route>> = locked(&self.routes).values().cloned().collect();
        for r in routes {
            let mut state = locked(&r.state);
            let State {
                tracking, shots, ..
            } = &mut *state;
            if let Some(t) = tracking {
                let ended = t.stopped(EndReason::Shutdown, now);
                r.ended(ended, shots, now);
            }
        }
    }
}

#[cfg(test)]
#[path = "route/tracking_tests.rs"]
mod tracking_tests;

#[cfg(test)]
#[path = "route/snapshot_tests.rs"]
mod snapshot_tests;
