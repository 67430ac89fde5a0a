//! The tracking stage of a stream's route (`crate::route`): follows the
//! objects across analysed frames, marks each published detection with its
//! object's ID, and returns the lifecycle events and the counts that
//! changed. Plain functions with typed outputs; the route publishes them.
//!
//! A stream's tracker lives for one source session: a new session (the
//! source came back) or a stopped stream ends its objects with
//! `stream_stopped`, and counts go to 0 when a stream starts and when it
//! stops. A pause (the detect switch) is a stop: its objects end with
//! `stream_stopped` and counts go to 0; after it a new tracker starts in
//! the same session, its ids marked `-rN`. Line counters add up over sessions, since the daemon started.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use super::{Counts, EndReason, Event, FrameInfo, Geometry, LineCount, TrackSettings, Tracker};
use crate::frame::{Analysis, Detection, ObjectView, Output, SubLabel};

/// One count of the contract, as it is now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tally {
    /// `P/N/S/count/L`: confirmed objects of the label in view.
    Objects { label: Arc<str>, count: u32 },
    /// `P/N/S/zones/Z/count/L`: those whose anchor is in the zone.
    Zone {
        zone: Arc<str>,
        label: Arc<str>,
        count: u32,
    },
    /// `P/N/S/lines/X/L`: crossings since the daemon started.
    Line {
        line: Arc<str>,
        label: Arc<str>,
        into: u64,
        out: u64,
    },
}

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
}

/// Names objects: the ids named in this frame and their sub-labels.
pub type Namer<'a> = dyn FnMut(&[ObjectView], u64) -> Vec<(Arc<str>, SubLabel)> + 'a;

/// One stream's tracking: its tracker and the counts it published.
pub struct StreamTracking {
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
}

type Key = (u8, Arc<str>, Arc<str>);

fn key(t: &Tally) -> Key {
    match t {
        Tally::Objects { label, .. } => (0, Arc::from(""), label.clone()),
        Tally::Zone { zone, label, .. } => (1, zone.clone(), label.clone()),
        Tally::Line { line, label, .. } => (2, line.clone(), label.clone()),
    }
}

impl StreamTracking {
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

/// What one frame changed.
pub struct Tracked {
    /// The frame as published: detections below `min_score` left out, the
    /// rest marked with their object's ID and sub-label.
    pub analysis: Analysis,
    /// Lifecycle events, of the frame's session.
    pub events: Vec<Event>,
    /// Counts that changed.
    pub tallies: Vec<Tally>,
}

/// What a boundary (a stop, a pause, a new session) ended.
#[derive(Default)]
pub struct Ended {
    /// The ended objects' session and their `end` events.
    pub events: Option<(Arc<str>, Vec<Event>)>,
    /// Counts set to 0.
    pub tallies: Vec<Tally>,
}

impl StreamTracking {
    pub fn new(spec: TrackSpec) -> Self {
        Self {
            spec,
            tracker: None,
            lines_before: BTreeMap::new(),
            published: BTreeMap::new(),
            resumed: None,
        }
    }

    pub fn spec(&self) -> &TrackSpec {
        &self.spec
    }

    /// New zones, lines or rules for a stream that keeps running: its
    /// objects stay.
    pub fn respec(&mut self, spec: TrackSpec) {
        if let Some((_, t)) = &mut self.tracker {
            t.set_geometry(spec.geometry.clone());
        }
        self.spec = spec;
    }

    /// Follows the objects into frame `a` (of detections). A frame of a new
    /// session (the source came back) first ends the objects of the old
    /// one: that is the [`Ended`]. `name`, where the stream has classify
    /// rules, names objects (the cascade): it gets the tracked objects and
    /// the tracker's clock and returns the names it gave.
    pub fn frame(
        &mut self,
        a: &Analysis,
        dets: &[Detection],
        name: Option<&mut Namer<'_>>,
    ) -> (Ended, Tracked) {
        let mut ended = Ended::default();
        if self
            .tracker
            .as_ref()
            .is_some_and(|(session, _)| *session != a.meta.session)
        {
            // The source came back: its objects are not the ones of before.
            ended = self.stopped(EndReason::StreamStopped, a.meta.captured_at);
        }
        let stream = &*a.meta.stream;
        let tracker = match &mut self.tracker {
            Some((_, t)) => t,
            None => {
                let prefix = self.next_prefix(stream, &a.meta.session);
                let t = Tracker::new(
                    self.spec.settings.clone(),
                    self.spec.geometry.clone(),
                    &prefix,
                );
                &mut self.tracker.insert((a.meta.session.clone(), t)).1
            }
        };
        let size = (a.meta.source_width, a.meta.source_height);
        let look = &a.meta.sight.look;
        let mut out = tracker.update_in(&FrameInfo::from(&a.meta), dets, look, size);
        if let Some(name) = name {
            let objects = tracker.objects();
            for (id, sub) in name(&objects, tracker.now_ns()) {
                out.events.extend(tracker.set_sub_label(&id, sub));
            }
        }
        let sub_labels: HashMap<Arc<str>, SubLabel> = tracker
            .objects()
            .into_iter()
            .filter_map(|o| Some((o.id, o.sub_label?)))
            .collect();
        let min_score = self.spec.min_score;
        let mut held = tracker.held();
        held.retain(|d| d.score >= min_score);
        let mut published: Vec<_> = dets
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
        let analysis = Analysis {
            meta: a.meta.clone(),
            model: a.model.clone(),
            output: Output::Detections({
                // What the model was not asked about stays in the list.
                published.extend(held);
                published
            }),
            inference_ms: a.inference_ms,
        };
        let tallies = if out.counts_changed || self.published.is_empty() {
            let now = self.tallies();
            self.changed(now)
        } else {
            Vec::new()
        };
        let tracked = Tracked {
            analysis,
            events: out.events,
            tallies,
        };
        (ended, tracked)
    }

    /// Where the motion gate should look next (nothing without a tracker).
    pub fn lookout(&self) -> crate::motion::gate::Tracked {
        self.tracker
            .as_ref()
            .map(|(_, t)| t.lookout())
            .unwrap_or_default()
    }

    /// The object-id prefix of a new tracker: the stream and session, and
    /// `-rN` after N pauses in the same session, so no id is used twice.
    fn next_prefix(&mut self, stream: &str, session: &Arc<str>) -> String {
        let short: String = session.chars().take(4).collect();
        let n = match &mut self.resumed {
            Some((s, n)) if s == session => {
                *n += 1;
                *n
            }
            _ => {
                self.resumed = Some((session.clone(), 0));
                0
            }
        };
        match n {
            0 => format!("{stream}-{short}"),
            n => format!("{stream}-{short}-r{n}"),
        }
    }

    /// The stream starts: every count at 0, so a subscriber that comes
    /// late never sees a stale one.
    pub fn starting(&mut self) -> Vec<Tally> {
        self.all_zero()
    }

    /// The stream stopped, failed, lost its source or was paused: nothing
    /// is watched, so nothing is known to be in view. Its objects end with
    /// `reason` and its counts go to 0 (a count kept would go stale).
    pub fn stopped(&mut self, reason: EndReason, at: SystemTime) -> Ended {
        Ended {
            events: self.end(reason, at),
            tallies: self.all_zero(),
        }
    }
}
