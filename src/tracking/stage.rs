//! The tracking stage in the pipeline: a [`Publish`] between inference and
//! the publisher. For every stream that tracks it follows the objects
//! across analysed frames, marks each published detection with its
//! object's ID, and hands on the lifecycle events and the counts that
//! changed; everything else passes through unchanged.
//!
//! Statuses arrive in band, behind the results of the frames before them
//! (see `source::Inlet`), so what a status resets is reset in its place.
//! A stream's tracker lives for one source session: a new session (the
//! source came back) or a stopped stream ends its objects with
//! `stream_stopped`, and counts go to 0 when a stream starts and when it
//! stops. A pause (the detect switch) is a stop: its objects end with
//! `stream_stopped` and counts go to 0; after it a new tracker starts in
//! the same session, its ids marked `-rN`. Line counters add up over sessions, since the daemon started.

use crate::sync::locked;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{Counts, EndReason, Event, FrameInfo, Geometry, LineCount, TrackSettings, Tracker};
use crate::cascade::{Cascade, Classifiers};
use crate::config::{ClassifyRule, ModelConfig};
use crate::frame::{Analysis, Output, SubLabel};
use crate::publish::{Publish, Tally};
use crate::status::{StreamState, StreamStatus};

/// How one stream is tracked.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSpec {
    pub settings: TrackSettings,
    pub geometry: Geometry,
    /// Detections below it are not published (they may still carry a track).
    pub min_score: f32,
    /// Labels whose counts are set to 0 at start and stop even before one
    /// was seen: the stream's `labels` (zones' and lines' own are added).
    pub labels: Vec<Arc<str>>,
    /// The stream's `classify` rules (the cascade).
    pub classify: Vec<ClassifyRule>,
}

struct Stream {
    spec: TrackSpec,
    /// The session the tracker follows, and the tracker.
    tracker: Option<(Arc<str>, Tracker)>,
    /// Line totals of the trackers of earlier sessions.
    lines_before: BTreeMap<(Arc<str>, Arc<str>), LineCount>,
    /// What was last published, so only changes go out.
    published: BTreeMap<Key, Tally>,
    /// The session of the latest tracker and how many came before it in
    /// that session (a pause ends one): object ids stay unique.
    resumed: Option<(Arc<str>, u32)>,
    /// The `classify` rules at work, where the stream has some.
    cascade: Option<Cascade>,
}

type Key = (u8, Arc<str>, Arc<str>);

fn key(t: &Tally) -> Key {
    match t {
        Tally::Objects { label, .. } => (0, Arc::from(""), label.clone()),
        Tally::Zone { zone, label, .. } => (1, zone.clone(), label.clone()),
        Tally::Line { line, label, .. } => (2, line.clone(), label.clone()),
    }
}

impl Stream {
    /// Every count as it is now: the tracker's, lines with their earlier
    /// sessions, and zeros for what the spec names and nothing counts.
    fn tallies(&self) -> BTreeMap<Key, Tally> {
        let counts = self
            .tracker
            .as_ref()
            .map(|(_, t)| t.counts())
            .unwrap_or_default();
        let mut all = BTreeMap::new();
        for t in self.zeros().into_iter().chain(tallies_of(&counts)) {
            all.insert(key(&t), t);
        }
        for ((line, label), before) in &self.lines_before {
            let t = all
                .entry((2, line.clone(), label.clone()))
                .or_insert(Tally::Line {
                    line: line.clone(),
                    label: label.clone(),
                    into: 0,
                    out: 0,
                });
            if let Tally::Line { into, out, .. } = t {
                *into += before.r#in;
                *out += before.out;
            }
        }
        all
    }

    /// Zero counts for every label the stream and its zones name.
    fn zeros(&self) -> Vec<Tally> {
        let g = &self.spec.geometry;
        let mut out: Vec<Tally> = self
            .spec
            .labels
            .iter()
            .map(|l| Tally::Objects {
                label: l.clone(),
                count: 0,
            })
            .collect();
        for z in &g.zones {
            let labels = z.labels.clone().unwrap_or_else(|| self.spec.labels.clone());
            for l in labels {
                out.push(Tally::Objects {
                    label: l.clone(),
                    count: 0,
                });
                out.push(Tally::Zone {
                    zone: z.name.clone(),
                    label: l,
                    count: 0,
                });
            }
        }
        for line in &g.lines {
            let labels = line
                .labels
                .clone()
                .unwrap_or_else(|| self.spec.labels.clone());
            for l in labels {
                out.push(Tally::Line {
                    line: line.name.clone(),
                    label: l,
                    into: 0,
                    out: 0,
                });
            }
        }
        out
    }

    /// The tallies that differ from what was published; remembers them.
    fn changed(&mut self, now: BTreeMap<Key, Tally>) -> Vec<Tally> {
        let mut out = Vec::new();
        for (k, t) in now {
            if self.published.get(&k) != Some(&t) {
                out.push(t.clone());
                self.published.insert(k, t);
            }
        }
        out
    }

    /// Ends the tracker's objects; its line totals carry on.
    fn end(&mut self, reason: EndReason, at: SystemTime) -> Option<(Arc<str>, Vec<Event>)> {
        let (session, mut tracker) = self.tracker.take()?;
        let events = tracker.end_all(reason, at);
        for (line, labels) in tracker.counts().lines {
            for (label, c) in labels {
                let b = self.lines_before.entry((line.clone(), label)).or_default();
                b.r#in += c.r#in;
                b.out += c.out;
            }
        }
        Some((session, events))
    }

    /// Every object and zone count at 0; lines as they are.
    fn all_zero(&mut self) -> Vec<Tally> {
        let mut now = self.tallies();
        for (k, t) in &self.published {
            if k.0 < 2 {
                now.entry(k.clone()).or_insert_with(|| t.clone());
            }
        }
        for t in now.values_mut() {
            match t {
                Tally::Objects { count, .. } | Tally::Zone { count, .. } => *count = 0,
                Tally::Line { .. } => {}
            }
        }
        self.changed(now)
    }
}

fn tallies_of(c: &Counts) -> Vec<Tally> {
    let mut out = Vec::new();
    for (label, n) in &c.objects {
        out.push(Tally::Objects {
            label: label.clone(),
            count: *n,
        });
    }
    for (zone, labels) in &c.zones {
        for (label, n) in labels {
            out.push(Tally::Zone {
                zone: zone.clone(),
                label: label.clone(),
                count: *n,
            });
        }
    }
    for (line, labels) in &c.lines {
        for (label, lc) in labels {
            out.push(Tally::Line {
                line: line.clone(),
                label: label.clone(),
                into: lc.r#in,
                out: lc.out,
            });
        }
    }
    out
}

pub struct Tracking {
    next: Arc<dyn Publish>,
    streams: Mutex<HashMap<Arc<str>, Arc<Mutex<Stream>>>>,
    /// The config's models, for the streams' `classify` rules, and their
    /// classifier sessions.
    models: Mutex<Vec<ModelConfig>>,
    classifiers: Classifiers,
    /// Set before the streams stop at shutdown: their objects end with
    /// `shutdown`, not `stream_stopped`.
    shutting_down: AtomicBool,
}

impl Tracking {
    pub fn new(next: Arc<dyn Publish>) -> Self {
        Self {
            next,
            streams: Mutex::default(),
            models: Mutex::default(),
            classifiers: Classifiers::default(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The models `classify` rules may name (at start and on reload,
    /// before the streams are tracked).
    pub fn set_models(&self, models: &[ModelConfig]) {
        *locked(&self.models) = models.to_vec();
    }

    fn cascade(&self, stream: &str, spec: &TrackSpec) -> Option<Cascade> {
        if spec.classify.is_empty() {
            return None;
        }
        let models = locked(&self.models).clone();
        let (cascade, problems) = Cascade::new(&spec.classify, &models, &self.classifiers);
        for p in problems {
            tracing::error!(stream, "{p}: the rule is left out");
        }
        cascade
    }

    /// Tracks `stream` from its next session on (a reload that keeps the
    /// stream running keeps its objects and takes the new zones and lines).
    pub fn track(&self, stream: &str, spec: TrackSpec) {
        // Classifiers load outside the streams' lock: other streams go on.
        let cascade = self.cascade(stream, &spec);
        let mut streams = locked(&self.streams);
        match streams.get(stream) {
            Some(s) => {
                let mut s = locked(s);
                if let Some((_, t)) = &mut s.tracker {
                    t.set_geometry(spec.geometry.clone());
                }
                if s.spec.classify != spec.classify {
                    s.cascade = cascade;
                }
                s.spec = spec;
            }
            None => {
                let s = Stream {
                    spec,
                    tracker: None,
                    lines_before: BTreeMap::new(),
                    published: BTreeMap::new(),
                    resumed: None,
                    cascade,
                };
                streams.insert(stream.into(), Arc::new(Mutex::new(s)));
            }
        }
    }

    /// Stops tracking `stream` (tracking turned off, or the stream removed).
    pub fn untrack(&self, stream: &str) {
        locked(&self.streams).remove(stream);
    }

    fn stream(&self, name: &str) -> Option<Arc<Mutex<Stream>>> {
        locked(&self.streams).get(name).cloned()
    }

    /// The zones and lines of a tracked stream (for the status page).
    pub fn geometry(&self, stream: &str) -> Option<super::Geometry> {
        self.stream(stream)
            .map(|s| locked(&s).spec.geometry.clone())
    }

    /// From now on a stopping stream's objects end with `shutdown`.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Ends every object still open (frames analysed after their stream
    /// stopped) with `shutdown`; call once the engines are drained.
    pub fn finish(&self) {
        let now = SystemTime::now();
        let streams: Vec<(Arc<str>, Arc<Mutex<Stream>>)> = locked(&self.streams)
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        for (name, s) in streams {
            let mut s = locked(&s);
            if let Some((session, events)) = s.end(EndReason::Shutdown, now) {
                self.next.events(&name, &session, &events);
            }
            let zeros = s.all_zero();
            self.next.tallies(&name, &zeros, now);
        }
    }

    fn stopped(&self, stream: &str, s: &mut Stream, at: SystemTime) {
        let reason = if self.shutting_down.load(Ordering::Relaxed) {
            EndReason::Shutdown
        } else {
            EndReason::StreamStopped
        };
        if let Some((session, events)) = s.end(reason, at) {
            self.next.events(stream, &session, &events);
        }
        let zeros = s.all_zero();
        self.next.tallies(stream, &zeros, at);
    }
}

impl Publish for Tracking {
    fn analysis(&self, a: &Analysis) {
        let (Some(s), Output::Detections(dets)) = (self.stream(&a.meta.stream), &a.output) else {
            return self.next.analysis(a);
        };
        let mut s = locked(&s);
        let stream = &*a.meta.stream;
        if s.tracker
            .as_ref()
            .is_some_and(|(session, _)| *session != a.meta.session)
        {
            // The source came back: its objects are not the ones of before.
            self.stopped(stream, &mut s, a.meta.captured_at);
        }
        if s.tracker.is_none() {
            let short: String = a.meta.session.chars().take(4).collect();
            let n = match &mut s.resumed {
                Some((session, n)) if *session == a.meta.session => {
                    *n += 1;
                    *n
                }
                _ => {
                    s.resumed = Some((a.meta.session.clone(), 0));
                    0
                }
            };
            let prefix = match n {
                0 => format!("{stream}-{short}"),
                n => format!("{stream}-{short}-r{n}"),
            };
            let tracker = Tracker::new(s.spec.settings.clone(), s.spec.geometry.clone(), &prefix);
            s.tracker = Some((a.meta.session.clone(), tracker));
        }
        let s = &mut *s;
        let Some((_, tracker)) = s.tracker.as_mut() else {
            return;
        };
        let mut out = tracker.update(&FrameInfo::from(&a.meta), dets);
        let objects = tracker.objects();
        if let (Some(cascade), Some(full)) = (s.cascade.as_mut(), &a.meta.full) {
            for (id, sub) in cascade.frame(&objects, full, tracker.now_ns()) {
                out.events.extend(tracker.set_sub_label(&id, sub));
            }
        }
        let sub_labels: HashMap<Arc<str>, SubLabel> = tracker
            .objects()
            .into_iter()
            .filter_map(|o| Some((o.id, o.sub_label?)))
            .collect();
        let min_score = s.spec.min_score;
        let published: Vec<_> = dets
            .iter()
            .zip(out.track_of.iter().chain(std::iter::repeat(&None)))
            .filter(|(d, _)| d.score >= min_score)
            .map(|(d, track)| {
                let mut d = d.clone();
                d.track = track.clone();
                d.sub_label = track.as_ref().and_then(|t| sub_labels.get(t).cloned());
                d
            })
            .collect();
        let tracked = Analysis {
            meta: a.meta.clone(),
            model: a.model.clone(),
            output: Output::Detections(published),
            inference_ms: a.inference_ms,
        };
        self.next.analysis(&tracked);
        if !out.events.is_empty() {
            self.next.events(stream, &a.meta.session, &out.events);
        }
        if out.counts_changed || s.published.is_empty() {
            let now = s.tallies();
            let changed = s.changed(now);
            if !changed.is_empty() {
                self.next.tallies(stream, &changed, a.meta.captured_at);
            }
        }
    }

    fn status(&self, stream: &str, status: &StreamStatus) {
        if let Some(s) = self.stream(stream) {
            let mut s = locked(&s);
            match status.state {
                StreamState::Starting => {
                    // A subscriber that comes late never sees a stale count.
                    let zeros = s.all_zero();
                    self.next.tallies(stream, &zeros, status.since);
                }
                // Paused: nothing is watched, so nothing is known to be in
                // view; a count kept would go stale.
                StreamState::Stopped
                | StreamState::Failed
                | StreamState::Reconnecting
                | StreamState::Paused => {
                    self.stopped(stream, &mut s, status.since);
                }
                _ => {}
            }
        }
        self.next.status(stream, status);
    }

    fn removed(&self, stream: &str) {
        self.untrack(stream);
        self.next.removed(stream);
    }

    fn events(&self, stream: &str, session: &str, events: &[Event]) {
        self.next.events(stream, session, events);
    }

    fn tallies(&self, stream: &str, tallies: &[Tally], at: SystemTime) {
        self.next.tallies(stream, tallies, at);
    }

    fn snapshot(&self, stream: &str, label: &str, jpeg: &[u8]) {
        self.next.snapshot(stream, label, jpeg);
    }
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
