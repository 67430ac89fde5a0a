//! JSON payloads of the contract (PRODUCT.md), independent of the transport.

use std::time::SystemTime;

use serde::{Serialize, Serializer};

use crate::frame::{Analysis, BBox, Class, Detection, Look, Output, SubLabel};
use crate::status::StreamStatus;

/// Version of the detections payload.
pub const VERSION: u32 = 1;

pub use crate::limits::MAX_OBJECTS;

#[derive(Serialize)]
struct DetectionsPayload<'a> {
    v: u32,
    node: &'a str,
    stream: &'a str,
    session: &'a str,
    frame: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pts_ns: Option<u64>,
    captured_at: String,
    latency_ms: f64,
    width: u32,
    height: u32,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    objects: Option<Objects<'a>>,
    /// Present (true) when `objects` was cut to [`MAX_OBJECTS`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    objects_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    classes: Option<Classes<'a>>,
    /// Detection: what the model looked at (`whole`, `regions`, `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    looked: Option<&'static str>,
    /// With `looked: regions`: the regions, normalised.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    regions: Vec<UnitBox>,
}

/// A score or a normalised coordinate within the contract's [0, 1]. A
/// broken or hostile model may give NaN or infinities, which JSON cannot
/// hold (serde writes `null`, outside the schema).
fn unit(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }
}

/// A finite number for JSON, 0 for NaN and infinities.
fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

#[derive(Serialize)]
struct UnitBox {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

impl From<&BBox> for UnitBox {
    fn from(b: &BBox) -> Self {
        Self {
            x: unit(b.x),
            y: unit(b.y),
            w: unit(b.w),
            h: unit(b.h),
        }
    }
}

#[derive(Serialize)]
struct PublishedDetection<'a> {
    label: &'a str,
    label_id: u32,
    score: f32,
    #[serde(rename = "box")]
    bbox: UnitBox,
    #[serde(skip_serializing_if = "Option::is_none")]
    track: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_label: Option<SubLabelPayload<'a>>,
    /// Not looked at in this frame: a tracked object at its last box.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    held: bool,
}

#[derive(Serialize)]
struct PublishedClass<'a> {
    label: &'a str,
    label_id: u32,
    score: f32,
}

/// Detections as published: their numbers within the contract, written
/// straight from the analysis (no copy of the list).
struct Objects<'a>(&'a [Detection]);

impl Serialize for Objects<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|d| PublishedDetection {
            label: &d.label,
            label_id: d.label_id,
            score: unit(d.score),
            bbox: UnitBox::from(&d.bbox),
            track: d.track.as_deref(),
            sub_label: d.sub_label.as_ref().map(SubLabelPayload::of),
            held: d.held,
        }))
    }
}

struct Classes<'a>(&'a [Class]);

impl Serialize for Classes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|c| PublishedClass {
            label: &c.label,
            label_id: c.label_id,
            score: unit(c.score),
        }))
    }
}

/// The message for one analysed frame; `now` is the publish time.
pub fn detections(a: &Analysis, node: &str, now: SystemTime) -> Vec<u8> {
    let latency = now
        .duration_since(a.meta.captured_at)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0);
    let (objects, classes) = match &a.output {
        // Detections arrive best first.
        Output::Detections(d) => (Some(Objects(&d[..d.len().min(MAX_OBJECTS)])), None),
        Output::Classes(c) => (None, Some(Classes(c))),
    };
    let objects_truncated = matches!(&a.output, Output::Detections(d) if d.len() > MAX_OBJECTS);
    let p = DetectionsPayload {
        v: VERSION,
        node,
        stream: &a.meta.stream,
        session: &a.meta.session,
        frame: a.meta.seq,
        pts_ns: a.meta.pts_ns,
        captured_at: rfc3339(a.meta.captured_at),
        latency_ms: finite((latency * 1000.0).round() / 1000.0),
        // Caps come before buffers, so a frame's size is known; the
        // contract says at least 1 even if it were not.
        width: a.meta.source_width.max(1),
        height: a.meta.source_height.max(1),
        model: &a.model,
        looked: objects.is_some().then(|| a.meta.sight.look.name()),
        regions: regions(&a.meta),
        objects,
        objects_truncated,
        classes,
    };
    serde_json::to_vec(&p).unwrap_or_default()
}

/// The regions the model looked at, normalised to the frame.
fn regions(meta: &crate::frame::FrameMeta) -> Vec<UnitBox> {
    let Look::Regions(crops) = &meta.sight.look else {
        return Vec::new();
    };
    let (w, h) = (
        meta.source_width.max(1) as f32,
        meta.source_height.max(1) as f32,
    );
    crops
        .iter()
        .map(|c| {
            UnitBox::from(&BBox {
                x: c.x as f32 / w,
                y: c.y as f32 / h,
                w: c.width as f32 / w,
                h: c.height as f32 / h,
            })
        })
        .collect()
}

#[derive(Serialize)]
struct StatusPayload<'a> {
    state: &'static str,
    since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    fps_in: f64,
    fps_analysed: f64,
}

pub fn status(s: &StreamStatus) -> Vec<u8> {
    let round = |f: f64| finite((f * 100.0).round() / 100.0);
    serde_json::to_vec(&StatusPayload {
        state: s.state.as_str(),
        since: rfc3339(s.since),
        error: s.error.as_deref(),
        fps_in: round(s.fps_in),
        fps_analysed: round(s.fps_analysed),
    })
    .unwrap_or_default()
}

/// The years a timestamp of the contract can show (four digits).
const FIRST_SECOND: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
const LAST_SECOND: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// `{"label": "goldfinch", "score": 0.83}`.
#[derive(Serialize)]
pub(super) struct SubLabelPayload<'a> {
    label: &'a str,
    score: f32,
}

impl<'a> SubLabelPayload<'a> {
    pub(super) fn of(s: &'a SubLabel) -> Self {
        Self {
            label: &s.label,
            score: unit(s.score),
        }
    }
}

/// UTC, millisecond precision: `2026-11-28T17:00:00.123Z`. A time outside
/// years 0000 to 9999 (a broken clock) is clamped to them:
/// `OffsetDateTime::from` would panic on it.
pub fn rfc3339(t: SystemTime) -> String {
    let nanos: i128 = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => i128::try_from(e.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    };
    let range = i128::from(FIRST_SECOND) * 1_000_000_000
        ..=i128::from(LAST_SECOND) * 1_000_000_000 + 999_999_999;
    let nanos = nanos.clamp(*range.start(), *range.end());
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return "1970-01-01T00:00:00.000Z".into();
    };
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::frame::{BBox, FrameMeta};

    #[test]
    fn detections_payload_has_every_contract_field() {
        let captured = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_349_200_123);
        let a = Analysis {
            meta: FrameMeta {
                stream: "front-door".into(),
                session: "a3c1".into(),
                seq: 1234,
                pts_ns: Some(41_000_000_000),
                captured_at: captured,
                delivered: std::time::Instant::now(),
                source_width: 1280,
                source_height: 720,
                full: None,
                sight: Default::default(),
            },
            model: "coco".into(),
            output: Output::Detections(vec![Detection {
                label: Arc::from("person"),
                label_id: 0,
                score: 0.91,
                bbox: BBox {
                    x: 0.1,
                    y: 0.2,
                    w: 0.3,
                    h: 0.4,
                },
                track: None,
                sub_label: None,
                held: false,
            }]),
            inference_ms: 20.0,
        };
        let v: serde_json::Value = serde_json::from_slice(&detections(
            &a,
            "edge-01",
            captured + Duration::from_micros(12_300),
        ))
        .unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["node"], "edge-01");
        assert_eq!(v["stream"], "front-door");
        assert_eq!(v["session"], "a3c1");
        assert_eq!(v["frame"], 1234);
        assert_eq!(v["pts_ns"], 41_000_000_000u64);
        assert_eq!(v["captured_at"], "2025-11-28T17:00:00.123Z");
        assert_eq!(v["latency_ms"], 12.3);
        assert_eq!(v["width"], 1280);
        assert_eq!(v["height"], 720);
        assert_eq!(v["model"], "coco");
        let o = &v["objects"][0];
        assert_eq!(o["label"], "person");
        assert_eq!(o["label_id"], 0);
        assert!((o["score"].as_f64().unwrap() - 0.91).abs() < 1e-6);
        assert!((o["box"]["h"].as_f64().unwrap() - 0.4).abs() < 1e-6);
        assert!(v.get("classes").is_none());
    }

    #[test]
    fn too_many_objects_are_cut_and_flagged() {
        let det = Detection {
            label: Arc::from("person"),
            label_id: 0,
            score: 0.5,
            bbox: BBox {
                x: 0.0,
                y: 0.0,
                w: 0.1,
                h: 0.1,
            },
            track: None,
            sub_label: None,
            held: false,
        };
        let mut a = Analysis {
            meta: FrameMeta {
                stream: "s".into(),
                session: "x".into(),
                seq: 0,
                pts_ns: None,
                captured_at: SystemTime::now(),
                delivered: std::time::Instant::now(),
                source_width: 1,
                source_height: 1,
                full: None,
                sight: Default::default(),
            },
            model: "m".into(),
            output: Output::Detections(vec![det.clone(); MAX_OBJECTS + 5]),
            inference_ms: 1.0,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&detections(&a, "n", SystemTime::now())).unwrap();
        assert_eq!(v["objects"].as_array().unwrap().len(), MAX_OBJECTS);
        assert_eq!(v["objects_truncated"], true);
        a.output = Output::Detections(vec![det]);
        let v: serde_json::Value =
            serde_json::from_slice(&detections(&a, "n", SystemTime::now())).unwrap();
        assert!(v.get("objects_truncated").is_none());
    }

    #[test]
    fn status_payload() {
        let mut s = StreamStatus::new(
            crate::status::StreamState::Reconnecting,
            std::time::SystemTime::now(),
        );
        s.since = SystemTime::UNIX_EPOCH;
        s.error = Some("refused".into());
        s.fps_in = 29.999;
        let v: serde_json::Value = serde_json::from_slice(&status(&s)).unwrap();
        assert_eq!(v["state"], "reconnecting");
        assert_eq!(v["since"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["error"], "refused");
        assert_eq!(v["fps_in"], 30.0);
        assert_eq!(v["fps_analysed"], 0.0);
    }
}

#[cfg(test)]
mod proptests;
