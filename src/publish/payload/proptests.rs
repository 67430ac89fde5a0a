//! Property tests: whatever a model or a clock produces, the detections
//! payload is valid JSON within the contract (docs/schema/detections.schema.json).
//! `PROPTEST_CASES` sets the number of cases (default 32).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::frame::{BBox, FrameMeta};
use crate::status::{StreamState, StreamStatus};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text = include_str!("../../../docs/schema/detections.schema.json");
        let schema: serde_json::Value = serde_json::from_str(text).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema compiles")
    })
}

/// Any float, the awkward ones often.
fn number() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => 0.0f32..=1.0,
        1 => any::<f32>(),
        1 => prop::sample::select(vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            1.0 + f32::EPSILON,
        ]),
    ]
}

/// Labels: any Unicode, empty, long, with quotes and control characters.
fn label() -> impl Strategy<Value = Arc<str>> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        "[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}\u{fffd}]{0,8}",
        ".{200,400}",
    ]
    .prop_map(Arc::from)
}

fn detection() -> impl Strategy<Value = Detection> {
    detection_with(label())
}

/// Many objects: cheap labels, or generating them is most of the test's time.
fn many_detections() -> impl Strategy<Value = Vec<Detection>> {
    prop::collection::vec(
        detection_with("[a-z]{0,6}".prop_map(Arc::from)),
        MAX_OBJECTS - 2..=MAX_OBJECTS + 200,
    )
}

fn detection_with(label: impl Strategy<Value = Arc<str>>) -> impl Strategy<Value = Detection> {
    (
        label,
        any::<u32>(),
        number(),
        [number(), number(), number(), number()],
    )
        .prop_map(|(label, label_id, score, b)| Detection {
            label,
            label_id,
            score,
            bbox: BBox {
                x: b[0],
                y: b[1],
                w: b[2],
                h: b[3],
            },
            track: None,
            sub_label: None,
            held: false,
        })
}

fn class() -> impl Strategy<Value = Class> {
    (label(), any::<u32>(), number()).prop_map(|(label, label_id, score)| Class {
        label,
        label_id,
        score,
    })
}

fn output() -> impl Strategy<Value = Output> {
    prop_oneof![
        4 => prop::collection::vec(detection(), 0..20).prop_map(Output::Detections),
        1 => many_detections().prop_map(Output::Detections),
        2 => prop::collection::vec(class(), 0..20).prop_map(Output::Classes),
    ]
}

/// Any time SystemTime can hold around the epoch, far past and far future.
fn time() -> impl Strategy<Value = SystemTime> {
    (
        any::<bool>(),
        any::<i64>(),
        0u32..1_000_000_000,
        0u64..4_000_000_000,
    )
        .prop_map(|(far, secs, nanos, near)| {
            let d = if far {
                Duration::new(secs.unsigned_abs(), nanos)
            } else {
                Duration::from_secs(near)
            };
            let t = if secs < 0 {
                SystemTime::UNIX_EPOCH.checked_sub(d)
            } else {
                SystemTime::UNIX_EPOCH.checked_add(d)
            };
            t.unwrap_or(SystemTime::UNIX_EPOCH)
        })
}

fn analysis() -> impl Strategy<Value = Analysis> {
    (
        "[A-Za-z0-9_-]{1,24}",
        "[0-9a-f]{1,32}",
        any::<u64>(),
        any::<Option<u64>>(),
        time(),
        (any::<u32>(), any::<u32>()),
        any::<String>(),
        output(),
        number(),
    )
        .prop_map(
            |(stream, session, seq, pts_ns, captured_at, (w, h), model, output, ms)| Analysis {
                meta: FrameMeta {
                    stream: stream.into(),
                    session: session.into(),
                    seq,
                    pts_ns,
                    captured_at,
                    delivered: std::time::Instant::now(),
                    source_width: w,
                    source_height: h,
                    full: None,
                    sight: Default::default(),
                },
                model: model.into(),
                output,
                inference_ms: ms,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    #[test]
    fn any_analysis_gives_a_payload_within_the_contract(
        a in analysis(),
        node in "[A-Za-z0-9_-]{1,24}",
        now in time(),
    ) {
        let bytes = detections(&a, &node, now);
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
        let errors: Vec<String> = validator().iter_errors(&v).map(|e| e.to_string()).collect();
        prop_assert!(errors.is_empty(), "{errors:?}");
        // The cut is the contract's, best (first) kept.
        match &a.output {
            Output::Detections(d) => {
                let objects = v["objects"].as_array().map_or(0, Vec::len);
                prop_assert_eq!(objects, d.len().min(MAX_OBJECTS));
                prop_assert_eq!(v.get("objects_truncated").is_some(), d.len() > MAX_OBJECTS);
                if let Some(first) = d.first() {
                    prop_assert_eq!(v["objects"][0]["label"].as_str(), Some(&*first.label));
                }
            }
            Output::Classes(c) => {
                prop_assert_eq!(v["classes"].as_array().map_or(0, Vec::len), c.len());
            }
        }
        prop_assert!(bytes.len() < 512 * 1024, "{} bytes", bytes.len());
    }

    #[test]
    fn any_status_is_json_with_numbers(
        fps_in in any::<f64>(),
        fps_analysed in any::<f64>(),
        since in time(),
        error in proptest::option::of(any::<String>()),
    ) {
        let mut s = StreamStatus::new(StreamState::Playing, std::time::SystemTime::now());
        s.fps_in = fps_in;
        s.fps_analysed = fps_analysed;
        s.since = since;
        s.error = error.clone();
        let v: serde_json::Value = serde_json::from_slice(&status(&s))
            .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
        prop_assert!(v["fps_in"].is_number() && v["fps_analysed"].is_number(), "{v}");
        prop_assert_eq!(v["since"].as_str().map(str::len), Some(24));
        prop_assert_eq!(v["error"].as_str(), error.as_deref());
    }
}

#[test]
fn nan_and_infinite_numbers_are_published_within_the_contract() {
    let det = |score, x| Detection {
        label: "".into(),
        label_id: 0,
        score,
        bbox: BBox {
            x,
            y: f32::NEG_INFINITY,
            w: 2.0,
            h: -0.5,
        },
        track: None,
        sub_label: None,
        held: false,
    };
    let a = Analysis {
        meta: FrameMeta {
            stream: "s".into(),
            session: "x".into(),
            seq: 0,
            pts_ns: None,
            captured_at: SystemTime::UNIX_EPOCH,
            delivered: std::time::Instant::now(),
            source_width: 0,
            source_height: 0,
            full: None,
            sight: Default::default(),
        },
        model: "".into(),
        output: Output::Detections(vec![det(f32::NAN, f32::NAN), det(f32::INFINITY, 0.5)]),
        inference_ms: f32::NAN,
    };
    let v: serde_json::Value =
        serde_json::from_slice(&detections(&a, "n", SystemTime::UNIX_EPOCH)).unwrap();
    assert_eq!(v["objects"][0]["score"], 0.0);
    assert_eq!(v["objects"][1]["score"], 1.0);
    assert_eq!(
        v["objects"][0]["box"],
        serde_json::json!({"x": 0.0, "y": 0.0, "w": 1.0, "h": 0.0})
    );
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(validator().is_valid(&v), "{v}");
}

#[test]
fn times_beyond_four_digit_years_are_clamped_not_a_panic() {
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
    assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
    if let Some(past) = SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(70_000_000_000)) {
        assert_eq!(rfc3339(past), "0000-01-01T00:00:00.000Z");
    }
    let before = SystemTime::UNIX_EPOCH - Duration::from_millis(1);
    assert_eq!(rfc3339(before), "1969-12-31T23:59:59.999Z");
}
