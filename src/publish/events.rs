//! The payloads of object events and counts (PRODUCT.md "Events"): their
//! own types, made from the tracker's domain types, independent of MQTT.

use std::time::SystemTime;

use serde::Serialize;

use super::payload::{SubLabelPayload, rfc3339};
use crate::tracking::{Event, EventKind};

/// Version of the event and count payloads.
pub const VERSION: u32 = 1;

/// A box in an event: each number in 0..1, to 3 decimals.
#[derive(Serialize)]
struct EventBox {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

#[derive(Serialize)]
struct EventPayload<'a> {
    v: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    node: &'a str,
    stream: &'a str,
    session: &'a str,
    label: &'a str,
    label_id: u32,
    score: f32,
    top_score: f32,
    #[serde(rename = "box")]
    bbox: EventBox,
    start: String,
    last_seen: String,
    end: Option<String>,
    end_reason: Option<&'static str>,
    frame: u64,
    captured_at: String,
    stationary: bool,
    zones: Vec<&'a str>,
    entered_zones: Vec<&'a str>,
    changes: Vec<String>,
    lines: Vec<CrossingPayload<'a>>,
    /// Once a `classify` rule named the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_label: Option<SubLabelPayload<'a>>,
}

#[derive(Serialize)]
struct CrossingPayload<'a> {
    line: &'a str,
    direction: &'static str,
    at: String,
}

/// Scores and boxes as the schema allows them: finite, within [0, 1],
/// three decimals (the detector is not more precise than that).
fn unit(v: f32) -> f32 {
    if v.is_finite() {
        (v.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

/// One `P/N/S/events` message.
pub fn event(e: &Event, node: &str, stream: &str, session: &str) -> Vec<u8> {
    let p = EventPayload {
        v: VERSION,
        kind: e.type_str(),
        id: &e.id,
        node,
        stream,
        session,
        label: &e.label,
        label_id: e.label_id,
        score: unit(e.score),
        top_score: unit(e.top_score),
        bbox: EventBox {
            x: unit(e.bbox.x),
            y: unit(e.bbox.y),
            w: unit(e.bbox.w),
            h: unit(e.bbox.h),
        },
        start: rfc3339(e.start),
        last_seen: rfc3339(e.last_seen),
        end: e.end().map(rfc3339),
        end_reason: e.end_reason().map(|r| r.as_str()),
        frame: e.frame,
        captured_at: rfc3339(e.captured_at),
        stationary: e.stationary,
        zones: e.zones.iter().map(|z| &*z.zone).collect(),
        entered_zones: e.entered_zones.iter().map(|z| &**z).collect(),
        changes: match e.kind {
            EventKind::Update => e.changes.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        },
        lines: e
            .lines
            .iter()
            .map(|c| CrossingPayload {
                line: &c.line,
                direction: c.direction.as_str(),
                at: rfc3339(c.at),
            })
            .collect(),
        sub_label: e.sub_label.as_ref().map(SubLabelPayload::of),
    };
    serde_json::to_vec(&p).unwrap_or_default()
}

#[derive(Serialize)]
struct CountPayload {
    v: u32,
    count: u32,
    at: String,
}

/// `P/N/S/count/L` and `P/N/S/zones/Z/count/L`.
pub fn count(count: u32, at: SystemTime) -> Vec<u8> {
    serde_json::to_vec(&CountPayload {
        v: VERSION,
        count,
        at: rfc3339(at),
    })
    .unwrap_or_default()
}

#[derive(Serialize)]
struct LinePayload {
    v: u32,
    #[serde(rename = "in")]
    into: u64,
    out: u64,
    since: String,
}

/// `P/N/S/lines/X/L`: crossings since `since` (the daemon's start).
pub fn line(into: u64, out: u64, since: SystemTime) -> Vec<u8> {
    serde_json::to_vec(&LinePayload {
        v: VERSION,
        into,
        out,
        since: rfc3339(since),
    })
    .unwrap_or_default()
}

#[derive(Serialize)]
struct LatestSubLabel<'a> {
    v: u32,
    label: &'a str,
    score: f32,
    /// The object it was given to.
    id: &'a str,
    /// `captured_at` of the frame that settled it.
    at: String,
}

/// One `P/N/S/sub_label/L` message, for an event that assigned one.
pub fn latest_sub_label(e: &Event) -> Option<Vec<u8>> {
    let s = e.sub_label.as_ref()?;
    let p = LatestSubLabel {
        v: VERSION,
        label: &s.label,
        score: unit(s.score),
        id: &e.id,
        at: rfc3339(e.captured_at),
    };
    serde_json::to_vec(&p).ok()
}
