//! The tracker: association of a frame's detections, the lifecycle of its
//! tracks, zones, lines and counts (see the module docs of `tracking`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::assign::{assign, iou, weight};
use super::events::{Change, Counts, Crossing, Event, EventKind, InZone, LineCount};
use super::geometry::Geometry;
use super::track::{Obs, Track, anchor};
use super::zones::Hysteresis;
use super::{EndReason, FrameInfo, FrameOutput, MAX_CROSSINGS, ObjectView, Params, TrackSettings};
use crate::frame::{BBox, Detection, Look, SubLabel};

mod look;

/// A gap between two frames counts as this much at most.
const MAX_GAP_NS: u64 = 3_600_000_000_000;

/// Tracks the objects of one stream. Not `Sync`-bound to anything: one per
/// stream, fed its frames in order.
#[derive(Debug)]
pub struct Tracker {
    p: Params,
    geometry: Geometry,
    prefix: String,
    /// The N of the last ID given.
    last_id: u64,
    tracks: Vec<Track>,
    /// The tracker's clock: stream ns since the first frame, never going back.
    now: u64,
    last: Option<FrameInfo>,
    /// Class group of each label seen.
    groups: Vec<(Arc<str>, u32)>,
    /// Per line name, per label: crossings since construction.
    line_totals: BTreeMap<Arc<str>, BTreeMap<Arc<str>, LineCount>>,
    /// The counts after the last change (their labels stay, at 0).
    last_counts: Counts,
}

impl Tracker {
    /// `id_prefix`: objects are `PREFIX-1`, `PREFIX-2`, ... (`1`, `2`, ...
    /// for an empty prefix). The geometry is expected to be valid
    /// ([`validate`](super::validate)); an invalid one misbehaves quietly,
    /// never panics.
    pub fn new(settings: TrackSettings, geometry: Geometry, id_prefix: &str) -> Self {
        let mut t = Tracker {
            p: Params::new(settings),
            geometry: Geometry::default(),
            prefix: id_prefix.to_string(),
            last_id: 0,
            tracks: Vec::new(),
            now: 0,
            last: None,
            groups: Vec::new(),
            line_totals: BTreeMap::new(),
            last_counts: Counts::default(),
        };
        t.set_geometry(geometry);
        t.last_counts = t.counts();
        t
    }

    pub fn settings(&self) -> &TrackSettings {
        &self.p.s
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Replaces zones and lines (a reload), keeping the tracks: their state
    /// for a zone or line whose name stays is kept, new ones start from
    /// outside / no side (so an object already in a new zone enters it after
    /// the usual hysteresis). Line totals are kept by name. No events; the
    /// counts change ([`counts`](Self::counts)).
    pub fn set_geometry(&mut self, geometry: Geometry) {
        for t in &mut self.tracks {
            let zones = geometry
                .zones
                .iter()
                .map(|z| {
                    let old = self.geometry.zones.iter().position(|o| o.name == z.name);
                    old.and_then(|i| t.zones.get(i).cloned())
                        .unwrap_or_default()
                })
                .collect();
            let lines = geometry
                .lines
                .iter()
                .map(|l| {
                    let old = self.geometry.lines.iter().position(|o| o.name == l.name);
                    old.and_then(|i| t.lines.get(i).cloned())
                        .unwrap_or_default()
                })
                .collect();
            t.zones = zones;
            t.lines = lines;
        }
        for l in &geometry.lines {
            let totals = self.line_totals.entry(l.name.clone()).or_default();
            for label in l.labels.iter().flatten() {
                totals.entry(label.clone()).or_default();
            }
        }
        self.geometry = geometry;
    }

    /// [`Tracker::update`] for a frame of `size` pixels the model saw only
    /// through `look`: the objects outside it are held (see `look`).
    pub fn update_in(
        &mut self,
        frame: &FrameInfo,
        detections: &[Detection],
        look: &Look,
        size: (u32, u32),
    ) -> FrameOutput {
        self.advance(frame);
        self.mark_held(look, size);
        let now = self.now;
        let obs = self.observations(detections);
        let high: Vec<usize> = (0..obs.len())
            .filter(|&i| obs[i].score >= self.p.s.high_score)
            .collect();
        let mut owner = self.associate_all(&obs, &high);
        for (o, t) in owner.iter().enumerate() {
            if let Some(t) = *t {
                self.tracks[t].observe(&obs[o], now, frame.captured_at, &self.p);
                self.observe_geometry(t, now, frame.captured_at);
            }
        }
        self.births(&obs, &high, &mut owner, now, frame.captured_at);

        let mut out = FrameOutput {
            track_of: vec![None; detections.len()],
            ..FrameOutput::default()
        };
        self.confirm_and_update(frame, &mut out);
        for (o, t) in owner.iter().enumerate() {
            if let Some(t) = *t {
                out.track_of[obs[o].idx] = self.tracks[t].id.clone();
            }
        }
        self.end_unmatched(frame, &mut out);
        out.counts_changed = self.refresh_counts();
        out
    }

    /// Which track each observation belongs to (obs index -> track index):
    /// confirmed tracks take the sure detections, then the doubtful ones
    /// (at a looser gate); tentative tracks only sure ones.
    fn associate_all(&mut self, obs: &[Obs], high: &[usize]) -> Vec<Option<usize>> {
        let now = self.now;
        let low: Vec<usize> = (0..obs.len())
            .filter(|&i| obs[i].score < self.p.s.high_score)
            .collect();
        let gates: Vec<BBox> = self
            .tracks
            .iter()
            .map(|t| t.gate_box(now, &self.p))
            .collect();
        for t in &mut self.tracks {
            t.matched = false;
        }
        let mut owner: Vec<Option<usize>> = vec![None; obs.len()];
        let confirmed: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].id.is_some())
            .collect();
        let tentative: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].id.is_none())
            .collect();
        let mut taken = vec![false; self.tracks.len()];
        let (hi_gate, lo_gate) = (self.p.s.match_iou, self.p.s.low_match_iou);
        let tracks = &self.tracks;
        let mut stage = |ts: &[usize], ds: &[usize], gate: f32| {
            associate(tracks, obs, &gates, ts, ds, gate, &mut owner, &mut taken)
        };
        stage(&confirmed, high, hi_gate);
        stage(&confirmed, &low, lo_gate);
        stage(&tentative, high, hi_gate);
        owner
    }

    /// `new` for tentative tracks seen long and often enough, `update` for
    /// confirmed ones whose view changed.
    fn confirm_and_update(&mut self, frame: &FrameInfo, out: &mut FrameOutput) {
        for t in 0..self.tracks.len() {
            let track = &self.tracks[t];
            if track.id.is_none() {
                let age = self.now.saturating_sub(track.first_ns);
                if track.matched && track.hits >= 2 && age >= self.p.confirm_ns {
                    self.confirm(t);
                    let e = self.event(t, EventKind::New, Vec::new(), frame);
                    out.events.push(e);
                }
            } else if !track.changes.is_empty() {
                let changes = std::mem::take(&mut self.tracks[t].changes);
                let e = self.event(t, EventKind::Update, changes, frame);
                out.events.push(e);
            }
        }
    }

    /// Unmatched tracks: a tentative one unseen past the confirmation time
    /// is dropped; a confirmed one unseen past its lost time ends (`lost`).
    fn end_unmatched(&mut self, frame: &FrameInfo, out: &mut FrameOutput) {
        let mut t = 0;
        while t < self.tracks.len() {
            let track = &self.tracks[t];
            let unseen = self.now.saturating_sub(track.last_ns);
            if track.matched || track.held {
                t += 1;
            } else if track.id.is_none() {
                if unseen > self.p.confirm_ns {
                    self.tracks.remove(t);
                } else {
                    t += 1;
                }
            } else if unseen >= track.lost_ns(&self.p) {
                let at = track.last_seen;
                let kind = EventKind::End {
                    reason: EndReason::Lost,
                    at,
                };
                let e = self.event(t, kind, Vec::new(), frame);
                out.events.push(e);
                self.tracks.remove(t);
            } else {
                t += 1;
            }
        }
    }

    /// Ends every confirmed object (each once, with `reason`, `end` = `at`)
    /// and forgets every track; the tracker can go on afterwards (IDs keep
    /// counting up). The events carry the last frame given to `update`.
    pub fn end_all(&mut self, reason: EndReason, at: SystemTime) -> Vec<Event> {
        let frame = self.last.unwrap_or(FrameInfo {
            pts_ns: None,
            captured_at: at,
            frame: 0,
        });
        let mut events = Vec::new();
        for t in 0..self.tracks.len() {
            if self.tracks[t].id.is_some() {
                let kind = EventKind::End { reason, at };
                events.push(self.event(t, kind, Vec::new(), &frame));
            }
        }
        self.tracks.clear();
        self.refresh_counts();
        events
    }

    /// The confirmed objects, not ended, as the last frame left them.
    pub fn objects(&self) -> Vec<ObjectView> {
        self.tracks
            .iter()
            .filter_map(|t| {
                Some(ObjectView {
                    id: t.id.clone()?,
                    label: t.label.clone(),
                    bbox: t.bbox,
                    score: t.score,
                    stationary: t.stationary,
                    seen: t.matched,
                    sub_label: t.sub_label.clone(),
                })
            })
            .collect()
    }

    /// The tracker's clock: stream ns since its first frame.
    pub fn now_ns(&self) -> u64 {
        self.now
    }

    /// Names object `id` more finely, for the rest of its life; the
    /// `update` that says so (none for an unknown or ended object).
    pub fn set_sub_label(&mut self, id: &str, sub: SubLabel) -> Option<Event> {
        let t = self
            .tracks
            .iter()
            .position(|t| t.id.as_deref() == Some(id))?;
        self.tracks[t].sub_label = Some(sub);
        let frame = self.last?;
        Some(self.event(t, EventKind::Update, vec![Change::SubLabel], &frame))
    }

    /// The counts now (see [`Counts`]).
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for l in self.last_counts.objects.keys() {
            c.objects.insert(l.clone(), 0);
        }
        for z in &self.geometry.zones {
            let m = c.zones.entry(z.name.clone()).or_default();
            let before = self.last_counts.zones.get(&z.name);
            for l in z
                .labels
                .iter()
                .flatten()
                .chain(before.into_iter().flat_map(|m| m.keys()))
            {
                m.insert(l.clone(), 0);
            }
        }
        for l in &self.geometry.lines {
            let totals = self.line_totals.get(&l.name).cloned().unwrap_or_default();
            c.lines.insert(l.name.clone(), totals);
        }
        for t in self.tracks.iter().filter(|t| t.id.is_some()) {
            *c.objects.entry(t.label.clone()).or_default() += 1;
            for (z, s) in self.geometry.zones.iter().zip(&t.zones) {
                if s.in_zone {
                    let m = c.zones.entry(z.name.clone()).or_default();
                    *m.entry(t.label.clone()).or_default() += 1;
                }
            }
        }
        c
    }

    fn refresh_counts(&mut self) -> bool {
        let c = self.counts();
        let changed = c != self.last_counts;
        if changed {
            self.last_counts = c;
        }
        changed
    }

    fn advance(&mut self, f: &FrameInfo) {
        let gap = match self.last {
            None => 0,
            Some(last) => match (f.pts_ns, last.pts_ns) {
                (Some(p), Some(l)) => p.saturating_sub(l),
                _ => f
                    .captured_at
                    .duration_since(last.captured_at)
                    .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
                    .unwrap_or(0),
            },
        };
        self.now = self.now.saturating_add(gap.min(MAX_GAP_NS));
        self.last = Some(*f);
    }

    fn group_of(&mut self, label: &Arc<str>) -> u32 {
        if let Some((_, g)) = self.groups.iter().find(|(l, _)| l == label) {
            return *g;
        }
        let fixed = self.p.s.label_groups.len() as u32;
        let g = match self
            .p
            .s
            .label_groups
            .iter()
            .position(|g| g.iter().any(|l| l == label))
        {
            Some(i) => i as u32,
            None => fixed + self.groups.len() as u32,
        };
        if self.groups.len() < 4096 {
            self.groups.push((label.clone(), g));
        }
        g
    }

    /// The detections worth tracking, clamped to the frame, at most
    /// `max_detections` (the best).
    fn observations(&mut self, detections: &[Detection]) -> Vec<Obs> {
        let mut obs = Vec::with_capacity(detections.len().min(self.p.s.max_detections));
        for (idx, d) in detections.iter().enumerate() {
            let score = d.score.min(1.0);
            if score.is_nan() || score < self.p.s.low_score || !score.is_finite() {
                continue;
            }
            let b = d.bbox;
            let (x0, y0) = (b.x.clamp(0.0, 1.0), b.y.clamp(0.0, 1.0));
            let (x1, y1) = ((b.x + b.w).clamp(0.0, 1.0), (b.y + b.h).clamp(0.0, 1.0));
            let (w, h) = (x1 - x0, y1 - y0);
            if !(w > 1e-4 && h > 1e-4) {
                continue;
            }
            let group = self.group_of(&d.label);
            obs.push(Obs {
                idx,
                bbox: BBox { x: x0, y: y0, w, h },
                score,
                label: d.label.clone(),
                label_id: d.label_id,
                group,
            });
        }
        if obs.len() > self.p.s.max_detections {
            obs.sort_by(|a, b| b.score.total_cmp(&a.score));
            obs.truncate(self.p.s.max_detections);
            obs.sort_by_key(|o| o.idx);
        }
        obs
    }

    /// Tentative tracks for the strong detections left, best first, unless
    /// one duplicates a track of its group.
    fn births(
        &mut self,
        obs: &[Obs],
        high: &[usize],
        owner: &mut [Option<usize>],
        now: u64,
        captured_at: SystemTime,
    ) {
        let mut free: Vec<usize> = high
            .iter()
            .copied()
            .filter(|&o| owner[o].is_none())
            .collect();
        if free.is_empty() {
            return;
        }
        free.sort_by(|&a, &b| obs[b].score.total_cmp(&obs[a].score));
        let mut boxes: Vec<(u32, BBox)> = self
            .tracks
            .iter()
            .map(|t| {
                let b = if t.matched {
                    t.bbox
                } else {
                    t.predicted(now, &self.p)
                };
                (t.group, b)
            })
            .collect();
        for o in free {
            let ob = &obs[o];
            let dup = boxes
                .iter()
                .any(|(g, b)| *g == ob.group && iou(b, &ob.bbox) > self.p.s.birth_iou);
            if dup || self.tracks.len() >= self.p.s.max_tracks {
                continue;
            }
            let (nz, nl) = (self.geometry.zones.len(), self.geometry.lines.len());
            self.tracks.push(Track::new(ob, now, captured_at, nz, nl));
            boxes.push((ob.group, ob.bbox));
            let t = self.tracks.len() - 1;
            owner[o] = Some(t);
            self.observe_geometry(t, now, captured_at);
        }
    }

    /// Zones and lines for track `t`'s latest detected box.
    fn observe_geometry(&mut self, t: usize, now: u64, captured_at: SystemTime) {
        let track = &mut self.tracks[t];
        let a = anchor(&track.bbox);
        let band = track.band(&self.p);
        let h = Hysteresis {
            frames: self.p.s.zone_frames,
            min_ns: self.p.zone_ns,
        };
        for (z, s) in self.geometry.zones.iter().zip(track.zones.iter_mut()) {
            let flipped = s.observe(z, a, band, now, h);
            let in_zone = s.inside && z.applies_to(&track.label);
            if in_zone == s.in_zone {
                continue;
            }
            s.in_zone = in_zone;
            if in_zone {
                // Since the first clear observation, unless the label made it.
                s.in_since = if flipped { s.inside_since } else { now };
                track.changes.push(Change::ZoneEnter(z.name.clone()));
                if !track.entered.contains(&z.name) {
                    track.entered.push(z.name.clone());
                }
            } else {
                track.changes.push(Change::ZoneExit(z.name.clone()));
            }
        }
        let confirmed = track.id.is_some();
        for (l, s) in self.geometry.lines.iter().zip(track.lines.iter_mut()) {
            let Some(dir) = s.observe(l, a, band, l.applies_to(&track.label)) else {
                continue;
            };
            track.changes.push(Change::Line(l.name.clone(), dir));
            if track.crossings.len() >= MAX_CROSSINGS {
                track.crossings.remove(0);
            }
            track.crossings.push(Crossing {
                line: l.name.clone(),
                direction: dir,
                at: captured_at,
            });
            if confirmed {
                count_crossing(&mut self.line_totals, &l.name, &track.label, dir);
            } else if track.uncounted.len() < MAX_CROSSINGS {
                track.uncounted.push((l.name.clone(), dir));
            }
        }
    }

    fn confirm(&mut self, t: usize) {
        self.last_id += 1;
        let id = if self.prefix.is_empty() {
            self.last_id.to_string()
        } else {
            format!("{}-{}", self.prefix, self.last_id)
        };
        let track = &mut self.tracks[t];
        track.id = Some(Arc::from(id));
        track.changes.clear();
        for (line, dir) in std::mem::take(&mut track.uncounted) {
            count_crossing(&mut self.line_totals, &line, &track.label, dir);
        }
    }

    fn event(&self, t: usize, kind: EventKind, changes: Vec<Change>, f: &FrameInfo) -> Event {
        let track = &self.tracks[t];
        let zones = self
            .geometry
            .zones
            .iter()
            .zip(&track.zones)
            .filter(|(_, s)| s.in_zone)
            .map(|(z, s)| InZone {
                zone: z.name.clone(),
                seconds: self.now.saturating_sub(s.in_since) as f64 / 1e9,
            })
            .collect();
        Event {
            kind,
            id: track.id.clone().unwrap_or_else(|| Arc::from("")),
            label: track.label.clone(),
            label_id: track.label_id,
            score: track.score,
            top_score: track.top_score,
            bbox: track.bbox,
            start: track.start,
            last_seen: track.last_seen,
            frame: f.frame,
            captured_at: f.captured_at,
            stationary: track.stationary,
            zones,
            entered_zones: track.entered.clone(),
            changes,
            lines: track.crossings.clone(),
            sub_label: track.sub_label.clone(),
        }
    }
}

/// One association pass of the free `ts` and the free detections `ds`.
#[allow(clippy::too_many_arguments)]
fn associate(
    tracks: &[Track],
    obs: &[Obs],
    gates: &[BBox],
    ts: &[usize],
    ds: &[usize],
    gate: f32,
    owner: &mut [Option<usize>],
    taken: &mut [bool],
) {
    let ts: Vec<usize> = ts.iter().copied().filter(|&t| !taken[t]).collect();
    let ds: Vec<usize> = ds.iter().copied().filter(|&d| owner[d].is_none()).collect();
    if ts.is_empty() || ds.is_empty() {
        return;
    }
    let pairs = assign(ts.len(), ds.len(), |r, c| {
        let (t, o) = (&tracks[ts[r]], &obs[ds[c]]);
        if t.group != o.group {
            return 0;
        }
        weight(iou(&gates[ts[r]], &o.bbox), gate)
    });
    for (r, c) in pairs {
        owner[ds[c]] = Some(ts[r]);
        taken[ts[r]] = true;
    }
}

fn count_crossing(
    totals: &mut BTreeMap<Arc<str>, BTreeMap<Arc<str>, LineCount>>,
    line: &Arc<str>,
    label: &Arc<str>,
    dir: super::Direction,
) {
    let c = totals
        .entry(line.clone())
        .or_default()
        .entry(label.clone())
        .or_default();
    match dir {
        super::Direction::In => c.r#in += 1,
        super::Direction::Out => c.out += 1,
    }
}
