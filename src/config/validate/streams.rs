//! The streams: names, sources, references to models, ranges, zones and
//! lines, classify rules.

use std::collections::HashSet;

use super::rules::*;
use crate::config::Config;
use crate::config::StreamConfig;
use crate::limits::{MAX_INPUT_SIDE, MAX_OBJECTS};
use crate::source::SourceSpec;

pub(super) fn validate_streams(
    config: &Config,
    model_names: &HashSet<&str>,
    problems: &mut Vec<(String, String)>,
) {
    let mut stream_names = HashSet::new();
    for (i, s) in config.streams.iter().enumerate() {
        let at = |f: &str| format!("streams[{i}].{f}");
        if !valid_name(&s.name) {
            problems.push((
                at("name"),
                format!("stream name {:?} must match [A-Za-z0-9_-]+", s.name),
            ));
        }
        if !stream_names.insert(s.name.as_str()) {
            problems.push((at("name"), format!("duplicate stream name {:?}", s.name)));
        }
        for (path, message) in crate::tracking::validate(&s.geometry()) {
            problems.push((at(&path), format!("stream {:?}: {message}", s.name)));
        }
        if !model_names.contains(s.model.as_str()) {
            problems.push((
                at("model"),
                format!(
                    "stream {:?}: no model named {:?} in models",
                    s.name, s.model
                ),
            ));
        }
        validate_tracking(s, i, problems);
        validate_motion(s, i, problems);
        validate_ranges(s, i, problems);
        validate_source(s, i, problems);
        validate_classify(s, i, model_names, problems);
    }
}

/// `track:` settings within their ranges.
fn validate_tracking(s: &StreamConfig, i: usize, problems: &mut Vec<(String, String)>) {
    let at = |f: &str| format!("streams[{i}].{f}");
    if let crate::config::Track::Settings(t) = &s.track {
        // Seconds of stream time: an hour is longer than any object
        // should stay unconfirmed or unseen; 0 or NaN would confirm
        // or end on every frame.
        within(
            problems,
            at("track.confirm_s"),
            "confirm_s",
            t.confirm_s,
            0.0,
            3600.0,
        );
        within(
            problems,
            at("track.lost_s"),
            "lost_s",
            t.lost_s,
            0.01,
            3600.0,
        );
    }
}

/// `motion:` settings within their ranges, masks that are polygons.
fn validate_motion(s: &StreamConfig, i: usize, problems: &mut Vec<(String, String)>) {
    let at = |f: &str| format!("streams[{i}].motion.{f}");
    let crate::config::Motion::Settings(m) = &s.motion else {
        return;
    };
    within(problems, at("threshold"), "threshold", m.threshold, 1, 255);
    within(problems, at("min_area"), "min_area", m.min_area, 1, 10_000);
    within(
        problems,
        at("max_regions"),
        "max_regions",
        m.max_regions,
        1,
        16,
    );
    // Seconds of stream time; 0 or NaN would check on every frame.
    within(
        problems,
        at("still_every_s"),
        "still_every_s",
        m.still_every_s,
        0.1,
        3600.0,
    );
    within(
        problems,
        at("full_every_s"),
        "full_every_s",
        m.full_every_s,
        0.1,
        86_400.0,
    );
    for (j, mask) in m.mask.iter().enumerate() {
        if mask.len() < 3 {
            problems.push((
                at(&format!("mask[{j}]")),
                format!("a mask needs at least 3 corners, not {}", mask.len()),
            ));
        }
        if mask.iter().flatten().any(|v| !(0.0..=1.0).contains(v)) {
            problems.push((
                at(&format!("mask[{j}]")),
                "a mask's corners are normalised: x and y from 0 to 1".into(),
            ));
        }
    }
}

/// fps, max_objects and min_score within their ranges.
fn validate_ranges(s: &StreamConfig, i: usize, problems: &mut Vec<(String, String)>) {
    let at = |f: &str| format!("streams[{i}].{f}");
    if let Some(fps) = s.fps {
        if !(fps > 0.0 && fps.is_finite()) {
            problems.push((at("fps"), "fps must be a positive number".into()));
        } else if fps > MAX_FPS {
            problems.push((
                at("fps"),
                format!("fps must be at most {MAX_FPS}, not {fps}"),
            ));
        }
    }
    within(
        problems,
        at("max_objects"),
        "max_objects",
        s.max_objects,
        1,
        MAX_OBJECTS,
    );
    if let Some(ms) = s.min_score
        && !(0.0..=1.0).contains(&ms)
    {
        problems.push((at("min_score"), "min_score must be between 0 and 1".into()));
    }
}

/// The source (`source` or `gst`) and the options that go with its kind.
fn validate_source(s: &StreamConfig, i: usize, problems: &mut Vec<(String, String)>) {
    let at = |f: &str| format!("streams[{i}].{f}");
    let spec = s.source_spec();
    match (&s.source, &s.gst) {
        (Some(_), Some(_)) => problems.push((
            at("gst"),
            format!("stream {:?}: give either source or gst, not both", s.name),
        )),
        (None, None) => problems.push((
            format!("streams[{i}]"),
            format!("stream {:?}: source is missing", s.name),
        )),
        _ => {
            if let Err(e) = &spec {
                let field = if s.source.is_some() { "source" } else { "gst" };
                problems.push((at(field), format!("stream {:?}: {e}", s.name)));
            }
        }
    }
    let o = &s.options;
    validate_options(o, i, problems);
    let is_file = matches!(spec, Ok(SourceSpec::File { .. }));
    if o.has_rtsp() && !matches!(spec, Ok(SourceSpec::Rtsp { .. })) {
        problems.push((
            at("options"),
            "transport and latency_ms apply to rtsp:// sources only".into(),
        ));
    }
    if o.has_capture() && !matches!(spec, Ok(SourceSpec::V4l2 { .. })) {
        problems.push((
            at("options"),
            "width, height, framerate and format apply to v4l2:// sources only".into(),
        ));
    }
    if s.realtime && !is_file {
        problems.push((
            at("realtime"),
            "realtime applies to file:// sources only".into(),
        ));
    }
    if s.looping && !is_file {
        problems.push((at("loop"), "loop applies to file:// sources only".into()));
    }
}

/// The source options within their ranges.
fn validate_options(
    o: &crate::source::SourceOptions,
    i: usize,
    problems: &mut Vec<(String, String)>,
) {
    let at = |f: &str| format!("streams[{i}].{f}");
    within(
        problems,
        at("options.decoder_threads"),
        "decoder_threads",
        o.decoder_threads,
        0,
        MAX_DECODER_THREADS,
    );
    within(
        problems,
        at("options.latency_ms"),
        "latency_ms",
        o.latency_ms,
        0,
        MAX_LATENCY_MS,
    );
    within(
        problems,
        at("options.width"),
        "width",
        o.width,
        1,
        MAX_CAPTURE_SIDE,
    );
    within(
        problems,
        at("options.height"),
        "height",
        o.height,
        1,
        MAX_CAPTURE_SIDE,
    );
    within(
        problems,
        at("options.framerate"),
        "framerate",
        o.framerate,
        1,
        MAX_FRAMERATE,
    );
}

/// A stream's `classify` rules, as far as the file tells (the models'
/// task and classes: [`check_classify`], once they are loaded).
pub(super) fn validate_classify(
    s: &crate::config::StreamConfig,
    i: usize,
    model_names: &HashSet<&str>,
    problems: &mut Vec<(String, String)>,
) {
    if !s.classify.is_empty() && !s.track.enabled() {
        problems.push((
            format!("streams[{i}].track"),
            format!(
                "stream {:?}: classify names tracked objects: it needs tracking on",
                s.name
            ),
        ));
    }
    if !s.classify.is_empty() && !s.snapshots {
        problems.push((
            format!("streams[{i}].snapshots"),
            format!(
                "stream {:?}: classify crops the full frames that snapshots keep: remove snapshots: false",
                s.name
            ),
        ));
    }
    for (k, r) in s.classify.iter().enumerate() {
        let at = |f: &str| format!("streams[{i}].classify[{k}].{f}");
        if !model_names.contains(r.model.as_str()) {
            let closest = closest(&r.model, model_names.iter().copied());
            problems.push((
                at("model"),
                format!("no model named {:?} in models{closest}", r.model),
            ));
        }
        if r.labels.is_empty() {
            problems.push((
                at("labels"),
                "name the detector's labels to classify, e.g. [bird]".into(),
            ));
        }
        if let Some(m) = r.min_score
            && !(0.0..=1.0).contains(&m)
        {
            problems.push((at("min_score"), "min_score must be between 0 and 1".into()));
        }
        within(
            problems,
            at("min_size"),
            "min_size",
            r.min_size,
            1,
            MAX_INPUT_SIDE,
        );
        within(
            problems,
            at("max_attempts"),
            "max_attempts",
            r.max_attempts,
            1,
            MAX_ATTEMPTS,
        );
    }
}
