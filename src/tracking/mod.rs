//! The tracking stage: per-frame detections in, objects with an identity and
//! a lifecycle out (PRODUCT.md, "Events: tracking, zones, lines, counts").
//! Pure: plain types in and out, no GStreamer, ONNX Runtime or MQTT.
//!
//! ```text
//! let mut t = Tracker::new(TrackSettings::default(), geometry, "drive-5f2c");
//! for each analysed frame:
//!     let out = t.update(&FrameInfo::from(&analysis.meta), &detections);
//!     publish out.events (in order); if out.counts_changed { publish t.counts() }
//! on reload keeping the stream: t.set_geometry(new_geometry)
//! when the stream stops / the daemon shuts down: publish t.end_all(reason, now)
//! ```
//!
//! # How it tracks (ByteTrack-style)
//!
//! Each frame's detections down to `low_score` come in. Every track's box is
//! predicted at constant velocity over the real stream-time gap since it was
//! last seen (frames' `pts_ns`; `captured_at` when there is none) and grown
//! by a buffer that widens with the time unseen. Then, by optimal assignment
//! on IoU (`pathfinding::kuhn_munkres`, integer weights):
//! 1. detections scoring at least `high_score` (the stream's `min_score`)
//!    to confirmed tracks, IoU at least `match_iou`;
//! 2. the weaker ones (`low_score` up to `high_score`) to the confirmed
//!    tracks still unmatched, IoU at least `low_match_iou`: they carry an
//!    object through frames where the detector doubts, and never start one;
//! 3. the remaining strong ones to tentative tracks;
//! 4. a strong one still left starts a tentative track, unless it overlaps
//!    a track of its group by more than `birth_iou` (a duplicate box).
//!
//! Pairs match only within a class group (`label_groups`: car, truck, bus
//! and motorcycle by default; every other label is its own group), so a
//! car seen as a truck for a few frames stays one object. Its label changes
//! (an `update` with change `label`) only when another label holds
//! `label_switch` of the last `label_window` detections.
//!
//! A track is confirmed (`new`) once it has been seen for `confirm_s` of
//! stream time and in at least 2 frames; a tentative track unseen for
//! longer than `confirm_s` is dropped without a word. A confirmed one ends
//! (`end`, `lost`) when unseen for `lost_s`, or `stationary_lost_s` while it
//! is stationary: a parked car that the detector misses for half a minute
//! keeps its ID. Timestamps going backwards count as no time passing; a gap
//! over an hour counts as an hour.
//!
//! An object whose anchor (bottom centre of the box) stays within
//! `stationary_radius` of its box size for `stationary_s` becomes
//! `stationary` (one update) and sends nothing more until its anchor is
//! outside that radius on `moving_frames` detections in a row (`moving`).
//! Zones and lines test the anchor of detected boxes (never predictions) with
//! a dead band of `edge_band` of the box height (zones.rs, lines.rs).
//!
//! # Wiring
//!
//! - Call `update` for every analysed frame, also those without
//!   detections: tracks end on frames (a stalled stream ends nothing until
//!   the next frame or `end_all`).
//! - Give it the detections down to `low_score`, not only those the stream
//!   publishes (`min_score` = `high_score`): the weak ones carry tracks.
//! - `FrameOutput::track_of` follows the input order; `Event`s are in
//!   publishing order. Their `id` is `PREFIX-N`; make the prefix unique per
//!   stream and run (e.g. stream name and a short random part), since N
//!   starts at 1 with every `Tracker`.
//! - Check zones and lines with [`validate`] before `Tracker::new` or
//!   `set_geometry`; its paths are relative to the stream entry.
//!
//! Known limits: a person walking through the spot of a stationary person
//! who is hidden at that moment can take over the stationary track (the
//! optimal assignment prevents it while both are detected); objects of
//! different groups never suppress each other at birth (a person on a
//! bicycle is two objects).
//!
//! # Defaults, for SSD-MobileNetV2 at `fps: 5`
//!
//! - `confirm_s` 0.4, `lost_s` 2.0: PRODUCT.md. At 5 fps a track is
//!   confirmed on its third frame; 2 s is 10 frames without a detection.
//! - `high_score` 0.5 is `min_score`'s default; `low_score` 0.2: SSD-
//!   MobileNetV2's score for one person or car wobbles between about 0.4 and
//!   0.7 from frame to frame (more when small, far or half occluded), so
//!   with one threshold at 0.5 a real object drops out every few frames;
//!   under about 0.2 its output is mostly clutter.
//! - `match_iou` 0.2: at 5 fps (0.2 s a frame) a walking person (about
//!   1.4 m/s) moves a good part of a box width a frame when near, so the raw
//!   IoU of consecutive boxes is often 0.3-0.6; the prediction restores most
//!   of it, and 0.2 still separates neighbours. `low_match_iou` 0.35: weak
//!   detections are clutter more often, so they must sit on the prediction.
//! - `buffer_per_s` 0.3 (at most 0.5): the prediction grows by 6 % of its
//!   size a side per frame at 5 fps, 30 % after 1 s unseen (a dropped frame,
//!   an occlusion, a 1 s gap at low fps), where walking speed and direction
//!   have drifted from the estimate. `velocity_alpha` 0.5 smooths the box
//!   jitter out of the velocity in about two frames; `max_speed` 2 frames a
//!   second bounds what one bad match can do.
//! - `birth_iou` 0.6: SSD's per-class NMS lets through a second box for
//!   one object (often as another vehicle class) with IoU 0.6-0.9; two real
//!   objects of one group rarely overlap that much in the image.
//! - `label_window` 20, `label_switch` 0.75: car/truck flicker on one
//!   vehicle is often 30-50 %; 15 of the last 20 detections (3 s at 5 fps)
//!   is out of reach for flicker (about 2 % of windows at a fair 50/50, and
//!   a switch back needs the same), and a real change shows within 3 s.
//! - `stationary_s` 10, `stationary_radius` 0.1, `moving_frames` 2: SSD box
//!   edges jitter by 1-5 % of the box size on a still object; 10 % of the
//!   box's larger side stays above that and below a step of a walker. 10 s
//!   (50 frames) is what Frigate users find natural for "parked".
//! - `stationary_lost_s` 30 (15 times `lost_s`): a parked car at dusk or
//!   behind a passing van is missed for several seconds at a time, and an
//!   end and a new object for it is what users complain about most.
//! - `zone_frames` 2, `zone_s` 0.2, `edge_band` 0.06 of the box height
//!   (0.005-0.03): the bottom edge of a standing person's box jitters by a few
//!   % of its height; entering takes 2 frames at 5 fps (more at higher fps,
//!   0.2 s), and an anchor on the edge within the band never flaps.
//! - `max_detections` 256 and `max_tracks` 256 bound the work of one frame
//!   whatever the model outputs (SSD gives at most 100).

mod assign;
mod events;
mod geometry;
mod lines;
pub mod stage;
mod track;
mod tracker;
mod zones;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_geo;
#[cfg(test)]
mod tests_prop;

use std::sync::Arc;
use std::time::SystemTime;

pub use crate::frame::ObjectView;
pub use events::{
    Change, Counts, Crossing, Direction, EndReason, Event, EventKind, InZone, LineCount,
};
pub use geometry::{Geometry, Line, Point, Zone, validate};
pub use stage::{Ended, Namer, StreamTracking, Tally, TrackSpec, Tracked};
pub use tracker::Tracker;

use crate::frame::FrameMeta;

/// The crossings an event lists at most (the latest), to stay well under
/// PRODUCT.md's 2 KiB for an object pacing over a line all day.
pub const MAX_CROSSINGS: usize = 16;

/// Tracker thresholds; [`Default`] documents the choices (module docs).
/// Durations are seconds of stream time; non-finite or negative ones count
/// as 0.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSettings {
    /// Seen this long (and in at least 2 frames) before `new`.
    pub confirm_s: f64,
    /// Unseen this long before `end`.
    pub lost_s: f64,
    /// Unseen this long before `end` while stationary (never below `lost_s`).
    pub stationary_lost_s: f64,
    /// Detections at or above start and match tracks (the stream's `min_score`).
    pub high_score: f32,
    /// Detections from here up to `high_score` only carry confirmed tracks
    /// (taken as `high_score` when above it).
    pub low_score: f32,
    pub match_iou: f32,
    pub low_match_iou: f32,
    /// An unmatched strong detection overlapping a track of its group more
    /// than this starts nothing.
    pub birth_iou: f32,
    /// The prediction grows by this fraction of its size per side per second
    /// unseen, up to `buffer_max`.
    pub buffer_per_s: f32,
    pub buffer_max: f32,
    /// Weight of a new velocity measurement (0-1).
    pub velocity_alpha: f32,
    /// Frame widths (heights) per second at most.
    pub max_speed: f32,
    /// Labels that are one object when the detector hesitates between them.
    pub label_groups: Vec<Vec<Arc<str>>>,
    pub label_window: usize,
    /// The share of `label_window` (of a full window) another label needs.
    pub label_switch: f32,
    pub stationary_s: f64,
    /// Relative to the box's larger side.
    pub stationary_radius: f32,
    pub moving_frames: u32,
    pub zone_frames: u32,
    pub zone_s: f64,
    /// Dead band around zone edges and lines, relative to the box height,
    /// within [`edge_band_min`, `edge_band_max`] (normalised units).
    pub edge_band: f32,
    pub edge_band_min: f32,
    pub edge_band_max: f32,
    pub max_detections: usize,
    pub max_tracks: usize,
}

impl Default for TrackSettings {
    fn default() -> Self {
        TrackSettings {
            confirm_s: 0.4,
            lost_s: 2.0,
            stationary_lost_s: 30.0,
            high_score: 0.5,
            low_score: 0.2,
            match_iou: 0.2,
            low_match_iou: 0.35,
            birth_iou: 0.6,
            buffer_per_s: 0.3,
            buffer_max: 0.5,
            velocity_alpha: 0.5,
            max_speed: 2.0,
            label_groups: vec![
                ["car", "truck", "bus", "motorcycle"]
                    .iter()
                    .map(|&l| Arc::from(l))
                    .collect(),
            ],
            label_window: 20,
            label_switch: 0.75,
            stationary_s: 10.0,
            stationary_radius: 0.1,
            moving_frames: 2,
            zone_frames: 2,
            zone_s: 0.2,
            edge_band: 0.06,
            edge_band_min: 0.005,
            edge_band_max: 0.03,
            max_detections: 256,
            max_tracks: 256,
        }
    }
}

/// The settings in the units the tracker works in.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub s: TrackSettings,
    pub confirm_ns: u64,
    pub lost_ns: u64,
    pub stationary_lost_ns: u64,
    pub stationary_ns: u64,
    pub zone_ns: u64,
    pub predict_max_s: f32,
    /// Detections another label needs in the window to take over.
    pub label_need: usize,
}

fn ns(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1e9).min(1e18) as u64
    } else {
        0
    }
}

impl Params {
    pub fn new(s: TrackSettings) -> Self {
        let window = s.label_window.clamp(1, 1000);
        let share = if s.label_switch.is_finite() {
            s.label_switch.clamp(0.5, 1.0)
        } else {
            0.75
        };
        Params {
            confirm_ns: ns(s.confirm_s),
            lost_ns: ns(s.lost_s),
            stationary_lost_ns: ns(s.stationary_lost_s),
            stationary_ns: ns(s.stationary_s),
            zone_ns: ns(s.zone_s),
            predict_max_s: (ns(s.lost_s) as f64 / 1e9) as f32,
            label_need: ((window as f32 * share).ceil() as usize).max(1),
            s: TrackSettings {
                label_window: window,
                // A stream's min_score under low_score: all it keeps is strong.
                low_score: s.low_score.min(s.high_score),
                ..s
            },
        }
    }
}

/// The frame that detections come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameInfo {
    /// Buffer timestamp: the tracker's clock. `None`: `captured_at` is.
    pub pts_ns: Option<u64>,
    pub captured_at: SystemTime,
    /// The analysed-frame counter (`FrameMeta::seq`), carried into events.
    pub frame: u64,
}

impl From<&FrameMeta> for FrameInfo {
    fn from(m: &FrameMeta) -> Self {
        FrameInfo {
            pts_ns: m.pts_ns,
            captured_at: m.captured_at,
            frame: m.seq,
        }
    }
}

/// What one frame changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameOutput {
    /// Per input detection (same order): the ID of the confirmed object it
    /// was assigned to. `None`: below `low_score`, invalid, a duplicate, or
    /// a tentative track's.
    pub track_of: Vec<Option<Arc<str>>>,
    /// Lifecycle events in order: `new` and `update` first (by track age),
    /// then `end`s.
    pub events: Vec<Event>,
    /// Whether [`Tracker::counts`] differs from what it was after the
    /// previous `update` or `end_all` (or construction): publish them then.
    /// The first frame after a `set_geometry` that adds or removes a zone or
    /// line says so too.
    pub counts_changed: bool,
}
