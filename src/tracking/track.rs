//! One track: its box and constant-velocity prediction, scores, label vote,
//! stationary state, and where it stands with each zone and line.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use super::Params;
use super::assign::expand;
use super::events::{Change, Crossing, Direction};
use super::geometry::Point;
use super::lines::LineState;
use super::zones::ZoneState;
use crate::frame::{BBox, SubLabel};

/// A detection the tracker accepted: finite, clamped to the frame, score in
/// [low_score, 1].
#[derive(Debug, Clone)]
pub(crate) struct Obs {
    /// Its index among the frame's detections.
    pub idx: usize,
    pub bbox: BBox,
    pub score: f32,
    pub label: Arc<str>,
    pub label_id: u32,
    /// Its class group: only tracks of the same group may take it.
    pub group: u32,
}

pub(crate) fn anchor(b: &BBox) -> Point {
    [b.x + b.w / 2.0, b.y + b.h]
}

fn centre(b: &BBox) -> Point {
    [b.x + b.w / 2.0, b.y + b.h / 2.0]
}

pub(crate) fn secs(ns: u64) -> f32 {
    (ns as f64 / 1e9) as f32
}

#[derive(Debug)]
pub(crate) struct Track {
    /// Set when confirmed.
    pub id: Option<Arc<str>>,
    pub group: u32,
    pub label: Arc<str>,
    pub label_id: u32,
    /// The labels of its latest detections, as indices into `labels`.
    votes: VecDeque<u8>,
    labels: Vec<(Arc<str>, u32)>,
    /// The latest detected box.
    pub bbox: BBox,
    /// Box centre velocity, per second.
    vel: [f32; 2],
    pub score: f32,
    pub top_score: f32,
    pub hits: u32,
    /// Stream time (tracker clock, ns) of the first and latest detections.
    pub first_ns: u64,
    pub last_ns: u64,
    pub start: SystemTime,
    pub last_seen: SystemTime,
    pub stationary: bool,
    still_ref: Point,
    still_since: u64,
    move_votes: u32,
    pub zones: Vec<ZoneState>,
    pub lines: Vec<LineState>,
    pub entered: Vec<Arc<str>>,
    pub crossings: Vec<Crossing>,
    /// Crossings made before confirmation, counted when it comes.
    pub uncounted: Vec<(Arc<str>, Direction)>,
    /// Changes since the last event.
    pub changes: Vec<Change>,
    /// Matched in the current frame.
    pub matched: bool,
    /// Outside what the model looked at in the current frame: neither
    /// matched nor missed.
    pub held: bool,
    /// Assigned by the cascade (`classify`), for the rest of its life.
    pub sub_label: Option<SubLabel>,
}

impl Track {
    pub fn new(o: &Obs, now: u64, captured_at: SystemTime, zones: usize, lines: usize) -> Self {
        Track {
            id: None,
            group: o.group,
            label: o.label.clone(),
            label_id: o.label_id,
            votes: VecDeque::from([0]),
            labels: vec![(o.label.clone(), o.label_id)],
            bbox: o.bbox,
            vel: [0.0, 0.0],
            score: o.score,
            top_score: o.score,
            hits: 1,
            first_ns: now,
            last_ns: now,
            start: captured_at,
            last_seen: captured_at,
            stationary: false,
            still_ref: anchor(&o.bbox),
            still_since: now,
            move_votes: 0,
            zones: vec![ZoneState::default(); zones],
            lines: vec![LineState::default(); lines],
            entered: Vec::new(),
            crossings: Vec::new(),
            uncounted: Vec::new(),
            changes: Vec::new(),
            matched: true,
            held: false,
            sub_label: None,
        }
    }

    /// Where the box should be now: the latest box moved at its velocity
    /// for the time since (at most `lost_s`; not at all while stationary).
    pub fn predicted(&self, now: u64, p: &Params) -> BBox {
        if self.stationary {
            return self.bbox;
        }
        let dt = secs(now.saturating_sub(self.last_ns)).min(p.predict_max_s);
        BBox {
            x: self.bbox.x + self.vel[0] * dt,
            y: self.bbox.y + self.vel[1] * dt,
            ..self.bbox
        }
    }

    /// The prediction grown with the time unseen, for matching.
    pub fn gate_box(&self, now: u64, p: &Params) -> BBox {
        let dt = secs(now.saturating_sub(self.last_ns));
        let r = (p.s.buffer_per_s * dt).min(p.s.buffer_max).max(0.0);
        expand(&self.predicted(now, p), r)
    }

    /// Takes a matched detection: box, velocity, scores, label vote and
    /// stationary state; the changes go to `self.changes`.
    pub fn observe(&mut self, o: &Obs, now: u64, captured_at: SystemTime, p: &Params) {
        let dt = secs(now.saturating_sub(self.last_ns));
        if dt > 0.0 && !self.stationary {
            let (c0, c1) = (centre(&self.bbox), centre(&o.bbox));
            let m = [(c1[0] - c0[0]) / dt, (c1[1] - c0[1]) / dt];
            let first = self.hits == 1 || self.vel == [0.0, 0.0];
            for (vel, m) in self.vel.iter_mut().zip(m) {
                let v = if first {
                    m
                } else {
                    *vel + p.s.velocity_alpha * (m - *vel)
                };
                *vel = if v.is_finite() {
                    v.clamp(-p.s.max_speed, p.s.max_speed)
                } else {
                    0.0
                };
            }
        }
        self.bbox = o.bbox;
        self.score = o.score;
        self.top_score = self.top_score.max(o.score);
        self.hits = self.hits.saturating_add(1);
        self.last_ns = now;
        self.last_seen = captured_at;
        self.matched = true;
        self.vote(o, p);
        self.still(now, p);
    }

    fn vote(&mut self, o: &Obs, p: &Params) {
        let i = match self.labels.iter().position(|(l, _)| *l == o.label) {
            Some(i) => i,
            None if self.labels.len() < u8::MAX as usize => {
                self.labels.push((o.label.clone(), o.label_id));
                self.labels.len() - 1
            }
            None => return,
        };
        self.votes.push_back(i as u8);
        while self.votes.len() > p.s.label_window.max(1) {
            self.votes.pop_front();
        }
        let mut counts = [0u32; 256];
        for &v in &self.votes {
            counts[v as usize] += 1;
        }
        let cur = self
            .labels
            .iter()
            .position(|(l, _)| *l == self.label)
            .unwrap_or(0);
        let (best, n) = counts
            .iter()
            .enumerate()
            .take(self.labels.len())
            .max_by_key(|&(j, &n)| (n, j == cur))
            .map(|(j, &n)| (j, n))
            .unwrap_or((cur, 0));
        if best == cur {
            return;
        }
        // Before confirmation the plurality decides silently; after, the new
        // label must hold a clear majority of a full window.
        let confirmed = self.id.is_some();
        if confirmed && (n as usize) < p.label_need {
            return;
        }
        let (label, label_id) = self.labels[best].clone();
        self.label = label;
        self.label_id = label_id;
        if confirmed {
            self.changes.push(Change::Label);
        }
    }

    fn still(&mut self, now: u64, p: &Params) {
        let a = anchor(&self.bbox);
        let r = (p.s.stationary_radius * self.bbox.w.max(self.bbox.h)).max(0.002);
        let d = ((a[0] - self.still_ref[0]).powi(2) + (a[1] - self.still_ref[1]).powi(2)).sqrt();
        let away = d.is_nan() || d > r;
        if !self.stationary {
            if away {
                self.still_ref = a;
                self.still_since = now;
            } else if now.saturating_sub(self.still_since) >= p.stationary_ns {
                self.stationary = true;
                self.vel = [0.0, 0.0];
                self.changes.push(Change::Stationary);
            }
        } else if away {
            self.move_votes += 1;
            if self.move_votes >= p.s.moving_frames.max(1) {
                self.stationary = false;
                self.move_votes = 0;
                self.still_ref = a;
                self.still_since = now;
                self.changes.push(Change::Moving);
            }
        } else {
            self.move_votes = 0;
        }
    }

    /// The dead band around zone edges and lines for this box's size.
    pub fn band(&self, p: &Params) -> f32 {
        (p.s.edge_band * self.bbox.h)
            .clamp(p.s.edge_band_min, p.s.edge_band_max.max(p.s.edge_band_min))
    }

    /// How long it may go unseen before it ends.
    pub fn lost_ns(&self, p: &Params) -> u64 {
        if self.stationary {
            p.stationary_lost_ns.max(p.lost_ns)
        } else {
            p.lost_ns
        }
    }
}
