//! What serde cannot check: names, references, ranges, URIs, files, and
//! (once the models are loaded) the labels streams name.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;

use super::{Config, Loaded, Problem};
use crate::limits::{MAX_INPUT_SIDE, MAX_OBJECTS};
use crate::source::SourceSpec;

// Bounds. Each is far beyond any sensible setting and short of where a value
// breaks something (an overflow, a division by zero, a busy loop, memory a
// device does not have), so a typo is caught before it runs.

/// Analysed frames per second: no camera delivers more; the fps gate
/// divides by it, so 1e12 makes a period of zero and 0 divides by zero.
const MAX_FPS: f64 = 1000.0;
/// Frames per run: each waits for the run; past 64 latency and memory grow
/// with no throughput gain on edge devices (docs/BENCHMARKS.md).
const MAX_BATCH: usize = 64;
/// Sessions (each holds the model) and intra-op threads: more than 256 is
/// more than the cores of any edge device, and each costs memory.
const MAX_WORKERS: usize = 256;
const MAX_THREADS: usize = 256;
/// Classifier calls per object: each costs a classification.
const MAX_ATTEMPTS: u32 = 100;
/// Classes published per frame: ImageNet has 1000.
const MAX_TOP_K: usize = 1000;
/// MQTT's keep-alive is a 16-bit number of seconds; 0 would turn pings off
/// and the link's timeout (3 keep-alives) with them.
const MAX_KEEP_ALIVE: u64 = u16::MAX as u64;
/// MQTT 5's message expiry interval is a 32-bit number of seconds.
const MAX_EXPIRY: u64 = u32::MAX as u64;
/// The spool in MiB: 1 TiB is more disk than an edge device has.
const MAX_SPOOL_MB: u64 = 1 << 20;
/// /healthz grace in seconds: a day; beyond it the check never fails (and
/// an Instant plus u64::MAX seconds panics).
const MAX_GRACE: u64 = 86_400;
/// Software decoder threads (0: one per core).
const MAX_DECODER_THREADS: u32 = 256;
/// RTSP jitter buffer: a minute of delay is no live view any more.
const MAX_LATENCY_MS: u32 = 60_000;
/// Capture sizes up to 8K, rates up to what cameras offer.
const MAX_CAPTURE_SIDE: u32 = 8192;
const MAX_FRAMERATE: u32 = 1000;

/// `name` must be within `lo..=hi`; NaN is not.
fn within<T: PartialOrd + Display>(
    problems: &mut Vec<(String, String)>,
    path: String,
    name: &str,
    value: Option<T>,
    lo: T,
    hi: T,
) {
    if let Some(v) = value
        && !(v >= lo && v <= hi)
    {
        problems.push((path, format!("{name} must be from {lo} to {hi}, not {v}")));
    }
}

/// Checks what serde cannot: names, references, ranges, URIs, files.
/// Returns (YAML path, message) pairs.
pub(super) fn validate(config: &Config) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if let Some(node) = &config.node
        && !valid_name(node)
    {
        problems.push((
            "node".into(),
            format!("node {node:?} must match [A-Za-z0-9_-]+ (it is used in topics)"),
        ));
    }
    validate_mqtt(config, &mut problems);
    if let Some(h) = &config.http {
        match h.listen.parse::<std::net::SocketAddr>() {
            Err(_) => problems.push((
                "http.listen".into(),
                format!("{:?} is not host:port, e.g. 127.0.0.1:9464", h.listen),
            )),
            // The page shows every camera: beyond loopback, someone must ask who.
            Ok(a) if !a.ip().is_loopback() && !h.open && h.users.is_empty() => problems.push((
                "http.listen".into(),
                format!(
                    "{} would show every camera to anyone who can reach it, unauthenticated: \
                     add a user under http (users: [{{name: admin, password_hash: ...}}], \
                     the hash printed by `visiond passwd`), or listen on 127.0.0.1 behind \
                     a reverse proxy that asks for a password, or add `open: true` to accept that",
                    h.listen
                ),
            )),
            Ok(_) => {}
        }
        validate_http_access(h, &mut problems);
        within(
            &mut problems,
            "http.grace".into(),
            "grace",
            Some(h.grace),
            0,
            MAX_GRACE,
        );
    }
    if let Some(ha) = &config.homeassistant {
        let p = &ha.prefix;
        if p.is_empty()
            || p.contains(['#', '+', '\0'])
            || p.starts_with('/')
            || p.ends_with('/')
            || p.split('/').any(str::is_empty)
        {
            problems.push((
                "homeassistant.prefix".into(),
                format!(
                    "prefix {p:?} must be topic levels without MQTT wildcards, e.g. homeassistant"
                ),
            ));
        }
    }
    if let Some(c) = &config.cluster {
        validate_cluster(c, &mut problems);
    }
    let model_names = validate_models(config, &mut problems);
    validate_streams(config, &model_names, &mut problems);
    problems
}

/// The most a lease may last: an hour without a word is a dead node.
const MAX_LEASE_S: u64 = 3600;

fn validate_cluster(c: &super::ClusterConfig, problems: &mut Vec<(String, String)>) {
    if c.etcd.is_empty() {
        problems.push((
            "cluster.etcd".into(),
            "name at least one etcd endpoint, e.g. http://10.0.0.2:2379".into(),
        ));
    }
    for (i, e) in c.etcd.iter().enumerate() {
        match url::Url::parse(e) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path().trim_matches('/').is_empty() =>
            {
                if u.scheme() == "http" && c.ca_file.is_some() {
                    problems.push((
                        format!("cluster.etcd[{i}]"),
                        "with ca_file, every endpoint must be https://".into(),
                    ));
                }
                if u.scheme() == "https" && c.ca_file.is_none() {
                    problems.push((
                        format!("cluster.etcd[{i}]"),
                        "https:// needs ca_file, the CA that signed etcd's certificate".into(),
                    ));
                }
            }
            _ => problems.push((
                format!("cluster.etcd[{i}]"),
                format!(
                    "{:?} is not an http(s)://host:port endpoint",
                    crate::redact::url(e)
                ),
            )),
        }
    }
    let p = &c.prefix;
    if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains("//") {
        problems.push((
            "cluster.prefix".into(),
            format!("prefix {p:?} must be a key path like /visiond (no trailing /)"),
        ));
    }
    within(
        problems,
        "cluster.lease_s".into(),
        "lease_s",
        Some(c.lease_s),
        2,
        MAX_LEASE_S,
    );
    if c.max_streams == Some(0) {
        problems.push((
            "cluster.max_streams".into(),
            "max_streams 0 would take no camera: leave the cluster section out instead".into(),
        ));
    }
    tls_files("cluster", [&c.ca_file, &c.cert_file, &c.key_file], problems);
}

/// `ca_file`, `cert_file` and `key_file` of `section`: files that exist,
/// the last two together.
fn tls_files(
    section: &str,
    [ca, cert, key]: [&Option<std::path::PathBuf>; 3],
    problems: &mut Vec<(String, String)>,
) {
    for (name, file) in [("ca_file", ca), ("cert_file", cert), ("key_file", key)] {
        if let Some(f) = file
            && !f.is_file()
        {
            problems.push((
                format!("{section}.{name}"),
                format!("{} not found", f.display()),
            ));
        }
    }
    if cert.is_some() != key.is_some() {
        problems.push((
            format!("{section}.cert_file"),
            "cert_file and key_file go together".into(),
        ));
    }
}

fn validate_mqtt(config: &Config, problems: &mut Vec<(String, String)>) {
    let m = &config.mqtt;
    match url::Url::parse(&m.url) {
        Ok(u) if u.scheme() == "mqtt" && u.host_str().is_some() => {}
        Ok(u) if u.scheme() == "mqtts" && u.host_str().is_some() => {
            if m.ca_file.is_none() {
                problems.push((
                    "mqtt.url".into(),
                    "mqtts:// needs ca_file, the CA that signed the broker's certificate".into(),
                ));
            }
        }
        _ => problems.push((
            "mqtt.url".into(),
            format!(
                "{:?} is not an mqtt://host[:port] URL",
                crate::redact::url(&m.url)
            ),
        )),
    }
    tls_files("mqtt", [&m.ca_file, &m.cert_file, &m.key_file], problems);
    if m.qos > 1 {
        problems.push(("mqtt.qos".into(), "qos must be 0 or 1".into()));
    }
    if !["3.1.1", "5"].contains(&m.protocol.as_str()) {
        problems.push((
            "mqtt.protocol".into(),
            format!("protocol must be 3.1.1 or 5, not {:?}", m.protocol),
        ));
    }
    if m.spool_max_mb == 0 {
        problems.push((
            "mqtt.spool_max_mb".into(),
            "the spool needs at least 1 MiB".into(),
        ));
    }
    let p = problems;
    within(
        p,
        "mqtt.spool_max_mb".into(),
        "spool_max_mb",
        Some(m.spool_max_mb).filter(|&v| v > 0),
        1,
        MAX_SPOOL_MB,
    );
    within(
        p,
        "mqtt.keep_alive".into(),
        "keep_alive",
        Some(m.keep_alive),
        1,
        MAX_KEEP_ALIVE,
    );
    within(
        p,
        "mqtt.expiry".into(),
        "expiry",
        Some(m.expiry),
        0,
        MAX_EXPIRY,
    );
    if m.prefix.is_empty() || m.prefix.contains(['#', '+']) {
        p.push((
            "mqtt.prefix".into(),
            "prefix must be non-empty and contain no MQTT wildcard".into(),
        ));
    }
}

/// Returns the model names.
fn validate_models<'a>(
    config: &'a Config,
    problems: &mut Vec<(String, String)>,
) -> HashSet<&'a str> {
    let mut model_names = HashSet::new();
    for (i, m) in config.models.iter().enumerate() {
        let at = |f: &str| format!("models[{i}].{f}");
        if !model_names.insert(m.name.as_str()) {
            problems.push((at("name"), format!("duplicate model name {:?}", m.name)));
        }
        if !m.path.is_file() {
            problems.push((
                at("path"),
                format!("model {:?}: file {} not found", m.name, m.path.display()),
            ));
        }
        for (j, v) in m.variants.iter().enumerate() {
            if !v.path.is_file() {
                problems.push((
                    at(&format!("variants[{j}].path")),
                    format!(
                        "model {:?}: variant file {} not found",
                        m.name,
                        v.path.display()
                    ),
                ));
            }
            if let Some(a) = v.agreement
                && !(a.is_finite() && a > 0.0 && a <= 1.0)
            {
                problems.push((
                    at(&format!("variants[{j}].agreement")),
                    "agreement must be above 0 and at most 1 (as `visiond eval` reports it)".into(),
                ));
            }
        }
        if m.pick == crate::config::Pick::Auto && m.variants.is_empty() {
            problems.push((
                at("pick"),
                format!(
                    "model {:?}: pick: auto chooses among variants, and there are none",
                    m.name
                ),
            ));
        }
        if let Some(l) = &m.labels
            && !l.is_file()
        {
            problems.push((
                at("labels"),
                format!("model {:?}: labels file {} not found", m.name, l.display()),
            ));
        }
        within(
            problems,
            at("threads"),
            "threads",
            m.threads,
            1,
            MAX_THREADS,
        );
        within(problems, at("batch"), "batch", m.batch, 1, MAX_BATCH);
        within(
            problems,
            at("workers"),
            "workers",
            m.workers,
            1,
            MAX_WORKERS,
        );
        within(problems, at("top_k"), "top_k", m.top_k, 1, MAX_TOP_K);
        if m.iou.is_some_and(|iou| !(0.0..=1.0).contains(&iou)) {
            problems.push((at("iou"), "iou must be between 0 and 1".into()));
        }
        let input = &m.input;
        for (key, v) in [("width", input.width), ("height", input.height)] {
            within(
                problems,
                at(&format!("input.{key}")),
                &format!("input.{key}"),
                v,
                1,
                MAX_INPUT_SIDE,
            );
        }
        if let Some(mean) = input.mean
            && !mean.iter().all(|v| v.is_finite())
        {
            problems.push((at("input.mean"), "input.mean must be finite".into()));
        }
        // The input is divided by it.
        if let Some(std) = input.std
            && !std.iter().all(|v| v.is_finite() && *v != 0.0)
        {
            problems.push((
                at("input.std"),
                "input.std must be finite and non-zero".into(),
            ));
        }
        if let Some(s) = m.output.scale
            && !(s.is_finite() && s > 0.0)
        {
            problems.push((
                at("output.scale"),
                "output.scale must be a positive number".into(),
            ));
        }
    }
    model_names
}

fn validate_streams(
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
        if let super::Track::Settings(t) = &s.track {
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
        if !model_names.contains(s.model.as_str()) {
            problems.push((
                at("model"),
                format!(
                    "stream {:?}: no model named {:?} in models",
                    s.name, s.model
                ),
            ));
        }
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
        let o = &s.options;
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
        validate_classify(s, i, model_names, problems);
    }
}

/// A stream's `classify` rules, as far as the file tells (the models'
/// task and classes: [`check_classify`], once they are loaded).
fn validate_classify(
    s: &super::StreamConfig,
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

/// `; did you mean "x"?` for the closest of `known`, or nothing.
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| {
            (
                strsim::jaro_winkler(&k.to_lowercase(), &name.to_lowercase()),
                k,
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.7)
        .map(|(_, k)| format!("; did you mean {k:?}?"))
        .unwrap_or_default()
}

/// The `classify` rules against the loaded models: each rule's model is a
/// classifier, its classes are among the classifier's, a group has an
/// ImageNet-1k classifier to pick from. `classes_of` gives a classifier's
/// labels, `None` for a model that is not a classifier (or did not load).
pub fn check_classify(
    loaded: &Loaded,
    classes_of: impl Fn(&str) -> Option<Option<Vec<String>>>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, s) in loaded.config.streams.iter().enumerate() {
        for (k, r) in s.classify.iter().enumerate() {
            let at = |f: &str| {
                loaded
                    .locator
                    .nearest(&format!("streams[{i}].classify[{k}].{f}"))
            };
            let Some(task) = classes_of(&r.model) else {
                continue; // not loaded: said elsewhere
            };
            let Some(classes) = task else {
                problems.push(Problem {
                    file: loaded.file.clone(),
                    pos: at("model"),
                    message: format!(
                        "{:?} is not a classifier: classify needs one (e.g. an ImageNet model)",
                        r.model
                    ),
                });
                continue;
            };
            if r.group.is_some() && classes.len() != 1000 {
                problems.push(Problem {
                    file: loaded.file.clone(),
                    pos: at("group"),
                    message: format!(
                        "a group picks ImageNet-1k classes; {:?} has {} labels",
                        r.model,
                        classes.len()
                    ),
                });
            }
            for (j, c) in r.classes.iter().enumerate() {
                if classes.iter().any(|x| x == c) {
                    continue;
                }
                let hint = closest(c, classes.iter().map(String::as_str));
                problems.push(Problem {
                    file: loaded.file.clone(),
                    pos: loaded
                        .locator
                        .nearest(&format!("streams[{i}].classify[{k}].classes[{j}]")),
                    message: format!("{:?} has no class {c:?}{hint}", r.model),
                });
            }
        }
    }
    problems
}

pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Every label a stream's `labels:` names that its model does not have: a
/// typo there would publish empty lists forever. Each problem points at the
/// item (`streams[i].labels[j]`) and suggests the model's closest label.
///
/// `labels_of(model)` gives a model's labels (its labels file, in order)
/// once the model is loaded, or `None` when they are unknown (a model
/// without a labels file publishes class numbers): its streams are not
/// checked. `visiond check` calls this after loading the models; the daemon
/// should too, before it starts the streams (and on reload), and refuse
/// with the problems.
pub fn check_labels(
    loaded: &Loaded,
    labels_of: impl Fn(&str) -> Option<Vec<String>>,
) -> Vec<Problem> {
    let mut known: HashMap<&str, Option<Vec<String>>> = HashMap::new();
    let mut problems = Vec::new();
    for (i, s) in loaded.config.streams.iter().enumerate() {
        // The stream's own labels, and those its zones and lines name.
        let mut wanted: Vec<(String, &str)> = Vec::new();
        fn items(path: String, labels: Option<Vec<&str>>) -> Vec<(String, &str)> {
            let labels = labels.unwrap_or_default();
            let at = |j: usize| format!("{path}.labels[{j}]");
            labels
                .into_iter()
                .enumerate()
                .map(|(j, l)| (at(j), l))
                .collect()
        }
        let own = s
            .labels
            .as_ref()
            .map(|v| v.iter().map(String::as_str).collect());
        wanted.extend(items(format!("streams[{i}]"), own));
        for (k, z) in s.zones.iter().enumerate() {
            let ls = z.labels.as_ref().map(|v| v.iter().map(|l| &**l).collect());
            wanted.extend(items(format!("streams[{i}].zones[{k}]"), ls));
        }
        for (k, l) in s.lines.iter().enumerate() {
            let ls = l.labels.as_ref().map(|v| v.iter().map(|l| &**l).collect());
            wanted.extend(items(format!("streams[{i}].lines[{k}]"), ls));
        }
        for (k, r) in s.classify.iter().enumerate() {
            let ls = Some(r.labels.iter().map(String::as_str).collect());
            wanted.extend(items(format!("streams[{i}].classify[{k}]"), ls));
        }
        if wanted.is_empty() {
            continue;
        }
        let labels = known
            .entry(s.model.as_str())
            .or_insert_with(|| labels_of(&s.model));
        let Some(labels) = labels else { continue };
        for (path, label) in wanted {
            if labels.iter().any(|l| l == label) {
                continue;
            }
            let closest = labels
                .iter()
                .map(|l| {
                    (
                        strsim::jaro_winkler(&l.to_lowercase(), &label.to_lowercase()),
                        l,
                    )
                })
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let hint = match closest {
                Some((_, l)) => format!("; did you mean {l:?}?"),
                None => " (it has none)".to_string(),
            };
            problems.push(loaded.problem_at(
                &path,
                format!(
                    "stream {:?}: model {:?} has no label {label:?}{hint}",
                    s.name, s.model
                ),
            ));
        }
    }
    problems
}

/// `http.users`, `http.tls`, `http.open`: usable, and not contradictory.
fn validate_http_access(h: &super::HttpConfig, problems: &mut Vec<(String, String)>) {
    if h.open && !h.users.is_empty() {
        problems.push((
            "http.open".into(),
            "open: true and users contradict each other: remove one".into(),
        ));
    }
    let mut seen = HashSet::new();
    for (i, u) in h.users.iter().enumerate() {
        let at = |field: &str| format!("http.users[{i}].{field}");
        if u.name.is_empty() || u.name.contains(':') || u.name.chars().any(char::is_control) {
            problems.push((
                at("name"),
                format!(
                    "{:?} cannot be typed into a browser's login (no ':', not empty)",
                    u.name
                ),
            ));
        } else if !seen.insert(&u.name) {
            problems.push((at("name"), format!("user {:?} is given twice", u.name)));
        }
        match (&u.password_hash, &u.password_hash_file) {
            (None, None) => problems.push((
                at("name"),
                "give password_hash (printed by `visiond passwd`) or password_hash_file".into(),
            )),
            (Some(hash), file) => {
                if let Some(why) = crate::http::auth::hash_problem(hash) {
                    let field = if file.is_some() {
                        "password_hash_file"
                    } else {
                        "password_hash"
                    };
                    problems.push((at(field), why));
                }
            }
            // Unreadable: load.rs said so.
            (None, Some(_)) => {}
        }
    }
    if let Some(t) = &h.metrics_token
        && t.len() < 16
    {
        problems.push((
            "http.metrics_token".into(),
            "a token shorter than 16 characters is guessed: use e.g. `openssl rand -hex 24`".into(),
        ));
    }
    if let Some(tls) = &h.tls
        && !tls.pem.cert.is_empty()
        && !tls.pem.key.is_empty()
        && let Err(e) = crate::http::tls::server_config(&tls.pem.cert, &tls.pem.key)
    {
        let field = if e.starts_with("cert") { "cert" } else { "key" };
        let file = if field == "cert" { &tls.cert } else { &tls.key };
        problems.push((
            format!("http.tls.{field}"),
            format!("{}: {e}", file.display()),
        ));
    }
}
