//! What the tracker tells: lifecycle events of objects and count snapshots.
//! Domain types; the MQTT payload is made from them elsewhere.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::frame::{BBox, SubLabel};

/// The side an anchor moved to over a line (PRODUCT.md's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Why an object ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Unseen for `lost_s` (`stationary_lost_s` while stationary).
    Lost,
    StreamStopped,
    Shutdown,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Lost => "lost",
            EndReason::StreamStopped => "stream_stopped",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// One typed change in an `update`; [`fmt::Display`] writes the payload's
/// string (`zone_enter:driveway`, `line:gate:in`, `stationary`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    ZoneEnter(Arc<str>),
    ZoneExit(Arc<str>),
    Line(Arc<str>, Direction),
    Stationary,
    Moving,
    /// The label (and label_id) changed; the event carries the new one.
    Label,
    /// A `classify` rule named it more finely; the event carries it.
    SubLabel,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::ZoneEnter(z) => write!(f, "zone_enter:{z}"),
            Change::ZoneExit(z) => write!(f, "zone_exit:{z}"),
            Change::Line(l, d) => write!(f, "line:{l}:{}", d.as_str()),
            Change::Stationary => f.write_str("stationary"),
            Change::Moving => f.write_str("moving"),
            Change::Label => f.write_str("label"),
            Change::SubLabel => f.write_str("sub_label"),
        }
    }
}

/// A counted line crossing.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    pub line: Arc<str>,
    pub direction: Direction,
    /// `captured_at` of the frame whose anchor was first past the line.
    pub at: SystemTime,
}

/// A zone the anchor is in now, and for how long (loitering).
#[derive(Debug, Clone, PartialEq)]
pub struct InZone {
    pub zone: Arc<str>,
    /// Stream seconds since the anchor entered (first clearly inside).
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Once per object, when its track is confirmed.
    New,
    /// Only with at least one entry in `changes`.
    Update,
    /// Once per object. `at`: `last_seen` for `Lost` (when it was last
    /// there), the time given to `end_all` otherwise.
    End { reason: EndReason, at: SystemTime },
}

/// One lifecycle message of one object: everything PRODUCT.md's event
/// payload needs but `v`, `node`, `stream` and `session`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// `PREFIX-N`, unique per tracker, stable for the object's life.
    pub id: Arc<str>,
    pub label: Arc<str>,
    pub label_id: u32,
    /// The latest matched detection's score, and the best one.
    pub score: f32,
    pub top_score: f32,
    /// The latest detected box (not a prediction), normalised.
    pub bbox: BBox,
    /// `captured_at` of the first and latest frames it was detected in.
    pub start: SystemTime,
    pub last_seen: SystemTime,
    /// The frame that caused the event (its counter and `captured_at`); for
    /// `end_all`, the last frame the tracker was given.
    pub frame: u64,
    pub captured_at: SystemTime,
    pub stationary: bool,
    /// Zones the anchor is in now (debounced), in geometry order.
    pub zones: Vec<InZone>,
    /// Every zone entered during its life, in order of first entry.
    pub entered_zones: Vec<Arc<str>>,
    /// Empty for `new` and `end`; never empty for `update`.
    pub changes: Vec<Change>,
    /// Its counted crossings, oldest first (the latest
    /// [`MAX_CROSSINGS`](super::MAX_CROSSINGS) kept).
    pub lines: Vec<Crossing>,
    /// Its finer name, once a `classify` rule assigned one.
    pub sub_label: Option<SubLabel>,
}

impl Event {
    pub fn end_reason(&self) -> Option<EndReason> {
        match self.kind {
            EventKind::End { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn end(&self) -> Option<SystemTime> {
        match self.kind {
            EventKind::End { at, .. } => Some(at),
            _ => None,
        }
    }

    /// "new", "update" or "end".
    pub fn type_str(&self) -> &'static str {
        match self.kind {
            EventKind::New => "new",
            EventKind::Update => "update",
            EventKind::End { .. } => "end",
        }
    }
}

/// Line totals for one label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCount {
    pub r#in: u64,
    pub out: u64,
}

/// A snapshot of the counts; compare two with `==` to publish on change.
///
/// A label once counted stays in its map with 0 when none is left, and the
/// labels a zone or line lists are there from the start, so that a change
/// to 0 shows in the comparison. Every zone and line of the geometry has an
/// entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Confirmed, not ended objects per label (unseen ones being carried
    /// until `lost_s` included).
    pub objects: BTreeMap<Arc<str>, u32>,
    /// Per zone, per label: confirmed objects whose anchor is in it.
    pub zones: BTreeMap<Arc<str>, BTreeMap<Arc<str>, u32>>,
    /// Per line, per label: crossings of confirmed objects since the tracker
    /// was made (kept across `set_geometry` for lines whose name stays).
    pub lines: BTreeMap<Arc<str>, BTreeMap<Arc<str>, LineCount>>,
}
